"""Held-out evaluation of a global model, and the centralized reference (TensorFlow on the pooled shards)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from litetrain.config import Loss, LossConfig
from litetrain.data.fit import FittedData, TaskKind
from litetrain.errors import DataError
from litetrain.runtime.base import Runner


def heldout_loss(outputs: np.ndarray, data: FittedData, loss: LossConfig) -> float:
    """The model's loss on the held-out data, from its ``infer`` outputs (numpy, so both runtimes share it).

    Cross-entropy is computed as Keras computes it (:mod:`litetrain.comparison.health`'s formulas).

    Raises:
        DataError: a cross-entropy loss on data that has no class labels (not fitted as a multiclass task).
    """
    from litetrain.comparison.health import cross_entropy_probs, log_softmax

    out = np.asarray(outputs, np.float64)
    eps = 1e-7
    if loss.name in (Loss.SPARSE_CATEGORICAL_CROSSENTROPY, Loss.CATEGORICAL_CROSSENTROPY):
        if data.test_labels is None or data.task is not TaskKind.MULTICLASS:
            raise DataError(
                f"The loss {loss.name.value} needs class labels, but the held-out data was fitted as a "
                f"{data.task.value} task.",
                hint="Use labels that are class indices or one-hot rows, one output per class.",
            )
        labels = data.test_labels.astype(np.int64)
        if loss.from_logits:
            return float(-np.mean(log_softmax(out)[np.arange(len(labels)), labels]))
        return float(np.mean(cross_entropy_probs(np.eye(out.shape[-1])[labels], out)))
    target = np.asarray(data.y_test, np.float64).reshape(out.shape)
    if loss.name is Loss.BINARY_CROSSENTROPY:
        p = 1.0 / (1.0 + np.exp(-out)) if loss.from_logits else out
        p = np.clip(p, eps, 1 - eps)
        return float(-np.mean(target * np.log(p) + (1 - target) * np.log(1 - p)))
    if loss.name is Loss.MAE:
        return float(np.mean(np.abs(out - target)))
    return float(np.mean((out - target) ** 2))


class Evaluator:
    """Server-side evaluation of a global model with a runtime's ``infer`` on the held-out data."""

    def __init__(self, runner: Runner, weight_names: tuple[str, ...], data: FittedData, loss: LossConfig):
        self.runner = runner
        names = set(weight_names)
        self.state = {k: v for k, v in runner.get_weights().items() if k not in names}
        self.data = data
        self.loss = loss

    def __call__(self, weights: dict[str, np.ndarray]) -> tuple[dict[str, Any], np.ndarray]:
        self.runner.set_weights({**self.state, **weights})
        out = self.runner.infer(self.data.x_test)[self.runner.primary_output]
        finite = bool(np.all(np.isfinite(out)))
        acc = self.data.accuracy(out, self.loss.from_logits) if finite else None
        loss = heldout_loss(out, self.data, self.loss) if finite else float("nan")
        return {"accuracy": acc, "loss": loss}, out


def class_labels(data: FittedData) -> np.ndarray | None:
    """Class indices of the fitted training labels (what label-skewed partitions deal), or None if not classes."""
    if data.task is not TaskKind.MULTICLASS:
        return None
    y = np.asarray(data.y)
    return (np.argmax(y, axis=-1) if y.ndim > 1 else y).astype(np.int64)


def train_centralized(
    runner: Runner, evaluator: Evaluator, initial: dict[str, np.ndarray], data: FittedData, pooled: np.ndarray,
    batch: int, rounds: int, epochs: int, seed: int,
) -> dict[str, Any]:
    """TensorFlow trained on the pooled shards for rounds x local epochs, evaluated at every round's worth."""
    from litetrain.data.batching import plan_batches

    runner.set_weights({**evaluator.state, **initial})
    plan = plan_batches(len(pooled), batch, epochs=rounds * epochs, seed=seed)
    per_round = plan.steps_per_epoch * epochs
    accuracy, loss = [], []
    start = time.perf_counter()
    for i, rows in enumerate(plan.indices):
        idx = pooled[rows]
        runner.train_step(data.x[idx], data.y[idx])
        if (i + 1) % per_round == 0:
            ev, _ = evaluator(runner.get_weights())
            accuracy.append(ev["accuracy"])
            loss.append(ev["loss"])
    return {"accuracy": accuracy[-1], "loss": loss[-1], "accuracy_by_round": accuracy, "loss_by_round": loss,
            "epochs": rounds * epochs, "steps": plan.steps, "samples": int(len(pooled)),
            "seconds": time.perf_counter() - start}


def row_order_is_noop(runner: Runner, x: np.ndarray, y: np.ndarray) -> bool:
    """Whether one train step on a batch and on the same batch with its rows reversed give the same update, up to
    float32 rounding (not so when the step draws dropout masks or noise by position in the batch).

    The runner is left at the weights it had.
    """
    from litetrain.comparison.divergence import weight_distance
    from litetrain.comparison.locate import UPDATE_MISMATCH

    start = runner.get_weights()
    after = []
    for rows in (slice(None), slice(None, None, -1)):
        runner.set_weights(start)
        runner.train_step(x[rows], y[rows])
        after.append(runner.get_weights())
    runner.set_weights(start)
    names = [n for n, v in start.items() if np.issubdtype(np.asarray(v).dtype, np.floating)]
    update = weight_distance(after[0], start, names)
    differ = weight_distance(after[0], after[1], names)
    return bool(differ <= UPDATE_MISMATCH * update) if update > 0 else differ == 0


__all__ = ["Evaluator", "class_labels", "heldout_loss", "row_order_is_noop", "train_centralized"]
