"""Trajectory health, independent of agreement: two runtimes agreeing on broken training is not a pass."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

MIN_STEPS_FOR_LEARNING = 50
"""A run this long whose loss does not fall is broken; a shorter one (20 Adam steps at 1e-3, 20 SGD steps at 0.01)
may just be slow: it gets a note, not the ``unhealthy`` verdict."""
EXPLODING_FACTOR = 100.0
EXPLODING_ABSOLUTE = 1e3
CHANCE_FACTOR = 1.5
NON_FINITE_WEIGHTS = "weights are NaN or Inf after training"


@dataclasses.dataclass(frozen=True)
class Health:
    """Flags of one trajectory (empty: healthy)."""

    runner: str
    flags: tuple[str, ...]
    details: tuple[str, ...]
    notes: tuple[str, ...] = ()
    """Observations that are not a defect (a short run whose loss barely moved)."""

    @property
    def healthy(self) -> bool:
        return not self.flags

    def to_json(self) -> dict[str, Any]:
        return {"runner": self.runner, "healthy": self.healthy, "flags": list(self.flags),
                "details": list(self.details), "notes": list(self.notes)}


def assess_health(
    runner: str,
    losses: np.ndarray,
    initial: Mapping[str, np.ndarray],
    final: Mapping[str, np.ndarray] | None,
    weight_names: Sequence[str],
    loss_arguments: str | None = None,
    accuracy: float | None = None,
    num_classes: int | None = None,
) -> Health:
    """Flags NaN/Inf, exploding weights, a loss that does not fall, and swapped loss arguments.

    Args:
        losses: Loss per step.
        initial, final: Weights before and after training (final None when the model has no save signature).
        weight_names: The model's float weights (not optimizer state).
        loss_arguments: Result of :func:`loss_argument_check` ("swapped:..." flags it).
        accuracy, num_classes: Held-out accuracy after training of a multiclass model; near chance it has not
            learned, even if the loss fell at first (e.g. every ReLU died after a too-large step).
    """
    flags: list[str] = []
    details: list[str] = []
    if not np.all(np.isfinite(losses)):
        first = int(np.flatnonzero(~np.isfinite(losses))[0]) + 1
        flags.append("non-finite")
        details.append(f"the loss became NaN or Inf at step {first}")
    if final is not None and weight_names:
        start = max(float(np.max(np.abs(initial[n]))) for n in weight_names)
        values = [np.asarray(final[n], np.float64) for n in weight_names]
        if not all(np.all(np.isfinite(v)) for v in values):
            if "non-finite" not in flags:
                flags.append("non-finite")
            details.append(NON_FINITE_WEIGHTS)
        else:
            end = max(float(np.max(np.abs(v))) for v in values)
            if end > EXPLODING_ABSOLUTE and end > EXPLODING_FACTOR * max(start, 1e-6):
                flags.append("exploding-weights")
                details.append(f"the largest weight grew from {start:.3g} to {end:.3g}")
    notes: list[str] = []
    finite = losses[np.isfinite(losses)]
    if len(losses) >= 2 and len(finite) == len(losses):
        k = max(len(losses) // 5, 1)
        first, last = float(np.mean(losses[:k])), float(np.mean(losses[-k:]))
        if not last < first - 0.01 * abs(first):
            if len(losses) >= MIN_STEPS_FOR_LEARNING:
                flags.append("not-learning")
                details.append(f"the loss did not fall: mean {first:.4g} over the first {k} steps, {last:.4g} over "
                               f"the last {k}")
            else:
                notes.append(f"the loss barely moved in {len(losses)} steps ({first:.4g} -> {last:.4g}); run longer "
                             f"(at least {MIN_STEPS_FOR_LEARNING} steps) or raise the learning rate to judge learning")
    chance = 1.0 / num_classes if num_classes else None
    if (len(losses) >= MIN_STEPS_FOR_LEARNING and chance is not None and accuracy is not None
            and accuracy <= CHANCE_FACTOR * chance and "not-learning" not in flags and "non-finite" not in flags
            and _flat_second_half(losses)):
        flags.append("not-learning")
        details.append(f"held-out accuracy after training is {accuracy:.1%}, about chance for {num_classes} "
                       "classes, and the loss stopped falling")
    if loss_arguments and loss_arguments.startswith("swapped:"):
        flags.append("swapped-loss-arguments")
        details.append(f"the train loss at step 1 equals {loss_arguments.split(':', 1)[1]} with the prediction and "
                       "the labels swapped (loss(prediction, y) instead of loss(y, prediction))")
    return Health(runner, tuple(flags), tuple(details), tuple(notes))


def _flat_second_half(losses: np.ndarray) -> bool:
    """True when the loss over the last fifth is not 1% below the loss around the middle (stuck, not slow)."""
    n = len(losses)
    middle = float(np.mean(losses[int(0.4 * n): max(int(0.6 * n), int(0.4 * n) + 1)]))
    last = float(np.mean(losses[-max(n // 5, 1):]))
    return not last < middle - 0.01 * abs(middle)


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Log-probabilities of logits ``z`` over the last axis (shifted by the maximum, so no overflow)."""
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def cross_entropy_probs(target: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per-sample categorical cross-entropy of probabilities ``probs`` against one-hot ``target``, as Keras."""
    # Keras: normalize, clip to [eps, 1 - eps], then -sum(target * log(p)).
    p = probs / probs.sum(axis=-1, keepdims=True)
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return -(target * np.log(p)).sum(axis=-1)


def loss_argument_check(step1_loss: float, outputs: Mapping[str, np.ndarray], y: np.ndarray) -> str | None:
    """Which standard loss the step-1 train loss equals: ``"standard:NAME"``, ``"swapped:NAME"`` or None.

    ``outputs`` are the infer outputs of the initial weights on the first batch; ``y`` its labels. Cross-entropy
    is not symmetric in its arguments, so ``loss(prediction, y)`` gives a value that matches the swapped formula.
    """
    if not np.isfinite(step1_loss):
        return None
    y = np.asarray(y, np.float64)
    candidates: list[tuple[str, str, float]] = []
    for out_name, out in outputs.items():
        o = np.asarray(out, np.float64)
        if o.ndim != 2 or o.shape[0] != y.shape[0]:
            continue
        if y.ndim == 1 and o.shape[1] > 1:  # class indices
            onehot = np.eye(o.shape[1])[y.astype(int)]
        elif y.shape == o.shape and o.shape[1] > 1:
            onehot = y
        else:
            continue
        candidates += [
            ("standard", f"cross-entropy from logits ({out_name})", float(np.mean(-(onehot * log_softmax(o)).sum(-1)))),
            ("swapped", f"cross-entropy from logits ({out_name})", float(np.mean(-(o * log_softmax(onehot)).sum(-1)))),
        ]
        if np.all(o >= 0):
            candidates += [
                ("standard", f"cross-entropy from probabilities ({out_name})", float(np.mean(cross_entropy_probs(onehot, o)))),
                ("swapped", f"cross-entropy from probabilities ({out_name})", float(np.mean(cross_entropy_probs(o, onehot)))),
            ]
    for kind in ("standard", "swapped"):
        for k, name, value in candidates:
            if k == kind and abs(value - step1_loss) <= 1e-4 * max(1.0, abs(step1_loss)):
                return f"{kind}:{name}"
    return None
