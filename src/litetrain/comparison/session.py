"""Orchestrates a comparison: initial weights, twin training, float64 truth, noise floor, health, verdict."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from litetrain._env import environment
from litetrain.comparison import metrics
from litetrain.comparison.divergence import (
    NOT_COMPARABLE,
    Divergence,
    assess_divergence,
    dense_steps,
    weight_distance,
    weight_scale,
)
from litetrain.comparison.health import Health, assess_health, loss_argument_check
from litetrain.comparison.locate import FORWARD_PROBE_SAMPLES, ForwardLocation, Location, locate
from litetrain.comparison.noise import REFERENCE_SIDE, Perturbation
from litetrain.comparison.result import (
    CheckItem,
    CheckpointCheck,
    ComparisonResult,
    InferenceComparison,
    TrainComparison,
)
from litetrain.comparison.twin import (
    Trajectory,
    compare_weights,
    loss_diffs,
    record_steps,
    summarize_weight_diffs,
    train_trajectory,
)
from litetrain.comparison.verdict import (
    DEFAULT_FAIL_ON,
    GROWTH_INCONSISTENT,
    INIT_INCONSISTENT,
    UPDATE_INCONSISTENT,
    Verdict,
)
from litetrain.config import Tolerances
from litetrain.data.batching import BatchPlan
from litetrain.data.fit import FittedData
from litetrain.errors import ConversionError, LitetrainError, SignatureError
from litetrain.runtime.base import Runner, record


@dataclasses.dataclass
class Twins:
    """The runners to compare and what is known about their variables.

    Attributes:
        reference: The TensorFlow twin.
        candidate: The TFLite twin.
        fresh_candidate: Makes a new interpreter of the same model (kwargs: ``kernels``, ``num_threads``).
        float64: The float64 reference twin, if the Keras model is available.
        weight_names: Names of model weights (role "weight"); the other exchanged variables are optimizer state.
        layer_of: Variable name -> Keras layer name, for messages.
        perturbations: Noise-floor perturbations (empty: no noise floor; fixed tolerances decide).
        forward_locator: Finds the first layer whose ``infer`` output differs (needs the Keras model).
    """

    reference: Runner
    candidate: Runner
    fresh_candidate: Callable[..., Runner]
    float64: Runner | None = None
    weight_names: set[str] = dataclasses.field(default_factory=set)
    layer_of: dict[str, str] = dataclasses.field(default_factory=dict)
    perturbations: list[Perturbation] = dataclasses.field(default_factory=list)
    forward_locator: Callable[[np.ndarray], ForwardLocation | None] | None = None


def outputs_of(runner: Runner, x: np.ndarray, data: FittedData) -> np.ndarray:
    """What a comparison compares of ``infer`` on ``x``: the primary output, or for a model with several outputs
    (``data.accuracy_output`` set) every output, as a record array with one field per output name."""
    out = runner.infer(x)
    return out[runner.primary_output] if data.accuracy_output is None else record(out)


def values(outputs: np.ndarray) -> np.ndarray:
    """The numbers of :func:`outputs_of`: the output itself, or every output side by side (flattened per sample)."""
    if outputs.dtype.names is None:
        return outputs
    return np.concatenate([np.asarray(outputs[n], np.float64).reshape(len(outputs), -1) for n in outputs.dtype.names],
                          axis=1)


def accuracy_values(outputs: np.ndarray, data: FittedData) -> np.ndarray:
    """The output whose accuracy is reported (the first classification output of several)."""
    return outputs if outputs.dtype.names is None else outputs[data.accuracy_output]


def compare_inference(
    reference: Runner, candidate: Runner, data: FittedData, tol: Tolerances, from_logits: bool | None,
    ref_out: np.ndarray | None = None, cand_out: np.ndarray | None = None,
) -> InferenceComparison:
    """Runs both runners' ``infer`` on the test data (unless outputs are given) and measures the difference over
    every output; argmax agreement and accuracy are those of :func:`accuracy_values`."""
    ref_rec = outputs_of(reference, data.x_test, data) if ref_out is None else ref_out
    cand_rec = outputs_of(candidate, data.x_test, data) if cand_out is None else cand_out
    ref, cand = values(ref_rec), values(cand_rec)
    ref_acc, cand_acc = accuracy_values(ref_rec, data), accuracy_values(cand_rec, data)
    max_abs = metrics.max_abs(cand, ref)
    return InferenceComparison(
        samples=len(data.x_test),
        max_abs_error=max_abs,
        max_rel_error=metrics.max_rel(cand, ref),
        mean_abs_error=metrics.mean_abs(cand, ref),
        argmax_agreement=metrics.argmax_agreement(cand_acc, ref_acc),
        accuracy={reference.name: data.accuracy(ref_acc, from_logits),
                  candidate.name: data.accuracy(cand_acc, from_logits)},
        within_tolerance=tol.allows(max_abs, metrics.scale(ref)),
        error_histogram=error_histogram(cand, ref),
    )


def error_histogram(candidate: np.ndarray, reference: np.ndarray, per_decade: int = 4) -> dict[str, Any]:
    """Histogram of ``|candidate - reference|`` over every element, in log-spaced bins (``per_decade`` a decade).

    Float32 differences span many decades and are often exactly zero, which a log axis cannot show, so exact
    matches are counted apart (``exact``) and non-finite differences too (``non_finite``).
    """
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(np.asarray(candidate, np.float64) - np.asarray(reference, np.float64)).ravel()
    finite = diff[np.isfinite(diff)]
    positive = finite[finite > 0]
    out: dict[str, Any] = {"elements": int(diff.size), "exact": int(np.sum(finite == 0)),
                           "non_finite": int(diff.size - finite.size), "edges": [], "counts": []}
    if positive.size:
        lo = math.floor(math.log10(float(positive.min())) * per_decade) / per_decade
        hi = math.ceil(math.log10(float(positive.max())) * per_decade) / per_decade
        hi = max(hi, lo + 1.0 / per_decade)
        edges = 10.0 ** np.linspace(lo, hi, int(round((hi - lo) * per_decade)) + 1)
        counts, _ = np.histogram(np.clip(positive, edges[0], edges[-1]), bins=edges)
        out["edges"] = [float(e) for e in edges]
        out["counts"] = [int(c) for c in counts]
    return out


def checkpoint_roundtrip(trained: Runner, fresh_factory: Callable[[], Runner], x: np.ndarray) -> CheckpointCheck:
    """Saves ``trained``'s weights, restores them into a fresh runner and checks every output and weight bit for
    bit (NaN reproduced where it was counts as exact; NaN/Inf weights are named apart)."""
    weights = trained.get_weights()
    fresh = fresh_factory()
    fresh.set_weights(weights)
    return CheckpointCheck.from_round_trip(weights, fresh.get_weights(), trained.infer(x), fresh.infer(x))


def run_comparison(
    *,
    kind: str,
    twins: Twins,
    data: FittedData,
    plan: BatchPlan,
    tol: Tolerances,
    from_logits: bool | None,
    model_info: dict[str, Any],
    data_info: dict[str, Any],
    settings: dict[str, Any],
    require_exact_initial_weights: bool,
    check_loss_arguments: bool = False,
    fail_on: frozenset[Verdict] = DEFAULT_FAIL_ON,
    timings: dict[str, float] | None = None,
    notes: tuple[str, ...] = (),
) -> ComparisonResult:
    """Compares ``twins.candidate`` (TFLite) with ``twins.reference`` (TensorFlow) on ``plan``'s batches.

    The stages run in this order (each a method of :class:`_Comparison`): make the initial weights identical,
    compare inference before training, train both twins on the same batches, compare losses, weights, inference
    after training and a checkpoint round trip, judge each trajectory's health, train the float64 truth, measure the
    noise floor, then decide the verdict and explain it. ``notes`` (sentences about the setup, e.g. what
    ``--layers inference`` leaves out of ``model.fit``) follow the explanation.
    """
    run = _Comparison(twins, data, plan, tol, from_logits, dict(timings or {}))
    run.check_initial_weights(require_exact_initial_weights)
    run.check_inference_before(check_loss_arguments)
    run.train_twins()
    run.check_losses()
    run.check_weights()
    run.check_inference_after()
    run.assess_health()
    run.train_float64()
    run.measure_noise_floor()
    run.decide()
    return run.result(kind, model_info, data_info, settings, fail_on, notes)


class _Comparison:
    """The state of one comparison as its stages fill it in (see :func:`run_comparison` for their order)."""

    def __init__(self, twins: Twins, data: FittedData, plan: BatchPlan, tol: Tolerances, from_logits: bool | None,
                 timings: dict[str, float]) -> None:
        self.twins, self.data, self.plan, self.tol, self.from_logits = twins, data, plan, tol, from_logits
        self.reference, self.candidate = twins.reference, twins.candidate
        self.timings = timings
        self.checks: list[CheckItem] = []
        self.started = time.perf_counter()
        self.has_weights = bool(self.reference.weight_infos) and bool(self.candidate.weight_infos)
        self.float_names = sorted(n for n, i in self.reference.weight_infos.items()
                                  if np.issubdtype(i.dtype, np.floating))
        self.weight_names = sorted(twins.weight_names & set(self.float_names)) or self.float_names
        self.initial: dict[str, Any] = {}
        self.init_w: dict[str, np.ndarray] = {}
        self.check_loss_arguments = False
        self.outputs_at_init: dict[str, np.ndarray] = {}
        self.forward: ForwardLocation | None = None
        self.checkpoint: CheckpointCheck | None = None
        self.float64_info: dict[str, Any] | None = None
        self.floor_info: dict[str, Any] | None = None
        self.divergence: Divergence | None = None
        self.location: Location | None = None

    def check_initial_weights(self, exact: bool) -> None:
        """Compares the weights as converted, then gives both twins the reference's."""
        if not self.has_weights:
            self.initial = {"compared": False, "detail": "one of the models has no save/restore signatures"}
            return
        self.initial = _initial_weights(self.reference, self.candidate, self.tol, exact)
        self.checks.append(CheckItem("initial_weights", self.initial["within_tolerance"], self.initial["detail"]))
        self.init_w = self.reference.get_weights()

    def check_inference_before(self, check_loss_arguments: bool) -> None:
        """Inference from identical weights; a forward pass that already differs is located layer by layer."""
        reference, candidate, data, tol = self.reference, self.candidate, self.data, self.tol
        self.first_rows = self.plan.indices[0]
        self.check_loss_arguments = check_loss_arguments and data.y.dtype.names is None  # one output's loss formulas
        if self.check_loss_arguments:
            self.outputs_at_init = {r.name: r.infer(data.x[self.first_rows]) for r in (reference, candidate)}
        ref_before = outputs_of(reference, data.x_test, data)
        self.before = compare_inference(reference, candidate, data, tol, self.from_logits, ref_out=ref_before)
        self.checks.append(_inference_item("inference_before", "before training", self.before))
        self.forward_differs = not self.before.max_abs_error <= 10 * (tol.a + tol.r * metrics.scale(values(ref_before)))
        if self.forward_differs and self.twins.forward_locator is not None:
            self.forward = self.twins.forward_locator(data.x_test[:FORWARD_PROBE_SAMPLES])

    def train_twins(self) -> None:
        """Trains both twins on the same batches, recording losses (and weights at the recorded steps)."""
        data, plan = self.data, self.plan
        self.analyse = bool(self.twins.perturbations) and self.has_weights
        dense = self.analyse or self.twins.float64 is not None
        self.steps = dense_steps(plan.steps) if dense else record_steps(plan.steps)
        self.ref_traj = train_trajectory(self.reference, data.x, data.y, plan, self.steps,
                                         record_weights=self.has_weights)
        self.cand_traj = train_trajectory(self.candidate, data.x, data.y, plan, self.steps,
                                          record_weights=self.has_weights)
        self.ref_out = outputs_of(self.reference, data.x_test, data)
        self.cand_out = outputs_of(self.candidate, data.x_test, data)
        self.timings["twin_training_s"] = self.ref_traj.seconds + self.cand_traj.seconds

    def check_losses(self) -> None:
        """Per-step loss differences against the tolerances."""
        ref_traj, cand_traj = self.ref_traj, self.cand_traj
        self.diffs = loss_diffs(ref_traj, cand_traj)
        loss_ok = np.array([self.tol.allows(d, s) for d, s in zip(self.diffs, ref_traj.losses, strict=True)])
        self.first_bad = int(np.argmin(loss_ok)) + 1 if not loss_ok.all() else None
        self.finite = bool(np.all(np.isfinite(ref_traj.losses)) and np.all(np.isfinite(cand_traj.losses)))
        self.max_loss = float(np.nanmax(self.diffs)) if self.finite else float("nan")
        self.rel = self.diffs / np.maximum(np.abs(ref_traj.losses), np.finfo(np.float64).tiny)
        self.checks.append(CheckItem(
            "loss", bool(loss_ok.all()),
            f"largest per-step loss difference {self.max_loss:.3g} over {self.plan.steps} steps"
            + ("" if self.first_bad is None else f"; first beyond tolerance at step {self.first_bad}")
            + ("" if self.finite else "; a loss was NaN or Inf"),
        ))

    def check_weights(self) -> None:
        """Weight differences at the recorded steps against the tolerances."""
        table_steps = record_steps(self.plan.steps)
        self.weight_diffs = []
        for step in table_steps if self.has_weights else ():
            self.weight_diffs += compare_weights(step, self.cand_traj.snapshots[step],
                                                 self.ref_traj.snapshots[step], self.tol)
        self.max_w = _max_or_nan([d.max_abs for d in self.weight_diffs])
        self.max_wr = _max_or_nan([d.max_rel for d in self.weight_diffs])
        if self.has_weights:
            bad = [d for d in self.weight_diffs if not d.within_tolerance]
            self.checks.append(CheckItem(
                "weights", not bad,
                f"largest weight difference {self.max_w:.3g} at steps {list(table_steps)}"
                + (f"; beyond tolerance: {bad[0].name} at step {bad[0].step} ({bad[0].max_abs:.3g})" if bad else ""),
            ))

    def check_inference_after(self) -> None:
        """Inference after training, then a save/restore round trip of the trained candidate."""
        self.after = compare_inference(self.reference, self.candidate, self.data, self.tol, self.from_logits,
                                       self.ref_out, self.cand_out)
        self.checks.append(_inference_item("inference_after", "after training", self.after))
        if self.candidate.weight_infos:
            self.checkpoint = checkpoint_roundtrip(self.candidate, self.twins.fresh_candidate, self.data.x_test)
            self.checks.append(CheckItem("checkpoint", self.checkpoint.roundtrip_exact, self.checkpoint.describe()))

    def assess_health(self) -> None:
        """Health of each trajectory, independent of agreement."""
        self.health: list[Health] = []
        for runner, traj in ((self.reference, self.ref_traj), (self.candidate, self.cand_traj)):
            accuracy = self.after.accuracy.get(runner.name)
            args = None
            if self.check_loss_arguments:
                labels = self.data.y[self.first_rows]
                args = loss_argument_check(float(traj.losses[0]), self.outputs_at_init[runner.name], labels)
            final = traj.snapshots.get(self.plan.steps) if self.has_weights else None
            self.health.append(assess_health(runner.name, traj.losses, self.init_w, final, self.weight_names, args,
                                             accuracy, self.data.num_classes))

    def train_float64(self) -> None:
        """The float64 truth: the same training in float64, and each twin's distance to it."""
        if self.twins.float64 is None or not self.has_weights:
            return
        t1 = time.perf_counter()
        f64 = self.twins.float64
        f64.set_weights(self.init_w)
        f64_traj = train_trajectory(f64, self.data.x, self.data.y, self.plan, self.steps)
        f64_out = values(outputs_of(f64, self.data.x_test, self.data))
        self.float64_info = _float64_summary(
            f64_traj, {self.reference.name: (self.ref_traj, values(self.ref_out)),
                       self.candidate.name: (self.cand_traj, values(self.cand_out))}, f64_out, self.float_names)
        self.timings["float64_s"] = time.perf_counter() - t1

    def measure_noise_floor(self) -> None:
        """The float32 noise floor from the perturbed runs, and how far the twins diverge beyond it."""
        if not self.analyse:
            return
        t1 = time.perf_counter()
        ref_traj, cand_traj, steps, names = self.ref_traj, self.cand_traj, self.steps, self.float_names
        distance = [weight_distance(cand_traj.snapshots[s], ref_traj.snapshots[s], names) for s in steps]
        scales = [weight_scale(ref_traj.snapshots[s], names) for s in steps]

        def divergence(loss_floor: np.ndarray, weight_floor: list[float]) -> Divergence:
            return assess_divergence(steps, distance, weight_floor, scales, self.diffs, loss_floor, ref_traj.losses)

        self.floor_info, loss_floor, weight_floor, out_floor = _noise_floor(
            self.twins.perturbations, self.init_w, self.data, self.plan, steps, ref_traj, cand_traj, self.ref_out,
            self.cand_out, names, settled=lambda lf, wf, of: self._settled(divergence(lf, wf), of, wf, scales))
        self.divergence = divergence(loss_floor, weight_floor)
        self.floor_info["output_floor_after"] = out_floor
        self.timings["noise_floor_s"] = time.perf_counter() - t1

    def _settled(self, divergence: Divergence, out_floor: float, weight_floor: list[float],
                 scales: list[float]) -> bool:
        """Whether more perturbations could still change the verdict (see :data:`SETTLE_MARGIN`).

        Each perturbation can only raise the floors (they are maxima over the runs), so twins within the loss,
        weight and output floors stay within them, and a floor that already makes single runs incomparable stays
        so. What a higher floor could still change is CONSISTENT into CONSISTENT_SENSITIVE: that is ruled out
        while the weight floor is SETTLE_MARGIN times below the point where runs stop being comparable.
        """
        if not divergence.within_floor or _outputs_beyond_floor(self.after, out_floor):
            return False
        if divergence.comparable_until is not None:
            return True
        return all(f * SETTLE_MARGIN < NOT_COMPARABLE * sc for f, sc in zip(weight_floor, scales, strict=True))

    def decide(self) -> None:
        """The verdict and its cause, locating the first differing step when the twins leave the floor."""
        divergence = self.divergence
        if divergence is not None and not divergence.within_floor and all(h.healthy for h in self.health):
            start = max((s for s in self.steps if s < (divergence.first_step_beyond_floor or 1)), default=0)
            start_w = self.ref_traj.snapshots[start] if start else self.init_w
            self.location = locate(self.reference, self.candidate, self.data.x, self.data.y, self.plan, start,
                                   start_w, self.float_names, self.twins.layer_of)
        self.verdict, self.cause = _decide(
            self.checks, self.initial, self.health, divergence, self.location, self.after,
            out_floor_of(self.floor_info), self.checkpoint, self.has_weights,
            self.before if self.forward_differs else None, self.forward)
        self.timings["compare_s"] = time.perf_counter() - self.started

    def train_comparison(self) -> TrainComparison:
        """The training half of the result: losses, their differences and the weight differences."""
        plan, reference, candidate = self.plan, self.reference, self.candidate
        return TrainComparison(
            steps=plan.steps,
            batch_size=plan.batch_size,
            epochs=round(plan.epochs, 3),
            seed=plan.seed,
            loss={reference.name: self.ref_traj.losses.tolist(), candidate.name: self.cand_traj.losses.tolist()},
            max_abs_loss_diff=self.max_loss,
            max_rel_loss_diff=float(np.nanmax(self.rel)) if self.finite else float("nan"),
            first_step_beyond_tolerance=self.first_bad,
            max_abs_weight_diff=self.max_w if self.has_weights else None,
            max_rel_weight_diff=self.max_wr if self.has_weights else None,
            weights=summarize_weight_diffs(self.weight_diffs),
            steps_per_second={reference.name: self.ref_traj.steps_per_second,
                              candidate.name: self.cand_traj.steps_per_second},
        )

    def result(self, kind: str, model_info: dict[str, Any], data_info: dict[str, Any], settings: dict[str, Any],
               fail_on: frozenset[Verdict], notes: tuple[str, ...] = ()) -> ComparisonResult:
        """The comparison result, with its explanation."""
        from litetrain.comparison.explain import explain, health_notes

        train = self.train_comparison()
        settings = {**settings, "tolerances": {"atol": self.tol.a, "rtol": self.tol.r},
                    "noise_floor": self.analyse, "float64_reference": self.float64_info is not None}
        explanation = explain(self.verdict, self.cause, train, self.after, self.divergence, self.floor_info,
                              self.float64_info, self.health, self.location, self.initial, self.tol,
                              self.reference.name, self.candidate.name) + health_notes(self.health)
        explanation += "".join(f" Note: {n}." for n in notes)
        return ComparisonResult(
            kind=kind,
            verdict=self.verdict,
            passed=self.verdict not in fail_on,
            explanation=explanation,
            checks=tuple(self.checks),
            model=model_info,
            data=data_info,
            settings=settings,
            initial_weights=self.initial,
            train=train,
            inference={"before": self.before, "after": self.after},
            checkpoint=self.checkpoint,
            environment=environment(),
            timings=self.timings,
            cause=self.cause,
            fail_on=tuple(sorted(v.value for v in fail_on)),
            noise_floor=self.floor_info,
            float64=self.float64_info,
            divergence=self.divergence.to_json() if self.divergence else None,
            health=tuple(h.to_json() for h in self.health),
            location=self.location.to_json() if self.location else (
                {"forward": self.forward.to_json()} if self.forward else None),
        )


