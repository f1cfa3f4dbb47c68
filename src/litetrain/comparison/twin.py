"""Twin training: every runner sees the same initial weights and the same batches in the same order."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from litetrain.comparison import metrics
from litetrain.config import Tolerances
from litetrain.data.batching import BatchPlan
from litetrain.runtime.base import Runner


def record_steps(total: int) -> tuple[int, ...]:
    """Steps (1-based, after the update) at which weights are compared: 1, 10, 100 and the last."""
    return tuple(sorted({s for s in (1, 10, 100, total) if 1 <= s <= total}))


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """One runner's training: loss per step and weight snapshots after the recorded steps."""

    runner: str
    losses: np.ndarray  # float64, one per step
    snapshots: dict[int, dict[str, np.ndarray]]
    seconds: float

    @property
    def steps_per_second(self) -> float:
        return len(self.losses) / self.seconds if self.seconds > 0 else float("inf")


def train_trajectory(
    runner: Runner,
    x: np.ndarray,
    y: np.ndarray,
    plan: BatchPlan,
    steps_to_record: Sequence[int],
    *,
    record_weights: bool = True,
) -> Trajectory:
    """Trains ``runner`` through ``plan`` and records its loss per step and weights at ``steps_to_record``."""
    record = set(steps_to_record) if record_weights else set()
    losses = np.empty(plan.steps, dtype=np.float64)
    snapshots: dict[int, dict[str, np.ndarray]] = {}
    elapsed = 0.0
    for i, rows in enumerate(plan.indices):
        # Slicing batch by batch (outside the timer) costs a third of one up-front copy and no memory per epoch.
        xb, yb = x[rows], y[rows]
        t = time.perf_counter()
        losses[i] = runner.train_step(xb, yb)
        elapsed += time.perf_counter() - t
        if i + 1 in record:
            snapshots[i + 1] = runner.get_weights()
    return Trajectory(runner.name, losses, snapshots, elapsed)


@dataclasses.dataclass(frozen=True)
class WeightDiff:
    """Largest differences of one variable at one step."""

    step: int
    name: str
    max_abs: float
    max_rel: float
    within_tolerance: bool


def compare_weights(
    step: int, candidate: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], tol: Tolerances
) -> list[WeightDiff]:
    """Per-variable max abs/rel difference between two weight sets at ``step``."""
    out = []
    for name in sorted(reference):
        ref, cand = reference[name], candidate[name]
        if not np.issubdtype(ref.dtype, np.floating):  # step counters: exact
            diff = float(np.max(np.abs(cand.astype(np.int64) - ref.astype(np.int64)))) if ref.size else 0.0
            out.append(WeightDiff(step, name, diff, diff, diff == 0))
            continue
        d = metrics.max_abs(cand, ref)
        out.append(WeightDiff(step, name, d, metrics.max_rel(cand, ref), tol.allows(d, metrics.scale(ref))))
    return out


def loss_diffs(reference: Trajectory, candidate: Trajectory) -> np.ndarray:
    """Absolute per-step loss difference (NaN where either side is not finite)."""
    with np.errstate(invalid="ignore"):  # inf - inf: marked NaN below
        d = np.abs(candidate.losses - reference.losses)
    d[~np.isfinite(candidate.losses) | ~np.isfinite(reference.losses)] = np.nan
    return d


def summarize_weight_diffs(diffs: list[WeightDiff]) -> dict[str, Any]:
    """JSON-ready view: per step, per variable, and the overall largest."""
    by_step: dict[str, dict[str, Any]] = {}
    for d in diffs:
        by_step.setdefault(str(d.step), {})[d.name] = {
            "max_abs": d.max_abs, "max_rel": d.max_rel, "within_tolerance": d.within_tolerance
        }
    return by_step
