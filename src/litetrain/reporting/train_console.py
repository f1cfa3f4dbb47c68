"""The terminal rendering of a train result: one line per epoch, then the budget and the final checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from litetrain.training.result import TrainResult


def render_train(result: TrainResult) -> str:
    """The session's settings, a table of its epochs (loss, accuracy, rate, time), its budget and checkpoint."""
    s = result.settings
    lines = [
        f"litetrain train: {Path(str(result.model['path'])).name} on {result.data.get('name')}, "
        f"{s['epochs']} epoch(s) of {result.steps_per_epoch} steps (batch {s['batch_size']}), "
        f"shuffle seed {s['shuffle_seed']}, learning rate {s['lr_schedule']['spec']}",
    ]
    if result.resumed_from:
        lines.append(f"resumed from {Path(result.resumed_from['path']).name} (step {result.resumed_from['step']}, "
                     f"epoch {result.resumed_from['epoch']})")
    lines.append("")
    lines.append(f"  {'epoch':>5}  {'loss':>10}  {'test accuracy':>13}  {'learning rate':>13}  {'seconds':>8}  "
                 f"{'ms/step':>8}")
    for e in result.epochs:
        acc = "-" if e.accuracy is None else f"{e.accuracy:.1%}"
        lr = "-" if e.learning_rate is None else f"{e.learning_rate:.4g}"
        t = result.epoch_timings.get(e.epoch)
        secs = "-" if t is None else f"{t.seconds:.3g}"
        per_step = "-" if t is None or t.seconds_per_step is None else f"{t.seconds_per_step * 1e3:.3f}"
        lines.append(f"  {e.epoch:>5}  {e.loss:>10.6g}  {acc:>13}  {lr:>13}  {secs:>8}  {per_step:>8}")
    lines.append("")
    lines.extend(result.budget.lines())
    lines.extend(runtimes_lines(result.runtimes))
    if result.final_checkpoint:
        lines.append(f"final checkpoint: {result.final_checkpoint}")
    return "\n".join(lines)


def runtimes_lines(rows: dict[str, dict[str, Any]]) -> list[str]:
    """``--runtimes``: a line per runtime, the followers' differences to the leader, speeds (emulated or not)."""
    if not rows:
        return []
    lines = ["runtimes (the first led the session; the others trained the same batches in lockstep):"]
    for name, row in rows.items():
        speed = row.get("steps_per_second")
        text = f"  {name:<12} {row['steps']} steps, " + ("-" if speed is None else f"{speed:.0f}") + " steps/s"
        text += " (emulated: not the device's speed)" if row.get("emulated") else ""
        if row.get("leader"):
            text += ", leader"
        elif row.get("identical_to_leader"):
            text += ", losses and weights identical to the leader's"
        else:
            text += (f", max |loss diff| {_g(row.get('max_abs_loss_diff'))} and max |weight diff| "
                     f"{_g(row.get('max_abs_weight_diff'))} to the leader")
        lines.append(text)
    return lines


def _g(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"
