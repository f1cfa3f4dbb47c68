"""The page of a quantize result: every mode's size, accuracy, per-layer error and training next to float32.

Like every page builder it reads only what it finds: a missing optional section is skipped, never an error, so a
result from an older or newer litetrain still renders.
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


def recommended_mode(src: Source) -> tuple[str | None, list[Any]]:
    """The recommended mode's name, and the pointer path of its name in the result."""
    mode = src.get("recommendation", "mode")
    return (mode, ["recommendation", "mode"]) if isinstance(mode, str) else (None, [])


def per_layer(mode: Mapping[str, Any]) -> tuple[str | None, dict[str, float]]:
    """(key, {tensor or layer: error}) of a mode's per-op errors.

    Per-op records are keyed by tensor (unique, and what a graph viewer matches) with their noise-to-signal ratio,
    which compares ops of any scale.
    """
    records = mode.get("layers")
    if isinstance(records, list):
        out = {str(r["tensor"]): number_or_nan(r.get("nsr")) for r in records if isinstance(r, Mapping) and "tensor" in r}
        out = {k: v for k, v in out.items() if not math.isnan(v)}
        if out:
            return "layers", out
    by_layer = mode.get("per_layer")
    if isinstance(by_layer, Mapping):
        out = {str(k): number_or_nan(v) for k, v in by_layer.items()}
        out = {k: v for k, v in out.items() if not math.isnan(v)}
        if out:
            return "per_layer", out
    return None, {}


def quantize_page(result: dict[str, Any]) -> Page:
    """Which quantization mode to ship: size against accuracy, whether the model still trains, per-layer error."""
    src = Source(result)
    modes = {m: v for m, v in src.mapping("modes").items() if isinstance(v, Mapping)}
    deploy = {m: v for m, v in src.mapping("deploy", "modes").items() if isinstance(v, Mapping)}
    rec, rec_path = recommended_mode(src)
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
            key, values = per_layer(v)
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
    page.sections += tail_sections(src, command=_quantize_command(src))
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
            points.append((prefix + m, number_or_nan(v.get("size_bytes")) / 1024, number_or_nan(y)))
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
              if number_or_nan(v.get("max_abs_error")) >= 0}  # zero: an exact mode, marked as such on the log axis
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
        ys = [number_or_nan(v) for v in values]
        for group in groups:
            ref = [number_or_nan(v) for v in series[group[0]]]
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
