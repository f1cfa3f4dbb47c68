"""``train`` does what ``model.fit`` does: trainable BatchNormalization uses batch statistics and updates its moving
ones, Dropout and noise layers are active, with masks that TensorFlow and TFLite draw bit for bit alike.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import litetrain
from litetrain import Optimizer, OptimizerConfig
from litetrain.runtime.litert import LiteRTRunner
from litetrain.runtime.tensorflow import TensorflowModuleRunner
from litetrain.trainable.randomness import hashed_normal, hashed_uniform
from tests.trainable.test_gradients import convert

L = keras.layers
SGD = OptimizerConfig(Optimizer.SGD, learning_rate=0.05)


# --- the hash -------------------------------------------------------------------------------------------


def _uniforms(steps: int, n: int = 4096, draw: int = 1) -> np.ndarray:
    return np.stack([hashed_uniform([n], draw, tf.constant(s)).numpy() for s in range(steps)])


def test_hashed_uniforms_look_uniform_and_change_every_step() -> None:
    u = _uniforms(20)
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    counts, _ = np.histogram(u, bins=64, range=(0, 1))
    expected = u.size / 64
    assert 0.8 < ((counts - expected) ** 2 / expected).sum() / 63 < 1.25  # chi-square per degree of freedom
    chance = 3 / np.sqrt(u.shape[1])
    assert all(abs(np.corrcoef(u[s], u[s + 1])[0, 1]) < chance for s in range(19))  # steps
    assert all(abs(np.corrcoef(u[s, :-1], u[s, 1:])[0, 1]) < chance for s in range(20))  # neighbours
    other = _uniforms(1, draw=2)[0]
    assert abs(np.corrcoef(u[0], other)[0, 1]) < chance  # two layers of one step
    assert np.mean(u[0] != u[1]) > 0.99
    assert u.min() >= 0.0 and u.max() < 1.0


def test_hashed_normals_have_mean_0_and_variance_1() -> None:
    n = hashed_normal([40_000], 3, tf.constant(5)).numpy()
    assert abs(n.mean()) < 0.02 and abs(n.std() - 1.0) < 0.02
    assert abs(np.mean(np.abs(n) < 1.0) - 0.6827) < 0.01  # the normal's mass within one sigma


def test_tflite_draws_the_same_bits_as_tensorflow_in_float32_and_float64() -> None:
    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec((), tf.int32, name="step")])
    def draw(step):
        return {"uniform": hashed_uniform([3, 5, 7], 4, step), "normal": hashed_normal([257], 9, step)}

    module.draw = draw
    tflite = convert(draw.get_concrete_function(), module)
    from ai_edge_litert.interpreter import Interpreter

    run = Interpreter(model_content=tflite).get_signature_runner()
    for step in (0, 1, 12345, 2**30 + 7):
        lite = run(step=np.int32(step))
        ref = {k: v.numpy() for k, v in draw(tf.constant(step)).items()}
        for key in ref:
            np.testing.assert_array_equal(lite[key], ref[key], err_msg=f"{key} at step {step}")
        in64 = hashed_uniform([3, 5, 7], 4, tf.constant(step), "float64").numpy()
        np.testing.assert_array_equal(in64, ref["uniform"].astype(np.float64))


# --- layers in training mode ----------------------------------------------------------------------------


def _digits(n: int = 160) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images[:n] / 16.0).astype(np.float32)[..., None], d.target[:n].astype(np.int32)


def _bn_cnn(framework=keras):
    layers = framework.layers
    framework.utils.set_random_seed(4)
    return framework.Sequential([
        framework.Input((8, 8, 1)), layers.Conv2D(6, 3, padding="same"), layers.BatchNormalization(),
        layers.ReLU(), layers.Flatten(), layers.Dense(10),
    ])


@pytest.mark.parametrize("framework", [keras, tf_keras], ids=["keras3", "tf_keras"])
def test_batch_norm_trains_as_model_fit_does(framework) -> None:
    """Keras's own train_on_batch and TFLite's train take the same steps: the losses agree to float rounding and
    the moving statistics TFLite saves equal Keras's."""
    x, y = _digits()
    built = litetrain.build(_bn_cnn(framework), loss="sparse_categorical_crossentropy", optimizer=SGD, batch_size=16)
    assert built.settings["layers"] == "fit" and built.census.builtin_only
    assert any("unfused" in a for a in built.adaptations) == (framework is tf_keras)
    state = sorted(v.name for v in built.variables if v.role == "state")
    assert len(state) == 2 and state[0].endswith("_moving_mean") and state[1].endswith("_moving_variance")
    lite = LiteRTRunner(built.tflite)
    lite_losses = [lite.train_step(x[i:i + 16], y[i:i + 16]) for i in range(0, 96, 16)]

    keras_model = _bn_cnn(framework)
    keras_model.compile(optimizer=framework.optimizers.SGD(0.05),
                        loss=framework.losses.SparseCategoricalCrossentropy(from_logits=True))
    keras_losses = [float(np.ravel(keras_model.train_on_batch(x[i:i + 16], y[i:i + 16]))[0])
                    for i in range(0, 96, 16)]
    np.testing.assert_allclose(lite_losses, keras_losses, rtol=0, atol=2e-5)
    bn = keras_model.layers[1]
    saved = lite.get_weights()
    np.testing.assert_allclose(saved[state[0]], np.asarray(bn.moving_mean), atol=1e-5)
    np.testing.assert_allclose(saved[state[1]], np.asarray(bn.moving_variance), atol=1e-5)


