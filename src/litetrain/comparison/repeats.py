"""``--repeats K``: the twin run over K data orders (and initializations), and the spread of the final metric.

One twin run says whether TensorFlow and TFLite follow the same trajectory from one start. Repeating it over K
seeds says how much the final accuracy (MSE for regression) moves with the seed in each runtime, and whether the
paired difference between the runtimes (candidate - reference, same seed, same start, same batches) is
distinguishable from zero: a paired t interval at 95%.

Repeat ``i`` uses seed ``base_seed + 1 + i`` (the main run uses ``base_seed``) for the batch order and, where the
Keras model is available, to re-draw the model's initial weights; optimizer state starts from its initial values.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from litetrain.comparison.twin import train_trajectory
from litetrain.data.batching import plan_batches
from litetrain.data.fit import FittedData
from litetrain.errors import UsageError
from litetrain.runtime.base import Runner

VARIES_ALL = "initialization and data order"
VARIES_ORDER = "data order"
CONFIDENCE = 0.95
FINAL_LOSS_FRACTION = 0.1  # the final loss is the mean over the last 10% of steps

WeightsForSeed = Callable[[int], dict[str, np.ndarray]]


def repeats_count(value: Any) -> int | None:
    """Validates ``repeats``: None (off) or a whole number >= 1.

    Raises:
        UsageError: not a whole number, or below 1.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise UsageError(f"--repeats must be a whole number; received {value!r}.")
    if value < 1:
        raise UsageError(
            f"--repeats must be at least 1; received {value}.",
            hint="Give the number of extra seeds to train the twins on, e.g. --repeats 5 (omit it for none).",
        )
    return int(value)


def spread(values: Sequence[float]) -> dict[str, float | None]:
    """Mean, standard deviation (ddof=1; None for one value), min and max."""
    v = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(np.mean(v)),
        "std": float(np.std(v, ddof=1)) if len(v) > 1 else None,
        "min": float(np.min(v)),
        "max": float(np.max(v)),
    }


def paired_difference(
    reference: Sequence[float], candidate: Sequence[float], confidence: float = CONFIDENCE
) -> dict[str, Any]:
    """Statistics of ``candidate - reference`` over paired repeats.

    Returns ``mean``, ``std`` (ddof=1; None for one pair), ``ci95`` (a paired t interval ``[low, high]``; None for
    one pair or non-finite values) and ``significant`` (the interval excludes 0; False without an interval and
    when every difference is exactly 0).
    """
    from scipy import stats

    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if ref.shape != cand.shape or ref.ndim != 1 or ref.size == 0:
        raise ValueError(f"paired values need two equal, non-empty 1-D sequences; received {ref.shape}, {cand.shape}")
    d = cand - ref
    k = d.size
    mean = float(np.mean(d))
    std = float(np.std(d, ddof=1)) if k > 1 else None
    ci: list[float] | None = None
    significant = False
    if k > 1 and std is not None and math.isfinite(mean) and math.isfinite(std):
        half = float(stats.t.ppf(0.5 + confidence / 2, df=k - 1)) * std / math.sqrt(k)
        ci = [mean - half, mean + half]
        significant = bool(np.any(d != 0)) and (ci[0] > 0 or ci[1] < 0)
    return {"mean": mean, "std": std, "ci95": ci, "significant": significant, "values": d.tolist()}


@dataclasses.dataclass(frozen=True)
class Repeats:
    """Final metric and loss of each runtime over K seeds (``values[runner][i]`` belongs to ``seeds[i]``)."""

    seeds: tuple[int, ...]
    metric: str  # "accuracy" or "mse"
    varies: str
    steps: int
    reference: str
    candidate: str
    values: dict[str, list[float]]
    final_loss: dict[str, list[float]]
    seconds: float

    @property
    def k(self) -> int:
        return len(self.seeds)

    @property
    def difference(self) -> dict[str, Any]:
        return paired_difference(self.values[self.reference], self.values[self.candidate])

    def to_json(self) -> dict[str, Any]:
        per_runner = {name: spread(v) for name, v in self.values.items()}
        return {
            "k": self.k,
            "seeds": list(self.seeds),
            "metric": self.metric,
            "varies": self.varies,
            "steps": self.steps,
            "values": {name: list(v) for name, v in self.values.items()},
            "mean": {name: s["mean"] for name, s in per_runner.items()},
            "std": {name: s["std"] for name, s in per_runner.items()},
            "min": {name: s["min"] for name, s in per_runner.items()},
            "max": {name: s["max"] for name, s in per_runner.items()},
            "difference": {**self.difference, "of": f"{self.candidate} - {self.reference}"},
            "final_loss": {name: list(v) for name, v in self.final_loss.items()},
            "seconds": round(self.seconds, 4),
        }