SETTLE_MARGIN = 100.0
"""The noise floor stops adding perturbations once every side (TensorFlow, TFLite) has run one, the twins are within
the floors, and the weight floor is this many times below :data:`NOT_COMPARABLE` of the weights' scale: the runs
left (the costliest come last) would have to move the weights 100 times further than every run before them to change
the verdict. They are listed under ``skipped`` with the reason."""


def _outputs_beyond_floor(after: InferenceComparison, out_floor: float) -> bool:
    return after.max_abs_error > 10 * max(out_floor, 1e-6 * max(1.0, after.max_abs_error))


def out_floor_of(floor_info: dict[str, Any] | None) -> float | None:
    return None if floor_info is None else floor_info.get("output_floor_after")


def _max_or_nan(values: list[float]) -> float:
    if not values:
        return 0.0
    return float("nan") if any(v != v for v in values) else max(values)


def _noise_floor(
    perturbations: list[Perturbation],
    init_w: Mapping[str, np.ndarray],
    data: FittedData,
    plan: BatchPlan,
    steps: tuple[int, ...],
    ref_traj: Trajectory,
    cand_traj: Trajectory,
    ref_out: np.ndarray,
    cand_out: np.ndarray,
    float_names: list[str],
    settled: Callable[[np.ndarray, list[float], float], bool] = lambda *_: False,
) -> tuple[dict[str, Any], np.ndarray, list[float], float]:
    """Runs the perturbations in order until ``settled(loss_floor, weight_floor, out_floor)`` once every side has
    run; returns per-run figures and the per-step loss, weight and output floors."""
    loss_floor = np.zeros(plan.steps)
    weight_floor = [0.0] * len(steps)
    out_floor = 0.0
    runs: list[dict[str, Any]] = []
    skipped = []
    sides = {p.side for p in perturbations}
    for i, p in enumerate(perturbations):
        if runs and {r["side"] for r in runs} == sides and settled(loss_floor, weight_floor, out_floor):
            skipped += [{"name": q.name, "reason": f"not needed: within the floor of the {len(runs)} runs before, "
                         "which it could only raise"} for q in perturbations[i:]]
            break
        try:
            runner = p.runner()
        except LitetrainError as exc:  # e.g. the reference kernels lack an op (ELU): judge with the others
            skipped.append({"name": p.name, "reason": exc.message})
            continue
        runner.set_weights(p.initial(init_w) if p.initial else init_w)
        traj = train_trajectory(runner, data.x, data.y, plan, steps)
        out = values(outputs_of(runner, data.x_test, data))
        base_traj, base_out = (ref_traj, ref_out) if p.side == REFERENCE_SIDE else (cand_traj, cand_out)
        base_out = values(base_out)
        with np.errstate(invalid="ignore"):
            ldiff = np.abs(traj.losses - base_traj.losses)
        wdist = [weight_distance(traj.snapshots[s], base_traj.snapshots[s], float_names) for s in steps]
        odiff = metrics.max_abs(out, base_out)
        loss_floor = np.fmax(loss_floor, ldiff)
        weight_floor = [max(a, b) if b == b else a for a, b in zip(weight_floor, wdist, strict=True)]
        out_floor = max(out_floor, odiff) if odiff == odiff else out_floor
        runs.append({
            "name": p.name, "side": p.side, "description": p.description,
            "max_loss_diff": float(np.nanmax(ldiff)) if ldiff.size else 0.0,
            "weight_distance_last": wdist[-1], "output_diff_after": odiff,
            "seconds": round(traj.seconds, 4),
        })
    info = {"perturbations": runs, "skipped": skipped, "loss_floor_max": float(loss_floor.max()) if loss_floor.size else 0.0,
            "weight_floor": dict(zip([str(s) for s in steps], weight_floor, strict=True)),
            "loss_floor": [float(v) for v in loss_floor]}
    return info, loss_floor, weight_floor, out_floor


