"""Small reference models (factories usable as ``litetrain.models:NAME`` on the command line)."""

from __future__ import annotations

from typing import Any

from litetrain._lazy import import_module


def tutorial_2021() -> Any:
    """The model of the 2021 "On-device training in TensorFlow Lite" post: Flatten 28x28 -> Dense 128 ReLU -> Dense 10.

    Outputs logits; the post trains it with categorical cross-entropy from logits and SGD.
    """
    keras = import_module("keras")
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28), name="x"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(128, activation="relu", name="dense_1"),
            keras.layers.Dense(10, name="dense_2"),
        ],
        name="tutorial_2021",
    )
