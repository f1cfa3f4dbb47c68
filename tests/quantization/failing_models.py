"""Small real models that one quantization mode cannot run, for the tests of failed modes."""

from __future__ import annotations

from typing import Any

DEAD_SCALE = 1e-9
"""The depthwise kernel is scaled by this: its outputs are ~1e-9, as a random-init base's features are at initial
BatchNorm statistics (MobileNetV2 with weights=None). int16x8 calibrates that range into a scale so small that the
kernel's ReLU6 bound (6 / scale) overflows int32, and the interpreter refuses to prepare DEPTHWISE_CONV_2D
(``no_integer_overflow_from_quantization``), as it does on MobileNetV2's deploy model."""


def dead_depthwise() -> Any:
    """DepthwiseConv2D (ReLU6, near-zero outputs) + Dense on 8x8 digits: every mode works except int16x8."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.DepthwiseConv2D(3, padding="same", activation="relu6", name="dw"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(10, name="head"),
    ])
    kernel, bias = model.get_layer("dw").get_weights()
    model.get_layer("dw").set_weights([kernel * DEAD_SCALE, bias])
    return model
