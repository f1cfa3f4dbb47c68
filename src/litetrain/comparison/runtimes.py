"""More LiteRT runtimes in a comparison: each trains the same batches from the same weights and is judged alone.

``litetrain check --runtimes interpreter,compiled`` (any runtime of :mod:`litetrain.runtime.registry` that runs a
.tflite model: ``interpreter``, ``compiled``, ``worker``; ``all`` for every one) keeps the whole comparison of
TensorFlow with the Python ``Interpreter`` (noise floor, float64 twin, verdict) and then, for every runtime named,
trains a fresh runner of the same ``model.tflite`` from TensorFlow's initial weights through the same batch plan,
next to TensorFlow trained once more the same way. Each runtime gets its own row (``result.runtimes[name]``):

- ``max_abs_loss_diff`` and ``max_abs_weight_diff``: the largest per-step loss difference to TensorFlow and the
  largest weight difference (every float variable) at the recorded steps;
- ``floor_ratio``: the larger of the loss and weight differences over the float32 noise floor measured by the main
  comparison, step by step (:func:`~litetrain.comparison.divergence.assess_divergence`; the floor is not re-measured);
- ``identical_to_interpreter``: its losses and weights equal the Interpreter's bit for bit;
- ``checkpoint_exact``: ``save`` called twice gives the same weights, and ``restore`` into a fresh runner of that
  runtime reproduces weights and outputs bit for bit;
- ``verdict``: the main verdict for a runtime whose numbers equal the Interpreter's (and for the Interpreter itself);
  otherwise ``consistent`` within the floor, ``drift`` beyond it when the ratio does not keep growing, ``inconsistent``
  when it grows more than tenfold, a loss becomes NaN where TensorFlow's does not, or the checkpoint differs. Without
  a noise floor the fixed tolerances decide (``consistent`` or ``inconsistent``). A runtime that cannot load or run the
  model is ``failed`` with the reason.

A runtime whose verdict is in ``fail_on`` (or ``failed``) fails the result as the main verdict would.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from litetrain.comparison import metrics
from litetrain.comparison.divergence import assess_divergence, weight_distance, weight_scale
from litetrain.comparison.twin import Trajectory, record_steps, train_trajectory
from litetrain.comparison.verdict import GROWTH_INCONSISTENT, Verdict
from litetrain.config import Tolerances
from litetrain.data.batching import BatchPlan
from litetrain.data.fit import FittedData
from litetrain.errors import LitetrainError, RuntimeUnavailableError, UsageError
from litetrain.runtime.base import Runner
from litetrain.runtime.registry import EMULATED

INTERPRETER = "interpreter"
DEFAULT_RUNTIMES = (INTERPRETER,)
FAILED = "failed"


def tflite_runtimes() -> tuple[str, ...]:
    """The runtimes of the registry that run a .tflite model (interpreter, compiled, worker, ...)."""
    from litetrain.runtime.registry import RUNTIMES

    return tuple(name for name, entry in RUNTIMES.items() if entry.model == "tflite")


def _open(name: str, model: bytes) -> Runner:
    from litetrain.runtime.registry import runner_class

    return runner_class(name)(model, name=name)


def parse_runtimes(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``--runtimes``: comma-separated runtime names (default ``interpreter``), in order, without repeats.

    The Interpreter always runs (it is the main comparison's candidate); naming it or not changes nothing else.
    ``all`` is every runtime that runs a .tflite model and can run here (``arm64`` once installed).

    Raises:
        UsageError: an unknown name, listing the known ones.
        RuntimeUnavailableError: a named runtime is not installed (exit code 3), naming the command that installs it.
    """
    if value is None:
        return DEFAULT_RUNTIMES
    parts = [p.strip() for p in (value.split(",") if isinstance(value, str) else value) if p and p.strip()]
    known = tflite_runtimes()
    every = any(p == "all" for p in parts)
    if every:
        parts = list(known)
    unknown = [p for p in parts if p not in known]
    if unknown:
        raise UsageError(f"Unknown runtime(s) {unknown} in --runtimes.",
                         hint=f"Choose from {', '.join(known)} (comma-separated), or all.")
    names = []
    for name in dict.fromkeys([INTERPRETER, *parts]):
        missing = _unavailable(name)
        if missing is not None and not every:
            raise missing  # exit code 3, naming the command that installs it
        if missing is None:
            names.append(name)  # ``all``: every runtime that can run here
    return tuple(names)


