"""Training the head on cached bottlenecks: each sample's frozen-base output computed once, as on a phone.

A model built with a frozen base has ``bottleneck(x) -> features`` and ``train_head(features, y) -> loss``
(:mod:`litetrain.trainable.bottleneck`): ``train_head`` is ``train`` from the cut on, with the same variables, so
a session may call it on cached features instead of ``train`` on the inputs and end with the same weights (within
float noise: the two signatures' frozen parts are converted separately). Nothing here imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from litetrain.errors import DataError, SignatureError
from litetrain.runtime.base import Runner
from litetrain.runtime.signatures import signature_call_error

BOTTLENECK, TRAIN_HEAD, INFER_HEAD, FEATURES = "bottleneck", "train_head", "infer_head", "features"


@dataclasses.dataclass
class FeatureCache:
    """The bottleneck signatures of a runner and, once :meth:`fill` ran, the features of every training sample.

    Args:
        runner: The runner whose ``train`` this replaces (its step count and train time keep counting).
        bottleneck: The ``bottleneck`` signature (called with ``x=``), returning ``features``.
        train_head: The ``train_head`` signature, returning ``loss``.
        infer_head: The ``infer_head`` signature, returning the model's outputs.
    """

    runner: Runner
    bottleneck: Callable[..., dict[str, np.ndarray]]
    train_head: Callable[..., dict[str, np.ndarray]]
    infer_head: Callable[..., dict[str, np.ndarray]]
    features: np.ndarray | None = None
    test_features: np.ndarray | None = None
    seconds: float = 0.0
    """Time spent computing the features."""

    @classmethod
    def open(cls, runner: Runner) -> tuple[FeatureCache | None, str]:
        """The runner's cache, or None and why there is none."""
        signature = getattr(runner, "signature", None)
        if not callable(signature):
            return None, f"the {runner.name} runner calls only train/infer/save/restore (train in-process)"
        found = [signature(k) for k in (BOTTLENECK, TRAIN_HEAD, INFER_HEAD)]
        if any(f is None for f in found):
            return None, "the model has no bottleneck/train_head/infer_head signatures (see build.json " \
                "bottleneck.reason)"
        return cls(runner, *found), "on"

    @property
    def nbytes(self) -> int:
        return sum(0 if f is None else int(f.nbytes) for f in (self.features, self.test_features))

    def fill(self, x: np.ndarray, x_test: np.ndarray | None = None) -> None:
        """Computes the features of every training sample (and of every held-out one in ``x_test``)."""
        start = time.perf_counter()
        xi = self.runner.train_inputs[0]

        def bottleneck(part: np.ndarray) -> dict[str, np.ndarray]:
            return self._call(self.bottleneck, BOTTLENECK, **xi.tensors(xi.check(part, "bottleneck")))

        self.features = _batched(bottleneck, x, int(xi.shape[0]))[FEATURES]
        if x_test is not None and len(x_test):
            self.test_features = _batched(bottleneck, x_test, int(xi.shape[0]))[FEATURES]
        self.seconds += time.perf_counter() - start

    def infer_test(self) -> dict[str, np.ndarray]:
        """The model's outputs on the held-out samples given to :meth:`fill`, from their cached features."""
        assert self.test_features is not None, "fill() with x_test first"
        batch = int(self.runner.train_inputs[0].shape[0])
        return _batched(lambda f: self._call(self.infer_head, INFER_HEAD, **{FEATURES: f}), self.test_features,
                        batch)

    def train_step(self, idx: np.ndarray, y: np.ndarray) -> float:
        """One ``train_head`` step on the cached features of samples ``idx`` with targets ``y``; counted as a train
        step of the runner (its ``train_calls`` and ``train_seconds``), which it is."""
        assert self.features is not None, "fill() first"
        yi = self.runner.train_inputs[1]
        batch, n = int(yi.shape[0]), len(idx)
        # A model whose train takes the count n of real rows has it in train_head too: pad as the runner pads.
        count = getattr(self.runner, "count_feed", lambda n: {})(n)
        if n < batch:
            if not count:
                raise DataError(f"train_head takes exactly {batch} samples and has no count input 'n' to mark "
                                f"padding; received {n}.", hint="Rebuild the model with litetrain build.")
            rows = np.arange(batch) % n
            idx, y = np.asarray(idx)[rows], np.asarray(y)[rows]
        y = yi.check(y, "train_head")
        features = self.features[idx]
        start = time.perf_counter()
        loss = float(self._call(self.train_head, TRAIN_HEAD, **{FEATURES: features}, **yi.tensors(y),
                                **count)["loss"])
        self.runner.train_seconds += time.perf_counter() - start
        self.runner.train_calls += 1
        return loss

    @staticmethod
    def _call(fn: Callable[..., dict[str, np.ndarray]], key: str, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        try:
            return fn(**inputs)
        except (RuntimeError, ValueError) as exc:
            raise signature_call_error("LiteRT", key, exc) from exc


def _batched(fn: Callable[[np.ndarray], dict[str, np.ndarray]], x: np.ndarray, batch: int) -> dict[str, np.ndarray]:
    """``fn`` over ``x`` a fixed batch at a time (the last batch padded with its last row, then cut), joined."""
    chunks: list[dict[str, np.ndarray]] = []
    for i in range(0, len(x), batch):
        part = x[i:i + batch]
        n = len(part)
        if n < batch:
            part = np.concatenate([part, np.repeat(part[-1:], batch - n, axis=0)])
        chunks.append({k: np.array(v[:n]) for k, v in fn(part).items()})
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def verify_cached_training(model: bytes, x: np.ndarray, y: np.ndarray, steps: int) -> dict[str, Any]:
    """Trains ``steps`` batches of ``(x, y)`` with ``train`` and, from the same start, with ``bottleneck`` +
    ``train_head`` on the .tflite ``model``; returns the largest loss and weight differences.

    Args:
        model: A flatbuffer with the bottleneck signatures.
        x, y: At least one train batch of inputs and targets; steps cycle over its whole batches.
        steps: Train steps on each path.
    """
    from litetrain.runtime.litert import LiteRTRunner

    plain, cached = LiteRTRunner(model, name="train"), LiteRTRunner(model, name="train_head")
    cache, why = FeatureCache.open(cached)
    if cache is None:
        raise SignatureError(f"Cannot verify feature caching: {why}.")
    batch = int(plain.train_inputs[0].shape[0])
    batches = max(1, len(x) // batch)
    cache.fill(x[:batches * batch])
    loss_diff = 0.0
    for step in range(steps):
        idx = np.arange(step % batches * batch, (step % batches + 1) * batch)
        a, b = plain.train_step(x[idx], y[idx]), cache.train_step(idx, y[idx])
        loss_diff = max(loss_diff, abs(a - b))
    wa, wb = plain.get_weights(), cached.get_weights()
    weight_diff = max(float(np.max(np.abs(wa[k].astype(np.float64) - wb[k]))) if wa[k].size else 0.0 for k in wa)
    scale = max(float(np.max(np.abs(v))) if v.size and v.dtype.kind == "f" else 0.0 for v in wa.values())
    return {"steps": steps, "max_loss_difference": loss_diff, "max_weight_difference": weight_diff,
            "weight_scale": scale}
