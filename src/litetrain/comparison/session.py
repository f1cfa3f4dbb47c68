"""Orchestrates a comparison: initial weights, inference before, twin training, inference after, checkpoint."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from litetrain._env import environment
from litetrain.comparison import metrics
from litetrain.comparison.result import (
    CheckItem,
    CheckpointCheck,
    ComparisonResult,
    InferenceComparison,
    TrainComparison,
    Verdict,
)
from litetrain.comparison.twin import (
    compare_weights,
    loss_diffs,
    record_steps,
    summarize_weight_diffs,
    train_trajectory,
)
from litetrain.config import Tolerances
from litetrain.data.batching import BatchPlan
from litetrain.data.fit import FittedData
from litetrain.errors import ConversionError
from litetrain.runtime.base import Runner


def compare_inference(
    reference: Runner,
    candidate: Runner,
    data: FittedData,
    tol: Tolerances,
    from_logits: bool | None,
) -> InferenceComparison:
    """Runs both runners' ``infer`` on the test data and measures the difference."""
    ref = reference.infer(data.x_test)[reference.primary_output]
    cand = candidate.infer(data.x_test)[candidate.primary_output]
    max_abs = metrics.max_abs(cand, ref)
    return InferenceComparison(
        samples=len(data.x_test),
        max_abs_error=max_abs,
        max_rel_error=metrics.max_rel(cand, ref),
        mean_abs_error=metrics.mean_abs(cand, ref),
        argmax_agreement=metrics.argmax_agreement(cand, ref),
        accuracy={reference.name: data.accuracy(ref, from_logits), candidate.name: data.accuracy(cand, from_logits)},
        within_tolerance=tol.allows(max_abs, metrics.scale(ref)),
    )


def checkpoint_roundtrip(trained: Runner, fresh_factory: Callable[[], Runner], x: np.ndarray) -> CheckpointCheck:
    """Saves ``trained``'s weights, restores them into a fresh runner and checks outputs and weights bit for bit."""
    weights = trained.get_weights()
    fresh = fresh_factory()
    fresh.set_weights(weights)
    back = fresh.get_weights()
    same_weights = all(np.array_equal(weights[k], back[k]) for k in weights)
    a = trained.infer(x)[trained.primary_output]
    b = fresh.infer(x)[fresh.primary_output]
    return CheckpointCheck(
        roundtrip_exact=bool(same_weights and np.array_equal(a, b)),
        variables=len(weights),
        size_bytes=int(sum(v.nbytes for v in weights.values())),
        max_abs_output_diff=metrics.max_abs(b, a),
    )


def run_comparison(
    *,
    kind: str,
    reference: Runner,
    candidate: Runner,
    fresh_candidate: Callable[[], Runner],
    data: FittedData,
    plan: BatchPlan,
    tol: Tolerances,
    from_logits: bool | None,
    model_info: dict[str, Any],
    data_info: dict[str, Any],
    settings: dict[str, Any],
    require_exact_initial_weights: bool,
    timings: dict[str, float] | None = None,
) -> ComparisonResult:
    """Compares ``candidate`` (TFLite) with ``reference`` (TensorFlow), training both on ``plan``'s batches."""
    timings = dict(timings or {})
    checks: list[CheckItem] = []
    t0 = time.perf_counter()
    has_weights = bool(reference.weight_infos) and bool(candidate.weight_infos)
    initial = _initial_weights(reference, candidate, tol, require_exact_initial_weights) if has_weights else {
        "compared": False, "detail": "one of the models has no save/restore signatures"}
    if has_weights:
        checks.append(CheckItem("initial_weights", initial["within_tolerance"], initial["detail"]))
    before = compare_inference(reference, candidate, data, tol, from_logits)
    checks.append(_inference_item("inference_before", "before training", before))

    steps = record_steps(plan.steps)
    ref_traj = train_trajectory(reference, data.x, data.y, plan, steps, record_weights=has_weights)
    cand_traj = train_trajectory(candidate, data.x, data.y, plan, steps, record_weights=has_weights)
    timings["twin_training_s"] = ref_traj.seconds + cand_traj.seconds
    diffs = loss_diffs(ref_traj, cand_traj)
    loss_ok = np.array([tol.allows(d, s) for d, s in zip(diffs, ref_traj.losses, strict=True)])
    first_bad = int(np.argmin(loss_ok)) + 1 if not loss_ok.all() else None
    finite = bool(np.all(np.isfinite(ref_traj.losses)) and np.all(np.isfinite(cand_traj.losses)))
    max_loss = float(np.nanmax(diffs)) if finite else float("nan")
    rel = diffs / np.maximum(np.abs(ref_traj.losses), np.finfo(np.float64).tiny)
    checks.append(CheckItem(
        "loss", bool(loss_ok.all()),
        f"largest per-step loss difference {max_loss:.3g} over {plan.steps} steps"
        + ("" if first_bad is None else f"; first beyond tolerance at step {first_bad}")
        + ("" if finite else "; a loss was NaN or Inf"),
    ))
    weight_diffs = []
    for step in steps if has_weights else ():
        weight_diffs += compare_weights(step, cand_traj.snapshots[step], ref_traj.snapshots[step], tol)
    float_diffs = [d for d in weight_diffs if d.max_abs == d.max_abs]
    max_w = max((d.max_abs for d in weight_diffs), default=None) if all(
        d.max_abs == d.max_abs for d in weight_diffs) else float("nan")
    max_wr = max((d.max_rel for d in float_diffs), default=None)
    if has_weights:
        bad = [d for d in weight_diffs if not d.within_tolerance]
        checks.append(CheckItem(
            "weights", not bad,
            f"largest weight difference {max_w:.3g} at steps {list(steps)}"
            + (f"; beyond tolerance: {bad[0].name} at step {bad[0].step} ({bad[0].max_abs:.3g})" if bad else ""),
        ))
    after = compare_inference(reference, candidate, data, tol, from_logits)
    checks.append(_inference_item("inference_after", "after training", after))
    checkpoint = None
    if candidate.weight_infos:
        checkpoint = checkpoint_roundtrip(candidate, fresh_candidate, data.x_test)
        checks.append(CheckItem(
            "checkpoint", checkpoint.roundtrip_exact,
            "save -> restore into a fresh interpreter reproduces outputs and weights bit for bit"
            if checkpoint.roundtrip_exact else
            f"restoring the saved weights into a fresh interpreter changed outputs by up to "
            f"{checkpoint.max_abs_output_diff:.3g}",
        ))
    timings["compare_s"] = time.perf_counter() - t0
    train = TrainComparison(
        steps=plan.steps,
        batch_size=plan.batch_size,
        epochs=round(plan.epochs, 3),
        seed=plan.seed,
        loss={reference.name: ref_traj.losses.tolist(), candidate.name: cand_traj.losses.tolist()},
        max_abs_loss_diff=max_loss,
        max_rel_loss_diff=float(np.nanmax(rel)) if finite else float("nan"),
        first_step_beyond_tolerance=first_bad,
        max_abs_weight_diff=max_w,
        max_rel_weight_diff=max_wr,
        weights=summarize_weight_diffs(weight_diffs),
        steps_per_second={reference.name: ref_traj.steps_per_second, candidate.name: cand_traj.steps_per_second},
    )
    passed = all(c.passed for c in checks)
    verdict = Verdict.CONSISTENT if passed else Verdict.INCONSISTENT
    settings = {**settings, "tolerances": {"atol": tol.a, "rtol": tol.r}}
    return ComparisonResult(
        kind=kind,
        verdict=verdict,
        passed=passed,
        explanation=_explain(verdict, checks, train, after, tol, reference.name, candidate.name),
        checks=tuple(checks),
        model=model_info,
        data=data_info,
        settings=settings,
        initial_weights=initial,
        train=train,
        inference={"before": before, "after": after},
        checkpoint=checkpoint,
        environment=environment(),
        timings=timings,
    )


