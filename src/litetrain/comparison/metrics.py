"""Difference metrics by name (cf. ai-edge-quantizer's ``validation_utils``); NaN never passes a tolerance."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Metric = Callable[[np.ndarray, np.ndarray], float]
METRICS: dict[str, Metric] = {}


def register(name: str) -> Callable[[Metric], Metric]:
    """Registers a metric ``f(candidate, reference) -> float`` under ``name``."""

    def wrap(fn: Metric) -> Metric:
        METRICS[name] = fn
        return fn

    return wrap


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN, which the metrics report
        return np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))


@register("max_abs")
def max_abs(candidate: np.ndarray, reference: np.ndarray) -> float:
    """Largest absolute difference (NaN if either side has NaN)."""
    if np.size(reference) == 0:
        return 0.0
    d = _diff(candidate, reference)
    return float("nan") if np.isnan(d).any() else float(np.max(d))


@register("max_rel")
def max_rel(candidate: np.ndarray, reference: np.ndarray) -> float:
    """Largest absolute difference divided by the reference's largest magnitude.

    Relative to the tensor's scale rather than element by element, so near-zero elements (common in weights and
    logits) do not turn float noise into huge ratios.
    """
    scale = float(np.max(np.abs(reference))) if np.size(reference) else 0.0
    m = max_abs(candidate, reference)
    return m / scale if scale > 0 else (0.0 if m == 0 else float("inf"))


@register("mean_abs")
def mean_abs(candidate: np.ndarray, reference: np.ndarray) -> float:
    """Mean absolute difference."""
    return float(np.mean(_diff(candidate, reference))) if np.size(reference) else 0.0


@register("argmax_agreement")
def argmax_agreement(candidate: np.ndarray, reference: np.ndarray) -> float:
    """Fraction of samples whose largest output is the same class (binary outputs: the same side of 0.5/0)."""
    c, r = np.asarray(candidate), np.asarray(reference)
    if c.ndim >= 2 and c.shape[-1] > 1:
        return float(np.mean(np.argmax(c, axis=-1) == np.argmax(r, axis=-1)))
    threshold = 0.5 if (np.min(r) >= 0 and np.max(r) <= 1) else 0.0
    return float(np.mean((c > threshold) == (r > threshold)))


def same_values(candidate: np.ndarray, reference: np.ndarray) -> bool:
    """Equal element for element, NaN where the other has NaN included (a reproduced NaN is no difference)."""
    c, r = np.asarray(candidate), np.asarray(reference)
    if c.shape != r.shape:
        return False
    if np.issubdtype(c.dtype, np.inexact) and np.issubdtype(r.dtype, np.inexact):
        return bool(np.array_equal(c, r, equal_nan=True))
    return bool(np.array_equal(c, r))


def all_finite(values: np.ndarray) -> bool:
    """No NaN or Inf (non-float arrays always are)."""
    a = np.asarray(values)
    return not np.issubdtype(a.dtype, np.inexact) or bool(np.all(np.isfinite(a)))


def scale(reference: np.ndarray) -> float:
    """Magnitude used by relative tolerances: the reference's largest absolute value."""
    return float(np.max(np.abs(reference))) if np.size(reference) else 0.0
