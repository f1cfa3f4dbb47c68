"""The demo report in a real browser: headless Chromium (Debian's chromium + chromium-driver) through Selenium.

Checks that every plot is present, displayed and has a size, that the page requests nothing but itself, and that
the console has no errors; keeps a screenshot in ``test-artifacts/report.png``. Without the browser the test fails
when ``CI`` or ``LITETRAIN_REQUIRE_BROWSER`` is set (``dev/test.sh`` installs it there) and is skipped otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from litetrain.reporting.html import render_html
from tests.browser import headless_chromium, unavailable
from tests.reporting.conftest import repo_root
from tests.reporting.test_html import DEMO_FIGURES

KIND_FIGURES = {"quantize": ("fig-quant-matrix", "fig-quant-error"), "train": ("fig-train-curves", "fig-train-time"),
                "federate": ("fig-federated-accuracy",)}


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    d = headless_chromium(tmp_path_factory.mktemp("chromium-profile"), logs=("performance", "browser"))
    try:
        d.get("about:blank")  # leave the new-tab page, whose browser-internal requests are not the report's
        yield d
    finally:
        d.quit()


def open_page(driver: Any, path: Path) -> dict[str, Any]:
    """Loads ``path``; returns the URLs it requested (other than itself) and its console errors."""
    driver.get_log("performance")  # drain what earlier pages left
    driver.get_log("browser")
    url = path.resolve().as_uri()
    driver.get(url)
    driver.execute_script("return document.readyState")
    requests = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") not in ("Network.requestWillBeSent", "Network.webSocketCreated"):
            continue
        params = message["params"]
        requested = params.get("request", {}).get("url") or params.get("url", "")
        # Anything the page asked for besides itself, and anything at all that went to a network scheme.
        from_page = params.get("documentURL") == url
        networked = requested.split(":", 1)[0] in ("http", "https", "ws", "wss", "ftp")
        if requested != url and (from_page or networked):
            requests.append(requested)
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return {"requests": requests, "errors": errors}


def assert_plots_visible(driver: Any, figure_ids: tuple[str, ...]) -> None:
    from selenium.webdriver.common.by import By

    present = {el.get_attribute("id") for el in driver.find_elements(By.CSS_SELECTOR, "figure[id]")}
    assert set(figure_ids) <= present, f"missing figures: {sorted(set(figure_ids) - present)}"
    for fig_id in present:
        figure = driver.find_element(By.ID, fig_id)
        driver.execute_script("arguments[0].scrollIntoView()", figure)
        assert figure.is_displayed(), fig_id
        plot = figure.find_element(By.CSS_SELECTOR, "svg, img")
        assert plot.is_displayed(), fig_id
        size = plot.size
        assert size["width"] > 200 and size["height"] > 80, (fig_id, size)
        caption = figure.find_element(By.TAG_NAME, "figcaption")
        assert caption.is_displayed() and caption.text.strip(), fig_id


def test_demo_report_in_headless_chromium(driver, demo_run):
    from selenium.webdriver.common.by import By

    seen = open_page(driver, demo_run.html_path)
    assert seen["requests"] == [], f"the report requested: {seen['requests']}"
    assert seen["errors"] == [], f"console errors: {seen['errors']}"
    assert_plots_visible(driver, DEMO_FIGURES)
    answer = driver.find_element(By.ID, "answer")
    assert answer.is_displayed() and "Yes" in answer.text and "CONSISTENT" in answer.text.upper()
    assert driver.execute_script("return JSON.parse(document.getElementById('litetrain-result').textContent)"
                                 "['verdict']") == "consistent"
    # Readable on a laptop: nothing wider than the window, so no sideways scrolling.
    assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    artifacts = repo_root() / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1366, min(int(height) + 120, 16000))
    shot = artifacts / "report.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 50_000
    driver.set_window_size(1366, 900)


@pytest.mark.parametrize("kind", sorted(KIND_FIGURES))
@pytest.mark.parametrize("source", ["hand_made", "real"])
def test_other_kinds_in_headless_chromium(driver, request, source, kind, tmp_path):
    """Hand-made results and real ones (tests/reporting/data); a screenshot of each real page is kept."""
    page = tmp_path / f"{kind}.html"
    page.write_text(render_html(request.getfixturevalue(source)[kind]))
    seen = open_page(driver, page)
    assert seen == {"requests": [], "errors": []}
    assert_plots_visible(driver, KIND_FIGURES[kind])
    assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    # No table needs its own sideways scrolling either.
    wide = driver.execute_script("return [...document.querySelectorAll('.table-wrap')].filter("
                                 "w => w.scrollWidth > w.clientWidth + 1).map(w => w.querySelector('table').id)")
    assert wide == [], f"tables wider than the page: {wide}"
    if kind == "train":
        # What it cost: the measured budget and its projection side by side, not the projection on a row of its own.
        tops = driver.execute_script("return ['budget-table', 'projection-table'].map("
                                     "id => document.getElementById(id).getBoundingClientRect().top)")
        assert abs(tops[0] - tops[1]) < 2, tops
    if source == "real":
        artifacts = repo_root() / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1366, min(int(height) + 120, 16000))
        try:
            assert driver.save_screenshot(str(artifacts / f"report-{kind}.png"))
        finally:
            driver.set_window_size(1366, 900)


def test_the_checks_catch_network_requests_and_console_errors(driver, tmp_path):
    """A page that loads an image from the network and throws: both detectors must fire."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><body><img src="http://litetrain.invalid/x.png">'
                    "<script>throw new Error('boom')</script></body></html>")
    seen = open_page(driver, page)
    assert any("litetrain.invalid" in u for u in seen["requests"])
    assert any("boom" in e for e in seen["errors"])


def test_a_missing_browser_fails_where_it_is_required(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("LITETRAIN_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="must run"):
        unavailable("no chromium on this machine")
    monkeypatch.delenv("LITETRAIN_REQUIRE_BROWSER")
    with pytest.raises(pytest.skip.Exception, match="install Debian's chromium"):
        unavailable("no chromium on this machine")