def _float64_summary(
    f64: Trajectory, others: dict[str, tuple[Trajectory, np.ndarray]], f64_out: np.ndarray, names: list[str]
) -> dict[str, Any]:
    last = len(f64.losses)
    out: dict[str, Any] = {"loss": f64.losses.tolist(), "distance": {}}
    for name, (traj, outputs) in others.items():
        ldiff = np.abs(traj.losses - f64.losses)
        out["distance"][name] = {
            "max_loss_diff": float(np.nanmax(ldiff)) if np.all(np.isfinite(ldiff)) else float("nan"),
            "weight_distance_last": weight_distance(traj.snapshots[last], f64.snapshots[last], names),
            "output_diff_after": metrics.max_abs(outputs, f64_out),
        }
    return out


def _decide(
    checks: list[CheckItem],
    initial: dict[str, Any],
    health: list[Health],
    divergence: Divergence | None,
    location: Location | None,
    after: InferenceComparison,
    out_floor: float | None,
    checkpoint: CheckpointCheck | None,
    has_weights: bool,
    forward_mismatch: InferenceComparison | None = None,
    forward: ForwardLocation | None = None,
) -> tuple[Verdict, str]:
    """Applies the decision order documented in :mod:`litetrain.comparison.verdict`."""
    unhealthy = [h for h in health if not h.healthy]
    if len(unhealthy) == len(health):
        return Verdict.UNHEALTHY, "; ".join(f"{h.runner}: {', '.join(h.details)}" for h in unhealthy)
    if unhealthy:
        h = unhealthy[0]
        return Verdict.INCONSISTENT, f"only {h.runner}'s training is broken: {', '.join(h.details)}"
    init_rel = float(initial.get("max_rel_diff", 0.0)) if has_weights else 0.0
    if init_rel > INIT_INCONSISTENT:
        return Verdict.INCONSISTENT, initial["detail"]
    if forward_mismatch is not None:
        where = f"; {forward.describe()}" if forward is not None and forward.layer else ""
        return Verdict.INCONSISTENT, (
            f"from identical weights, before any training, inference differs by up to "
            f"{forward_mismatch.max_abs_error:.3g}"
            + (f" (argmax agreement {forward_mismatch.argmax_agreement:.1%})" if forward_mismatch.classification
               else "") + where)
    if checkpoint is not None and not checkpoint.roundtrip_exact:
        return Verdict.INCONSISTENT, next(c.detail for c in checks if c.name == "checkpoint")
    if divergence is None:  # no noise floor: fixed tolerances decide
        failed = [c for c in checks if not c.passed]
        if failed:
            return Verdict.INCONSISTENT, "; ".join(f"{c.name}: {c.detail}" for c in failed)
        return Verdict.CONSISTENT, "every difference is within the fixed tolerances"
    if not divergence.within_floor:
        growth, floor_growth = divergence.growth.rate_per_step, divergence.floor_growth.rate_per_step
        ratio_growth = divergence.ratio_growth()
        if location is not None and location.update_rel_error > UPDATE_INCONSISTENT:
            return Verdict.INCONSISTENT, location.describe()
        if ratio_growth > GROWTH_INCONSISTENT:
            return Verdict.INCONSISTENT, (
                f"the distance between the twins grows faster than the noise floor (its ratio to the floor rose "
                f"{ratio_growth:.0f}-fold; growth rate {growth or 0:.3g}/step vs {floor_growth or 0:.3g}/step)")
        return Verdict.DRIFT, (
            f"the twins leave the noise floor at step {divergence.first_step_beyond_floor} (up to "
            f"{divergence.weight_max_ratio:.0f}x the floor) but single steps agree to "
            f"{location.update_rel_error if location else 0:.2g} relative: same dynamics, lower precision")
    if out_floor is not None and _outputs_beyond_floor(after, out_floor):
        return Verdict.DRIFT, (f"training agrees within the floor, but outputs after training differ by "
                               f"{after.max_abs_error:.3g} against a floor of {out_floor:.3g}")
    if has_weights and not initial.get("identical", True):
        return Verdict.DRIFT, initial["detail"] + "; training from identical weights agrees within the noise floor"
    if divergence.comparable_until is not None:
        return Verdict.CONSISTENT_SENSITIVE, (
            f"within the noise floor, but training amplifies float32 rounding: after step "
            f"{divergence.comparable_until} single trajectories of any two float32 runs are no longer comparable")
    return Verdict.CONSISTENT, "every difference is within the float32 noise floor"


