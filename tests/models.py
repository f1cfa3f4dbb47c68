"""Tiny models built in code, shared by the tests (cf. Polygraphy's tests/models/meta.py)."""

from __future__ import annotations

from typing import Any

import numpy as np

from litetrain.data.dataset import Dataset


def mlp(hidden: int = 16, classes: int = 10, activation: str = "relu", input_shape=(8, 8), out_act=None) -> Any:
    import keras

    return keras.Sequential([
        keras.Input(input_shape),
        keras.layers.Flatten(),
        keras.layers.Dense(hidden, activation=activation, name="hidden"),
        keras.layers.Dense(classes, activation=out_act, name="head"),
    ])


def tf_keras_mlp(hidden: int = 16, classes: int = 10) -> Any:
    import tf_keras

    return tf_keras.Sequential([
        tf_keras.Input((8, 8)),
        tf_keras.layers.Flatten(),
        tf_keras.layers.Dense(hidden, activation="relu", name="hidden"),
        tf_keras.layers.Dense(classes, name="head"),
    ])


def small_cnn() -> Any:
    import keras

    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv"),
        keras.layers.MaxPooling2D(name="pool"),
        keras.layers.Flatten(),
        keras.layers.Dense(10, name="head"),
    ])


def regression_data(n: int = 96, features: int = 6, outputs: int = 1, seed: int = 3) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype(np.float32)
    w = rng.standard_normal((features, outputs)).astype(np.float32)
    y = (x @ w + 0.1 * rng.standard_normal((n, outputs))).astype(np.float32)
    cut = int(n * 0.75)
    return Dataset("synthetic-regression", x[:cut], y[:cut], x[cut:], y[cut:])


def binary_data(n: int = 96, features: int = 6, seed: int = 4) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.float32)
    cut = int(n * 0.75)
    return Dataset("synthetic-binary", x[:cut], y[:cut], x[cut:], y[cut:])


def dense_model(features: int, outputs: int, out_act: str | None = None) -> Any:
    import keras

    return keras.Sequential([
        keras.Input((features,)),
        keras.layers.Dense(8, activation="tanh", name="hidden"),
        keras.layers.Dense(outputs, activation=out_act, name="head"),
    ])
