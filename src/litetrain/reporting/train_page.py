"""The page of a train result: loss and accuracy per epoch, time per step, the budget, and how to resume.

Like every page builder it reads only what it finds: a missing optional section is skipped, never an error.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping
from typing import Any

from litetrain.reporting import plots
from litetrain.reporting.page import (
    Cell,
    Figure,
    Page,
    Section,
    Source,
    Table,
    number_or_nan,
    tail_sections,
)


def train_page(result: dict[str, Any]) -> Page:
    """A training session: loss and accuracy per epoch, time per step, memory."""
    src = Source(result)
    epochs = src.sequence("epochs")
    complete = src.get("complete")
    answer: list[str | Cell] = [
        "Trained " if complete is not False else "Stopped after ", src.cell("steps", fmt="int"), " steps",
    ]
    if epochs:
        answer += [" in ", Cell(str(len(epochs))), " epoch" + ("s" if len(epochs) != 1 else "")]
        if src.get("epochs", len(epochs) - 1, "accuracy") is not None:
            answer += ["; held-out accuracy ", src.cell("epochs", len(epochs) - 1, "accuracy", fmt="pct")]
        answer += [", loss ", src.cell("epochs", len(epochs) - 1, "loss")]
    if src.has("seconds_per_step"):
        answer += [", ", src.cell("seconds_per_step", fmt="sec"), " per step"]
        if src.number("budget", "interpreter_seconds_per_step") is not None:
            answer += [" (", src.cell("budget", "interpreter_seconds_per_step", fmt="sec"), " inside the interpreter)"]
    answer.append(".")
    page = Page(title="litetrain train", question="How did on-device training go?",
                badge=Cell("complete" if complete else "incomplete"), tone="good" if complete else "warn",
                answer=answer, subtitle=str(src.get("model", "path", default="") or ""))
    page.highlights = [(label, c) for label, c in (
        ("steps", src.cell("steps", fmt="int")),
        ("time per step", src.cell("seconds_per_step", fmt="sec")),
        ("inside the interpreter", src.cell("budget", "interpreter_seconds_per_step", fmt="sec")
         if src.number("budget", "interpreter_seconds_per_step") is not None else Cell("")),
        ("peak memory (RSS)", src.cell("peak_rss_bytes", fmt="bytes")),
        ("final loss", src.cell("final_loss")),
        ("final accuracy", src.cell("final_accuracy", fmt="pct")),
    ) if c.key is not None]
    section = Section("session", "The session")
    if epochs:
        xs = [e.get("epoch", i + 1) if isinstance(e, Mapping) else i + 1 for i, e in enumerate(epochs)]
        panels = [("loss per epoch", {"loss": [e.get("loss") for e in epochs]}, xs, False)]
        if any(isinstance(e, Mapping) and e.get("accuracy") is not None for e in epochs):
            panels.append(("held-out accuracy", {"accuracy": [e.get("accuracy") for e in epochs]}, xs, True))
        section.figures.append(Figure("fig-train-curves", "Loss and accuracy per epoch",
                                      plots.panels("fig-train-curves", panels),
                                      ["Loss: mean of the epoch's train steps; accuracy: held-out data through "
                                       "infer after the epoch."], wide=len(panels) > 1))
        timing = _train_time_figure(src, epochs, xs)
        if timing is not None:
            section.figures.append(timing)
        inside = any(isinstance(e, Mapping) and e.get("interpreter_seconds_per_step") is not None for e in epochs)
        rows: list[list[str | Cell]] = []
        for i in range(len(epochs)):
            rows.append([src.cell("epochs", i, "epoch", fmt="int"), src.cell("epochs", i, "steps", fmt="int"),
                         src.cell("epochs", i, "loss"), src.cell("epochs", i, "accuracy", fmt="pct"),
                         src.cell("epochs", i, "learning_rate"), src.cell("epochs", i, "seconds", fmt="sec"),
                         src.cell("epochs", i, "seconds_per_step", fmt="sec")]
                        + ([src.cell("epochs", i, "interpreter_seconds_per_step", fmt="sec")] if inside else []))
        section.tables.append(Table("epochs-table", ["epoch", "steps", "loss", "accuracy", "learning rate", "time",
                                                     "time per step"] + (["in the interpreter"] if inside else []),
                                    rows))
    if section.figures or section.tables:
        page.sections.append(section)
    cost = _budget_section(src)
    if cost is not None:
        page.sections.append(cost)
    page.sections += tail_sections(src, command=_train_command(src.mapping("settings")),
                                    note=_train_command_note(src.mapping("settings")))
    return page


# budget key -> (label, format). Units are in the formatted value (ms, KiB, /s); counts say what they count.
BUDGET_ROWS: dict[str, tuple[str, str]] = {
    "steps": ("train steps run in this session", "int"),
    "total_steps": ("train steps in total", "int"),
    "wall_seconds": ("wall-clock time of the session", "sec"),
    "train_seconds": ("time in train calls", "sec"),
    "seconds_per_step": ("time per train step", "sec"),
    "interpreter_seconds_per_step": ("time per step inside the interpreter", "sec"),
    "steps_per_second": ("train steps per second", "rate"),
    "eval_seconds": ("time in held-out evaluation", "sec"),
    "checkpoint_writes": ("checkpoints written", "int"),
    "checkpoint_seconds_mean": ("time per checkpoint write (mean)", "sec"),
    "checkpoint_size_bytes": ("size of one checkpoint", "bytes"),
    "peak_rss_bytes": ("peak memory (resident set size)", "bytes"),
    "rss_source": ("peak memory measured in", "text"),
    "model_size_bytes": ("model file size", "bytes"),
    "data_bytes": ("training data in memory", "bytes"),
}
PROJECTION_ROWS: dict[str, tuple[str, str]] = {
    "samples": ("training samples", "int"),
    "epochs": ("epochs", "int"),
    "steps_per_epoch": ("train steps per epoch", "int"),
    "seconds_per_epoch": ("time per epoch", "sec"),
    "seconds": ("time for the whole session", "sec"),
    "data_bytes": ("training data in memory", "bytes"),
}
WORKER_SIGNATURE_ROWS = (("calls", "calls", "int"), ("mean_interpreter_us", "interpreter", "num"),
                         ("mean_round_trip_us", "with the pipe", "num"))


def humanized(key: str) -> tuple[str, str]:
    """(label, format) of a budget key no table above names, from its unit suffix: ``foo_bytes`` -> ``foo``,
    shown as bytes; ``foo_seconds`` -> ``foo time``, shown in s/ms/µs."""
    for suffix, unit, fmt in (("_bytes", "", "bytes"), ("_seconds_mean", " time (mean)", "sec"),
                              ("_seconds", " time", "sec"), ("_per_second", " per second", "rate")):
        if key.endswith(suffix):
            return key.removesuffix(suffix).replace("_", " ") + unit, fmt
    return key.replace("_", " "), _budget_fmt(key)


def _budget_section(src: Source) -> Section | None:
    """What the session cost (time, memory, storage), its projection to a larger dataset and the worker's time per
    signature, side by side."""
    budget = src.mapping("budget")
    if not budget:
        return None
    tables: list[Table] = []
    order = [k for k in BUDGET_ROWS if k in budget] + [k for k in budget if k not in BUDGET_ROWS]
    rows: list[list[str | Cell]] = []
    for key in order:
        if isinstance(budget[key], Mapping | list):
            continue
        label, fmt = BUDGET_ROWS.get(key) or humanized(key)
        rows.append([label, src.cell("budget", key, fmt=fmt)])
    tables.append(Table("budget-table", ["measured", ""], rows, title="This session"))
    proj = src.mapping("budget", "projection")
    if proj:
        tables.append(Table("projection-table", ["projected", ""], [
            [*(PROJECTION_ROWS.get(k) or humanized(k))[:1], src.cell("budget", "projection", k,
                                                                  fmt=(PROJECTION_ROWS.get(k) or humanized(k))[1])]
            for k in proj if not isinstance(proj[k], Mapping | list)],
            title="Projected for a larger dataset",
            note="The measured time per step and epoch, scaled to this many samples."))
    signatures = src.mapping("budget", "worker_timings", "signatures")
    if signatures:
        at = ("budget", "worker_timings", "signatures")
        tables.append(Table("worker-table", ["signature", *(label for _, label, _ in WORKER_SIGNATURE_ROWS)], [
            [name, *(src.cell(*at, name, key, fmt=fmt) for key, _, fmt in WORKER_SIGNATURE_ROWS)]
            for name in signatures if isinstance(signatures[name], Mapping)],
            title="Isolated worker: mean µs per call",
            note="The pipe: sending inputs to the worker process and reading its outputs back."))
    return Section("budget", "What it cost", tables=tables)


def _train_command_note(s: Mapping[str, Any]) -> str:
    folder = s.get("checkpoint_dir")
    if not isinstance(folder, str) or isinstance(s.get("command"), str):
        return ""
    return (f" It writes its checkpoints to a new folder, {_fresh_dir(folder)}: {folder} holds this run's "
            "checkpoints, and a new session refuses a folder that already holds some (--resume would continue "
            "that session instead of repeating it). Remove that new folder before running the command again.")


def _fresh_dir(folder: str) -> str:
    return folder.rstrip("/") + "-rerun"


def _train_command(s: Mapping[str, Any]) -> str | None:
    """The ``litetrain train`` command line of a session's settings (None when they name no model)."""

    if isinstance(s.get("command"), str):
        return s["command"]
    if not isinstance(s.get("model"), str):
        return None
    args = ["litetrain", "train", s["model"]]
    flags = (("data", "--data"), ("labels", "--labels"), ("epochs", "--epochs"), ("batch_size", "--batch-size"),
             ("shuffle_seed", "--shuffle-seed"),
             ("checkpoint_every", "--checkpoint-every"), ("keep", "--keep"), ("runtime_python", "--runtime-python"),
             ("num_threads", "--threads"), ("project_samples", "--project-samples"))
    for key, flag in flags:
        if s.get(key) is not None and not isinstance(s.get(key), bool | dict | list):
            args += [flag, str(s[key])]
    # The session's folder holds its checkpoints, and a new session refuses it: the command trains from the start
    # into a fresh folder. That reproduces a resumed session too (a resume ends bit-identical to a session that
    # was never killed), so --resume is not repeated either.
    if isinstance(s.get("checkpoint_dir"), str):
        args += ["--checkpoint-dir", _fresh_dir(s["checkpoint_dir"])]
    spec = (s.get("lr_schedule") or {}).get("spec") if isinstance(s.get("lr_schedule"), Mapping) else None
    if spec and spec != "constant":
        args += ["--lr-schedule", str(spec)]
    if s.get("isolated") is True:
        args.append("--isolated")
    return shlex.join(args)


