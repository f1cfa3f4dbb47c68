"""What an HTML report shows, independent of markup: cells tied to JSON keys, figures, tables, sections.

Every number on the page is a :class:`Cell` made by :meth:`Source.cell`: it reads the value at a JSON Pointer
(RFC 6901) of the result and formats it with :func:`format_value`, and the page carries the pointer and the format
(``data-key``, ``data-format``), so a test can check that the HTML shows exactly what the JSON says.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

MISSING = "–"


def format_value(value: Any, fmt: str = "num") -> str:
    """Formats a JSON value for the page; the one formatting function of every figure in a report.

    Args:
        value: A value from the result JSON (non-finite floats are the strings ``"NaN"``, ``"Infinity"``).
        fmt: ``num`` (3-4 significant digits), ``pct``, ``int``, ``bytes``, ``sec`` (s, ms or µs), ``rate`` (per second),
            ``ratio`` (``0.32x``), ``bool`` (yes/no), ``text``, ``json`` (compact JSON), ``auto`` (settings).
    """
    if value is None:
        return MISSING
    if fmt == "json":
        return json.dumps(value, separators=(", ", ": "))
    if fmt == "text":
        return str(value)
    if fmt == "bool" or isinstance(value, bool):
        return ("yes" if value else "no") if fmt == "bool" else ("true" if value else "false")
    if isinstance(value, str):  # "NaN", "Infinity", or a word in a numeric column
        return value
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(", ", ": "))
    v = float(value)
    if not math.isfinite(v):
        return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")
    if fmt == "auto":
        return str(int(value)) if isinstance(value, int) else f"{v:.6g}"
    if fmt == "pct":
        return f"{v:.1%}"
    if fmt == "int":
        return f"{int(v):,}"
    if fmt == "bytes":
        for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
            if abs(v) >= size:
                return f"{v / size:.1f} {unit}"
        return f"{int(v)} B"
    if fmt == "sec":
        if 0 < abs(v) < 1e-3:
            return f"{v * 1e6:.3g} µs"
        return f"{v * 1e3:.3g} ms" if 0 < abs(v) < 1 else f"{v:.3g} s"
    if fmt == "rate":
        return f"{v:,.0f}/s" if abs(v) >= 100 else f"{v:.3g}/s"
    if fmt == "ratio":
        return f"{v:.2g}x"
    if v == 0:
        return "0"
    return f"{v:.3g}" if abs(v) < 1e-3 or abs(v) >= 1e6 else f"{v:.4g}"


def pointer(path: Sequence[Any]) -> str:
    """The JSON Pointer of ``path`` (keys and list indices)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def resolve(doc: Any, ptr: str) -> Any:
    """The value at JSON Pointer ``ptr`` in ``doc``; raises KeyError/IndexError when absent."""
    if not ptr:
        return doc
    for raw in ptr[1:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


@dataclasses.dataclass(frozen=True)
class Cell:
    """One shown value: its text, and the JSON Pointer and format it came from (None for labels)."""

    text: str
    key: str | None = None
    fmt: str | None = None
    cls: str = ""


@dataclasses.dataclass
class Figure:
    """A plot: ``<figure id=...>`` with an inline SVG and a caption (text and cells)."""

    id: str
    title: str
    svg: str
    caption: list[str | Cell] = dataclasses.field(default_factory=list)
    wide: bool = False


@dataclasses.dataclass
class Table:
    id: str
    header: list[str]
    rows: list[list[str | Cell]]
    title: str = ""
    note: str = ""
    numeric: bool = True  # right-align every column but the first


@dataclasses.dataclass
class Section:
    id: str
    title: str
    intro: list[str | Cell] = dataclasses.field(default_factory=list)
    figures: list[Figure] = dataclasses.field(default_factory=list)
    tables: list[Table] = dataclasses.field(default_factory=list)
    code: str = ""  # a preformatted block, e.g. the command that reproduces the result


@dataclasses.dataclass
class Page:
    """The whole report: the question, the one-sentence answer, key figures, then sections."""

    title: str
    question: str
    badge: Cell | None
    tone: str  # good | warn | bad | info: colours the answer
    answer: list[str | Cell]
    explanation: list[str | Cell] = dataclasses.field(default_factory=list)
    highlights: list[tuple[str, Cell]] = dataclasses.field(default_factory=list)
    sections: list[Section] = dataclasses.field(default_factory=list)
    subtitle: str = ""


class Source:
    """Reads a result dict and makes cells that remember where their value came from."""

    def __init__(self, result: Mapping[str, Any]) -> None:
        self.result = result

    def get(self, *path: Any, default: Any = None) -> Any:
        try:
            return resolve(self.result, pointer(path))
        except (KeyError, IndexError, TypeError, ValueError):
            return default

    def has(self, *path: Any) -> bool:
        sentinel = object()
        return self.get(*path, default=sentinel) is not sentinel

    def cell(self, *path: Any, fmt: str = "num", cls: str = "") -> Cell:
        """The value at ``path`` formatted with ``fmt``; a dash (and no key) when the result lacks it."""
        if not self.has(*path):
            return Cell(MISSING, cls=cls)
        return Cell(format_value(self.get(*path), fmt), pointer(path), fmt, cls)

    def number(self, *path: Any) -> float | None:
        """The value at ``path`` as a finite float, else None."""
        v = self.get(*path)
        if isinstance(v, bool) or not isinstance(v, int | float):
            return None
        return float(v) if math.isfinite(v) else None

    def mapping(self, *path: Any) -> dict[str, Any]:
        v = self.get(*path)
        return dict(v) if isinstance(v, Mapping) else {}

    def sequence(self, *path: Any) -> list[Any]:
        v = self.get(*path)
        return list(v) if isinstance(v, list | tuple) else []


def settings_table(src: Source, path: Sequence[str] = ("settings",), table_id: str = "settings-table") -> Table:
    """Every leaf of the settings, flattened (``optimizer.learning_rate``), formatted ``auto``."""
    rows: list[list[str | Cell]] = []

    def walk(value: Any, at: list[Any]) -> None:
        if isinstance(value, Mapping) and value:
            for k, v in value.items():
                walk(v, [*at, k])
        else:
            rows.append([".".join(str(p) for p in at[len(path):]), src.cell(*at, fmt="auto")])

    walk(src.get(*path), list(path))
    return Table(table_id, ["setting", "value"], rows, numeric=False)


def environment_section(src: Source) -> Section | None:
    env = src.mapping("environment")
    if not env:
        return None
    rows: list[list[str | Cell]] = [
        [name, src.cell("environment", "packages", name, fmt="text")] for name in src.mapping("environment", "packages")
    ]
    for key, label in (("python", "Python"), ("platform", "platform"), ("machine", "machine"), ("cpu", "CPU"),
                       ("cpu_count", "CPU cores"), ("tf_enable_onednn_opts", "TF_ENABLE_ONEDNN_OPTS")):
        if key in env:
            rows.append([label, src.cell("environment", key, fmt="auto")])
    return Section("environment", "Environment", tables=[Table("environment-table", ["package", "version"], rows,
                                                                numeric=False)])


def timings_table(src: Source, path: Sequence[str] = ("timings_s",)) -> Table | None:
    timings = src.mapping(*path)
    if not timings:
        return None
    rows: list[list[str | Cell]] = [[k.removesuffix("_s").replace("_", " "), src.cell(*path, k, fmt="sec")]
                                    for k in timings]
    return Table("timings-table", ["stage", "time"], rows, title="Where the time went")


def census_section(src: Source, model_path: Sequence[str] = ("model",)) -> Section | None:
    """Op census (ops by signature, builtin/flex/custom), signatures, variables and size of the .tflite."""
    ops = src.mapping(*model_path, "ops")
    if not ops:
        return None
    ops_path = (*model_path, "ops")
    intro: list[str | Cell] = []
    if src.has(*model_path, "size_bytes"):
        intro += ["The .tflite is ", src.cell(*model_path, "size_bytes", fmt="bytes"), " with "]
    intro += [src.cell(*ops_path, "total", "builtin", fmt="int"), " builtin, ",
              src.cell(*ops_path, "total", "flex", fmt="int", cls="flex" if src.get(*ops_path, "total", "flex")
                       else ""), " select-TF (Flex) and ",
              src.cell(*ops_path, "total", "custom", fmt="int"), " custom ops. "]
    intro.append("Builtin ops only: it runs in LiteRT without the select-TF-ops library."
                  if ops.get("builtin_only") else
                  "It needs the select-TF-ops library on the phone, and current desktop interpreters cannot run it.")
    tables = []
    by_sig = src.mapping(*ops_path, "by_signature")
    if by_sig:
        sigs = list(by_sig)
        kinds = {**{op: "builtin" for op in src.mapping(*ops_path, "builtin")},
                 **{op: "flex" for op in src.mapping(*ops_path, "flex")},
                 **{op: "custom" for op in src.mapping(*ops_path, "custom")}}
        all_ops = sorted({op for s in sigs for op in by_sig[s]})
        rows: list[list[str | Cell]] = []
        for op in all_ops:
            cls = "" if kinds.get(op, "builtin") == "builtin" else "flex"
            row: list[str | Cell] = [Cell(op + ("" if not cls else f" ({kinds[op]})"), cls=cls)]
            row += [src.cell(*ops_path, "by_signature", s, op, fmt="int") if op in by_sig[s] else Cell("")
                    for s in sigs]
            rows.append(row)
        tables.append(Table("census-table", ["op", *sigs], rows, title="Ops by signature"))
    signatures = src.mapping(*model_path, "signatures")
    if signatures:
        rows = []
        for sig, io in signatures.items():
            for direction in ("inputs", "outputs"):
                for i in range(len(io.get(direction) or [])):
                    at = (*model_path, "signatures", sig, direction, i)
                    rows.append([sig, direction[:-1], src.cell(*at, "name", fmt="text"),
                                 src.cell(*at, "shape", fmt="json"), src.cell(*at, "dtype", fmt="text")])
        tables.append(Table("signatures-table", ["signature", "", "tensor", "shape", "dtype"], rows,
                            title="Signatures", note="shape -1: any size", numeric=False))
    variables = src.sequence(*model_path, "variables")
    if variables:
        rows = [[src.cell(*model_path, "variables", i, "name", fmt="text"),
                 src.cell(*model_path, "variables", i, "path", fmt="text"),
                 src.cell(*model_path, "variables", i, "role", fmt="text"),
                 src.cell(*model_path, "variables", i, "shape", fmt="json"),
                 src.cell(*model_path, "variables", i, "size_bytes", fmt="bytes")] for i in range(len(variables))]
        tables.append(Table("variables-table", ["variable", "Keras path", "role", "shape", "size"], rows,
                            title="Variables exchanged by save/restore", numeric=False))
    return Section("census", "The model: op census and signatures", intro=intro, tables=tables)


def tail_sections(src: Source, *, command: str | None = None, census_path: tuple[str, ...] = ("model",),
                  note: str = "") -> list[Section]:
    """The sections that end every page: the op census, the environment, and the settings with the command."""
    out: list[Section] = []
    census = census_section(src, census_path)
    if census is not None:
        out.append(census)
    env = environment_section(src)
    if env is not None:
        out.append(env)
    tables = [settings_table(src)] if src.mapping("settings") else []
    t = timings_table(src)
    if t is not None:
        tables.append(t)
    cmd = command if command is not None else src.get("settings", "command")
    if tables or cmd:
        out.append(Section("settings", "Settings: how to reproduce this report",
                           intro=["The settings that produced this result" + (
                               ("; run the command below to reproduce it." + note if note else
                                "; run this command to reproduce it:") if cmd else ".")],
                           tables=tables, code=str(cmd or "")))
    return out


def number_or_nan(v: Any) -> float:
    """``v`` as a float for a plot; NaN (a gap) for anything that is not a number."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return math.nan
    return float(v)
