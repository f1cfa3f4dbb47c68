"""The recommendation: the smallest model that meets the accuracy budget (and, for trainable models, trains)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litetrain.quantization.result import ModeReport

DEFAULT_MAX_ACCURACY_DROP = 1.0
"""Percentage points of held-out accuracy that quantization may cost by default."""

EXCLUDED_VERDICTS = ("inconsistent", "unhealthy")
"""Twin verdicts that keep a trainable mode out of the recommendation: it does not train like float32 (or at all)."""

CHANCE_MARGIN = 0.05
"""Held-out accuracy at most this far above chance level (a fraction) counts as chance: the model has not
learned, and an accuracy budget then compares noise."""


def within_budget(report: ModeReport, budget: float) -> bool:
    """Accuracy drop at most ``budget`` (a fraction); without accuracy (regression), mean error relative to scale."""
    inf = report.inference
    if inf is None:
        return False
    if inf.accuracy_drop is not None:
        return inf.accuracy_drop <= budget + 1e-12
    return inf.mean_abs_error <= budget * inf.output_scale


def excluded_because(report: ModeReport, trainable: bool) -> str | None:
    """Why a built trainable mode may not be recommended (None: it may), e.g. ``verdict inconsistent``."""
    if not trainable:
        return None
    verdict = (report.training or {}).get("verdict")
    if verdict in EXCLUDED_VERDICTS:
        return f"verdict {verdict}"
    if not report.trains:
        return "does not train"
    return None


def recommend(reports: Mapping[str, ModeReport], budget: float, *, trainable: bool,
              chance: float | None = None) -> dict[str, Any] | None:
    """Picks the smallest model within ``budget``; selective int8 models count as candidates too.

    A trainable mode is a candidate only when it trains and its twin verdict is neither ``inconsistent`` nor
    ``unhealthy`` (``excluded`` lists the others). When the accuracies compared sit at ``chance`` level (the
    accuracy of guessing, a fraction), ``warnings`` says that the budget means nothing there.

    Returns None when no mode qualifies (nothing measured, or every trainable mode excluded).
    """
    candidates: list[dict[str, Any]] = []
    excluded: list[str] = []
    for report in reports.values():
        if not report.has_figures or report.size_bytes is None or report.inference is None:
            continue
        why = excluded_because(report, trainable)
        if why is not None:
            excluded.append(f"{report.mode.value}: {why}")
            continue
        if within_budget(report, budget):
            candidates.append(_entry(report, report.size_bytes, report.inference.accuracy,
                                     report.inference.accuracy_drop, ()))
        sel = report.selective
        if sel is not None and sel.met_budget and sel.kept_in_float:
            candidates.append(_entry(report, sel.size_bytes, sel.accuracy, sel.accuracy_drop, sel.layers,
                                     tensors=sel.kept_in_float))
    if not candidates:
        return None
    best = min(candidates, key=lambda c: (c["size_bytes"], c["max_abs_error"] if c["max_abs_error"] == c[
        "max_abs_error"] else float("inf")))
    what = "trains and " if trainable else ""
    best["reason"] = (
        f"the smallest {'trainable ' if trainable else ''}model that {what}loses at most {budget * 100:g} percentage "
        f"point(s) of held-out accuracy" + (f" (excluded: {'; '.join(excluded)})" if excluded else ""))
    best["budget_percentage_points"] = budget * 100
    best["excluded"] = excluded
    best["warnings"] = chance_warnings(best, chance)
    return best


def chance_warnings(entry: Mapping[str, Any], chance: float | None) -> list[str]:
    """A warning when the recommended mode's or float32's held-out accuracy is within ``CHANCE_MARGIN`` of chance."""
    if chance is None:
        return []
    compared = {"float32": entry.get("accuracy_float32"), entry["label"]: entry.get("accuracy")}
    at_chance = {k: v for k, v in compared.items() if v is not None and v <= chance + CHANCE_MARGIN}
    if not at_chance:
        return []
    figures = ", ".join(f"{k} {v:.1%}" for k, v in compared.items() if v is not None)
    return [f"held-out accuracy is at chance level ({figures}; chance {chance:.1%}): the model has not learned "
            f"the task, so the accuracy budget compares guesses and says nothing about quantization. Train longer "
            f"(--steps) or on more data, and judge the modes by their output error (max|err|, argmax) meanwhile."]


def chance_level(num_classes: int | None, labels: Any = None) -> float | None:
    """The accuracy of guessing: the larger of 1/classes and the most frequent held-out class's share."""
    import numpy as np

    if not num_classes:
        return None
    share = 0.0
    if labels is not None and len(labels):
        _, counts = np.unique(np.asarray(labels).reshape(len(labels), -1)[:, 0], return_counts=True)
        share = float(counts.max() / counts.sum())
    return max(1.0 / max(num_classes, 2), share)


def _entry(report: ModeReport, size: int, accuracy: float | None, drop: float | None,
           layers: tuple[str | None, ...], tensors: tuple[str, ...] = ()) -> dict[str, Any]:
    inf = report.inference
    assert inf is not None
    label = report.mode.value + (f" with {len(layers)} layer(s) kept in float" if layers else "")
    return {
        "mode": report.mode.value,
        "label": label,
        "kind": report.kind,
        "size_bytes": size,
        "size_ratio": size / report.float32_size_bytes if report.float32_size_bytes else None,
        "accuracy": accuracy,
        "accuracy_float32": inf.accuracy_float32,
        "accuracy_drop": drop,
        "max_abs_error": inf.max_abs_error if not layers else float("nan"),
        "latency_us": report.latency_us if not layers else None,
        "trains": report.trains,
        "kept_in_float": [name or tensor for name, tensor in zip(layers, tensors, strict=True)] if layers else [],
    }
