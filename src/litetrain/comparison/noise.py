"""The float32 noise floor: how far a runtime drifts from itself under changes that alter nothing mathematically.

Each perturbation re-runs one twin with the same initial weights and batches but another summation order, kernel
path, thread count, or a last-bit change of the initial weights. The largest distance any of them produces at a
step is the floor against which the TensorFlow-vs-TFLite difference at that step is judged. All TFLite
perturbations reuse the one converted model: nothing is converted twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import numpy as np

from litetrain.runtime.base import Runner, TensorInfo

REFERENCE_SIDE, CANDIDATE_SIDE = "reference", "candidate"


@dataclasses.dataclass(frozen=True)
class Perturbation:
    """A way to re-run one twin that changes nothing mathematically.

    Attributes:
        name: Short id, e.g. ``tflite:reference-kernels``.
        side: Which twin it perturbs (its distance is measured against that twin's own run).
        description: One line for reports.
        runner: Makes the runner to train (may be the twin's own runner, reset to the initial weights).
        initial: Turns the shared initial weights into this run's initial weights (None: unchanged).
    """

    name: str
    side: str
    description: str
    runner: Callable[[], Runner]
    initial: Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]] | None = None


class ReversedRowsRunner(Runner):
    """Runs ``inner`` with the rows of every batch reversed.

    The loss is a mean over the batch, so the result is mathematically identical; only the order in which
    per-sample contributions are summed changes (gradients, reductions), which is what float32 is sensitive to.
    """

    def __init__(self, inner: Runner) -> None:
        super().__init__()
        self.inner = inner
        self.name = f"{inner.name}:reversed-rows"
        self.train_inputs = inner.train_inputs
        self.count_input = inner.count_input
        self.infer_input = inner.infer_input
        self.infer_outputs = inner.infer_outputs
        self.weight_infos: Mapping[str, TensorInfo] = inner.weight_infos

    def _train_step_impl(self, x: np.ndarray, y: np.ndarray, n: int) -> float:
        return self.inner.train_step(x[:n][::-1], y[:n][::-1])  # the real rows; inner pads them again

    def _infer_impl(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return self.inner.infer(x)

    def _get_weights_impl(self) -> dict[str, np.ndarray]:
        return self.inner.get_weights()

    def _set_weights_impl(self, weights: Mapping[str, np.ndarray]) -> None:
        self.inner.set_weights(weights)


def last_bit_perturbation(
    weight_names: set[str], seed: int = 12345
) -> Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]:
    """Moves every float weight by one unit in the last place, up or down at random (optimizer state untouched)."""

    def apply(weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        out = {}
        for name, value in weights.items():
            if name in weight_names and np.issubdtype(value.dtype, np.floating):
                direction = np.where(rng.random(value.shape) < 0.5, -np.inf, np.inf).astype(value.dtype)
                out[name] = np.nextafter(value, direction).astype(value.dtype)
            else:
                out[name] = value
        return out

    return apply


def standard_perturbations(
    reference: Runner,
    candidate_factory: Callable[..., Runner] | None,
    weight_names: set[str],
    *,
    row_order_is_noop: bool = True,
) -> list[Perturbation]:
    """The default set: two TensorFlow perturbations and, for a TFLite candidate, three kernel-path perturbations.

    The order is the order they run in, the cheapest of each side first: the noise floor stops once more runs could
    not change the verdict (``SETTLE_MARGIN`` in :mod:`litetrain.comparison.session`), and the reference kernels,
    several times slower than XNNPACK on convolutions, come last.

    Args:
        reference: The TensorFlow twin's runner (reused: it is reset to the initial weights for each run).
        candidate_factory: ``f(kernels=..., num_threads=...) -> Runner`` making fresh interpreters of the same model.
        weight_names: Names of the model weights (not optimizer state), for the last-bit perturbation.
        row_order_is_noop: False for a train step that draws dropout masks or noise by position in the batch:
            reversing the rows then trains another (equally valid) model, not the same one in another summation
            order, so that perturbation is left out.
    """
    perturbations = [
        Perturbation("tensorflow:last-bit-init", REFERENCE_SIDE,
                     "TensorFlow from initial weights moved by one unit in the last place",
                     lambda: reference, last_bit_perturbation(weight_names)),
    ]
    if row_order_is_noop:
        perturbations.insert(0, Perturbation(
            "tensorflow:summation-order", REFERENCE_SIDE,
            "TensorFlow with the rows of every batch reversed (same mean, other summation order)",
            lambda: ReversedRowsRunner(reference)))
    if candidate_factory is not None:
        from litetrain.runtime.litert import Kernels

        perturbations += [
            Perturbation("tflite:no-default-delegate", CANDIDATE_SIDE,
                         "LiteRT's optimized builtin kernels without the default XNNPACK delegate",
                         lambda: candidate_factory(kernels=Kernels.NO_DELEGATE)),
            Perturbation("tflite:1-thread", CANDIDATE_SIDE, "LiteRT (XNNPACK) on 1 thread",
                         lambda: candidate_factory(num_threads=1)),
            Perturbation("tflite:reference-kernels", CANDIDATE_SIDE,
                         "LiteRT with its builtin reference kernels instead of XNNPACK",
                         lambda: candidate_factory(kernels=Kernels.REFERENCE)),
        ]
    return perturbations
