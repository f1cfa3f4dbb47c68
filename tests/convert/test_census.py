"""The op census reads builtin, Flex and custom ops straight from the flatbuffer."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from litetrain.convert.census import op_census
from litetrain.errors import ConversionError, RuntimeUnavailableError


def _convert(fn, spec, select: bool) -> bytes:
    concrete = tf.function(fn).get_concrete_function(spec)
    conv = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS] + (
        [tf.lite.OpsSet.SELECT_TF_OPS] if select else [])
    return conv.convert()


def test_builtin_only_model():
    census = op_census(_convert(lambda x: tf.nn.relu(x) * 2.0, tf.TensorSpec([2, 3]), select=False))
    assert census.builtin_only
    assert census.builtin.get("RELU") == 1 and census.builtin.get("MUL") == 1
    assert census.to_json()["total"] == {"builtin": 2, "flex": 0, "custom": 0}


def test_flex_ops_are_counted_and_refused_by_the_runner():
    def relu_grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.reduce_sum(tf.nn.relu(x))
        return tape.gradient(y, x)

    model = _convert(relu_grad, tf.TensorSpec([2, 3]), select=True)
    census = op_census(model)
    assert census.flex == {"FlexReluGrad": 1}
    assert not census.builtin_only
    from litetrain.runtime.litert import LiteRTRunner

    with pytest.raises(RuntimeUnavailableError, match="Flex"):
        LiteRTRunner(model)


def test_garbage_is_not_a_model():
    with pytest.raises(ConversionError, match="not a valid TFLite model"):
        op_census(b"\x00" * 64)
    with pytest.raises(ConversionError):
        op_census(np.arange(10, dtype=np.uint8).tobytes())
