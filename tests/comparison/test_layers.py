"""Every layer of the issue's table trains builtin-only, and TFLite's loss follows TensorFlow's within 1e-5.

Each case is a small model on the bundled digits, checked end to end (build, convert, 50 twin steps).
"""

from __future__ import annotations

import numpy as np
import pytest

import litetrain
from litetrain import Optimizer, OptimizerConfig

STEPS = 50
LOSS_ATOL = 1e-5


def _k3():
    import keras

    return keras


def conv_same_stride1():
    k = _k3()
    return k.Sequential([k.Input((8, 8, 1)), k.layers.Conv2D(4, 3, padding="same", activation="relu"),
                         k.layers.Flatten(), k.layers.Dense(10)])


def conv_valid_stride2():
    k = _k3()
    return k.Sequential([k.Input((16, 16, 1)), k.layers.Conv2D(6, 3, strides=2, padding="valid", activation="relu6"),
                         k.layers.Conv2D(4, 3, strides=2, padding="same"), k.layers.Flatten(), k.layers.Dense(10)])


def depthwise():
    k = _k3()
    return k.Sequential([
        k.Input((8, 8, 1)), k.layers.Conv2D(3, 1, activation="tanh"),
        k.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="leaky_relu"),
        k.layers.DepthwiseConv2D(3, strides=2, padding="valid"), k.layers.Flatten(), k.layers.Dense(10)])


def pooling():
    k = _k3()
    # Flatten beside GlobalAveragePooling: GAP alone learns too slowly for 50 steps (the health check rightly
    # calls such a run "not learning").
    x = k.Input((16, 16, 1))
    h = k.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    h = k.layers.MaxPooling2D()(h)
    h = k.layers.Conv2D(8, 3, padding="same", activation="sigmoid")(h)
    h = k.layers.AveragePooling2D(2)(h)
    out = k.layers.Dense(10)(k.layers.Concatenate()([k.layers.Flatten()(h), k.layers.GlobalAveragePooling2D()(h)]))
    return k.Model(x, out)


def overlapping_pooling():
    k = _k3()
    return k.Sequential([
        k.Input((16, 16, 1)), k.layers.Conv2D(4, 3, padding="same", activation="relu"),
        k.layers.MaxPooling2D(pool_size=3, strides=2, padding="same"),
        k.layers.AveragePooling2D(pool_size=3, strides=2, padding="same"), k.layers.Flatten(), k.layers.Dense(10)])


def merges_and_reshapes():
    k = _k3()
    x = k.Input((8, 8))
    flat = k.layers.Flatten()(x)
    a = k.layers.Dense(16, activation="gelu")(flat)
    b = k.layers.Dense(16, activation="tanh")(flat)
    added = k.layers.Add()([a, b])
    joined = k.layers.Concatenate()([added, b])
    reshaped = k.layers.Reshape((4, 8))(joined)
    reshaped = k.layers.Reshape((32,))(reshaped)
    dropped = k.layers.Dropout(0.5)(reshaped)
    normed = k.layers.BatchNormalization()(dropped)
    out = k.layers.Dense(10, activation="softmax")(k.layers.LeakyReLU(negative_slope=0.1)(normed))
    return k.Model(x, out)


def activations():
    k = _k3()
    return k.Sequential([
        k.Input((8, 8)), k.layers.Flatten(), k.layers.Dense(24, activation="sigmoid"),
        k.layers.Dense(24, activation=lambda t: k.activations.gelu(t, approximate=True)),
        k.layers.Dense(24), k.layers.ReLU(max_value=6.0), k.layers.Dense(24, activation="elu"),
        k.layers.Dense(10)])


def cnn_batchnorm():
    k = _k3()
    return k.Sequential([
        k.Input((8, 8, 1)), k.layers.Conv2D(4, 3, padding="same"), k.layers.BatchNormalization(),
        k.layers.Activation("relu"), k.layers.MaxPooling2D(), k.layers.Flatten(), k.layers.Dense(10)])


def tf_keras_cnn_batchnorm():
    import tf_keras as k

    return k.Sequential([
        k.Input((8, 8, 1)), k.layers.Conv2D(4, 3, padding="same"), k.layers.BatchNormalization(),
        k.layers.Activation("relu"), k.layers.MaxPooling2D(), k.layers.DepthwiseConv2D(3, padding="same"),
        k.layers.AveragePooling2D(2), k.layers.Flatten(), k.layers.Dense(10)])


CASES = {
    "conv-same-stride1": (conv_same_stride1, "digits", {"Conv2D", "Relu"}),
    "conv-valid-stride2": (conv_valid_stride2, "digits:16x16", {"Conv2D", "Relu6"}),
    "depthwise": (depthwise, "digits", {"DepthwiseConv2dNative", "LeakyRelu"}),
    "pooling": (pooling, "digits:16x16", {"MaxPool", "AvgPool"}),
    "overlapping-pooling": (overlapping_pooling, "digits:16x16", {"MaxPool", "AvgPool"}),
    "merges-reshapes-dropout-bn": (merges_and_reshapes, "digits", set()),
    "activations": (activations, "digits", {"Relu6", "Elu"}),
    "cnn-batchnorm": (cnn_batchnorm, "digits", {"Conv2D", "MaxPool"}),
    "tf-keras-cnn-batchnorm": (tf_keras_cnn_batchnorm, "digits", {"FusedBatchNormV3", "DepthwiseConv2dNative"}),
}


# These cases test the frozen-statistics BatchNorm gradient (the FusedBatchNorm rewrite), so they train with
# --layers inference; training-mode BatchNorm is tested against model.fit in tests/trainable/test_fit_semantics.py.
INFERENCE_LAYERS = {"cnn-batchnorm", "tf-keras-cnn-batchnorm"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_trains_builtin_only_like_tensorflow(case):
    factory, data, rewritten = CASES[case]
    result = litetrain.check(factory, data, loss="sparse_categorical_crossentropy",
                             optimizer=OptimizerConfig(Optimizer.ADAM, learning_rate=0.003), batch_size=16,
                             steps=STEPS, layers="inference" if case in INFERENCE_LAYERS else None)
    ops = result.model["ops"]
    assert ops["builtin_only"], ops["flex"]
    assert ops["total"]["flex"] == 0 and ops["total"]["custom"] == 0
    assert rewritten <= set(result.model["rewritten_gradients"])
    tf_loss = np.array(result.train.loss["tensorflow"])
    tfl_loss = np.array(result.train.loss["tflite"])
    assert np.max(np.abs(tf_loss - tfl_loss)) < LOSS_ATOL
    assert np.mean(tfl_loss[-10:]) < np.mean(tfl_loss[:10])  # and it learns
    assert result.verdict.value == "consistent", result.explanation
