"""A result as one self-contained HTML file: the answer in one sentence, plots, census, environment, settings.

``render_html(result)`` takes the ``to_json()`` dict of any litetrain result and dispatches on its ``kind``
(``check``/``compare``/``demo``, ``quantize``, ``train``, ``federate``; anything else gets a generic page). The
page has no external resources: CSS and SVG plots are inline, fonts are the reader's own, and the only script
element is the result JSON itself (``type="application/json"``, never executed), so a report can be re-rendered
and reproduced from itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from litetrain._io import atomic_write_text
from litetrain.errors import DataError
from litetrain.reporting.page import Page

COMPARISON_KINDS = ("check", "compare", "demo")
SCHEMA_MAJOR = 1
"""The major version of the result schema this litetrain reads (docs/report-schema.md)."""


def _builders() -> dict[str, Callable[[dict[str, Any]], Page]]:
    from litetrain.reporting.comparison_page import comparison_page
    from litetrain.reporting.federate_page import federate_page
    from litetrain.reporting.quantize_page import quantize_page
    from litetrain.reporting.train_page import train_page

    return {**{k: comparison_page for k in COMPARISON_KINDS}, "quantize": quantize_page, "train": train_page,
            "federate": federate_page}


def build_page(result: Mapping[str, Any]) -> Page:
    """The page model of ``result`` (what :func:`render_html` lays out)."""
    from litetrain.reporting.generic_page import generic_page

    data = dict(result)
    return _builders().get(str(data.get("kind", "")), generic_page)(data)


def embedded_json(result: Mapping[str, Any]) -> str:
    """The result as JSON that is safe inside ``<script type="application/json">`` (``<``, ``>``, ``&`` escaped)."""
    text = json.dumps(result, indent=None, separators=(",", ":"), allow_nan=False, default=str)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def schema_version(result: Mapping[str, Any], where: str = "The result") -> str | None:
    """The result's schema version as ``"MAJOR.MINOR"``, or None when it has none.

    Every kind writes the string ``"1.0"``; quantize, train, federate and export results of earlier development
    versions wrote the integer ``1``, which means the same and reads as ``"1.0"``.

    Raises:
        DataError: a value that is neither a version string nor a whole number.
    """
    import re

    value = result.get("schema_version")
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return f"{value}.0"
    if isinstance(value, str) and re.fullmatch(r"\d+(\.\d+)?", value):
        return value if "." in value else f"{value}.0"
    raise DataError(f"{where} has schema_version {value!r}, which is neither a version string like \"1.0\" nor a "
                    "whole number.", hint="Give a result written by litetrain (--json OUT), unedited.")


def render_html(result: Mapping[str, Any]) -> str:
    """Renders any result's ``to_json()`` dict to a self-contained HTML document.

    Raises:
        DataError: ``result`` is not a result dict (no ``kind``), or holds values JSON cannot represent.
    """
    if not isinstance(result, Mapping) or "kind" not in result:
        raise DataError(
            "Cannot render a report: the result has no 'kind' field"
            + (f" (received a {type(result).__name__})." if not isinstance(result, Mapping) else "."),
            hint="Pass the to_json() dict of a litetrain result, or a JSON file written with --json.",
        )
    import jinja2

    from litetrain import __version__

    try:
        payload = embedded_json(result)
    except ValueError as exc:  # NaN/Inf floats: to_json() writes them as strings, a hand-made dict may not
        raise DataError(f"Cannot render a report: the result is not standard JSON ({exc}).",
                        hint="Write non-finite numbers as the strings 'NaN', 'Infinity', '-Infinity'.") from None
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("litetrain.reporting", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        keep_trailing_newline=True,
    )
    page = build_page(result)
    try:
        schema = schema_version(result) or "?"
    except DataError:  # a hand-made dict: show what it says
        schema = str(result.get("schema_version"))
    return env.get_template("report.html").render(
        page=page, kind=str(result.get("kind")), version=__version__, schema=schema, result_json=payload,
    )


def write_html(result: Mapping[str, Any], path: str | Path) -> Path:
    """Renders ``result`` and writes it to ``path`` atomically (never a half-written file)."""
    return atomic_write_text(path, render_html(result))


def load_result(path: str | Path) -> dict[str, Any]:
    """Reads a result JSON written with ``--json`` (or an HTML report, from its embedded result).

    Both forms of schema version 1 are accepted (``"1.0"``, and the integer ``1`` of older results).

    Raises:
        DataError: missing, unreadable, not JSON, not a result, or a result of a newer major schema version.
    """
    from litetrain.errors import UsageError

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"No result file at {str(path)!r}.", hint="Give the JSON written by --json OUT.")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"Cannot read {str(path)!r}: {exc}.", hint="Give the JSON written by --json OUT.") from None
    if path.suffix.lower() in (".html", ".htm"):
        text = _embedded_from_html(text, path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{str(path)!r} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
                        hint="Give the JSON written by --json OUT (a truncated file cannot be read).") from None
    if not isinstance(data, dict) or "kind" not in data:
        raise DataError(f"{str(path)!r} is JSON but not a litetrain result (no 'kind' field).",
                        hint="Give the JSON written by check/compare/demo/quantize/train/federate --json OUT.")
    version = schema_version(data, repr(str(path)))
    if version is not None and int(version.split(".")[0]) > SCHEMA_MAJOR:
        from litetrain import __version__

        raise DataError(f"{str(path)!r} is a result of schema {version}; this litetrain ({__version__}) reads "
                        f"schema {SCHEMA_MAJOR}.x, and a new major version changes what fields mean.",
                        hint="Render it with the litetrain that wrote it, or upgrade: pip install -U litetrain.")
    return data


def _embedded_from_html(text: str, path: Path) -> str:
    import re

    m = re.search(r'<script type="application/json" id="litetrain-result">(.*?)</script>', text, re.S)
    if not m:
        raise DataError(f"{str(path)!r} is HTML without an embedded litetrain result.",
                        hint="Give a report written by litetrain, or the result JSON.")
    return m.group(1)
