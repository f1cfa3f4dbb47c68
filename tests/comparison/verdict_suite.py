"""A labelled suite of TensorFlow/TFLite pairs: clean conversions that must not be flagged, real defects that must.

Each case builds a reference SavedModel and a candidate .tflite for real (litetrain's builder, or TensorFlow's
converter for float16) and states the verdict ``litetrain compare`` must give. Run as a script to print the
confusion matrix reported in the README::

    python -m tests.comparison.verdict_suite
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from litetrain import Optimizer, OptimizerConfig
from tests import models


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    expected: str
    description: str
    build: Callable[[Path], tuple[str, str]]  # folder -> (reference SavedModel, candidate .tflite)
    steps: int = 100
    data: Any = "digits"
    location: str | None = None  # a fragment of the variable name the verdict's cause must contain
    flags: tuple[str, ...] = ()  # health flags both twins must carry


def _sgd(lr: float, **kw: Any) -> OptimizerConfig:
    return OptimizerConfig(Optimizer.SGD, learning_rate=lr, **kw)


def _adam(lr: float = 0.005, **kw: Any) -> OptimizerConfig:
    return OptimizerConfig(Optimizer.ADAM, learning_rate=lr, **kw)


def _build(folder: Path, factory: Callable[[], Any], seed: int = 0, **kw: Any) -> tuple[str, str]:
    from litetrain.api import build, seed_everything

    seed_everything(seed)
    kw.setdefault("loss", "sparse_categorical_crossentropy")
    kw.setdefault("batch_size", 16)
    build(factory(), output_dir=folder, **kw)
    return str(folder / "saved_model"), str(folder / "model.tflite")


def same_build(factory: Callable[[], Any], **kw: Any) -> Callable[[Path], tuple[str, str]]:
    """A clean pair: the SavedModel and the .tflite of one build."""
    return lambda folder: _build(folder / "ref", factory, **kw)


def candidate_built(factory: Callable[[], Any], ref_kw: dict[str, Any], cand_kw: dict[str, Any],
                    patch: Callable[[], contextlib.AbstractContextManager[None]] | None = None,
                    cand_seed: int = 0) -> Callable[[Path], tuple[str, str]]:
    """A pair whose candidate is built differently (other settings, or a patched gradient rewrite)."""

    def build(folder: Path) -> tuple[str, str]:
        ref_sm, _ = _build(folder / "ref", factory, **ref_kw)
        with patch() if patch else contextlib.nullcontext():
            _, cand = _build(folder / "cand", factory, seed=cand_seed, **cand_kw)
        return ref_sm, cand

    return build


@contextlib.contextmanager
def _rewrite(op_type: str, fn: Callable[..., Any]) -> Iterator[None]:
    from litetrain.trainable import gradients

    saved = gradients._REWRITE_FNS[op_type]
    gradients._REWRITE_FNS[op_type] = fn
    try:
        yield
    finally:
        gradients._REWRITE_FNS[op_type] = saved


def _wrong_relu_grad(op: Any, dy: Any) -> Any:
    import tensorflow as tf

    # Defect: >= instead of >: the gradient leaks through every unit whose ReLU output is 0.
    return tf.where(op.outputs[0] >= 0, dy, tf.zeros_like(dy))


def _maxpool_as_average(op: Any, dy: Any) -> Any:
    from litetrain.trainable import gradients

    # Defect: a max-pool gradient spread over the window like average pooling.
    return gradients._avg_pool_grad(op, dy)


def float16_candidate(factory: Callable[[], Any], **kw: Any) -> Callable[[Path], tuple[str, str]]:
    """The reference's SavedModel converted with float16 storage (initial weights rounded to float16)."""

    def build(folder: Path) -> tuple[str, str]:
        import tensorflow as tf

        ref_sm, _ = _build(folder / "ref", factory, **kw)
        conv = tf.lite.TFLiteConverter.from_saved_model(ref_sm, signature_keys=["train", "infer", "save", "restore"])
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        conv.experimental_enable_resource_variables = True
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
        path = folder / "fp16.tflite"
        path.write_bytes(conv.convert())
        return ref_sm, str(path)

    return build


def swapped_loss_pair(folder: Path) -> tuple[str, str]:
    """The 2021 tutorial's mistake: a Keras-style loss called as loss(prediction, y), in both models."""
    import tensorflow as tf

    from tests.comparison.test_compare_pair import BATCH, HandWritten, _export

    class Swapped(HandWritten):
        @tf.function(input_signature=[tf.TensorSpec([BATCH, 8, 8], tf.float32), tf.TensorSpec([BATCH], tf.int32)])
        def train(self, x, y):
            with tf.GradientTape() as tape:
                logits = self._logits(x)
                onehot = tf.one_hot(y, 10)
                loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=logits, logits=onehot))
            variables = list(self._vars().values())
            for v, g in zip(variables, tape.gradient(loss, variables), strict=True):
                v.assign_sub(0.05 * g)
            return {"loss": loss}

    return _export(Swapped(), folder)


def _transfer() -> Any:
    import keras

    return keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(16, 3, activation="relu", name="base_conv"),
        keras.layers.Flatten(name="base_flatten"), keras.layers.Dense(10, name="head")])


