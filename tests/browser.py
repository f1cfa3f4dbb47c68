"""Headless Chromium (Debian's chromium + chromium-driver) through Selenium, for the tests that need a real browser.

Without the browser a test fails when ``CI`` or ``LITETRAIN_REQUIRE_BROWSER`` is set (``dev/test.sh`` installs it
there) and is skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--window-size=1366,900",
)


def _binary(name: str, fallback: str) -> str | None:
    return shutil.which(name) or (fallback if os.path.exists(fallback) else None)


def unavailable(reason: str, needs: str = "Debian's chromium and chromium-driver") -> None:
    """Fails under CI (the browser must run there), skips elsewhere."""
    if os.environ.get("CI") or os.environ.get("LITETRAIN_REQUIRE_BROWSER"):
        pytest.fail(f"{reason}; CI/LITETRAIN_REQUIRE_BROWSER is set, so the browser test must run here "
                    f"(dev/test.sh installs {needs} when run as root).")
    pytest.skip(f"{reason}: install {needs} to run the browser test")


def headless_chromium(profile: Path, logs: tuple[str, ...] = ("browser",),
                      needs: str = "Debian's chromium and chromium-driver") -> Any:
    """A new Selenium driver of headless Chromium with its own profile folder, logging ``logs``."""
    chromium = _binary("chromium", "/usr/bin/chromium")
    chromedriver = _binary("chromedriver", "/usr/bin/chromedriver")
    if chromium is None or chromedriver is None:
        unavailable(f"no {'chromium' if chromium is None else 'chromedriver'} on this machine", needs)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        unavailable("selenium is not installed", needs)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {kind: "ALL" for kind in logs})
    return webdriver.Chrome(service=Service(chromedriver), options=options)