def _initial_weights(reference: Runner, candidate: Runner, tol: Tolerances, exact: bool) -> dict[str, Any]:
    """Compares the candidate's weights as converted with the reference's, then makes them identical."""
    ref_w = reference.get_weights()
    cand_w = candidate.get_weights()
    names_ref, names_cand = set(ref_w), set(cand_w)
    if names_ref != names_cand:
        raise SignatureError(
            "The two models exchange different variables: only in the reference "
            f"{sorted(names_ref - names_cand)[:5]}, only in the candidate {sorted(names_cand - names_ref)[:5]}.",
            hint="save/restore outputs and inputs are matched by name; both models must use the same names.",
        )
    diffs = compare_weights(0, cand_w, ref_w, tol)
    max_abs = max((d.max_abs for d in diffs), default=0.0)
    max_rel = max((d.max_rel for d in diffs), default=0.0)
    identical = all(np.array_equal(ref_w[k], cand_w[k]) for k in ref_w)
    within = identical if exact else all(d.within_tolerance for d in diffs)
    # Whatever the candidate held, both twins now start from the reference's exact weights.
    candidate.set_weights(ref_w)
    back = candidate.get_weights()
    if not all(np.array_equal(ref_w[k], back[k]) for k in ref_w):
        raise ConversionError(
            "Restoring the reference's weights into the TFLite model did not give back the same values.",
            hint="The restore signature does not assign every variable it takes; check the model's restore.",
        )
    worst = max(diffs, key=lambda d: d.max_abs if d.max_abs == d.max_abs else float("inf"), default=None)
    detail = (
        "initial weights identical (bit for bit) in both models"
        if identical else
        f"initial weights differ by up to {max_abs:.3g} ({max_rel:.2g} of the variable's scale, largest in "
        f"{worst.name if worst else '?'}); both twins were then set to the reference's weights"
    )
    return {
        "compared": True,
        "identical": identical,
        "max_abs_diff": max_abs,
        "max_rel_diff": max_rel,
        "variables": len(ref_w),
        "within_tolerance": within,
        "set_identical": True,
        "detail": detail,
    }


def _inference_item(name: str, when: str, inf: InferenceComparison) -> CheckItem:
    return CheckItem(
        name, inf.within_tolerance,
        f"inference {when}: largest output difference {inf.max_abs_error:.3g}"
        + (f", argmax agreement {inf.argmax_agreement:.1%}" if inf.classification else "")
        + f" on {inf.samples} held-out samples",
    )