def _unavailable(name: str) -> RuntimeUnavailableError | None:
    """Why runtime ``name`` cannot run here (a runner class may say so with ``unavailable()``), or None."""
    from litetrain.runtime.registry import runner_class

    check = getattr(runner_class(name), "unavailable", None)
    return check() if check is not None else None


@dataclasses.dataclass(frozen=True)
class RuntimeRow:
    """One runtime's training against TensorFlow's (see the module docstring for every field)."""

    name: str
    verdict: str
    reason: str
    steps: int = 0
    max_abs_loss_diff: float | None = None
    max_abs_weight_diff: float | None = None
    loss_floor_ratio: float | None = None
    weight_floor_ratio: float | None = None
    floor_ratio: float | None = None
    max_abs_output_diff: float | None = None
    identical_to_interpreter: bool | None = None
    checkpoint_exact: bool | None = None
    final_loss: float | None = None
    steps_per_second: float | None = None
    loss: tuple[float, ...] = ()
    emulated: bool = False
    """Its steps/s is an emulator's (arm64 under qemu-user on x86), not the device's."""

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["loss"] = list(self.loss)
        return out


def with_runtimes(
    result: Any,
    names: Sequence[str],
    *,
    model: bytes,
    reference: Runner,
    initial: Mapping[str, np.ndarray],
    data: FittedData,
    plan: BatchPlan,
    tol: Tolerances,
) -> Any:
    """``result`` (a ComparisonResult) with ``runtimes`` filled in for ``names`` and ``passed`` updated.

    ``reference`` (the TensorFlow twin) is set to ``initial`` and trained through ``plan`` once more.
    """
    t0 = time.perf_counter()
    floor = result.noise_floor if result.divergence is not None else None
    steps = tuple(sorted(int(s) for s in floor["weight_floor"])) if floor else record_steps(plan.steps)
    reference.set_weights(initial)
    ref = train_trajectory(reference, data.x, data.y, plan, steps)
    float_names = sorted(n for n, i in reference.weight_infos.items() if np.issubdtype(i.dtype, np.floating))
    ref_out = _outputs(reference, data.x_test)
    trajectories: dict[str, Trajectory] = {}
    rows: dict[str, RuntimeRow] = {}
    for name in names:
        try:
            row, traj = _run_one(name, model, initial, data, plan, steps, ref, ref_out, float_names, floor, tol)
        except LitetrainError as exc:
            row, traj = RuntimeRow(name, FAILED, exc.message, emulated=name in EMULATED), None
        if traj is not None:
            trajectories[name] = traj
        rows[name] = row
    interp = trajectories.get(INTERPRETER)
    main = result.verdict.value
    for name, row in rows.items():
        traj = trajectories.get(name)
        if traj is None or interp is None:
            continue
        same = _identical(traj, interp)
        if name == INTERPRETER or (same and row.verdict != Verdict.INCONSISTENT.value):
            why = "the main comparison's verdict" if name == INTERPRETER else "identical to the interpreter"
            row = dataclasses.replace(row, verdict=main, reason=why + (f"; {row.reason}" if row.reason else ""))
        rows[name] = dataclasses.replace(row, identical_to_interpreter=same)
    fail = set(result.fail_on) | {FAILED}
    passed = result.passed and not any(r.verdict in fail for r in rows.values())
    section = {name: {**row.to_json(), "judged_by": "noise_floor" if floor else "tolerances"}
               for name, row in rows.items()}
    timings = {**result.timings, "runtimes_s": time.perf_counter() - t0}
    settings = {**result.settings, "runtimes": list(rows)}
    return dataclasses.replace(result, runtimes=section, passed=passed, timings=timings, settings=settings)


