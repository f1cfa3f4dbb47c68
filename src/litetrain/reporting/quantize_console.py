"""The terminal rendering of a quantize result (the same figures as the JSON)."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

from litetrain.quantization.recommend import within_budget

if TYPE_CHECKING:
    from litetrain.quantization.result import ModeReport, QuantizeResult

LAYER_ROWS = 5


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if value != value:
        return "NaN"
    return "0" if value == 0 else (f"{value:.3g}" if abs(value) < 1e-3 or abs(value) >= 1e4 else f"{value:.4g}")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _size(value: int | None) -> str:
    return "-" if value is None else f"{value / 1024:.1f} KiB"


def _table(rows: list[tuple[str, ...]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  " + "  ".join(cells).rstrip())
        if n == 0:
            lines.append("  " + "-" * (sum(widths) + 2 * (len(widths) - 1)))
    return lines


def _mode_rows(reports: dict[str, ModeReport], trainable: bool) -> tuple[list[str], list[str]]:
    head: tuple[str, ...] = ("mode", "size", "ratio", "max|err|", "mean|err|", "argmax", "accuracy", "latency")
    # A trainable table shows a row's status in its verdict column; an inference table needs one when a row failed.
    status = not trainable and any(r.status != "measured" for r in reports.values())
    if trainable:
        head = (*head, "trains", "verdict")
    elif status:
        head = (*head, "status")
    rows: list[tuple[str, ...]] = [head]
    footnotes: list[str] = []
    for name, r in reports.items():
        inf = r.inference
        ratio = "-" if r.size_ratio is None else f"{r.size_ratio:.2f}"
        latency = "-" if r.latency_us is None else f"{r.latency_us:.0f} us"
        row: tuple[str, ...] = (
            name, _size(r.size_bytes), ratio, _num(inf.max_abs_error if inf else None),
            _num(inf.mean_abs_error if inf else None), _pct(inf.argmax_agreement if inf else None),
            _pct(inf.accuracy if inf else None), latency)
        if trainable:
            trains = {True: "yes", False: "NO", None: "-"}[r.trains]
            verdict = r.status if r.status != "measured" else (r.training or {}).get("verdict", "-")
            row = (*row, trains, verdict)
        elif status:
            row = (*row, r.status)
        rows.append(row)
        if r.failure is not None:
            footnotes.append(r.failure.line(name))
        elif r.status != "measured" or r.mode.value != "none":
            footnotes.append(f"{name}: {r.note}")
        if r.selective is not None:
            s = r.selective
            label = f"{name}+float {len(s.kept_in_float)}"
            ratio = f"{s.size_bytes / r.float32_size_bytes:.2f}" if r.float32_size_bytes else "-"
            rows.append((label, _size(s.size_bytes), ratio, "", "", "", _pct(s.accuracy), "",
                         *(("", "") if trainable else ("",) if status else ())))
            kept = ", ".join(str(layer or tensor) for layer, tensor in zip(s.layers, s.kept_in_float, strict=True))
            footnotes.append(f"{label}: int8 with layer(s) {kept} kept in float (selective quantization, "
                             f"{'meets' if s.met_budget else 'does NOT meet'} the budget)")
    return _table(rows, right=set(range(1, 8))), footnotes


def _worst_layers(reports: dict[str, ModeReport], budget: float) -> list[str]:
    lines: list[str] = []
    for name, r in reports.items():
        # int8 always (the mode whose layers differ most), the others only when they miss the budget.
        if not r.layers or (name != "int8" and within_budget(r, budget)):
            continue
        rows: list[tuple[str, ...]] = [("layer / op", "dtype", "added nsr", "nsr", "rmse", "max|err|", "cosine")]
        for e in r.layers[:LAYER_ROWS]:
            rows.append((f"{e.layer or '?'} / {e.op}", e.dtype, _num(e.added), _num(e.nsr), _num(e.rmse),
                         _num(e.max_abs), f"{e.cosine:.5f}"))
        lines += ["", f"worst layers, {name} (error each op adds: noise-to-signal ratio over its inputs'):",
                  *_table(rows, right={2, 3, 4, 5, 6})]
    return lines


def _recommendation(label: str, rec: dict[str, Any] | None) -> list[str]:
    if not rec:
        return [f"{label}: none (nothing measured meets the budget)"]
    acc = "" if rec.get("accuracy") is None else (
        f", accuracy {_pct(rec['accuracy'])} ({(rec['accuracy_drop'] or 0) * -100:+.1f} pp)")
    ratio = "" if rec.get("size_ratio") is None else f", {rec['size_ratio']:.2f}x float32"
    lines = [f"{label}: {rec['label']} ({_size(rec['size_bytes'])}{ratio}{acc}): {rec['reason']}"]
    for warning in rec.get("warnings") or ():
        lines += textwrap.wrap(warning, 108, initial_indent="  WARNING: ", subsequent_indent="    ")
    return lines


def render_quantize(result: QuantizeResult) -> str:
    """Tables of every mode (trainable and deploy), the worst layers, the recommendation and notes."""
    trainable = result.model_kind == "trainable"
    s = result.settings
    what = ("trainable model (train/infer/save/restore), " + f"--trainable {s.get('trainable')}, "
            f"{s.get('steps')} twin training steps of batch {s.get('batch_size')}" if trainable
            else "inference model (infer only)")
    rep = result.representative
    lines = [
        f"litetrain quantize: {result.model.get('source')}: {what}, data {result.data.get('name')}, "
        f"seed {s.get('seed')}",
        f"representative data: {rep.get('name')}, {rep.get('samples')} samples; accuracy budget "
        f"{s.get('max_accuracy_drop_percentage_points'):g} pp",
        "",
    ]
    table, notes = _mode_rows(result.modes, trainable)
    lines += [("trainable model (figures after training both twins):" if trainable else "inference model:"), *table]
    lines += [line for n in notes for line in textwrap.wrap(n, 108, initial_indent="  * ", subsequent_indent="    ")]
    if result.deploy:
        table, notes = _mode_rows(result.deploy, False)
        lines += ["", "deploy: inference model exported from the weights after on-device training:", *table]
        lines += [line for n in notes if "selective" in n or " failed " in n
                  for line in textwrap.wrap(n, 108, initial_indent="  * ", subsequent_indent="    ")]
    budget = float(s.get("max_accuracy_drop_percentage_points") or 1.0) / 100
    lines += _worst_layers(result.deploy if result.deploy else result.modes, budget)
    lines.append("")
    lines += _recommendation("recommendation" + (" (trainable)" if trainable else ""), result.recommendation)
    if result.deploy:
        lines += _recommendation("recommendation (deploy)", result.deploy_recommendation)
    for note in result.notes:
        lines += textwrap.wrap(note, 110, initial_indent="note: ", subsequent_indent="  ")
    return "\n".join(lines)
