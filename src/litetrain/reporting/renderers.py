"""The terminal and notebook renderings of a result, looked up by the result's ``kind``.

Results are data: their ``__str__`` and ``_repr_html_`` ask this table for the function that renders them, so a
result never imports the module that renders it (and that module may import the result for its types). A new kind
renders in the terminal with one line in ``_TEXT``; without a line in ``_NOTEBOOK`` Jupyter shows the text in a
``<pre>``.
"""

from __future__ import annotations

import html
import importlib
from collections.abc import Callable
from typing import Any

from litetrain.errors import InternalError

_TEXT = {
    "check": "litetrain.reporting.console:render_comparison",
    "compare": "litetrain.reporting.console:render_comparison",
    "demo": "litetrain.reporting.console:render_comparison",
    "quantize": "litetrain.reporting.quantize_console:render_quantize",
    "train": "litetrain.reporting.train_console:render_train",
}
_NOTEBOOK = {
    "check": "litetrain.reporting.console:render_comparison_html",
    "compare": "litetrain.reporting.console:render_comparison_html",
    "demo": "litetrain.reporting.console:render_comparison_html",
}


def _renderer(table: dict[str, str], kind: str) -> Callable[[Any], str] | None:
    where = table.get(kind)
    if where is None:
        return None
    module, _, name = where.partition(":")
    renderer: Callable[[Any], str] = getattr(importlib.import_module(module), name)
    return renderer


def render_text(result: Any) -> str:
    """The console table of ``result``, by its ``kind``.

    Raises:
        InternalError: a kind without a renderer (a result class that forgot its line in ``_TEXT``).
    """
    renderer = _renderer(_TEXT, result.kind)
    if renderer is None:
        raise InternalError(f"No console rendering for results of kind {result.kind!r}; add one to {__name__}.")
    return renderer(result)


def render_notebook(result: Any) -> str:
    """The HTML that Jupyter shows for ``result``: its own table, else the console text in a ``<pre>``."""
    renderer = _renderer(_NOTEBOOK, result.kind)
    return renderer(result) if renderer is not None else f"<pre>{html.escape(render_text(result))}</pre>"