def test_frozen_batch_norm_and_inference_layers_keep_their_statistics() -> None:
    model = _bn_cnn()
    model.layers[1].trainable = False
    built = litetrain.build(model, loss="sparse_categorical_crossentropy", optimizer=SGD, batch_size=16)
    assert not [v for v in built.variables if v.role == "state"]
    inference = litetrain.build(_bn_cnn(), loss="sparse_categorical_crossentropy", optimizer=SGD, batch_size=16,
                                layers="inference")
    assert inference.settings["layers"] == "inference"
    assert not [v for v in inference.variables if v.role == "state"]


def _dropout_mlp():
    keras.utils.set_random_seed(5)
    return keras.Sequential([
        keras.Input((8, 8, 1)), L.Flatten(), L.GaussianNoise(0.05), L.Dense(32, activation="relu"),
        L.Dropout(0.3), L.Dense(16, activation="selu"), L.AlphaDropout(0.1), L.GaussianDropout(0.1), L.Dense(10),
    ])


def _tf_keras_dropout_cnn():
    tf_keras.utils.set_random_seed(6)
    t = tf_keras.layers
    return tf_keras.Sequential([
        tf_keras.Input((8, 8, 1)), t.Conv2D(4, 3), t.SpatialDropout2D(0.3), t.Flatten(), t.GaussianNoise(0.1),
        t.Dense(16, activation="relu"), t.Dropout(0.4), t.Dense(10),
    ])


@pytest.mark.parametrize("factory", [_dropout_mlp, _tf_keras_dropout_cnn], ids=["keras3", "tf_keras"])
def test_dropout_is_active_in_train_identical_in_both_twins_and_off_in_infer(factory) -> None:
    x, y = _digits()
    built = litetrain.build(factory(), loss="sparse_categorical_crossentropy", optimizer=SGD, batch_size=16)
    assert built.census.builtin_only
    lite, twin = LiteRTRunner(built.tflite), TensorflowModuleRunner(built.module)
    start = twin.get_weights()
    expected = np.asarray(built.module.model(x[:16], training=False))  # before the twin trains the model
    lite_losses = [lite.train_step(x[:16], y[:16]) for _ in range(8)]
    twin_losses = [twin.train_step(x[:16], y[:16]) for _ in range(8)]
    np.testing.assert_allclose(lite_losses, twin_losses, rtol=0, atol=1e-6)
    # The same batch gives other losses at other steps (new masks), beyond what one SGD step explains: an
    # inference-mode model's loss on a fixed batch falls smoothly; here it jumps around.
    assert len(set(np.round(lite_losses, 6))) == 8
    fresh = LiteRTRunner(built.tflite)
    fresh.set_weights(start)
    out = fresh.infer(x[:16])["output"]
    np.testing.assert_array_equal(out, fresh.infer(x[:16])["output"])  # infer draws nothing
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_augmentation_layers_in_the_model_train_builtin_only() -> None:
    """Flips and contrast stay active (hashed draws, the same in both twins); rotation, zoom and translation
    resample with ImageProjectiveTransformV3 (no builtin), so they pass through in train and the build says so."""
    keras.utils.set_random_seed(8)
    model = keras.Sequential([
        keras.Input((8, 8, 1)), L.RandomFlip(), L.RandomContrast(0.2), L.RandomRotation(0.1), L.RandomZoom(0.1),
        L.Conv2D(4, 3, activation="relu"), L.Flatten(), L.Dense(10),
    ])
    built = litetrain.build(model, loss="sparse_categorical_crossentropy", optimizer=SGD, batch_size=16)
    assert built.census.builtin_only
    frozen = [a for a in built.adaptations if "inactive in train" in a]
    assert len(frozen) == 2 and "RandomRotation" in frozen[0]
    x, y = _digits()
    lite, twin = LiteRTRunner(built.tflite), TensorflowModuleRunner(built.module)
    lite_losses = [lite.train_step(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    twin_losses = [twin.train_step(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    np.testing.assert_allclose(lite_losses, twin_losses, rtol=0, atol=1e-6)


def test_a_model_with_dropout_keeps_a_noise_floor_of_float_noise() -> None:
    """Reversing a batch's rows moves the dropout masks to other samples (another training, not float noise), so
    the floor leaves that perturbation out for such a model; without random layers it stays."""
    result = litetrain.check(_dropout_mlp, "digits", loss="sparse_categorical_crossentropy", optimizer=SGD,
                             batch_size=16, steps=20, float64=False)
    names = {p["name"] for p in result.to_json()["noise_floor"]["perturbations"]}
    assert "tensorflow:summation-order" not in names and "tensorflow:last-bit-init" in names
    assert result.verdict.value in ("consistent", "consistent-sensitive")
    plain = litetrain.check(_bn_cnn, "digits", loss="sparse_categorical_crossentropy", optimizer=SGD,
                            batch_size=16, steps=5, float64=False)
    assert "tensorflow:summation-order" in {p["name"] for p in plain.to_json()["noise_floor"]["perturbations"]}
