"""Partial batches: a train step on the first ``n`` rows of a fixed-size batch, as TensorFlow trains those rows alone.

The train signature has a fixed batch dimension (a dynamic one adds Flex ops, FACTS.md), so a batch with fewer
samples (the end of an epoch, a device with 5 photos) is padded to the fixed size and the count ``n`` says how many
rows are real. Padded rows must change nothing, so while the step is traced :func:`real_rows`:

- weights the loss per sample with ``B / n`` for a real row and 0 for padding: Keras's ``sum_over_batch_size``
  divides the weighted sum by the batch size ``B``, so the loss is the mean over the real rows, its gradient that of
  the smaller batch (a full batch weighs each row by exactly 1.0: nothing changes);
- routes every BatchNormalization's batch moments (Keras 3 ``_moments``, tf_keras ``_calculate_mean_and_var``)
  through moments over the real rows only, so normalization and the moving-statistics update see the small batch.

Dropout masks depend on the element index only (:mod:`litetrain.trainable.randomness`), so the real rows of a
partial batch draw the masks of the first ``n`` rows of a full one. Layers that mix rows other than
BatchNormalization (an activity regularizer, a custom layer) are not masked.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

from litetrain._lazy import import_module

tf = import_module("tensorflow")

COUNT = "n"
"""The train signature's input of the number of real rows, int32 of shape ``[1]``."""


def count_spec() -> Any:
    """The ``n`` input of the train signature: ``[1]`` int32 (no 0-d inputs, no int64: portable to every runtime)."""
    return tf.TensorSpec((1,), tf.int32, name=COUNT)


class RealRows:
    """The real rows of one traced train step: ``n`` clipped to ``[1, batch_size]``."""

    def __init__(self, n: Any, batch_size: int) -> None:
        self.batch_size = int(batch_size)
        self.n = tf.clip_by_value(tf.reshape(tf.cast(n, tf.int32), []), 1, self.batch_size)
        self.real = tf.range(self.batch_size, dtype=tf.int32) < self.n

    def loss_weights(self, dtype: Any, output_rank: int = 2) -> Any:
        """``B / n`` for each real row, 0 for padding (see the module docstring), shaped ``[B, 1, ...]`` to broadcast
        over a loss's per-element values: they have one dimension less than an output of ``output_rank`` (a per-pixel
        loss of a [B, H, W, C] output is [B, H, W]; Keras only reconciles ranks that differ by one)."""
        scale = tf.cast(self.batch_size, dtype) / tf.cast(self.n, dtype)
        weights = tf.where(self.real, scale, tf.zeros([], dtype))
        return tf.reshape(weights, [self.batch_size] + [1] * max(output_rank - 2, 0))

    def moments(self, x: Any, axes: Any, keepdims: bool) -> tuple[Any, Any]:
        """``tf.nn.moments`` over the real rows of ``x`` (``axes`` must include the batch axis 0)."""
        axes = sorted(int(a) % x.shape.rank for a in axes)
        # 1.0 for a real row, 0.0 for padding, shaped [B, 1, ...]: a broadcasting MUL, which XNNPACK runs. (Selecting
        # with a mask broadcast to x's shape put BROADCAST_TO and SELECT_V2 on TFLite's reference kernels: over a
        # third of MobileNetV2's train step.) Padding repeats real rows, so it is finite and times 0.0 is 0.0.
        weight = tf.reshape(tf.cast(self.real, x.dtype), [self.batch_size] + [1] * (x.shape.rank - 1))
        count = tf.cast(self.n, x.dtype) * math.prod(int(x.shape[a]) for a in axes if a != 0)
        mean = tf.reduce_sum(x * weight, axes, keepdims=True) / count
        squares = tf.math.squared_difference(x, tf.stop_gradient(mean))  # as tf.nn.moments
        variance = tf.reduce_sum(squares * weight, axes, keepdims=True) / count
        if not keepdims:
            mean, variance = tf.squeeze(mean, axes), tf.squeeze(variance, axes)
        return mean, variance

    def reduces_batch(self, x: Any, axes: Any) -> bool:
        return x.shape.rank is not None and x.shape[0] == self.batch_size and 0 in [int(a) % x.shape.rank for a in axes]


@contextlib.contextmanager
def real_rows(n: Any, batch_size: int, keras3: bool = True) -> Iterator[RealRows]:
    """While tracing a train step, BatchNormalization's batch moments cover only the first ``n`` rows.

    Args:
        n: int32 tensor of shape ``[1]``, the number of real rows.
        batch_size: The fixed batch size of the step.
        keras3: Patch Keras 3's BatchNormalization (True) or tf_keras's (False).

    Yields:
        The step's :class:`RealRows` (its ``loss_weights`` weigh the loss).
    """
    rows = RealRows(n, batch_size)
    owner, name = _batch_norm_moments(keras3)
    original = owner.__dict__[name]
    replacement = _keras3_moments(rows, original) if keras3 else _tf_keras_moments(rows, original)
    setattr(owner, name, replacement)
    try:
        yield rows
    finally:
        setattr(owner, name, original)


def _batch_norm_moments(keras3: bool) -> tuple[Any, str]:
    if keras3:
        return import_module("keras.src.layers.normalization.batch_normalization").BatchNormalization, "_moments"
    module = import_module("tf_keras.src.layers.normalization.batch_normalization")
    return module.BatchNormalizationBase, "_calculate_mean_and_var"


def _keras3_moments(rows: RealRows, original: Any) -> Any:
    def moments(layer: Any, inputs: Any, mask: Any) -> tuple[Any, Any]:
        axes = layer._reduction_axes
        if getattr(layer, "synchronized", False) or not rows.reduces_batch(inputs, axes):
            return original(layer, inputs, mask)
        if mask is not None:  # a Keras mask (one dimension less than the inputs) also drops the padded rows
            real = tf.reshape(rows.real, [rows.batch_size] + [1] * (mask.shape.rank - 1))
            return original(layer, inputs, tf.logical_and(tf.cast(mask, tf.bool), real))
        return rows.moments(inputs, axes, keepdims=False)

    return moments


def _tf_keras_moments(rows: RealRows, original: Any) -> Any:
    def moments(layer: Any, inputs: Any, reduction_axes: Any, keep_dims: bool, mask: Any = None) -> tuple[Any, Any]:
        if getattr(layer, "synchronized", False) or not rows.reduces_batch(inputs, reduction_axes):
            return original(layer, inputs, reduction_axes, keep_dims, mask=mask)
        if mask is not None:
            real = tf.reshape(rows.real, [rows.batch_size] + [1] * (mask.shape.rank - 1))
            return original(layer, inputs, reduction_axes, keep_dims, mask=tf.logical_and(tf.cast(mask, tf.bool), real))
        return rows.moments(inputs, reduction_axes, keep_dims)

    return moments
