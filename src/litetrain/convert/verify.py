"""The post-conversion check: every variable initialized and identical, outputs finite and matching TensorFlow.

This is what makes the Keras 3 weight-loss trap (FACTS.md) impossible to fall into unnoticed: a model whose
variables were not serialized fails here, loudly, instead of training from garbage on a phone.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from litetrain.config import Tolerances
from litetrain.errors import ConversionError
from litetrain.runtime.base import Runner


@dataclasses.dataclass(frozen=True)
class Verification:
    """What the post-conversion check found."""

    variables_checked: int
    initial_weights_exact: bool
    max_abs_weight_diff: float
    infer_max_abs_error: float
    infer_finite: bool

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def verify_conversion(reference: Runner, candidate: Runner, sample_x: np.ndarray, tol: Tolerances) -> Verification:
    """Checks ``candidate`` (the converted model) against ``reference`` before any training.

    Raises:
        ConversionError: a variable cannot be read or differs, or inference is non-finite or far from TensorFlow.
    """
    ref_w = reference.get_weights()
    try:
        cand_w = candidate.get_weights()
    except ConversionError as exc:
        raise ConversionError(
            "The converted model's variables cannot be read, so they were not initialized: the weights were lost "
            f"in conversion ({exc.message}).",
            hint="With Keras 3, every tf.Variable inside the Keras variables must be tracked by the exported "
            "module; 'litetrain build' does this. Rebuild the model with litetrain.",
        ) from exc
    missing = sorted(set(ref_w) - set(cand_w))
    if missing:
        raise ConversionError(f"The converted model's save signature lacks variables {missing[:5]}.")
    worst = 0.0
    for name, ref in ref_w.items():
        cand = cand_w[name]
        if cand.shape != ref.shape:
            raise ConversionError(f"Variable {name!r} has shape {cand.shape} after conversion, {ref.shape} before.")
        diff = float(np.max(np.abs(cand.astype(np.float64) - ref.astype(np.float64)))) if ref.size else 0.0
        worst = max(worst, diff) if not np.isnan(diff) else float("nan")
    exact = all(np.array_equal(ref_w[n], cand_w[n]) for n in ref_w)
    if not exact:
        raise ConversionError(
            f"The converted model's initial variables differ from TensorFlow's (largest difference {worst:.3g}); "
            "they were not carried over faithfully.",
            hint="This usually means uninitialized variables (the Keras 3 weight-loss trap). Rebuild with litetrain.",
        )
    ref_out = reference.infer(sample_x)[reference.primary_output]
    cand_out = candidate.infer(sample_x)[candidate.primary_output]
    finite = bool(np.all(np.isfinite(cand_out)))
    err = float(np.max(np.abs(cand_out.astype(np.float64) - ref_out))) if finite else float("inf")
    if not finite:
        raise ConversionError(
            "The converted model's inference outputs are NaN or Inf where TensorFlow's are finite.",
            hint="The variables were probably not initialized (the Keras 3 weight-loss trap). Rebuild with litetrain.",
        )
    # Inference before training must agree to float rounding; allow 10x the comparison tolerance for deep stacks.
    if not err <= 10 * (tol.a + tol.r * float(np.max(np.abs(ref_out)))):
        raise ConversionError(
            f"The converted model's outputs differ from TensorFlow's by up to {err:.3g} before any training.",
            hint="The conversion is not faithful; report the model to the litetrain issue tracker.",
        )
    return Verification(len(ref_w), exact, worst, err, finite)
