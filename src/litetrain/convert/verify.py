"""The post-conversion check: every variable initialized and identical, outputs finite and matching TensorFlow.

This is what makes the Keras 3 weight-loss trap (FACTS.md) impossible to fall into unnoticed: a model whose
variables were not serialized fails here, loudly, instead of training from garbage on a phone.

The outputs are judged against the model's own scale and, when that is not enough, against the float32 noise of
TFLite's own kernels: deep models with data-calibrated BatchNorm statistics turn unrealistic inputs into outputs of
~3e4 where rounding alone differs by thousands, and TFLite's reference kernels then differ from XNNPACK as much as
TensorFlow does. A mistranslated op differs from TensorFlow while both TFLite kernel paths agree with each other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
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
    infer_scale: float = 0.0
    """The largest |output| of TensorFlow on the sample inputs."""
    kernel_noise: float | None = None
    """Largest difference between two TFLite kernel paths on the same inputs (measured only when needed)."""
    judged_by: str = "tolerance"
    """"tolerance" (within 10x atol + rtol * scale) or "kernel noise" (within 10x the kernel paths' difference)."""
    inputs: str = "given"
    """Where the sample inputs came from: "data" (the user's), "synthetic" (seeded) or "given" (by the caller)."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def verify_conversion(
    reference: Runner,
    candidate: Runner,
    sample_x: np.ndarray,
    tol: Tolerances,
    *,
    other_kernels: Callable[[], Runner] | None = None,
) -> Verification:
    """Checks ``candidate`` (the converted model) against ``reference`` before any training.

    Args:
        reference, candidate: TensorFlow and the converted model, with the same initial weights.
        sample_x: Inputs to compare on: the user's data where there is some.
        tol: The comparison tolerances; inference before training must agree within 10x them.
        other_kernels: Makes the converted model on another kernel path (reference kernels), to measure float32
            noise when the tolerance is exceeded.

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
    ref_outs, cand_outs = reference.infer(sample_x), candidate.infer(sample_x)
    finite = all(bool(np.all(np.isfinite(cand_outs[k]))) for k in ref_outs)
    if not finite:
        raise ConversionError(
            "The converted model's inference outputs are NaN or Inf where TensorFlow's are finite.",
            hint="The variables were probably not initialized (the Keras 3 weight-loss trap). Rebuild with litetrain.",
        )
    errors = {k: _max_abs_diff(cand_outs[k], ref_outs[k]) for k in ref_outs}
    scales = {k: float(np.max(np.abs(v))) if v.size else 0.0 for k, v in ref_outs.items()}
    figures = Verification(len(ref_w), exact, worst, max(errors.values()), finite, max(scales.values()))
    # Inference before training must agree to float rounding; allow 10x the comparison tolerance for deep stacks.
    beyond = [k for k in errors if not errors[k] <= 10 * (tol.a + tol.r * scales[k])]
    if not beyond:
        return figures
    noise = _kernel_noise(other_kernels, sample_x, cand_outs) if other_kernels else None
    if noise is not None and all(errors[k] <= 10 * noise[k] for k in beyond):
        return dataclasses.replace(figures, kernel_noise=max(noise[k] for k in beyond), judged_by="kernel noise")
    out = max(beyond, key=lambda k: errors[k] / max(noise[k], 1e-30) if noise else errors[k])
    named = f" in output {out!r}" if len(errors) > 1 else ""
    measured = f"; TFLite's own kernel paths differ by {noise[out]:.3g}" if noise is not None else ""
    raise ConversionError(
        f"The converted model's outputs differ from TensorFlow's by up to {errors[out]:.3g}{named} (outputs up to "
        f"{scales[out]:.3g}) before any training{measured}.",
        hint="If the sample inputs were not like your data, give the check real data (--data); otherwise the "
        "conversion is not faithful: report the model to the litetrain issue tracker.",
    )


def _max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


def _kernel_noise(
    other_kernels: Callable[[], Runner], sample_x: np.ndarray, cand_outs: dict[str, np.ndarray]
) -> dict[str, float]:
    """Per output, the largest difference between the candidate and the same model on another kernel path."""
    other = other_kernels()
    try:
        outs = other.infer(sample_x)
        return {k: _max_abs_diff(outs[k], v) for k, v in cand_outs.items()}
    finally:
        other.close()