def _initial_weights(reference: Runner, candidate: Runner, tol: Tolerances, exact: bool) -> dict[str, Any]:
    """Compares the candidate's weights as converted with the reference's, then makes them identical."""
    ref_w = reference.get_weights()
    cand_w = candidate.get_weights()
    names_ref, names_cand = set(ref_w), set(cand_w)
    if names_ref != names_cand:
        from litetrain.errors import SignatureError

        raise SignatureError(
            "The two models exchange different variables: only in the reference "
            f"{sorted(names_ref - names_cand)[:5]}, only in the candidate {sorted(names_cand - names_ref)[:5]}.",
            hint="save/restore outputs and inputs are matched by name; both models must use the same names.",
        )
    diffs = compare_weights(0, cand_w, ref_w, tol)
    max_abs = max((d.max_abs for d in diffs), default=0.0)
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
        f"initial weights differ by up to {max_abs:.3g} (largest in {worst.name if worst else '?'}); both twins "
        "were then set to the reference's weights"
    )
    return {
        "compared": True,
        "identical": identical,
        "max_abs_diff": max_abs,
        "variables": len(ref_w),
        "within_tolerance": within,
        "set_identical": True,
        "detail": detail,
    }


def _inference_item(name: str, when: str, inf: InferenceComparison) -> CheckItem:
    return CheckItem(
        name, inf.within_tolerance,
        f"inference {when}: largest output difference {inf.max_abs_error:.3g}, argmax agreement "
        f"{inf.argmax_agreement:.1%} on {inf.samples} held-out samples",
    )


def _explain(
    verdict: Verdict,
    checks: list[CheckItem],
    train: TrainComparison,
    after: InferenceComparison,
    tol: Tolerances,
    ref: str,
    cand: str,
) -> str:
    acc = after.accuracy
    acc_text = (
        f" Test accuracy after training: {ref} {acc[ref]:.1%}, {cand} {acc[cand]:.1%}."
        if acc.get(ref) is not None and acc.get(cand) is not None else ""
    )
    weights = "" if train.max_abs_weight_diff is None else \
        f", weights by at most {train.max_abs_weight_diff:.2g}"
    if verdict is Verdict.CONSISTENT:
        return (
            f"{cand} trains like {ref}: over {train.steps} steps on identical batches the loss differed by at most "
            f"{train.max_abs_loss_diff:.2g}{weights}, and after training the outputs differ by at most "
            f"{after.max_abs_error:.2g} with {after.argmax_agreement:.1%} of predictions agreeing.{acc_text} "
            f"All differences are within the tolerance |diff| <= {tol.a:g} + {tol.r:g} * |reference|, the size of "
            "float32 rounding (different kernels sum in a different order), not a difference in what is computed."
        )
    failed = [c for c in checks if not c.passed]
    return (
        f"{cand} does not train like {ref}: "
        + "; ".join(f"{c.name}: {c.detail}" for c in failed)
        + f". The tolerance is |diff| <= {tol.a:g} + {tol.r:g} * |reference|.{acc_text}"
        + " Differences this large are not float32 rounding of a stable computation; look at the first failing"
        " check (initial weights point to conversion, loss at step 1 to the graph, later steps to the optimizer"
        " or to unstable training that amplifies rounding)."
    )
