"""Distances between trajectories, their growth over steps, and the comparison with the noise floor."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

FLOOR_FACTOR = 10.0
"""A difference is "within the floor" up to this many times the largest no-op perturbation's distance: the two
runtimes differ in many kernels at once, a single perturbation in one thing."""

ULPS = 16.0
"""The floor never goes below this many float32 units in the last place of the reference's magnitude, so that
perturbations which happen to be bit-identical do not make a few ulps of difference look like a defect."""

NOT_COMPARABLE = 1e-3
"""Once the floor moves the weights by this fraction of their scale, single trajectories stop being comparable:
any two float32 runs, even of the same runtime, are then different samples of training."""


def dense_steps(total: int) -> tuple[int, ...]:
    """Roughly log-spaced steps (with 1, 10, 100 and the last) at which weights are recorded."""
    steps = {1, 10, 100, total}
    s = 1.0
    while s < total:
        steps.add(int(round(s)))
        s *= 1.35
    return tuple(sorted(x for x in steps if 1 <= x <= total))


def weight_distance(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], names: Sequence[str]) -> float:
    """Largest absolute difference over the float variables ``names`` (NaN if any value is not finite)."""
    worst = 0.0
    for name in names:
        x, y = np.asarray(a[name], np.float64), np.asarray(b[name], np.float64)
        if x.size == 0:
            continue
        with np.errstate(invalid="ignore"):
            d = np.abs(x - y)
        if not np.all(np.isfinite(d)):
            return float("nan")
        worst = max(worst, float(d.max()))
    return worst


def weight_scale(w: Mapping[str, np.ndarray], names: Sequence[str]) -> float:
    """Largest absolute value over the float variables ``names``."""
    vals = [float(np.max(np.abs(w[n]))) for n in names if np.size(w[n])]
    return max(vals, default=0.0)


def min_floor(scale: float) -> float:
    """The smallest floor at a reference of magnitude ``scale``."""
    return ULPS * float(np.finfo(np.float32).eps) * max(abs(scale), float(np.finfo(np.float32).tiny))


@dataclasses.dataclass(frozen=True)
class Growth:
    """Exponential fit ``distance ~ exp(rate * step)`` over the steps where the distance is positive."""

    rate_per_step: float | None
    doubling_steps: float | None
    points: int
    log_intercept: float | None = None  # ``log(distance)`` of the fit at step 0, to draw the fitted line

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def fit_growth(steps: Sequence[int], values: Sequence[float]) -> Growth:
    """Least-squares slope of ``log(distance)`` against the step."""
    pts = [(s, math.log(v)) for s, v in zip(steps, values, strict=True) if v > 0 and math.isfinite(v)]
    if len(pts) < 3:
        return Growth(None, None, len(pts))
    x = np.array([p[0] for p in pts], np.float64)
    y = np.array([p[1] for p in pts], np.float64)
    rate, intercept = (float(v) for v in np.polyfit(x, y, 1))
    return Growth(rate, (math.log(2) / rate) if rate > 1e-12 else None, len(pts), intercept)


@dataclasses.dataclass(frozen=True)
class Divergence:
    """TensorFlow-vs-TFLite distance against the noise floor, step by step."""

    steps: list[int]
    distance: list[float]  # weights, TF vs TFLite, at ``steps``
    floor: list[float]  # weights, largest perturbation distance at ``steps`` (after the minimum floor)
    loss_diff_max_ratio: float  # largest per-step loss difference / loss floor
    weight_max_ratio: float
    first_step_beyond_floor: int | None
    within_floor: bool
    growth: Growth
    floor_growth: Growth
    comparable_until: int | None  # last step before the floor exceeds NOT_COMPARABLE of the weight scale
    loss_floor: list[float] = dataclasses.field(default_factory=list)  # per step, after the minimum floor

    def ratio_growth(self) -> float:
        """How much the distance/floor ratio grew from the first step beyond the floor to the end (1 within it)."""
        if self.first_step_beyond_floor is None:
            return 1.0
        pairs = [(s, dist / fl) for s, dist, fl in zip(self.steps, self.distance, self.floor, strict=True)
                 if s >= self.first_step_beyond_floor and fl > 0 and dist == dist]
        if len(pairs) < 2 or pairs[0][1] <= 0:
            return 1.0
        return max(r for _, r in pairs) / pairs[0][1]

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["growth"] = self.growth.to_json()
        d["floor_growth"] = self.floor_growth.to_json()
        d["floor_factor"] = FLOOR_FACTOR
        return d


def assess_divergence(
    steps: Sequence[int],
    distance: Sequence[float],
    floor: Sequence[float],
    scales: Sequence[float],
    loss_diff: np.ndarray,
    loss_floor: np.ndarray,
    losses: np.ndarray,
) -> Divergence:
    """Compares the twins' distance with the floor at every recorded step and every loss."""
    floor_eff = [max(f, min_floor(sc)) for f, sc in zip(floor, scales, strict=True)]
    w_ratio = [d / f if math.isfinite(d) else math.inf for d, f in zip(distance, floor_eff, strict=True)]
    l_floor = np.maximum(loss_floor, [min_floor(v) for v in np.nan_to_num(losses, nan=1.0)])
    l_ratio = np.where(np.isfinite(loss_diff), loss_diff / l_floor, np.inf)
    bad_steps = [s for s, r in zip(steps, w_ratio, strict=True) if r > FLOOR_FACTOR]
    bad_steps += [int(i) + 1 for i in np.flatnonzero(l_ratio > FLOOR_FACTOR)[:1]]
    first_bad = min(bad_steps) if bad_steps else None
    comparable_until = None
    for s, f, sc in zip(steps, floor, scales, strict=True):
        if sc > 0 and f > NOT_COMPARABLE * sc:
            comparable_until = max(s - 1, 0)
            break
    return Divergence(
        steps=list(steps),
        distance=list(distance),
        floor=floor_eff,
        loss_diff_max_ratio=float(np.max(l_ratio)) if l_ratio.size else 0.0,
        weight_max_ratio=max(w_ratio, default=0.0),
        first_step_beyond_floor=first_bad,
        within_floor=first_bad is None,
        growth=fit_growth(steps, distance),
        floor_growth=fit_growth(steps, floor),
        comparable_until=comparable_until,
        loss_floor=[float(v) for v in l_floor],
    )
