"""Is a federation of TFLite devices consistent with the same federation in TensorFlow? Round by round.

Both federations start from the same weights, train the same clients on the same batches in the same order, and
aggregate in the same order, so their global models differ only by the float32 rounding of the two runtimes.
That rounding is amplified by training, the more so at the high learning rates and many local steps federated
learning uses, so a fixed tolerance cannot tell it from a defect. The fleet is judged as ``check`` judges two
single trainings, with :mod:`litetrain.comparison.divergence`: a third federation (TFLite, the rows of every batch
reversed, initial weights moved by one ulp: nothing changes mathematically) measures the
float32 noise floor of the federation, and after every round the distance between the TFLite and TensorFlow
global models (largest weight difference) is compared with that floor, as is the held-out loss. The verdict uses
``check``'s vocabulary, thresholds and decision order (:mod:`litetrain.comparison.verdict`):

- ``unhealthy``: neither federation learns (held-out accuracy or loss no better than the initial model's), or
  both hold NaN/Inf weights;
- ``inconsistent``: only one is unhealthy, or they trained different participants, or the global models leave
  the floor (more than ``FLOOR_FACTOR`` times it) and grow more than ``GROWTH_INCONSISTENT`` times faster than
  it (without a location: part by more than 1% of the weights' scale); or single local steps from identical
  weights (each runtime keeping its own optimizer state) differ by more than ``UPDATE_INCONSISTENT`` (1%), located
  as ``check`` locates them in the first round beyond the floor, or in round 1 when within it (a chaotic
  federation's wide floor must not hide a defect);
- ``drift``: beyond the floor with single steps that agree, or within the floor in weights but with held-out
  outputs after the last round beyond ``FLOOR_FACTOR`` times the floor's;
- ``consistent-sensitive``: within the floor, but the floor itself grows beyond ``NOT_COMPARABLE`` of the
  weights' scale: single federations of any two float32 runs are then no longer comparable, and the held-out
  accuracy per round is what compares (reported with the noise run's as the spread);
- ``consistent``: within the floor every round.

Without the floor (``--no-noise-floor``) each round's global weights are compared with
:func:`litetrain.comparison.twin.compare_weights` against ``check``'s fixed tolerances (``|a - b| <= atol + rtol *
scale`` per variable): ``consistent`` within them, ``drift`` beyond them within 1% of the scale, ``inconsistent``
beyond that.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from litetrain.comparison import metrics
from litetrain.comparison.divergence import (
    FLOOR_FACTOR,
    NOT_COMPARABLE,
    Divergence,
    assess_divergence,
    min_floor,
    weight_distance,
    weight_scale,
)
from litetrain.comparison.locate import Location
from litetrain.comparison.twin import compare_weights
from litetrain.comparison.verdict import GROWTH_INCONSISTENT, UPDATE_INCONSISTENT, Verdict
from litetrain.config import Tolerances

_ORDER = (Verdict.CONSISTENT, Verdict.CONSISTENT_SENSITIVE, Verdict.DRIFT, Verdict.INCONSISTENT, Verdict.UNHEALTHY)


@dataclasses.dataclass(frozen=True)
class RoundAgreement:
    """TFLite vs TensorFlow global models after one round."""

    round: int
    max_abs_weight_diff: float
    max_rel_weight_diff: float
    worst_variable: str
    within_tolerance: bool
    max_abs_output_diff: float
    argmax_agreement: float
    same_participants: bool
    verdict: Verdict
    noise_floor: float | None = None  # largest weight difference of the noise run, at least ULPS ulps of the scale
    floor_ratio: float | None = None  # max_abs_weight_diff / noise_floor
    weight_scale: float | None = None  # largest |weight| of the TensorFlow global model

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["verdict"] = self.verdict.value
        return out


def compare_round(
    round_: int,
    tflite: Mapping[str, np.ndarray],
    tensorflow: Mapping[str, np.ndarray],
    tflite_out: np.ndarray,
    tensorflow_out: np.ndarray,
    tol: Tolerances,
    same_participants: bool,
    noise: Mapping[str, np.ndarray] | None = None,
) -> RoundAgreement:
    """Compares the two global models of a round (TensorFlow is the reference).

    Args:
        noise: The noise run's global model after the round (TFLite perturbed): the round is judged against its
            distance from ``tflite`` instead of the fixed tolerance.
    """
    diffs = compare_weights(round_, tflite, tensorflow, tol)
    worst = max(diffs, key=lambda d: (np.nan_to_num(d.max_rel, nan=np.inf), d.max_abs))
    max_abs = float(max(np.nan_to_num(d.max_abs, nan=np.inf) for d in diffs))
    max_rel = float(np.nan_to_num(worst.max_rel, nan=np.inf))
    within = all(d.within_tolerance for d in diffs)
    floor = ratio = scale = None
    if noise is not None:
        names = sorted(tensorflow)
        scale = weight_scale(tensorflow, names)
        floor = max(np.nan_to_num(weight_distance(noise, tflite, names), nan=0.0), min_floor(scale))
        ratio = max_abs / floor
    if not same_participants:
        verdict = Verdict.INCONSISTENT
    elif within if ratio is None else ratio <= FLOOR_FACTOR:
        sensitive = floor is not None and scale is not None and floor > NOT_COMPARABLE * scale
        verdict = Verdict.CONSISTENT_SENSITIVE if sensitive else Verdict.CONSISTENT
    elif max_rel <= UPDATE_INCONSISTENT:
        verdict = Verdict.DRIFT
    else:
        verdict = Verdict.INCONSISTENT
    return RoundAgreement(
        round=round_,
        max_abs_weight_diff=max_abs,
        max_rel_weight_diff=max_rel,
        worst_variable=worst.name,
        within_tolerance=within,
        max_abs_output_diff=metrics.max_abs(tflite_out, tensorflow_out),
        argmax_agreement=metrics.argmax_agreement(tflite_out, tensorflow_out),
        same_participants=same_participants,
        verdict=verdict,
        noise_floor=floor,
        floor_ratio=ratio,
        weight_scale=scale,
    )


def learned(initial: Mapping[str, Any], final: Mapping[str, Any]) -> bool:
    """True when the final global model is finite and better than the initial one on held-out data."""
    acc0, acc1 = initial.get("accuracy"), final.get("accuracy")
    loss0, loss1 = initial.get("loss"), final.get("loss")
    if loss1 is None or not np.isfinite(loss1):
        return False
    if acc0 is not None and acc1 is not None and acc1 > acc0:
        return True
    return loss0 is not None and loss1 < loss0


def _health(healthy: Mapping[str, bool]) -> tuple[Verdict, str] | None:
    """The verdict when a federation did not learn (agreement on broken training is not a pass), else None."""
    if not any(healthy.values()):
        return Verdict.UNHEALTHY, (
            "Neither federation learned: the final global model is no better on held-out data than the initial "
            "one (or it is not finite) in both runtimes, so their agreement says nothing. Check the learning rate, "
            "the local epochs and the partition."
        )
    if not all(healthy.values()):
        bad = ", ".join(k for k, ok in healthy.items() if not ok)
        return Verdict.INCONSISTENT, f"Only one federation learned; the {bad} federation did not."
    return None


def _figures(rounds: list[RoundAgreement]) -> str:
    last = rounds[-1]
    worst = max(rounds, key=lambda r: r.max_rel_weight_diff)
    return (
        f"largest global-weight difference {max(r.max_abs_weight_diff for r in rounds):.3g} "
        f"({worst.max_rel_weight_diff:.3g} of the scale, variable {worst.worst_variable!r} in round {worst.round}); "
        f"after round {last.round} the held-out outputs differ by at most {last.max_abs_output_diff:.3g} with "
        f"{last.argmax_agreement:.1%} argmax agreement"
    )


def _not_comparable(rounds: list[RoundAgreement]) -> str | None:
    mismatch = [r.round for r in rounds if not r.same_participants]
    if not mismatch:
        return None
    return (f"The two federations trained different participants in round(s) {mismatch} (a wall-clock "
            f"--round-timeout cut different clients), so their global models are not comparable; {_figures(rounds)}.")


def overall_verdict(
    rounds: list[RoundAgreement], healthy: Mapping[str, bool], tol: Tolerances
) -> tuple[Verdict, str]:
    """The federation's verdict against the fixed tolerance, and one paragraph explaining it (``rounds``: every
    round, at least one)."""
    broken = _health(healthy)
    if broken is not None:
        return broken
    verdict = max((r.verdict for r in rounds), key=_ORDER.index)
    figures = _figures(rounds)
    if verdict is Verdict.CONSISTENT:
        text = (f"The TFLite federation matches the TensorFlow federation within the tolerance (atol {tol.a:g}, "
                f"rtol {tol.r:g}) after every round: {figures}.")
    elif verdict is Verdict.DRIFT:
        text = (f"The global models leave the fixed tolerance but stay within {UPDATE_INCONSISTENT:.0%} of the "
                f"weights' scale every round: float32 rounding amplified by local training, not different "
                f"dynamics; {figures}. Run 'litetrain check' on the model to locate any step-level difference.")
    else:
        text = _not_comparable(rounds) or (f"The global models part by more than {UPDATE_INCONSISTENT:.0%} of the weights' scale: the "
                f"runtimes train differently; {figures}. Run 'litetrain check' on the model to locate the "
                f"first differing step and variable.")
    return verdict, text


def fleet_divergence(
    rounds: list[RoundAgreement], noise_distance: list[float], loss: Mapping[str, list[float]]
) -> Divergence:
    """The TFLite-vs-TensorFlow distance of the global models against the noise run's, round by round.

    Args:
        rounds: Every round's agreement (``max_abs_weight_diff`` and ``weight_scale``).
        noise_distance: Per round, the largest weight difference between the noise run and the TFLite federation.
        loss: Held-out loss per round of ``tflite``, ``tensorflow`` and ``noise``.
    """
    tfl, tf_, noise = (np.asarray(loss[k], np.float64) for k in ("tflite", "tensorflow", "noise"))
    with np.errstate(invalid="ignore"):
        return assess_divergence(
            [r.round for r in rounds], [r.max_abs_weight_diff for r in rounds], noise_distance,
            [r.weight_scale or 0.0 for r in rounds], np.abs(tfl - tf_), np.nan_to_num(np.abs(noise - tfl)), tf_)


def floor_verdict(
    rounds: list[RoundAgreement], healthy: Mapping[str, bool], divergence: Divergence, output_floor: float,
    accuracy: Mapping[str, list[float | None]], location: Location | None = None,
) -> tuple[Verdict, str]:
    """The federation's verdict against its noise floor (``check``'s decision order), and one paragraph.

    Args:
        rounds: Every round's agreement, at least one.
        healthy: Whether each runtime's federation learned.
        divergence: :func:`fleet_divergence` of the rounds.
        output_floor: Largest held-out output difference between the noise run and the TFLite federation after
            the last round.
        accuracy: Held-out accuracy per round of ``tflite``, ``tensorflow`` and ``noise`` (None: not classes).
        location: Single local steps from identical weights in the first round beyond the floor (round 1 when
            within it), each runtime keeping its own optimizer state (``check``'s
            :func:`~litetrain.comparison.locate.locate`). Steps that differ by more than 1% are inconsistent even
            within the floor: a chaotic federation's wide floor must not hide a defect. None when it could not be
            run; beyond the floor, global models that part by more than 1% of the scale then decide.
    """
    broken = _health(healthy) or (
        (Verdict.INCONSISTENT, text) if (text := _not_comparable(rounds)) else None)
    if broken is not None:
        return broken
    figures = (f"{_figures(rounds)}; up to {divergence.weight_max_ratio:.2g}x the noise floor (limit "
               f"{FLOOR_FACTOR:g}x)")
    first = divergence.first_step_beyond_floor
    if location is not None and location.update_rel_error > UPDATE_INCONSISTENT:
        where = (f"leave the float32 noise floor in round {first}" if first is not None else
                 "stay within the float32 noise floor, which a chaotic federation makes wide")
        return Verdict.INCONSISTENT, (
            f"The global models {where}, but in round {first or 1} {location.describe()}: the runtimes train "
            f"differently; {figures}.")
    if not divergence.within_floor:
        growth = divergence.ratio_growth()
        worst = max(r.max_rel_weight_diff for r in rounds)
        if growth > GROWTH_INCONSISTENT:
            return Verdict.INCONSISTENT, (
                f"The global models leave the float32 noise floor in round {first} and move apart faster than the "
                f"floor grows (their ratio to it rose {growth:.0f}-fold): the runtimes train differently; "
                f"{figures}. Run 'litetrain check' on the model to locate the first differing step and variable.")
        if location is None and worst > UPDATE_INCONSISTENT:
            return Verdict.INCONSISTENT, (
                f"The global models leave the float32 noise floor in round {first} and part by more than "
                f"{UPDATE_INCONSISTENT:.0%} of the weights' scale: the runtimes train differently; {figures}. Run "
                f"'litetrain check' on the model to locate the first differing step and variable.")
        same = (f"in that round {location.describe()}" if location is not None else
                f"they stay within {UPDATE_INCONSISTENT:.0%} of the weights' scale")
        return Verdict.DRIFT, (
            f"The global models leave the float32 noise floor in round {first}, but {same}: the same dynamics at "
            f"lower precision, not a defect; {figures}.")
    last = rounds[-1]
    if last.max_abs_output_diff > FLOOR_FACTOR * max(output_floor, 1e-6 * max(1.0, last.max_abs_output_diff)):
        return Verdict.DRIFT, (
            f"The global models agree within the float32 noise floor, but after round {last.round} the held-out "
            f"outputs differ by {last.max_abs_output_diff:.3g} against a floor of {output_floor:.3g}; {figures}.")
    if divergence.comparable_until is not None:
        after = (f"after round {divergence.comparable_until}" if divergence.comparable_until
                 else "from round 1 on")
        return Verdict.CONSISTENT_SENSITIVE, (
            f"The TFLite federation stays within the float32 noise floor of the TensorFlow federation, but the "
            f"federation amplifies rounding: {after} single federations of any two float32 runs are no longer "
            f"comparable (the noise run moves the weights by more than {NOT_COMPARABLE:g} of their scale), so "
            f"what compares is the held-out accuracy per round: {_accuracy_text(accuracy)}; {figures}.")
    within = " and within the tolerance" if all(r.within_tolerance for r in rounds) else ""
    return Verdict.CONSISTENT, (
        f"The TFLite federation matches the TensorFlow federation within the float32 noise floor{within} after "
        f"every round: {figures}.")


def accuracy_gaps(accuracy: Mapping[str, list[float | None]]) -> dict[str, float | None]:
    """Largest per-round accuracy gap between the runtimes, and between two runs of TFLite (the noise run)."""
    def gap(a: str, b: str) -> float | None:
        pairs = [(x, y) for x, y in zip(accuracy[a], accuracy[b], strict=True) if x is not None and y is not None]
        return max((abs(x - y) for x, y in pairs), default=None)

    return {"runtimes": gap("tflite", "tensorflow"), "noise": gap("tflite", "noise")}


def _accuracy_text(accuracy: Mapping[str, list[float | None]]) -> str:
    gaps = accuracy_gaps(accuracy)
    if gaps["runtimes"] is None or gaps["noise"] is None:
        return "not a classification task, so no accuracy to compare"
    runs = "; ".join(f"{name} " + " -> ".join(f"{v:.1%}" for v in accuracy[key] if v is not None)
                     for name, key in (("tflite", "tflite"), ("tensorflow", "tensorflow"),
                                       ("tflite re-run (noise)", "noise")))
    return (f"{runs}; the runtimes differ by at most {gaps['runtimes']:.1%} in a round, two float32 runs of "
            f"TFLite by {gaps['noise']:.1%} (one re-run, not a spread over seeds)")