def _depthwise() -> Any:
    import keras

    return keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 1), keras.layers.DepthwiseConv2D(3, padding="same",
                                                                                       activation="relu"),
        keras.layers.AveragePooling2D(2), keras.layers.Flatten(), keras.layers.Dense(10)])


CLEAN, SENSITIVE, DRIFT, INCONSISTENT, UNHEALTHY = (
    "consistent", "consistent-sensitive", "drift", "inconsistent", "unhealthy")

CASES = [
    Case("mlp-sgd", CLEAN, "MLP, SGD, stable", same_build(models.mlp, optimizer=_sgd(0.1))),
    Case("mlp-adam", CLEAN, "MLP, Adam", same_build(models.mlp, optimizer=_adam())),
    Case("cnn-momentum", CLEAN, "Conv2D + MaxPool, SGD with Nesterov momentum",
         same_build(models.small_cnn, optimizer=_sgd(0.05, momentum=0.9, nesterov=True))),
    Case("transfer-head", CLEAN, "frozen conv base, trainable head (--trainable last:1)",
         same_build(_transfer, optimizer=_sgd(0.1), trainable="last:1")),
    Case("depthwise-adam", CLEAN, "DepthwiseConv2D + AveragePooling, Adam", same_build(_depthwise, optimizer=_adam())),
    Case("tf-keras-rmsprop", CLEAN, "tf_keras MLP, RMSprop", same_build(models.tf_keras_mlp,
                                                                       optimizer=OptimizerConfig(Optimizer.RMSPROP,
                                                                                                 learning_rate=0.002))),
    Case("unstable-sgd", SENSITIVE, "MLP, SGD at learning rate 1.0: chaotic but learning",
         same_build(lambda: models.mlp(hidden=32), optimizer=_sgd(1.0)), steps=200),
    Case("wrong-learning-rate", INCONSISTENT, "candidate built with learning rate 0.065 instead of 0.05",
         candidate_built(models.mlp, {"optimizer": _sgd(0.05)}, {"optimizer": _sgd(0.065)}),
         location="learning_rate"),
    Case("adam-beta1", INCONSISTENT, "candidate's Adam with beta_1 0.5 instead of 0.9 (identical first step)",
         candidate_built(models.mlp, {"optimizer": _adam()}, {"optimizer": _adam(beta_1=0.5)})),
    Case("broken-relu-gradient", INCONSISTENT, "candidate's ReLU gradient rewrite uses >= instead of >",
         candidate_built(models.mlp, {"optimizer": _sgd(0.1)}, {"optimizer": _sgd(0.1)},
                         patch=lambda: _rewrite("Relu", _wrong_relu_grad)), location="hidden"),
    Case("broken-maxpool-gradient", INCONSISTENT, "candidate's max-pool gradient spread like an average",
         candidate_built(models.small_cnn, {"optimizer": _sgd(0.05)}, {"optimizer": _sgd(0.05)},
                         patch=lambda: _rewrite("MaxPool", _maxpool_as_average)), location="conv"),
    Case("reinitialized", INCONSISTENT, "candidate with other initial weights (another seed)",
         candidate_built(models.mlp, {"optimizer": _sgd(0.1)}, {"optimizer": _sgd(0.1)}, cand_seed=7)),
    Case("float16-storage", DRIFT, "candidate converted with float16 storage (initial weights rounded)",
         float16_candidate(models.mlp, optimizer=_sgd(0.1))),
    Case("dead-relu", UNHEALTHY, "SGD at learning rate 2.0 kills every ReLU: both stay at chance",
         same_build(lambda: models.mlp(hidden=32), optimizer=_sgd(2.0)), steps=200),
    Case("diverging-regression", UNHEALTHY, "regression, SGD at learning rate 3: weights explode to Inf/NaN",
         same_build(lambda: models.dense_model(6, 1), loss="mse", optimizer=_sgd(3.0), batch_size=8),
         data=models.regression_data(), steps=60),
    Case("swapped-loss", UNHEALTHY, "loss(prediction, y) instead of loss(y, prediction), in both models",
         swapped_loss_pair, flags=("swapped-loss-arguments",)),
]


def run_case(case: Case, folder: Path) -> Any:
    """Builds the pair and compares it; returns the result."""
    import litetrain

    ref, cand = case.build(folder)
    return litetrain.compare(ref, cand, case.data, steps=case.steps, fail_on="none")


def main() -> None:
    labels = [CLEAN, SENSITIVE, DRIFT, INCONSISTENT, UNHEALTHY]
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    print(f"{'case':<26} {'expected':<22} {'got':<22} cause")
    for case in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            result = run_case(case, Path(tmp))
        got = result.verdict.value
        matrix[labels.index(case.expected), labels.index(got)] += 1
        print(f"{case.name:<26} {case.expected:<22} {got:<22} {result.cause[:90]}")
    print("\nconfusion matrix (rows: expected, columns: litetrain's verdict)")
    print(" " * 22 + "".join(f"{lab[:12]:>14}" for lab in labels))
    for lab, row in zip(labels, matrix, strict=True):
        print(f"{lab:<22}" + "".join(f"{v:>14}" for v in row))
    errors = int(matrix.sum() - np.trace(matrix))
    print(f"\n{len(CASES)} pairs, {errors} error(s)")


if __name__ == "__main__":
    main()
