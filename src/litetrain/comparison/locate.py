"""Where the twins part: the first step and the first variable whose update differs, from identical weights."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from litetrain.data.batching import BatchPlan
from litetrain.runtime.base import Runner

MAX_STEPS = 50
UPDATE_MISMATCH = 1e-3
"""A relative update difference above this is not float32 rounding of one step (that is ~1e-6)."""


@dataclasses.dataclass(frozen=True)
class Location:
    """The first step whose single-step update differs, and the worst variable there."""

    step: int | None
    variable: str | None
    layer: str | None
    update_rel_error: float  # at ``step`` (or the largest seen when no step crossed the threshold)
    loss_diff: float
    steps_examined: int
    per_variable: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        if self.step is None:
            return (f"single steps from identical weights agree (largest relative update difference "
                    f"{self.update_rel_error:.2g} over {self.steps_examined} steps)")
        where = f"variable {self.variable!r}" + (f" (layer {self.layer!r})" if self.layer else "")
        return (f"from identical weights, step {self.step}'s update of {where} differs by "
                f"{self.update_rel_error:.1%} relative to TensorFlow's")


def locate(
    reference: Runner,
    candidate: Runner,
    x: np.ndarray,
    y: np.ndarray,
    plan: BatchPlan,
    start_step: int,
    start_weights: Mapping[str, np.ndarray],
    float_names: Sequence[str],
    layer_of: Mapping[str, str] | None = None,
) -> Location:
    """Re-synchronizes both twins before every step from ``start_step`` on and compares their updates.

    Args:
        start_step: Steps already taken in ``start_weights`` (0: the initial weights).
        start_weights: The reference's weights and optimizer state after ``start_step`` steps.
        float_names: The float variables to compare (weights and optimizer state).
        layer_of: Variable name -> layer name, for the message.
    """
    weights = dict(start_weights)
    worst = (0.0, None, 0.0, {})  # error, variable, loss diff, per-variable
    stop = min(plan.steps, start_step + MAX_STEPS)
    examined = 0
    for step in range(start_step + 1, stop + 1):
        rows = plan.indices[step - 1]
        reference.set_weights(weights)
        candidate.set_weights(weights)
        loss_r = reference.train_step(x[rows], y[rows])
        loss_c = candidate.train_step(x[rows], y[rows])
        after_r, after_c = reference.get_weights(), candidate.get_weights()
        examined += 1
        per_var = {}
        for name in float_names:
            delta_r = np.asarray(after_r[name], np.float64) - np.asarray(weights[name], np.float64)
            delta_c = np.asarray(after_c[name], np.float64) - np.asarray(weights[name], np.float64)
            scale = float(np.max(np.abs(delta_r))) if delta_r.size else 0.0
            diff = float(np.max(np.abs(delta_c - delta_r))) if delta_r.size else 0.0
            per_var[name] = diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))
        name, err = max(per_var.items(), key=lambda kv: kv[1], default=(None, 0.0))
        loss_diff = abs(loss_c - loss_r)
        if err > worst[0] or worst[1] is None:
            worst = (err, name, loss_diff, per_var)
        if err > UPDATE_MISMATCH or not np.isfinite(err):
            return Location(step, name, (layer_of or {}).get(name or ""), err, loss_diff, examined,
                            dict(sorted(per_var.items(), key=lambda kv: -kv[1])[:8]))
        weights = after_r
    return Location(None, worst[1], (layer_of or {}).get(worst[1] or ""), worst[0], worst[2], examined,
                    dict(sorted(worst[3].items(), key=lambda kv: -kv[1])[:8]))
