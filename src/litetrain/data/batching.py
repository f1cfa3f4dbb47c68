"""Deterministic batch order shared by every twin: same seed, same batches, same order."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from litetrain.config import check_seed
from litetrain.errors import DataError, UsageError


@dataclasses.dataclass(frozen=True)
class BatchPlan:
    """The index of every sample of every step.

    Each epoch is a fresh permutation from ``np.random.default_rng(seed)`` cut into batches of ``batch_size``; the
    last batch of an epoch holds what is left (no sample is dropped), and a dataset smaller than one batch is one
    partial batch per epoch. Runners pad a partial batch to the train signature's fixed batch dimension (a dynamic
    one adds Flex ops, FACTS.md) and its count input ``n`` keeps the padding out of the step
    (:mod:`litetrain.trainable.real_rows`).
    """

    indices: tuple[np.ndarray, ...]  # one int64 array of sample indices per step, batch_size long or shorter
    batch_size: int
    steps_per_epoch: int
    seed: int

    @property
    def steps(self) -> int:
        return len(self.indices)

    @property
    def epochs(self) -> float:
        return self.steps / self.steps_per_epoch


def plan_batches(
    num_samples: int, batch_size: int, *, steps: int | None = None, epochs: int | None = None, seed: int = 0,
    drop_remainder: bool = False,
) -> BatchPlan:
    """Plans ``steps`` steps (or ``epochs`` full epochs) of at most ``batch_size`` samples.

    Args:
        drop_remainder: Full batches only, the last partial batch of every epoch dropped (for a model built
            elsewhere whose fixed-batch train signature has no count input ``n``).

    Raises:
        UsageError: both or neither of steps/epochs, or non-positive values.
        DataError: no samples, or with ``drop_remainder`` fewer samples than one batch.
    """
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1; received {batch_size}.")
    check_seed(seed)
    if (steps is None) == (epochs is None):
        raise UsageError("Give exactly one of steps and epochs.")
    if num_samples < 1:
        raise DataError("The training data has no samples.", hint="Give at least one training sample.")
    if drop_remainder and num_samples < batch_size:
        raise DataError(
            f"The training data has {num_samples} samples, fewer than one batch of {batch_size}, and the model's "
            "train signature has no count input n for a partial batch.",
            hint="Use a smaller --batch-size or more data, or rebuild the model with litetrain build.",
        )
    usable = num_samples - num_samples % batch_size if drop_remainder else num_samples
    steps_per_epoch = math.ceil(usable / batch_size)
    if epochs is not None:
        if epochs < 1:
            raise UsageError(f"--epochs must be at least 1; received {epochs}.")
        steps = epochs * steps_per_epoch
    assert steps is not None
    if steps < 1:
        raise UsageError(f"--steps must be at least 1; received {steps}.")
    rng = np.random.default_rng(seed)
    rows: list[np.ndarray] = []
    for _ in range(math.ceil(steps / steps_per_epoch)):
        order = rng.permutation(num_samples)
        rows += [order[start : start + batch_size] for start in range(0, usable, batch_size)]
    return BatchPlan(tuple(rows[:steps]), batch_size, steps_per_epoch, seed)
