"""compare: a SavedModel / .tflite pair built without litetrain, following the signature convention."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

import litetrain
from litetrain.cli.app import main
from litetrain.errors import ConversionError

BATCH = 16


@tf.custom_gradient
def _relu(x):
    # The 2021 recipe's ReLU, with a builtin-only gradient (FACTS.md: ReluGrad is a Flex op).
    y = tf.maximum(x, 0.0)
    return y, lambda dy: dy * tf.cast(x > 0, dy.dtype)


class HandWritten(tf.Module):
    """A 64-32-10 MLP with plain tf.Variables and a hand-written SGD step, as a user might export one."""

    def __init__(self, lr: float = 0.1, seed: int = 0, init_offset: float = 0.0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.w1 = tf.Variable(rng.normal(0, 0.2, (64, 32)).astype(np.float32) + init_offset, name="w1")
        self.b1 = tf.Variable(np.zeros(32, np.float32), name="b1")
        self.w2 = tf.Variable(rng.normal(0, 0.2, (32, 10)).astype(np.float32), name="w2")
        self.b2 = tf.Variable(np.zeros(10, np.float32), name="b2")
        self.lr = lr

    def _vars(self):
        return {"w1": self.w1, "b1": self.b1, "w2": self.w2, "b2": self.b2}

    def _logits(self, x):
        h = _relu(tf.matmul(tf.reshape(x, (-1, 64)), self.w1) + self.b1)
        return tf.matmul(h, self.w2) + self.b2

    @tf.function(input_signature=[tf.TensorSpec([BATCH, 8, 8], tf.float32), tf.TensorSpec([BATCH], tf.int32)])
    def train(self, x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, self._logits(x)))
        variables = list(self._vars().values())
        for v, g in zip(variables, tape.gradient(loss, variables), strict=True):
            v.assign_sub(self.lr * g)
        return {"loss": loss}

    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8], tf.float32)])
    def infer(self, x):
        return {"logits": self._logits(x)}

    @tf.function(input_signature=[])
    def save(self):
        return {k: tf.identity(v) for k, v in self._vars().items()}

    @tf.function(input_signature=[{k: tf.TensorSpec(s, tf.float32, name=k) for k, s in
                                   {"w1": (64, 32), "b1": (32,), "w2": (32, 10), "b2": (10,)}.items()}])
    def restore(self, tensors):
        for k, v in self._vars().items():
            v.assign(tensors[k])
        return {k: tf.identity(v) for k, v in self._vars().items()}


def _export(module: tf.Module, folder) -> tuple[str, str]:
    sm = str(folder / "saved_model")
    sigs = {k: getattr(module, k).get_concrete_function() for k in ("train", "infer", "save", "restore")}
    tf.saved_model.save(module, sm, signatures=sigs)
    conv = tf.lite.TFLiteConverter.from_saved_model(sm, signature_keys=list(sigs))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    conv.experimental_enable_resource_variables = True
    path = folder / "model.tflite"
    path.write_bytes(conv.convert())
    return sm, str(path)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return _export(HandWritten(), tmp_path_factory.mktemp("pair"))


def test_faithful_pair_is_consistent(pair, tmp_path, capsys):
    sm, tfl = pair
    out = tmp_path / "r.json"
    code = main(["compare", "--reference", sm, "--candidate", tfl, "--data", "digits", "--steps", "60",
                 "--json", str(out)])
    assert code == 0, capsys.readouterr()
    report = json.loads(out.read_text())
    assert report["verdict"] == "consistent" and report["kind"] == "compare"
    assert report["initial_weights"]["identical"] is True
    assert report["train"]["max_abs_loss_diff"] < 1e-5 and report["train"]["batch_size"] == BATCH
    assert report["inference"]["after"]["accuracy"]["tflite"] > 0.7  # it learns digits
    assert report["checkpoint"]["roundtrip_exact"] is True


def test_candidate_with_a_different_learning_rate_is_inconsistent(pair, tmp_path):
    sm, _ = pair
    _, wrong = _export(HandWritten(lr=0.12), tmp_path)
    result = litetrain.compare(sm, wrong, "digits", steps=20)
    assert result.verdict.value == "inconsistent" and not result
    failed = {c.name for c in result.checks if not c.passed}
    assert "loss" in failed and "weights" in failed
    # Step 1's loss is computed before the first update, so the twins part at step 2.
    assert result.train.first_step_beyond_tolerance == 2
    assert "initial_weights" not in failed


def test_candidate_with_other_initial_weights_is_reported_then_aligned(pair, tmp_path):
    sm, _ = pair
    _, shifted = _export(HandWritten(init_offset=0.01), tmp_path)
    result = litetrain.compare(sm, shifted, "digits", steps=20)
    assert not result.initial_weights["identical"]
    assert result.initial_weights["max_abs_diff"] == pytest.approx(0.01, rel=1e-3)
    assert [c.name for c in result.checks if not c.passed] == ["initial_weights"]
    # Both twins were set to the reference's weights, so training itself agrees.
    assert result.train.max_abs_loss_diff < 1e-5


def test_keras3_weight_loss_trap_fails_loudly(tmp_path):
    """A module that holds a Keras 3 model without tracking its inner tf.Variables (FACTS.md)."""
    import keras

    class Naive(tf.Module):
        def __init__(self):
            super().__init__()
            self.model = keras.Sequential([keras.Input((8, 8)), keras.layers.Flatten(), keras.layers.Dense(10)])

        @tf.function(input_signature=[tf.TensorSpec([BATCH, 8, 8]), tf.TensorSpec([BATCH], tf.int32)])
        def train(self, x, y):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, self.model(x)))
            grads = tape.gradient(loss, self.model.trainable_variables)
            for v, g in zip(self.model.trainable_variables, grads, strict=True):
                v.assign_sub(0.1 * g)
            return {"loss": loss}

        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8])])
        def infer(self, x):
            return {"output": self.model(x)}

        @tf.function(input_signature=[])
        def save(self):
            return {"kernel": tf.identity(self.model.weights[0].value), "bias": tf.identity(self.model.weights[1].value)}

        @tf.function(input_signature=[{"kernel": tf.TensorSpec((64, 10), name="kernel"),
                                       "bias": tf.TensorSpec((10,), name="bias")}])
        def restore(self, t):
            self.model.weights[0].assign(t["kernel"])
            self.model.weights[1].assign(t["bias"])
            return {"bias": tf.identity(self.model.weights[1].value)}

    sm, tfl = _export(Naive(), tmp_path)
    with pytest.raises(ConversionError, match="not initialized"):
        litetrain.compare(sm, tfl, "digits", steps=5)