def _train_time_figure(src: Source, epochs: list[Any], xs: list[Any]) -> Figure | None:
    """Time per step (the train call, and inside the isolated worker's interpreter) and per epoch, by epoch."""

    def column(key: str) -> list[Any]:
        return [e.get(key) if isinstance(e, Mapping) else None for e in epochs]

    per_step = {label: column(key) for key, label in (
        ("seconds_per_step", "train call" + (" (with the pipe)" if src.get("rss_source") == "worker" else "")),
        ("interpreter_seconds_per_step", "inside the worker's interpreter")) if any(
        not math.isnan(number_or_nan(v)) for v in column(key))}
    seconds = column("seconds")
    panels: list[tuple[str, dict[str, list[Any]], list[Any], bool]] = []
    if per_step:
        unit, scale = _time_unit([v for vs in per_step.values() for v in vs])
        panels.append((f"time per step ({unit})", {k: _scaled(v, scale) for k, v in per_step.items()}, xs, False))
    if any(not math.isnan(number_or_nan(v)) for v in seconds):
        unit, scale = _time_unit(seconds)
        panels.append((f"time per epoch ({unit})", {"epoch": _scaled(seconds, scale)}, xs, False))
    if not panels:
        return None
    caption: list[str | Cell] = []
    if per_step:
        caption += ["Time per step: a train call as the session sees it, ", src.cell("seconds_per_step", fmt="sec"),
                    " over the session"]
        if src.number("budget", "interpreter_seconds_per_step") is not None:
            caption += ["; inside the isolated worker's interpreter, without the round trip through the pipe "
                        "(what a device pays): ", src.cell("budget", "interpreter_seconds_per_step", fmt="sec")]
        caption.append(". ")
    if len(panels) > 1 or not per_step:
        caption.append("Time per epoch: its steps, checkpoint writes and the held-out evaluation.")
    partial = [e.get("epoch") for e in epochs if isinstance(e, Mapping) and isinstance(e.get("steps_this_session"), int)
               and isinstance(e.get("steps"), int) and 0 < e["steps_this_session"] < e["steps"]]
    if partial or any(isinstance(e, Mapping) and e.get("steps_this_session") == 0 for e in epochs):
        caption.append(" This session resumed an earlier one: epochs it did not run have no timing, and "
                       + (f"epoch {partial[0]}'s covers only the steps run after the resume." if partial else
                          "the others are timed in full."))
    return Figure("fig-train-time", "Time per step and per epoch",
                  plots.panels("fig-train-time", panels, from_zero=[True] * len(panels)), caption,
                  wide=len(panels) > 1)


def _time_unit(values: list[Any]) -> tuple[str, float]:
    """The unit (µs, ms or s) in which durations ``values`` (seconds) read as plain numbers, and its scale."""
    top = max((abs(number_or_nan(v)) for v in values if not math.isnan(number_or_nan(v))), default=0.0)
    if top < 1e-3:
        return "µs", 1e6
    return ("ms", 1e3) if top < 1 else ("s", 1.0)


def _scaled(values: list[Any], scale: float) -> list[float | None]:
    return [None if math.isnan(number_or_nan(v)) else number_or_nan(v) * scale for v in values]


def _budget_fmt(key: str) -> str:
    if key.endswith("bytes"):
        return "bytes"
    if key.endswith(("seconds", "seconds_mean", "seconds_per_step", "seconds_per_epoch")):
        return "sec"
    if key.endswith("per_second"):
        return "rate"
    if key in ("steps", "total_steps", "samples", "epochs", "steps_per_epoch", "checkpoint_writes"):
        return "int"
    return "auto"