def final_metric(runner: Runner, data: FittedData, from_logits: bool | None) -> tuple[str, float]:
    """``("accuracy", value)`` on the held-out data, or ``("mse", value)`` for regression."""
    out = runner.infer(data.x_test)[data.accuracy_output or runner.primary_output]
    acc = data.accuracy(out, from_logits)
    if acc is not None:
        return "accuracy", acc
    target = np.asarray(data.y_test if data.accuracy_target is None else data.y_test[data.accuracy_target], np.float64)
    out64 = np.asarray(out, np.float64)
    if out64.size == target.size:
        target = target.reshape(out64.shape)
    return "mse", float(np.mean((out64 - target) ** 2))


def run_repeats(
    reference: Runner,
    candidate: Runner,
    data: FittedData,
    batch_size: int,
    *,
    steps: int | None = None,
    epochs: int | None = None,
    base_seed: int,
    k: int,
    initial_weights: WeightsForSeed,
    from_logits: bool | None,
    varies: str = VARIES_ALL,
) -> Repeats:
    """Trains both runners K times, repeat ``i`` from ``initial_weights(seed)`` on the batch plan of ``seed``.

    Both runners are left trained by the last repeat.
    """
    k = repeats_count(k) or 0
    t0 = time.perf_counter()
    seeds = tuple(base_seed + 1 + i for i in range(k))
    runners = (reference, candidate)
    values: dict[str, list[float]] = {r.name: [] for r in runners}
    final_loss: dict[str, list[float]] = {r.name: [] for r in runners}
    metric = "accuracy"
    n_steps = 0
    for seed in seeds:
        start = initial_weights(seed)
        plan = plan_batches(len(data.x), batch_size, steps=steps, epochs=epochs, seed=seed,
                            drop_remainder=not all(r.takes_partial_batches for r in runners))
        n_steps = plan.steps
        tail = max(1, int(round(plan.steps * FINAL_LOSS_FRACTION)))
        for runner in runners:
            runner.set_weights(start)
            traj = train_trajectory(runner, data.x, data.y, plan, (), record_weights=False)
            metric, value = final_metric(runner, data, from_logits)
            values[runner.name].append(value)
            final_loss[runner.name].append(float(np.mean(traj.losses[-tail:])))
    return Repeats(seeds, metric, varies, n_steps, reference.name, candidate.name, values, final_loss,
                   time.perf_counter() - t0)


def fixed_initial_weights(initial: Mapping[str, np.ndarray]) -> WeightsForSeed:
    """The same start for every seed (only the data order varies)."""
    frozen = {name: np.array(v, copy=True) for name, v in initial.items()}
    return lambda seed: frozen


def keras_initial_weights(module: Any, initial: Mapping[str, np.ndarray]) -> tuple[WeightsForSeed, str]:
    """Re-draws a TrainableModule's weights per seed by cloning its Keras model; optimizer state from ``initial``.

    Returns the function and what varies. When the model cannot be cloned (or the clone's trainable variables do
    not line up with the module's), warns and returns :func:`fixed_initial_weights` with ``"data order"``.
    """
    from litetrain.trainable.keras_objects import keras_module

    keras = keras_module(module.framework)
    weights = [info for info in module.variables_info if info.role == "weight"]

    def draw(seed: int) -> dict[str, np.ndarray]:
        keras.utils.set_random_seed(seed)
        clone = keras.models.clone_model(module.model)
        # The module froze layers of the original model; the clone's fresh layers are all trainable.
        for src, dst in zip(module.model.layers, clone.layers, strict=True):
            dst.trainable = src.trainable
        fresh = list(clone.trainable_variables)
        if len(fresh) != len(weights) or any(
            tuple(int(d) for d in v.shape) != tuple(info.shape) for v, info in zip(fresh, weights, strict=False)
        ):
            raise ValueError(
                f"the clone's trainable variables {[tuple(v.shape) for v in fresh]} do not line up with the "
                f"module's {[info.shape for info in weights]}")
        out = {name: np.array(v, copy=True) for name, v in initial.items()}
        for v, info in zip(fresh, weights, strict=True):
            out[info.name] = np.asarray(v.numpy(), dtype=out[info.name].dtype)
        return out

    try:
        draw(0)  # probe: a failure here means every repeat keeps the same initial weights
    except Exception as exc:  # Keras raises many types for models it cannot clone
        warnings.warn(
            f"--repeats: the model's initial weights cannot be re-drawn ({type(exc).__name__}: {exc}); every "
            "repeat starts from the same weights and only the data order varies.", stacklevel=3)
        return fixed_initial_weights(initial), VARIES_ORDER
    return draw, VARIES_ALL
