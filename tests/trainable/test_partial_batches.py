"""A batch with fewer samples than the train signature's fixed size trains as TensorFlow trains those samples alone.

The TFLite model is built for batch 8 and given 5 samples (padded, with ``n = 5``); the reference is TensorFlow on the
5 samples unpadded: Keras ``train_on_batch`` for a Dense+BatchNormalization model (Keras 3 and tf_keras), and the
same train step built for a fixed batch of 5 for a model with Dropout (whose hashed masks depend on the element
index only, so the real rows draw the masks of a full batch's first rows).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tf_keras

import litetrain
from litetrain import Optimizer, OptimizerConfig
from litetrain.errors import DataError
from litetrain.runtime.litert import LiteRTRunner
from litetrain.runtime.tensorflow import TensorflowModuleRunner

BATCH, REAL, STEPS, LR = 8, 5, 3, 0.1
SGD = OptimizerConfig(Optimizer.SGD, learning_rate=LR)
ATOL = 2e-6


def bn_dropout_mlp():
    keras.utils.set_random_seed(7)
    return keras.Sequential([
        keras.Input((6,)), keras.layers.Dense(8, name="hidden"), keras.layers.BatchNormalization(name="bn"),
        keras.layers.Dropout(0.3, name="drop"), keras.layers.Dense(3, name="out"),
    ])


def _bn_mlp(framework):
    framework.utils.set_random_seed(9)
    layers = framework.layers
    return framework.Sequential([
        framework.Input((6,)), layers.Dense(8, name="hidden"), layers.BatchNormalization(name="bn", momentum=0.5),
        layers.Dense(3, name="out"),
    ])


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 6)).astype(np.float32) * 2 + 1, rng.integers(0, 3, n).astype(np.int32)


def _build(model, batch_size: int):
    return litetrain.build(model, loss="sparse_categorical_crossentropy", optimizer=SGD, batch_size=batch_size)


def _max_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    assert a.keys() == b.keys()
    return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) for k in a if a[k].dtype.kind == "f")


@pytest.mark.parametrize("framework", [keras, tf_keras], ids=["keras3", "tf_keras"])
def test_partial_batches_match_keras_train_on_batch_of_the_real_samples(framework) -> None:
    built = _build(_bn_mlp(framework), BATCH)
    lite, padded_tf = LiteRTRunner(built.tflite), TensorflowModuleRunner(built.module)
    padded_tf.set_weights(lite.get_weights())
    reference = _bn_mlp(framework)
    reference.compile(optimizer=framework.optimizers.SGD(LR),
                      loss=framework.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _data(REAL * STEPS)
    for step in range(STEPS):
        rows = slice(step * REAL, (step + 1) * REAL)
        want = float(np.ravel(reference.train_on_batch(x[rows], y[rows]))[0])
        assert lite.train_step(x[rows], y[rows]) == pytest.approx(want, abs=ATOL)
        assert padded_tf.train_step(x[rows], y[rows]) == pytest.approx(want, abs=ATOL)
    bn = reference.get_layer("bn")
    weights = lite.get_weights()
    moving = {k: v for k, v in weights.items() if k.startswith("bn_moving")}
    assert len(moving) == 2
    np.testing.assert_allclose(moving["bn_moving_mean"], np.asarray(bn.moving_mean), atol=ATOL)
    np.testing.assert_allclose(moving["bn_moving_variance"], np.asarray(bn.moving_variance), atol=ATOL)
    # The gradients, through the update: every trained weight as Keras has it.
    np.testing.assert_allclose(weights["hidden_kernel"], np.asarray(reference.get_layer("hidden").kernel), atol=ATOL)
    np.testing.assert_allclose(weights["out_kernel"], np.asarray(reference.get_layer("out").kernel), atol=ATOL)
    np.testing.assert_allclose(weights["bn_gamma"], np.asarray(bn.gamma), atol=ATOL)
    assert _max_diff(weights, padded_tf.get_weights()) <= ATOL


def test_dropout_model_trains_its_real_rows_as_an_unpadded_batch_would() -> None:
    padded, unpadded = _build(bn_dropout_mlp(), BATCH), _build(bn_dropout_mlp(), REAL)
    lite, reference = LiteRTRunner(padded.tflite), TensorflowModuleRunner(unpadded.module)
    twin = TensorflowModuleRunner(padded.module)  # the comparison's TensorFlow twin: padded as TFLite is
    start = lite.get_weights()
    reference.set_weights(start)
    twin.set_weights(start)
    x, y = _data(REAL * STEPS, seed=1)
    losses = []
    for step in range(STEPS):
        rows = slice(step * REAL, (step + 1) * REAL)
        losses.append([r.train_step(x[rows], y[rows]) for r in (lite, reference, twin)])
    losses = np.array(losses)
    np.testing.assert_allclose(losses[:, 0], losses[:, 1], rtol=0, atol=ATOL)
    np.testing.assert_allclose(losses[:, 2], losses[:, 1], rtol=0, atol=ATOL)
    assert len(set(losses[:, 1])) == STEPS  # the steps trained on other samples with other masks
    assert _max_diff(lite.get_weights(), reference.get_weights()) <= ATOL
    assert _max_diff(twin.get_weights(), reference.get_weights()) <= ATOL
    # A full batch after partial ones: n = B, every row real, the twins still together.
    full_x, full_y = _data(BATCH, seed=2)
    assert lite.train_step(full_x, full_y) == pytest.approx(twin.train_step(full_x, full_y), abs=ATOL)
    assert _max_diff(lite.get_weights(), twin.get_weights()) <= ATOL


def test_what_the_padded_rows_hold_changes_nothing() -> None:
    built = _build(bn_dropout_mlp(), BATCH)
    x, y = _data(REAL)
    runs = []
    for fill in (0.0, 1e3):
        lite = LiteRTRunner(built.tflite)
        train = lite._interp.get_signature_runner("train")
        px = np.full((BATCH, 6), fill, np.float32)
        py = np.full(BATCH, 2, np.int32)
        px[:REAL], py[:REAL] = x, y
        loss = float(train(x=px, y=py, n=np.array([REAL], np.int32))["loss"])
        runs.append((loss, lite.get_weights()))
    assert runs[0][0] == runs[1][0]
    assert _max_diff(runs[0][1], runs[1][1]) == 0.0


def test_a_full_batch_passes_n_equal_to_the_batch_size() -> None:
    built = _build(_bn_mlp(keras), BATCH)
    x, y = _data(BATCH)
    explicit, implicit = LiteRTRunner(built.tflite), LiteRTRunner(built.tflite)
    train = explicit._interp.get_signature_runner("train")
    assert float(train(x=x, y=y, n=np.array([BATCH], np.int32))["loss"]) == implicit.train_step(x, y)
    assert _max_diff(explicit.get_weights(), implicit.get_weights()) == 0.0
    assert {"name": "n", "shape": [1], "dtype": "int32"} in built.signatures()["train"]["inputs"]


def test_more_samples_than_the_batch_are_refused() -> None:
    lite = LiteRTRunner(_build(_bn_mlp(keras), BATCH).tflite)
    x, y = _data(BATCH + 1)
    with pytest.raises(DataError, match=r"expects shape \(8, 6\)"):
        lite.train_step(x, y)


def _two_towers():
    keras.utils.set_random_seed(12)
    user, item = keras.Input((4,), name="user"), keras.Input((3,), name="item")
    joined = keras.layers.Concatenate(name="join")([keras.layers.Dense(5, name="u")(user),
                                                   keras.layers.Dense(5, name="i")(item)])
    normed = keras.layers.BatchNormalization(name="bn")(joined)
    return keras.Model([user, item], keras.layers.Dense(1, name="score")(normed), name="towers")


def test_a_two_input_model_pads_every_input_alike() -> None:
    from litetrain.runtime.base import record

    def build(batch_size: int):
        return litetrain.build(_two_towers(), loss="mse", optimizer=SGD, batch_size=batch_size)

    padded, unpadded = build(BATCH), build(REAL)
    lite, reference = LiteRTRunner(padded.tflite), TensorflowModuleRunner(unpadded.module)
    reference.set_weights(lite.get_weights())
    rng = np.random.default_rng(5)
    x = record({"x_user": rng.standard_normal((REAL, 4)).astype(np.float32),
                "x_item": rng.standard_normal((REAL, 3)).astype(np.float32)})
    y = rng.standard_normal((REAL, 1)).astype(np.float32)
    assert lite.train_step(x, y) == pytest.approx(reference.train_step(x, y), abs=ATOL)
    assert _max_diff(lite.get_weights(), reference.get_weights()) <= ATOL


def _conv_autoencoder():
    keras.utils.set_random_seed(5)
    return keras.Sequential([
        keras.Input((6, 6, 1)), keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="enc"),
        keras.layers.Conv2D(1, 3, padding="same", name="dec"),
    ])


def test_a_per_pixel_loss_weighs_the_real_rows_too() -> None:
    """A loss whose values are per pixel ([B, H, W], two dimensions more than the row weights) trains a partial batch
    as Keras trains the real samples alone (the zoo's conv autoencoder failed to trace before)."""
    built = litetrain.build(_conv_autoencoder(), loss="mse", optimizer=SGD, batch_size=BATCH)
    lite = LiteRTRunner(built.tflite)
    reference = _conv_autoencoder()
    reference.compile(optimizer=keras.optimizers.SGD(LR), loss="mse")
    x = np.random.default_rng(3).random((REAL * STEPS, 6, 6, 1)).astype(np.float32)
    for step in range(STEPS):
        rows = slice(step * REAL, (step + 1) * REAL)
        want = float(np.ravel(reference.train_on_batch(x[rows], x[rows]))[0])
        assert lite.train_step(x[rows], x[rows]) == pytest.approx(want, abs=ATOL)
    np.testing.assert_allclose(lite.get_weights()["dec_kernel"], np.asarray(reference.get_layer("dec").kernel),
                               atol=ATOL)