def _run_one(
    name: str,
    model: bytes,
    initial: Mapping[str, np.ndarray],
    data: FittedData,
    plan: BatchPlan,
    steps: Sequence[int],
    ref: Trajectory,
    ref_out: np.ndarray,
    float_names: list[str],
    floor: Mapping[str, Any] | None,
    tol: Tolerances,
) -> tuple[RuntimeRow, Trajectory]:
    with _open(name, model) as runner:
        runner.set_weights(initial)
        traj = train_trajectory(runner, data.x, data.y, plan, steps)
        out = _outputs(runner, data.x_test)
        checkpoint = _checkpoint_exact(runner, name, model, data.x_test)
    with np.errstate(invalid="ignore"):
        ldiff = np.abs(traj.losses - ref.losses)
    distance = [weight_distance(traj.snapshots[s], ref.snapshots[s], float_names) for s in steps]
    finite_ref = bool(np.all(np.isfinite(ref.losses)))
    finite = bool(np.all(np.isfinite(traj.losses)))
    row = RuntimeRow(
        name, Verdict.CONSISTENT.value, "", steps=plan.steps, emulated=name in EMULATED,
        max_abs_loss_diff=float(np.max(ldiff)) if finite and finite_ref else math.nan,
        max_abs_weight_diff=_max_or_nan(distance),
        max_abs_output_diff=metrics.max_abs(out, ref_out),
        checkpoint_exact=checkpoint,
        final_loss=float(traj.losses[-1]),
        steps_per_second=traj.steps_per_second,
        loss=tuple(float(v) for v in traj.losses),
    )
    if finite_ref and not finite:
        return dataclasses.replace(row, verdict=Verdict.INCONSISTENT.value,
                                   reason="its loss became NaN or Inf where TensorFlow's did not"), traj
    if not checkpoint:
        return dataclasses.replace(row, verdict=Verdict.INCONSISTENT.value,
                                   reason="save twice / restore into a fresh model is not bit-exact"), traj
    if floor is None:
        ok = all(tol.allows(d, s) for d, s in zip(ldiff, ref.losses, strict=True))
        scale = max((weight_scale(ref.snapshots[s], float_names) for s in steps), default=0.0)
        ok = ok and all(d == d and tol.allows(d, scale) for d in distance)
        verdict = Verdict.CONSISTENT if ok else Verdict.INCONSISTENT
        return dataclasses.replace(row, verdict=verdict.value, reason="fixed tolerances"), traj
    weight_floor = [float(floor["weight_floor"][str(s)]) for s in steps]
    scales = [weight_scale(ref.snapshots[s], float_names) for s in steps]
    div = assess_divergence(steps, distance, weight_floor, scales, ldiff, np.asarray(floor["loss_floor"]), ref.losses)
    ratio = max(div.loss_diff_max_ratio, div.weight_max_ratio)
    row = dataclasses.replace(row, loss_floor_ratio=div.loss_diff_max_ratio, weight_floor_ratio=div.weight_max_ratio,
                              floor_ratio=ratio)
    if div.within_floor:
        return dataclasses.replace(row, reason="within the float32 noise floor"), traj
    if div.ratio_growth() > GROWTH_INCONSISTENT:
        return dataclasses.replace(row, verdict=Verdict.INCONSISTENT.value, reason=(
            f"leaves the noise floor at step {div.first_step_beyond_floor} and its ratio to the floor keeps "
            f"growing ({div.ratio_growth():.0f}-fold)")), traj
    return dataclasses.replace(row, verdict=Verdict.DRIFT.value, reason=(
        f"leaves the noise floor at step {div.first_step_beyond_floor} (up to {ratio:.2g}x)")), traj


def _outputs(runner: Runner, x: np.ndarray) -> np.ndarray:
    """Every ``infer`` output side by side, flattened per sample (float64)."""
    out = runner.infer(x)
    return np.concatenate([np.asarray(out[k], np.float64).reshape(len(x), -1) for k in sorted(out)], axis=1)


def _checkpoint_exact(runner: Runner, name: str, model: bytes, x: np.ndarray) -> bool:
    """Saves twice (equal), restores into a fresh runner of the same runtime: weights and outputs bit for bit."""
    first, second = runner.get_weights(), runner.get_weights()
    with _open(name, model) as fresh:
        fresh.set_weights(first)
        back = fresh.get_weights()
        same_out = _equal(_outputs(fresh, x), _outputs(runner, x))
    return same_out and all(_equal(first[k], second[k]) and _equal(first[k], back[k]) for k in first)


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")


def _identical(a: Trajectory, b: Trajectory) -> bool:
    return _equal(a.losses, b.losses) and a.snapshots.keys() == b.snapshots.keys() and all(
        _equal(a.snapshots[s][k], b.snapshots[s][k]) for s in a.snapshots for k in a.snapshots[s])


def _max_or_nan(values: Sequence[float]) -> float:
    if not values:
        return 0.0
    return math.nan if any(v != v for v in values) else max(values)
