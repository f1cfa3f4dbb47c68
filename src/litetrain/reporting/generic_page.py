"""The page of any result without a page of its own: its numbers and texts as a table, then its settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litetrain.reporting.page import (
    Cell,
    Page,
    Section,
    Source,
    Table,
    tail_sections,
)

MAX_GENERIC_ROWS = 400


def generic_page(result: dict[str, Any]) -> Page:
    """Any other result: its numbers and texts as a table, then environment and settings."""
    src = Source(result)
    kind = str(src.get("kind", default="?"))
    rows: list[list[str | Cell]] = []
    skip = {"environment", "settings", "kind", "schema_version"}

    def walk(value: Any, at: list[Any]) -> None:
        if len(rows) >= MAX_GENERIC_ROWS:
            return
        if isinstance(value, Mapping):
            for k, v in value.items():
                if at or k not in skip:
                    walk(v, [*at, k])
        elif isinstance(value, list) and value and all(isinstance(v, int | float) and not isinstance(v, bool)
                                                       for v in value) and len(value) > 8:
            rows.append([".".join(map(str, at)), Cell(f"{len(value)} numbers")])
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, [*at, i])
        else:
            fmt = "auto" if isinstance(value, int | float) and not isinstance(value, bool) else "text"
            rows.append([".".join(map(str, at)), src.cell(*at, fmt=fmt)])

    walk(result, [])
    page = Page(title=f"litetrain {kind}", question=f"litetrain {kind} result", badge=None, tone="info",
                answer=[f"A '{kind}' result; this version of litetrain has no dedicated page for it, so here are "
                        "its figures and settings."])
    page.sections.append(Section("figures", "Figures", tables=[Table("figures-table", ["field", "value"], rows,
                                                                      numeric=False)]))
    page.sections += tail_sections(src)
    return page
