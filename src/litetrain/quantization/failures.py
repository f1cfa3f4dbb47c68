"""A mode that could not be built or run: which model, which step, and why in one line (the full text kept aside).

A failed mode is a row of the result, never the end of the command: the other modes are still measured. The
converter's errors are MLIR diagnostics (``loc(callsite(...))`` chains, notes, the op's whole signature) and the
interpreter repeats its prepare failure once per attempt, so the reason keeps the one line a reader acts on and
``detail`` keeps the whole text for the JSON.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from litetrain.errors import (
    ConversionError,
    InternalError,
    LitetrainError,
    RuntimeCrashError,
    RuntimeUnavailableError,
    SignatureError,
)

REASON_CHARS = 240
DETAIL_CHARS = 20_000

MODE_ERRORS = (ConversionError, SignatureError, RuntimeUnavailableError, RuntimeCrashError, RuntimeError)
"""What one mode's conversion or interpreter raises. Usage and data errors are not among them: they concern every
mode, so they still end the command. ``InternalError`` (a ``RuntimeError``) is a bug and is re-raised."""

_PREPARE = re.compile(r"(?:(?P<file>[\w./-]+\.cc):(?P<line>\d+) (?P<check>.+?) was not true\.?\s*)?"
                      r"Node number (?P<node>\d+) \((?P<op>[A-Z0-9_]+)\) failed to (?P<step>prepare|invoke)")


class Stage:
    """The step of a mode that failed (plain strings in the JSON)."""

    CONVERSION = "conversion"
    INTERPRETER = "interpreter"
    TRAINING = "training"


@dataclasses.dataclass(frozen=True)
class ModeFailure:
    """Why a mode has no figures.

    Attributes:
        model: ``trainable``, ``deploy`` or ``inference``: which model of the result the mode was applied to.
        stage: ``conversion`` (the TFLite converter), ``interpreter`` (loading or running the converted model) or
            ``training`` (the twin training of a trainable model).
        reason: One line, the part of the error a reader acts on.
        detail: The whole error text (converter diagnostics included), for the JSON only.
    """

    model: str
    stage: str
    reason: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def line(self, mode: str) -> str:
        """``int16x8 (deploy model) failed in the interpreter: ...``, as the console prints it."""
        where = {Stage.CONVERSION: "to convert", Stage.INTERPRETER: "in the interpreter",
                 Stage.TRAINING: "to train"}[self.stage]
        return f"{mode} ({self.model} model) failed {where}: {self.reason}"


def mode_failure(exc: BaseException, *, model: str, stage: str) -> ModeFailure:
    """The failure record of ``exc``; re-raises it when it is a bug in litetrain rather than a mode's failure."""
    if isinstance(exc, InternalError) or not isinstance(exc, MODE_ERRORS):
        raise exc
    message = exc.message if isinstance(exc, LitetrainError) else f"{type(exc).__name__}: {exc}"
    cause = exc.__cause__
    detail = str(exc)
    if cause is not None and str(cause).strip() not in detail:
        detail += f"\n\ncaused by {type(cause).__name__}:\n{cause}"
    return ModeFailure(model=model, stage=stage, reason=one_line(message), detail=detail.strip()[:DETAIL_CHARS])


def one_line(text: str) -> str:
    """The first meaningful line of an error, without MLIR locations, shortened to ``REASON_CHARS``."""
    prepare = _PREPARE.search(text)
    if prepare:
        return _interpreter_reason(text, prepare)
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    first = lines[0] if lines else "unknown error"
    first = re.sub(r"<unknown>:\d+: ", "", _without_locations(first))
    first = re.sub(r"\s+", " ", first).strip()
    return first if len(first) <= REASON_CHARS else first[:REASON_CHARS - 3].rstrip() + "..."


def _interpreter_reason(text: str, m: re.Match[str]) -> str:
    """``the LiteRT interpreter cannot prepare DEPTHWISE_CONV_2D (node 1): kernel_util.cc:349 ...``."""
    head = " ".join(text[:m.start()].split()).rstrip(":").strip()
    prefix = f"{head}: " if head else ""
    check = ""
    if m.group("check"):
        check = f": {m.group('file').rsplit('/', 1)[-1]}:{m.group('line')} check {m.group('check')} failed"
    return f"{prefix}{m.group('op')} (node {m.group('node')}) failed to {m.group('step')}{check}"


def _without_locations(line: str) -> str:
    """Removes MLIR ``loc(...)`` annotations (balanced parentheses, possibly nested)."""
    out, i = [], 0
    while i < len(line):
        if line.startswith("loc(", i):
            depth, j = 0, i + 3
            while j < len(line):
                depth += {"(": 1, ")": -1}.get(line[j], 0)
                j += 1
                if depth == 0:
                    break
            i = j
            while line.startswith(": ", i) or line.startswith(":", i):
                i += 1
            continue
        out.append(line[i])
        i += 1
    return "".join(out)
