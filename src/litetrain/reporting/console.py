"""A short table of a comparison for the terminal, and the same as HTML for Jupyter."""

from __future__ import annotations

import html
import textwrap
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from litetrain.comparison.result import CheckpointCheck, ComparisonResult


def _fmt(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "-"
    if value != value:
        return "NaN"
    return f"{value:.1%}" if pct else (f"{value:.3g}" if abs(value) < 1e-3 and value != 0 else f"{value:.6g}")


def table_rows(result: ComparisonResult) -> list[tuple[str, str, str, str]]:
    """(label, reference, candidate, difference) rows shared by the text and HTML renderings."""
    train = result.train
    names = list(train.loss)
    ref, cand = names[0], names[1]
    rows: list[tuple[str, str, str, str]] = []
    steps = sorted({1, 10, 100, train.steps} & set(range(1, train.steps + 1)))
    for s in steps:
        a, b = train.loss[ref][s - 1], train.loss[cand][s - 1]
        rows.append((f"loss at step {s}", _fmt(a), _fmt(b), _fmt(abs(a - b))))
    rows.append(("largest loss difference", "", "", _fmt(train.max_abs_loss_diff)))
    rows.append(("largest weight difference", "", "", _fmt(train.max_abs_weight_diff)))
    after = result.inference["after"]
    rows.append(("test accuracy", _fmt(after.accuracy.get(ref), True), _fmt(after.accuracy.get(cand), True),
                 ""))
    rows.append(("largest output difference", "", "", _fmt(after.max_abs_error)))
    if after.classification:
        rows.append(("argmax agreement", "", "", _fmt(after.argmax_agreement, True)))
    rows.append(("train steps/s", _fmt(train.steps_per_second[ref]), _fmt(train.steps_per_second[cand]), ""))
    broken = _non_finite_weights(result)
    if broken:
        rows.append(("weights after training", *("NaN/Inf" if n in broken else "finite" for n in (ref, cand)), ""))
    if result.checkpoint is not None:
        rows.append(("checkpoint round trip", "", "", _round_trip(result.checkpoint, cand in broken)))
    if result.noise_floor is not None and result.divergence is not None:
        rows.append(("noise floor: loss / weights", "", "", f"{_fmt(result.noise_floor['loss_floor_max'])} / "
                     f"{_fmt(result.divergence['floor'][-1])}"))
        rows.append(("twins vs floor (weights, loss)", "", "",
                     f"{result.divergence['weight_max_ratio']:.2g}x, {result.divergence['loss_diff_max_ratio']:.2g}x"))
    if result.float64 is not None:
        d = result.float64["distance"]
        rows.append(("distance to float64 (weights)", _fmt(d[ref]["weight_distance_last"]),
                     _fmt(d[cand]["weight_distance_last"]), ""))
    return rows


def _non_finite_weights(result: ComparisonResult) -> set[str]:
    """The runners whose weights are NaN or Inf after training (from the health of each trajectory)."""
    from litetrain.comparison.health import NON_FINITE_WEIGHTS

    broken = {h["runner"] for h in result.health if NON_FINITE_WEIGHTS in h.get("details", ())}
    if result.checkpoint is not None and result.checkpoint.non_finite_weights:
        broken.add(list(result.train.loss)[1])
    return broken


def _round_trip(checkpoint: CheckpointCheck, non_finite: bool) -> str:
    """NaN never equals NaN: a round trip of NaN/Inf weights judged by plain equality (no ``non_finite_weights``
    recorded) is not called a difference; the weights have their own row."""
    if checkpoint.roundtrip_exact:
        return "exact"
    return "not judged (NaN/Inf weights)" if non_finite and not checkpoint.non_finite_weights else "DIFFERS"


def _census_line(result: ComparisonResult) -> str:
    ops = result.model.get("ops") or {}
    total = ops.get("total", {})
    size = result.model.get("size_bytes")
    size_text = f"{size / 1024:.1f} KiB" if isinstance(size, int) else "?"
    kind = "builtin-only" if ops.get("builtin_only") else "NEEDS select-TF/custom ops"
    return (f"model: {size_text}, ops {total.get('builtin', 0)} builtin / {total.get('flex', 0)} flex / "
            f"{total.get('custom', 0)} custom ({kind})")


def _metric_fmt(value: float | None, metric: str, signed: bool = False) -> str:
    if value is None:
        return "-"
    if value != value:
        return "NaN"
    if metric == "accuracy":
        return f"{value:+.1%}" if signed else f"{value:.1%}"
    return f"{value:+.3g}" if signed else f"{value:.3g}"


def repeats_lines(result: ComparisonResult) -> list[str]:
    """The ``--repeats`` block: mean +- std of the final metric per runtime and the paired difference's 95% CI."""
    rep = result.repeats
    if not rep:
        return []
    metric = rep["metric"]
    label = "test accuracy" if metric == "accuracy" else "test MSE"
    names = list(rep["values"])
    width = max(len(n) for n in [*names, "difference"])
    lines = [f"repeats: final {label} over {rep['k']} more seed{'s' if rep['k'] != 1 else ''} "
             f"({rep['varies']} vary; seeds {rep['seeds'][0]}..{rep['seeds'][-1]})"]
    for name in names:
        std = rep["std"][name]
        lines.append(f"  {name:<{width}}  {_metric_fmt(rep['mean'][name], metric)}"
                     + ("" if std is None else f" ± {_metric_fmt(std, metric)}"))
    diff = rep["difference"]
    ci = diff["ci95"]
    lines.append(
        f"  {'difference':<{width}}  {_metric_fmt(diff['mean'], metric, signed=True)} ({diff.get('of', '')})"
        + (f", 95% CI [{_metric_fmt(ci[0], metric, True)}, {_metric_fmt(ci[1], metric, True)}]: "
           + ("significant" if diff["significant"] else "not significant")
           if ci is not None else ": no interval from one repeat"))
    return lines


def runtimes_lines(result: ComparisonResult) -> list[str]:
    """The ``--runtimes`` block: one row per LiteRT runtime, each against TensorFlow on the same batches."""
    rows = result.runtimes
    if not rows:
        return []
    header = ("runtime", "max |loss diff|", "max |weight diff|", "vs floor", "steps/s", "checkpoint", "verdict")
    table = [header]
    for name, row in rows.items():
        ratio = row.get("floor_ratio")
        same = " (= interpreter)" if row.get("identical_to_interpreter") and name != "interpreter" else ""
        checkpoint = row.get("checkpoint_exact")
        table.append((
            name, _fmt(row.get("max_abs_loss_diff")), _fmt(row.get("max_abs_weight_diff")),
            "-" if ratio is None else f"{ratio:.2g}x", "-" if row.get("steps_per_second") is None
            else f"{row['steps_per_second']:.0f}" + ("*" if row.get("emulated") else ""),
            "-" if checkpoint is None else ("exact" if checkpoint else "DIFFERS"),
            row["verdict"] + same,
        ))
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = [f"runtimes: each trained the same {result.train.steps} batches from the same weights; "
             "differences to tensorflow"]
    for r in table:
        lines.append("  " + "  ".join(c.ljust(w) if j in (0, 6) else c.rjust(w)
                                      for j, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip())
    lines += [f"  {name}: {row['reason']}" for name, row in rows.items()
              if row["verdict"] not in ("consistent", result.verdict.value) or row["verdict"] == "failed"]
    emulated = [name for name, row in rows.items() if row.get("emulated") and row.get("steps_per_second")]
    if emulated:
        lines.append(f"  * {', '.join(emulated)}: emulated (qemu-user on this x86 machine), not the device's speed")
    return lines


def render_comparison(result: ComparisonResult) -> str:
    """The terminal table: losses at chosen steps, largest differences, accuracy, checkpoint, census, verdict."""
    names = list(result.train.loss)
    header = ("", names[0], names[1], "|difference|")
    rows = [header, *table_rows(result)]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        f"litetrain {result.kind}: {result.data.get('name', '?')}, {result.train.steps} steps of batch "
        f"{result.train.batch_size} ({result.train.epochs:g} epochs), seed {result.train.seed}",
        _census_line(result),
        "",
    ]
    for i, r in enumerate(rows):
        lines.append(f"  {r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]:>{widths[3]}}")
        if i == 0:
            lines.append("  " + "-" * (sum(widths) + 6))
    if result.repeats:
        lines += ["", *repeats_lines(result)]
    if result.runtimes:
        lines += ["", *runtimes_lines(result)]
    lines += ["", f"verdict: {result.verdict.value.upper()}" + ("" if result.passed else "  (fails: --fail-on "
                                                                    f"{','.join(result.fail_on)})")]
    lines += textwrap.wrap(result.explanation, width=100, initial_indent="  ", subsequent_indent="  ")
    return "\n".join(lines)


def render_comparison_html(result: ComparisonResult) -> str:
    """A compact HTML table for notebooks."""
    names = list(result.train.loss)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ("", names[0], names[1], "|difference|"))
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table_rows(result)
    )
    color = "#1a7f37" if result.passed else "#cf222e"
    rep = repeats_lines(result)
    rep_html = (f"<p>{html.escape(rep[0])}</p><pre>{html.escape(chr(10).join(line[2:] for line in rep[1:]))}"
                "</pre>") if rep else ""
    return (
        f"<div><p><b style='color:{color}'>verdict: {html.escape(result.verdict.value)}</b> — "
        f"{html.escape(result.explanation)}</p><p>{html.escape(_census_line(result))}</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{rep_html}</div>"
    )
