"""One paragraph per verdict, in words a user understands, with the figures behind it."""

from __future__ import annotations

from typing import Any

from litetrain.comparison.divergence import FLOOR_FACTOR, Divergence
from litetrain.comparison.health import Health
from litetrain.comparison.locate import Location
from litetrain.comparison.result import InferenceComparison, TrainComparison
from litetrain.comparison.verdict import Verdict
from litetrain.config import Tolerances


def explain(
    verdict: Verdict,
    cause: str,
    train: TrainComparison,
    after: InferenceComparison,
    divergence: Divergence | None,
    floor: dict[str, Any] | None,
    float64: dict[str, Any] | None,
    health: list[Health],
    location: Location | None,
    initial: dict[str, Any],
    tol: Tolerances,
    ref: str,
    cand: str,
) -> str:
    """The explanation paragraph of a comparison (:func:`health_notes` follow it)."""
    acc = after.accuracy
    acc_text = (f" Test accuracy after training: {ref} {acc[ref]:.1%}, {cand} {acc[cand]:.1%}."
                if acc.get(ref) is not None and acc.get(cand) is not None else "")
    weights = "" if train.max_abs_weight_diff is None else f", weights by at most {train.max_abs_weight_diff:.2g}"
    agreeing = f" with {after.argmax_agreement:.1%} of predictions agreeing" if after.classification else ""
    measured = (f"Over {train.steps} steps on identical batches the loss differed by at most "
                f"{train.max_abs_loss_diff:.2g}{weights}; after training the outputs differ by at most "
                f"{after.max_abs_error:.2g}{agreeing}.{acc_text}")
    floor_text = ""
    if divergence is not None and floor is not None:
        floor_text = (f" The float32 noise floor (the same training with another summation order, kernel path, "
                      f"thread count or a last-bit change of the initial weights) moved the loss by up to "
                      f"{floor['loss_floor_max']:.2g} and the weights by up to {divergence.floor[-1]:.2g} at the "
                      f"last step; the twins stayed within {divergence.weight_max_ratio:.1f}x of it in weights and "
                      f"{divergence.loss_diff_max_ratio:.1f}x in loss (limit {FLOOR_FACTOR:g}x).")
    f64_text = ""
    if float64 is not None:
        d = float64["distance"]
        r, c = d.get(ref, {}), d.get(cand, {})
        if r and c:
            closer = c["weight_distance_last"] <= 2 * max(r["weight_distance_last"], 1e-12)
            f64_text = (f" Against the float64 reference, {cand} ends {c['weight_distance_last']:.2g} away in "
                        f"weights and {ref} float32 {r['weight_distance_last']:.2g}"
                        + (_no_further(verdict) if closer else
                           "; TFLite is further from the float64 truth than TensorFlow float32 is."))
    if verdict is Verdict.UNHEALTHY:
        return (f"Training is broken in both runtimes, so their agreement proves nothing: {cause}. {measured} "
                "Fix the training setup (learning rate, loss, data) before judging the conversion.")
    if verdict is Verdict.INCONSISTENT:
        where = f" Where they part: {location.describe()}." if location and location.step is not None else ""
        return (f"{cand} does not train like {ref}: {cause}.{where} {measured}{floor_text}{f64_text} "
                "This is not float32 rounding: the twins compute something different.")
    if verdict is Verdict.DRIFT:
        return (f"{cand} trains with the same dynamics as {ref} but not within float32 noise: {cause}. {measured}"
                f"{floor_text}{f64_text} Expect small, systematic differences (e.g. lower-precision storage).")
    if verdict is Verdict.CONSISTENT_SENSITIVE:
        return (f"{cand} trains like {ref}, but this training amplifies rounding: {cause}. Differences between "
                f"the twins grow at the same rate as between two float32 runs of the same runtime, so they are "
                f"consistent, and single trajectories cannot be compared step for step after that point; compare "
                f"statistics over several seeds (--repeats) instead. {measured}{floor_text}{f64_text}")
    if divergence is None:
        return (f"{cand} trains like {ref}: {measured} All differences are within the fixed tolerance "
                f"|diff| <= {tol.a:g} + {tol.r:g} * |reference| (the noise floor was not measured).")
    return (f"{cand} trains like {ref}: {measured}{floor_text}{f64_text} These differences are float32 rounding "
            "(different kernels sum in a different order), not a difference in what is computed.")


def _no_further(verdict: Verdict) -> str:
    # An inconsistent verdict rests on what differs from identical weights; final distances (of a chaotic run, say)
    # cannot make that rounding, so the sentence claims nothing more there.
    text = "; TFLite is no further from the float64 truth than TensorFlow is"
    if verdict is Verdict.INCONSISTENT:
        return text + " at the end, but what differs from identical weights above is not rounding."
    return text + ", so the difference between them is rounding, not a defect."


def health_notes(health: list[Health]) -> str:
    """The health checks' notes (a run too short to judge learning), as sentences to follow the explanation."""
    return "".join(f" Note: {n}." for n in dict.fromkeys(n for h in health for n in h.notes))
