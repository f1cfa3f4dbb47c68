"""Reports of quantization matrices, training sessions, federated runs, and any other result (generic page).

Each builder reads only what it finds: a missing optional section is skipped, never an error, so a result from an
older or newer litetrain still renders.
"""

from __future__ import annotations

import math
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
    census_section,
    environment_section,
    settings_table,
    timings_table,
)

MAX_GENERIC_ROWS = 400


def _tail_sections(src: Source, *, command: str | None = None, census_path: tuple[str, ...] = ("model",),
                   note: str = "") -> list[Section]:
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


def _num(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return math.nan
    return float(v)


# -- quantize -----------------------------------------------------------------------------------------------------


def _recommended_mode(src: Source) -> tuple[str | None, list[Any]]:
    """The recommended mode's name, and the pointer path of its name in the result."""
    mode = src.get("recommendation", "mode")
    return (mode, ["recommendation", "mode"]) if isinstance(mode, str) else (None, [])


def _per_layer(mode: Mapping[str, Any]) -> tuple[str | None, dict[str, float]]:
    """(key, {tensor or layer: error}) of a mode's per-op errors.

    Per-op records are keyed by tensor (unique, and what a graph viewer matches) with their noise-to-signal ratio,
    which compares ops of any scale.
    """
    records = mode.get("layers")
    if isinstance(records, list):
        out = {str(r["tensor"]): _num(r.get("nsr")) for r in records if isinstance(r, Mapping) and "tensor" in r}
        out = {k: v for k, v in out.items() if not math.isnan(v)}
        if out:
            return "layers", out
    by_layer = mode.get("per_layer")
    if isinstance(by_layer, Mapping):
        out = {str(k): _num(v) for k, v in by_layer.items()}
        out = {k: v for k, v in out.items() if not math.isnan(v)}
        if out:
            return "per_layer", out
    return None, {}


def quantize_page(result: dict[str, Any]) -> Page:
    """Which quantization mode to ship: size against accuracy, whether the model still trains, per-layer error."""
    src = Source(result)
    modes = {m: v for m, v in src.mapping("modes").items() if isinstance(v, Mapping)}
    deploy = {m: v for m, v in src.mapping("deploy", "modes").items() if isinstance(v, Mapping)}
    rec, rec_path = _recommended_mode(src)
    if rec is not None:
        answer: list[str | Cell] = ["Ship ", src.cell(*rec_path, fmt="text")]
        if isinstance(src.get("recommendation", "reason"), str):
            answer += [": ", src.cell("recommendation", "reason", fmt="text")]
        if rec in modes:
            answer += [" (", src.cell("modes", rec, "size_bytes", fmt="bytes"), ", held-out accuracy ",
                       src.cell("modes", rec, "accuracy", fmt="pct"), ")"]
        answer.append(".")
    else:
        answer = ["No mode is recommended" + (f" among the {len(modes)} measured." if modes else ".")]
    page = Page(title="litetrain quantize", question="Which quantization mode should I ship?",
                badge=src.cell(*rec_path, fmt="text") if rec_path else None, tone="good" if rec else "warn",
                answer=answer, subtitle=str(src.get("model", "source", default="") or ""))
    if src.has("explanation"):
        page.explanation = [src.cell("explanation", fmt="text")]
    if isinstance(src.get("deploy", "recommendation", "mode"), str):
        page.explanation += [" " if page.explanation else "", "For an inference-only model exported after training: ",
                             src.cell("deploy", "recommendation", "mode", fmt="text")]
        if isinstance(src.get("deploy", "recommendation", "size_bytes"), int | float):
            page.explanation += [", ", src.cell("deploy", "recommendation", "size_bytes", fmt="bytes")]
        page.explanation.append(".")
    _quant_warnings(src, page)
    if rec in modes:
        page.highlights = [(label, c) for label, c in (
            ("recommended size", src.cell("modes", rec, "size_bytes", fmt="bytes")),
            ("of float32", src.cell("modes", rec, "size_ratio", fmt="pct")),
            ("largest output error", src.cell("modes", rec, "max_abs_error")),
            ("argmax agreement", src.cell("modes", rec, "argmax_agreement", fmt="pct")),
            ("accuracy drop", src.cell("modes", rec, "accuracy_drop", fmt="pct")),
        ) if c.key is not None]
    page.sections.append(_quant_matrix(src, modes, deploy, rec))
    trains = _quant_training(src, modes)
    if trains is not None:
        page.sections.append(trains)
    layer_figs, layer_tables = [], []
    for group, entries in (("modes", modes), ("deploy/modes", deploy)):
        for m, v in entries.items():
            key, values = _per_layer(v)
            if not values:
                continue
            fig_id = f"fig-quant-layers-{_slug(group.split('/')[0])}-{_slug(m)}"
            prefix = "" if group == "modes" else "deploy "
            worst = max(values, key=lambda k: values[k])
            metric = "noise-to-signal ratio (0 exact, 1 signal lost)" if _has_nsr(v.get(key)) else \
                "largest |error| against float32"
            names = _op_names(v.get(key))
            shown = {names.get(k, k): x for k, x in values.items()}
            layer_figs.append(Figure(fig_id, f"Per-layer error: {prefix}{m}",
                                     plots.bars(fig_id, shown, xlabel=metric, highlight=names.get(worst, worst)),
                                     [f"Each op output of the quantized model against float32 on the same inputs; "
                                      f"worst: {names.get(worst, worst)}."]))
            if isinstance(v.get(key), list) and _has_nsr(v.get(key)):
                path = [*group.split("/"), m, key]
                layer_tables.append(Table(f"quant-layers-{_slug(group.split('/')[0])}-{_slug(m)}-table",
                                          ["op output", "op", "layer", "dtype", "noise/signal", "added", "max |error|"],
                                          [[src.cell(*path, i, "tensor", fmt="text"),
                                            src.cell(*path, i, "op", fmt="text", cls="nowrap"),
                                            src.cell(*path, i, "layer", fmt="text", cls="nowrap"),
                                            src.cell(*path, i, "dtype", fmt="text", cls="nowrap"),
                                            src.cell(*path, i, "nsr"),
                                            src.cell(*path, i, "added"), src.cell(*path, i, "max_abs")]
                                           for i in range(len(v[key]))], title=f"{prefix}{m}"))
    if layer_figs:
        page.sections.append(Section("quant-layers", "Quantization error per layer", intro=[
            "Where the error enters: ops ranked by the noise-to-signal ratio of their output (or the error the result "
            "gives per layer)."], figures=layer_figs, tables=layer_tables))
    notes = src.sequence("notes")
    if notes:
        page.sections.append(Section("notes", "Notes", tables=[Table("notes-table", ["note"], [
            [src.cell("notes", i, fmt="text")] for i in range(len(notes))], numeric=False)]))
    page.sections += _tail_sections(src, command=_quantize_command(src))
    return page


def _quant_warnings(src: Source, page: Page) -> None:
    """The recommendations' warnings (accuracy at chance level) and the modes that failed, beside the answer."""
    for path in (("recommendation",), ("deploy", "recommendation")):
        for i, _ in enumerate(src.sequence(*path, "warnings")):
            page.tone = "warn"
            page.explanation += [" " if page.explanation else "", "Warning: ", src.cell(*path, "warnings", i, fmt="text")]
    for group in (("modes",), ("deploy", "modes")):
        for m, v in src.mapping(*group).items():
            if isinstance(v, Mapping) and v.get("status") == "failed" and isinstance(v.get("failure"), Mapping):
                model = v["failure"].get("model", "deploy" if group[0] == "deploy" else "")
                page.explanation += [" " if page.explanation else "", f"{m} ({model} model) failed: ",
                                     src.cell(*group, m, "failure", "reason", fmt="text")]


def _quantize_command(src: Source) -> str | None:
    """The ``litetrain quantize`` command line of a result's settings (None when it names no model)."""
    import shlex

    from litetrain.reporting.comparison_page import model_flags

    s = src.mapping("settings")
    if isinstance(s.get("command"), str):
        return s["command"]
    model = src.get("model", "source")
    if not isinstance(model, str):
        return None
    args = ["litetrain", "quantize", model, *model_flags(s)]
    if s.get("batch_size") is not None:
        args += ["--batch-size", str(s["batch_size"])]
    modes = s.get("modes")
    if isinstance(modes, list) and modes and sorted(modes) != sorted(("none", "dynamic", "float16", "int8",
                                                                      "int16x8")):
        args += ["--modes", ",".join(str(m) for m in modes)]
    if s.get("inference_only") is True:
        args.append("--inference-only")
    rep = src.get("representative_data", "name")
    if isinstance(rep, str) and not rep.endswith("(training split)") and rep != "array":
        args += ["--representative-data", rep]
    for key, flag in (("samples", "--samples"), ("max_accuracy_drop_percentage_points", "--max-accuracy-drop"),
                      ("data", "--data"), ("steps", "--steps"), ("seed", "--seed")):
        value = s.get(key)
        if value is not None and not isinstance(value, bool | dict | list):
            args += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    args += [flag for key, flag, when in (("per_layer", "--no-per-layer", False),
                                          ("allow_untrainable", "--allow-untrainable", True),
                                          ("noise_floor", "--no-noise-floor", False)) if s.get(key) is when]
    return shlex.join(args)


def _op_names(items: Any) -> dict[str, str]:
    """Tensor name -> a readable label (``dense_1 FULLY_CONNECTED``) for per-op records that name their layer."""
    if not isinstance(items, list):
        return {}
    labels: dict[str, str] = {}
    for item in items:
        if isinstance(item, Mapping) and item.get("tensor") and item.get("op"):
            label = f"{item.get('layer') or '?'} {item['op']}"
            if label in labels.values():
                label += f" (op {item.get('position', '?')})"
            labels[str(item["tensor"])] = label
    return labels


def _has_nsr(items: Any) -> bool:
    return isinstance(items, list) and bool(items) and all(isinstance(i, Mapping) and "nsr" in i for i in items)


def _quant_matrix(src: Source, modes: dict[str, Any], deploy: dict[str, Any], rec: str | None) -> Section:
    section = Section("matrix", "The quantization matrix")
    points = []
    series: dict[str, str] = {}
    for prefix, entries in (("", modes), ("deploy: ", deploy)):
        for m, v in entries.items():
            y = v.get("accuracy") if v.get("accuracy") is not None else v.get("argmax_agreement")
            points.append((prefix + m, _num(v.get("size_bytes")) / 1024, _num(y)))
            series[prefix + m] = "deploy" if prefix else "trainable"
    has_accuracy = any(v.get("accuracy") is not None for v in [*modes.values(), *deploy.values()])
    if any(x == x and y == y for _, x, y in points):
        section.figures.append(Figure(
            "fig-quant-matrix", "Size against accuracy, per mode",
            plots.scatter("fig-quant-matrix", points, xlabel="model size (KiB)",
                          ylabel="held-out accuracy" if has_accuracy else "argmax agreement with float32",
                          highlight=rec, percent_y=True, series=series if deploy else None,
                          group_labels={"trainable": "trainable model", "deploy": "inference-only (deploy)"}),
            ["Each point is one conversion of the same model, named beside it" + (
                "; open squares are inference-only models exported after training" if deploy else "")
             + ". Modes that land on the same spot share a label. Up and to the left is better."]))
    errors = {("" if group == "modes" else "deploy: ") + m: v.get("max_abs_error")
              for group, entries in (("modes", modes), ("deploy", deploy)) for m, v in entries.items()
              if _num(v.get("max_abs_error")) >= 0}  # zero: an exact mode, marked as such on the log axis
    if errors:
        section.figures.append(Figure(
            "fig-quant-error", "Largest output error against float32, per mode",
            plots.bars("fig-quant-error", errors, xlabel="largest |output - float32 output|", highlight=rec,
                       highlight_color=plots.GOOD_COLOR),
            ["On the held-out data" + (", after training both on identical batches" if any(
                v.get("training") for v in modes.values()) else "") + (
                f"; green: the recommended mode, {rec}" if rec in errors else "") + "."]))
    for table_id, title, path, entries in (("quant-table", "Trainable models" if deploy else "Modes", ("modes",),
                                            modes),
                                           ("deploy-table", "Inference-only models (deploy)", ("deploy", "modes"),
                                            deploy)):
        rows: list[list[str | Cell]] = []
        for m in entries:
            rows.append([Cell(m, cls="rec" if m == rec and path == ("modes",) else ""),
                         src.cell(*path, m, "status", fmt="text"), src.cell(*path, m, "size_bytes", fmt="bytes"),
                         src.cell(*path, m, "size_ratio", fmt="pct"), src.cell(*path, m, "max_abs_error"),
                         src.cell(*path, m, "argmax_agreement", fmt="pct"), src.cell(*path, m, "accuracy", fmt="pct"),
                         src.cell(*path, m, "accuracy_drop", fmt="pct"), src.cell(*path, m, "trains", fmt="bool"),
                         src.cell(*path, m, "latency_us")])
        if rows:
            section.tables.append(Table(table_id, ["mode", "status", "size", "of float32", "largest error",
                                                   "argmax agreement", "accuracy", "accuracy drop", "trains",
                                                   "latency (µs)"], rows, title=title))
        notes = [[m, src.cell(*path, m, "note", fmt="text")] for m, v in entries.items() if v.get("note")]
        if notes:
            section.tables.append(Table(f"{table_id}-notes", ["mode", "what it means"], notes, numeric=False))
    return section


REFERENCE = "float32 (TensorFlow)"
COINCIDE_RTOL, COINCIDE_ATOL = 1e-5, 1e-6
"""Two loss curves coincide when every step agrees within ``atol + rtol * |loss|``: float32 rounding, not a
different training (a float32 loss near 2 has a spacing of ~2.4e-7)."""
LINE_STYLES = ("-", (0, (5, 2)), (0, (1, 1.6)), (0, (7, 2, 1.5, 2)), (0, (3, 1, 1, 1, 1, 1)))
MARKERS = ("o", "s", "^", "D", "v", "P")


def coinciding(series: Mapping[str, list[Any]]) -> list[list[str]]:
    """Groups of series names whose curves are the same within float tolerance (each group as listed)."""
    groups: list[list[str]] = []
    for name, values in series.items():
        ys = [_num(v) for v in values]
        for group in groups:
            ref = [_num(v) for v in series[group[0]]]
            if len(ref) == len(ys) and all(
                    (a == b) or abs(a - b) <= COINCIDE_ATOL + COINCIDE_RTOL * abs(b) for a, b in zip(ys, ref, strict=True)):
                group.append(name)
                break
        else:
            groups.append([name])
    return groups


def _quant_training(src: Source, modes: dict[str, Any]) -> Section | None:
    """Loss curves of each quantized model trained next to float32 TensorFlow: does it still train?"""
    trained = {m: v["training"] for m, v in modes.items() if isinstance(v.get("training"), Mapping)}
    if not trained:
        return None
    series: dict[str, list[Any]] = {}
    for m, t in trained.items():
        loss = t.get("loss") if isinstance(t.get("loss"), Mapping) else {}
        if "tensorflow" in loss and REFERENCE not in series:
            series[REFERENCE] = loss["tensorflow"]
        if "tflite" in loss:
            series[m] = loss["tflite"]
    # Modes that train alike draw the same curve: only the last drawn would show. A line style and markers at
    # staggered steps per mode keep each one visible on top of the others.
    styles: dict[str, dict[str, Any]] = {}
    others = [c for c in plots.PALETTE if c != plots.COLORS["tensorflow"]]  # orange is the float32 reference's
    n = max((len(v) for v in series.values()), default=0)
    every = max(1, n // 8)
    modes_drawn = [m for m in series if m != REFERENCE]
    for i, m in enumerate(modes_drawn):
        styles[m] = {"color": others[i % len(others)], "linestyle": LINE_STYLES[i % len(LINE_STYLES)],
                     "marker": MARKERS[i % len(MARKERS)], "markersize": 4, "markerfacecolor": "none",
                     "markevery": (every * i // max(1, len(modes_drawn)), every)}
    if REFERENCE in series:
        styles[REFERENCE] = {"color": plots.COLORS["tensorflow"], "linewidth": 3.2, "alpha": 0.45}
    section = Section("still-trains", "Does it still train?", intro=[
        "Each quantized trainable model trained in TFLite next to float32 TensorFlow, from the same weights on "
        "identical batches, and judged like litetrain check."])
    if series:
        caption: list[str | Cell] = ["A mode that trains follows the float32 curve down."]
        for group in coinciding(series):
            if len(group) < 2:
                continue
            names = [g for g in group if g != REFERENCE]
            caption.append(" Curves coincide: " + _joined(group) + " agree within float32 rounding")
            if REFERENCE in group:
                caption.append(" (largest loss difference to float32: ")
                for j, m in enumerate(names):
                    caption += [", " if j else "", f"{m} ", src.cell("modes", m, "training", "max_abs_loss_diff")]
                caption.append(")")
            caption.append("; line style and markers tell them apart.")
        section.figures.append(Figure("fig-quant-training", "Loss per step, each mode in TFLite",
                                      plots.lines("fig-quant-training", series, ylabel="loss", styles=styles),
                                      caption))
    rows: list[list[str | Cell]] = []
    for m in trained:
        at = ("modes", m, "training")
        rows.append([m, src.cell(*at, "verdict", fmt="text"), src.cell("modes", m, "trains", fmt="bool"),
                     src.cell(*at, "max_abs_loss_diff"), src.cell(*at, "final_loss", "tflite"),
                     src.cell(*at, "learning_ratio", fmt="ratio")])
    section.tables.append(Table("quant-training-table", ["mode", "verdict", "trains", "largest loss difference",
                                                         "final loss", "learning vs float32"], rows))
    return section


def _joined(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-").lower() or "x"


# -- train --------------------------------------------------------------------------------------------------------


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
    page.sections += _tail_sections(src, command=_train_command(src.mapping("settings")),
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
    import shlex

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
        not math.isnan(_num(v)) for v in column(key))}
    seconds = column("seconds")
    panels: list[tuple[str, dict[str, list[Any]], list[Any], bool]] = []
    if per_step:
        unit, scale = _time_unit([v for vs in per_step.values() for v in vs])
        panels.append((f"time per step ({unit})", {k: _scaled(v, scale) for k, v in per_step.items()}, xs, False))
    if any(not math.isnan(_num(v)) for v in seconds):
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
    top = max((abs(_num(v)) for v in values if not math.isnan(_num(v))), default=0.0)
    if top < 1e-3:
        return "µs", 1e6
    return ("ms", 1e3) if top < 1 else ("s", 1.0)


def _scaled(values: list[Any], scale: float) -> list[float | None]:
    return [None if math.isnan(_num(v)) else _num(v) * scale for v in values]


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


# -- federate -----------------------------------------------------------------------------------------------------


def federate_page(result: dict[str, Any]) -> Page:
    """Federated training: accuracy per round in TFLite and TensorFlow against centralized training."""
    src = Source(result)
    rounds = [r for r in src.sequence("rounds") if isinstance(r, Mapping)]
    verdict = src.get("verdict")
    vpath: list[Any] = ["verdict"] if isinstance(verdict, str) else ["verdict", "verdict"]
    verdict_text = src.get(*vpath) if isinstance(src.get(*vpath), str) else None
    tone = "good" if verdict_text in ("consistent", "consistent-sensitive", "pass", "passed") else "warn"
    if verdict_text in ("inconsistent", "unhealthy", "fail", "failed") or src.get("passed") is False:
        tone = "bad"
    answer: list[str | Cell] = []
    if verdict_text is not None:
        answer += ["Verdict ", src.cell(*vpath, fmt="text")]
        cause = next((p for p in (["cause"], ["verdict", "cause"], ["verdict", "reason"])
                      if isinstance(src.get(*p), str)), None)
        if cause is not None:
            answer += [": ", src.cell(*cause, fmt="text")]
        answer.append("; ")
    if rounds:
        last = len(rounds) - 1
        answer += ["after " if answer else "After ", src.cell("rounds", last, "round", fmt="int"),
                   " rounds the federated model reaches "]
        runtimes = [rt for rt in ("tflite", "tensorflow") if src.has("rounds", last, "accuracy", rt)]
        for i, rt in enumerate(runtimes):
            answer += [" and " if i else "", src.cell("rounds", last, "accuracy", rt, fmt="pct"), f" in {rt}"]
        if src.number("centralized_accuracy") is not None:
            answer += [" (centralized training: ", src.cell("centralized_accuracy", fmt="pct"), ")"]
    answer.append(".")
    page = Page(title="litetrain federate", question="Does federated training on TFLite devices work like it does "
                "in TensorFlow?", badge=src.cell(*vpath, fmt="text") if verdict_text is not None else None,
                tone=tone, answer=answer, subtitle=str(src.get("model", "source", default="") or ""))
    if src.has("explanation"):
        page.explanation = [src.cell("explanation", fmt="text")]
    section = Section("rounds", "Rounds")
    if rounds:
        xs = [r.get("round", i + 1) for i, r in enumerate(rounds)]
        runtimes = [rt for rt in ("tflite", "tensorflow")
                    if any(isinstance(r.get("accuracy"), Mapping) and r["accuracy"].get(rt) is not None
                           for r in rounds)]
        # Round 0 is the initial global model, when the result has it for every runtime plotted.
        start = bool(runtimes) and all(src.number("initial", rt, "accuracy") is not None for rt in runtimes)
        series: dict[str, list[Any]] = {}
        for name in runtimes:
            vals = [r["accuracy"].get(name) if isinstance(r.get("accuracy"), Mapping) else None for r in rounds]
            series[name] = [src.get("initial", name, "accuracy")] * start + vals
        styles: dict[str, dict[str, Any]] = {"tensorflow": {"linestyle": (0, (4, 2))}}
        per_round_central = [r.get("centralized_accuracy") for r in rounds]
        central = src.number("centralized_accuracy")
        if any(v is not None for v in per_round_central):
            series["centralized"] = [None] * start + per_round_central
        elif central is not None:
            series["centralized"] = [None] * start + [central] * len(rounds)
        if "centralized" in series:
            styles["centralized"] = {"linestyle": "--", "color": plots.FLOOR_COLOR}
        if series:
            section.figures.append(Figure(
                "fig-federated-accuracy", "Held-out accuracy per round",
                plots.lines("fig-federated-accuracy", series, x=[0] * start + xs, xlabel="round",
                            ylabel="held-out accuracy", styles=styles, markers=True, percent_y=True),
                ["The global model after each round" + (" (round 0: the initial model)" if start else "")
                 + ", evaluated in each runtime; centralized: TensorFlow trained on the pooled data for as many "
                 "epochs."]))
        diffs = [(r.get("agreement") or {}).get("max_abs_weight_diff") if isinstance(r.get("agreement"), Mapping)
                 else None for r in rounds]
        if any(_num(d) > 0 for d in diffs):
            agreement: dict[str, list[Any]] = {"largest |weight difference|": diffs}
            agreement_styles: dict[str, dict[str, Any]] = {"largest |weight difference|": {}}
            caption: list[str | Cell] = ["The same federation run in both runtimes: how far apart their global "
                                         "models are after each round"]
            if _num(src.get("settings", "atol")) > 0:
                # The verdict allows atol + rtol * |weight|: atol is the least it allows.
                agreement["tolerance (atol)"] = [src.get("settings", "atol")] * len(rounds)
                agreement_styles["tolerance (atol)"] = {"color": plots.LIMIT_COLOR, "linestyle": "--", "marker": ""}
                caption += ["; dashed: the absolute tolerance, atol ", src.cell("settings", "atol"),
                            " (the verdict allows atol + rtol × |weight|, rtol ", src.cell("settings", "rtol"), ")"]
            caption.append(".")
            section.figures.append(Figure(
                "fig-federated-agreement", "TFLite vs TensorFlow global model per round",
                plots.lines("fig-federated-agreement", agreement, x=xs, xlabel="round",
                            ylabel="|TFLite - TensorFlow|", logy=True, markers=True, styles=agreement_styles),
                caption))
        loss = _federated_loss_figure(src, rounds, start)
        if loss is not None:
            section.figures.insert(1, loss)
        section.tables.append(_rounds_table(src, rounds, runtimes, start))
        cost = _round_cost_table(src, rounds)
        if cost is not None:
            section.tables.append(cost)
    fleet = _fleet_table(src)
    if fleet is not None:
        section.tables.append(fleet)
    if section.figures or section.tables:
        page.sections.append(section)
    split = _partition_section(src)
    if split is not None:
        page.sections.append(split)
    page.sections += _tail_sections(src, command=_federate_command(src))
    return page


def _federated_loss_figure(src: Source, rounds: list[Mapping[str, Any]], start: bool) -> Figure | None:
    """Held-out loss of the global model per round in each runtime (round 0: the initial model), with the mean
    local training loss of the participants and centralized training's loss."""
    series: dict[str, list[Any]] = {}
    styles: dict[str, dict[str, Any]] = {}
    runtimes = [rt for rt in ("tflite", "tensorflow") if any(
        isinstance(r.get("loss"), Mapping) and r["loss"].get(rt) is not None for r in rounds)]
    with_start = start and all(src.number("initial", rt, "loss") is not None for rt in runtimes)
    for rt in runtimes:
        series[f"held-out, {rt}"] = [src.get("initial", rt, "loss")] * with_start + [
            r["loss"].get(rt) if isinstance(r.get("loss"), Mapping) else None for r in rounds]
        styles[f"held-out, {rt}"] = {"color": plots.color_of(rt)} | (
            {"linestyle": (0, (4, 2))} if rt == "tensorflow" else {})
    for rt in runtimes:
        train = [r["train_loss"].get(rt) if isinstance(r.get("train_loss"), Mapping) else None for r in rounds]
        if any(v is not None for v in train):
            series[f"local training, {rt}"] = [None] * with_start + train
            styles[f"local training, {rt}"] = {"color": plots.color_of(rt), "alpha": 0.55, "marker": "s",
                                               "linestyle": ":" if rt == "tflite" else (0, (1, 3))}
    central = src.sequence("centralized", "loss_by_round")
    if len(central) == len(rounds) and any(v is not None for v in central):
        series["centralized, held-out"] = [None] * with_start + central
        styles["centralized, held-out"] = {"linestyle": "--", "color": plots.FLOOR_COLOR}
    if not runtimes:
        return None
    xs = [0] * with_start + [r.get("round", i + 1) for i, r in enumerate(rounds)]
    return Figure("fig-federated-loss", "Loss per round",
                  plots.lines("fig-federated-loss", series, x=xs, xlabel="round", ylabel="loss", styles=styles,
                              markers=True),
                  ["Held-out: the global model after each round" + (" (round 0: the initial model)" if with_start
                                                                    else "")
                   + "; local training: the mean training loss of the round's participants, on their own data."
                   + (" Centralized: TensorFlow trained on the pooled data." if "centralized, held-out" in series
                      else "")])


def _partition_section(src: Source) -> Section | None:
    """How the training data was split between the clients: samples per class per client."""
    counts = src.sequence("data", "partition", "class_counts")
    counts = [row for row in counts if isinstance(row, list)]
    sizes = src.sequence("data", "partition", "sizes")
    if not counts and not sizes:
        return None
    section = Section("data-split", "The data split", intro=[
        "Partition ", src.cell("settings", "partition", fmt="text"), ": ", src.cell("settings", "clients", fmt="int"),
        " clients hold between ", src.cell("data", "partition", "min_size", fmt="int"), " and ",
        src.cell("data", "partition", "max_size", fmt="int"), " training samples; ",
        src.cell("data", "partition", "unused_samples", fmt="int"), " samples are in no client's share."])
    if counts:
        heatmap = len(counts) > 24 or max(len(row) for row in counts) > 12
        section.figures.append(Figure(
            "fig-federated-partition", "Samples per class, per client",
            plots.class_split("fig-federated-partition", counts),
            ["Each client's share of the training data by class" + (
                ": one column per client, darker cells hold more samples; an empty cell is a class the client "
                "never sees." if heatmap else ": one bar per client, one colour per class.")
             + " An IID split gives every client the same mix; a skewed (non-IID) one gives each its own."],
            wide=heatmap))
    per_client = src.sequence("data", "partition", "classes_per_client")
    if sizes and len(sizes) <= 24:
        section.tables.append(Table("partition-table", ["client", "samples", "classes"], [
            [str(i), src.cell("data", "partition", "sizes", i, fmt="int"),
             src.cell("data", "partition", "classes_per_client", i, fmt="int") if i < len(per_client) else ""]
            for i in range(len(sizes))], title="Per client"))
    return section


def _rounds_table(src: Source, rounds: list[Mapping[str, Any]], runtimes: list[str], start: bool) -> Table:
    """One row per round (round 0: the initial model): who took part, accuracy, agreement, verdict, time."""
    faults = [key for key in ("failed", "stragglers", "timed_out") if any(r.get(key) for r in rounds)]
    labels = {"failed": "failed", "stragglers": "past the deadline", "timed_out": "timed out"}
    header = ["round", "participants", "sampled", *(labels[k] for k in faults),
              *(f"accuracy ({RUNTIME_NAMES[rt]})" for rt in runtimes),
              "centralized", "weight difference", "verdict", "time"]
    rows: list[list[str | Cell]] = []
    if start:
        rows.append([Cell("0 (initial)", cls="nowrap"), "", "", *([""] * len(faults)),
                     *(src.cell("initial", rt, "accuracy", fmt="pct") for rt in runtimes), "", "", "", ""])
    for i, r in enumerate(rounds):
        rows.append([src.cell("rounds", i, "round", fmt="int"),
                     src.cell("rounds", i, "participants", fmt="int" if isinstance(r.get("participants"), int)
                              else "json"),
                     src.cell("rounds", i, "sampled", fmt="int"),
                     *(src.cell("rounds", i, k, fmt="json", cls="nowrap") for k in faults),
                     *(src.cell("rounds", i, "accuracy", rt, fmt="pct") for rt in runtimes),
                     src.cell("rounds", i, "centralized_accuracy", fmt="pct"),
                     src.cell("rounds", i, "agreement", "max_abs_weight_diff"),
                     src.cell("rounds", i, "verdict", fmt="text", cls="nowrap"),
                     src.cell("rounds", i, "wall_seconds", fmt="sec", cls="nowrap")])
    note = f"{', '.join(labels[k] for k in faults)}: the ids of the sampled clients whose update was lost" \
        if faults else ""
    return Table("rounds-table", header, rows, note=note)


RUNTIME_NAMES = {"tflite": "TFLite", "tensorflow": "TensorFlow"}


def _round_cost_table(src: Source, rounds: list[Mapping[str, Any]]) -> Table | None:
    """Per round: held-out loss in each runtime, bytes sent to and received from the clients, time per runtime."""

    def per_runtime(key: str) -> list[str]:
        return [rt for rt in RUNTIME_NAMES if any(isinstance(r.get(key), Mapping) and r[key].get(rt) is not None
                                                  for r in rounds)]

    losses, seconds = per_runtime("loss"), per_runtime("seconds")
    sent = per_runtime("bytes")
    # The same weights travel in every runtime: the bytes are shown once when they agree, else per runtime.
    if len(sent) > 1 and all(r["bytes"].get(rt) == r["bytes"].get(sent[0]) for r in rounds
                             if isinstance(r.get("bytes"), Mapping) for rt in sent):
        sent = sent[:1]
    if not (losses or sent or seconds):
        return None
    both = len(sent) > 1
    header = ["round", *(f"loss ({RUNTIME_NAMES[rt]})" for rt in losses),
              *(f"{d}" + (f" ({RUNTIME_NAMES[rt]})" if both else "") for rt in sent for d in ("bytes down", "bytes up")),
              *(f"time ({RUNTIME_NAMES[rt]})" for rt in seconds)]
    rows: list[list[str | Cell]] = [
        [src.cell("rounds", i, "round", fmt="int"), *(src.cell("rounds", i, "loss", rt) for rt in losses),
         *(src.cell("rounds", i, "bytes", rt, d, fmt="bytes") for rt in sent for d in ("down", "up")),
         *(src.cell("rounds", i, "seconds", rt, fmt="sec") for rt in seconds)] for i in range(len(rounds))]
    return Table("round-cost-table", header, rows, title="Loss, traffic and time per round",
                 note="Loss: the global model on the held-out data. Bytes down: weights sent to the round's clients; "
                      "up: weights received back" + (" (the same in every runtime)" if len(sent) == 1 and len(
                          per_runtime("accuracy")) > 1 else "") + ". Time: the round in each runtime.")


def _fleet_table(src: Source) -> Table | None:
    """What travels per client and direction, and the engine that simulated the fleet."""
    rows: list[list[str | Cell]] = [[label, src.cell(*path, fmt=fmt)] for label, path, fmt in (
        ("weight tensors sent", ("model", "exchanged_variables"), "int"),
        ("bytes per client, each way", ("model", "exchanged_bytes"), "bytes"),
        ("model size", ("model", "size_bytes"), "bytes"),
        ("Flower", ("engine", "flwr"), "text"),
        ("Ray", ("engine", "ray"), "text"),
        ("client actors", ("engine", "actors"), "int"),
        ("Ray address", ("engine", "address"), "text"),
    ) if src.has(*path)]
    return Table("fleet-table", ["fleet", ""], rows, title="What travels, and the engine", numeric=False) \
        if rows else None


def _federate_command(src: Source) -> str | None:
    """The ``litetrain federate`` command line of a federation's settings (None when they name no model)."""
    import shlex

    from litetrain.reporting.comparison_page import model_flags

    s = src.mapping("settings")
    if isinstance(s.get("command"), str):
        return s["command"]
    if not isinstance(s.get("model"), str):
        return None
    args = ["litetrain", "federate", s["model"], *model_flags(s)]
    flags = (("batch_size", "--batch-size"), ("data", "--data"), ("clients", "--clients"), ("rounds", "--rounds"),
             ("local_epochs", "--local-epochs"), ("partition", "--partition"), ("fraction_fit", "--fraction-fit"),
             ("runtime", "--runtime"), ("strategy", "--strategy"), ("proximal_mu", "--proximal-mu"),
             ("server_lr", "--server-lr"), ("seed", "--seed"), ("client_failure_rate", "--client-failure-rate"),
             ("straggler_rate", "--straggler-rate"), ("round_timeout", "--round-timeout"),
             ("cpus_per_client", "--cpus-per-client"), ("atol", "--atol"), ("rtol", "--rtol"))
    for key, flag in flags:
        value = s.get(key)
        if value is not None and not isinstance(value, bool | dict | list):
            args += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    # No --checkpoint-dir: the numbers do not depend on it, and that folder already holds this run's rounds.
    if src.has("centralized") and src.get("centralized") is None:
        args.append("--no-centralized")
    fail_on = src.get("fail_on")
    if isinstance(fail_on, list) and sorted(fail_on) != ["inconsistent", "unhealthy"]:
        args += ["--fail-on", ",".join(fail_on) or "none"]
    return shlex.join(args)


# -- generic ------------------------------------------------------------------------------------------------------


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
    page.sections += _tail_sections(src)
    return page
