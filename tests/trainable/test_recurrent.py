"""Recurrent layers as tutorials write them (``unroll=False``) train builtin-only and agree with TensorFlow.

litetrain unrolls them for the trace (:mod:`litetrain.trainable.recurrent`); the build says so, and a sequence of
unknown length is refused with the layer named.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tf_keras

import litetrain
from litetrain import OptimizerConfig
from litetrain.config import Optimizer
from litetrain.data.dataset import Dataset
from litetrain.errors import UnsupportedModelError

STEPS, TIMESTEPS, FEATURES, CLASSES = 30, 7, 3, 3


def _sequences(n: int = 160, seed: int = 5) -> Dataset:
    """The class is which of the first three features has the largest sum over time."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, TIMESTEPS, FEATURES)).astype(np.float32)
    y = np.argmax(x.sum(axis=1), axis=1)
    return Dataset("sequences", x[:120], y[:120], x[120:], y[120:])


def _k3(*layers):
    return keras.Sequential([keras.Input((TIMESTEPS, FEATURES)), *layers, keras.layers.Dense(CLASSES)])


L = keras.layers
MODELS = {
    "lstm": lambda: _k3(L.LSTM(8)),
    "gru": lambda: _k3(L.GRU(8)),
    "simple_rnn": lambda: _k3(L.SimpleRNN(8)),
    "bidirectional_lstm_stacked": lambda: _k3(L.Bidirectional(L.LSTM(6, return_sequences=True)), L.GRU(5)),
    "tf_keras_lstm": lambda: tf_keras.Sequential([
        tf_keras.Input((TIMESTEPS, FEATURES)), tf_keras.layers.LSTM(8), tf_keras.layers.Dense(CLASSES)]),
}
RECURRENT = {"lstm": 1, "gru": 1, "simple_rnn": 1, "bidirectional_lstm_stacked": 3, "tf_keras_lstm": 1}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_recurrent_layer_trains_builtin_only_and_agrees(name):
    result = litetrain.check(
        MODELS[name], _sequences(), loss="sparse_categorical_crossentropy",
        optimizer=OptimizerConfig(Optimizer.ADAM, learning_rate=0.01), batch_size=8, steps=STEPS,
        noise_floor=False, float64=False,
    )
    report = result.to_json()
    assert report["model"]["ops"]["flex"] == {} and report["model"]["ops"]["custom"] == {}
    adaptations = report["model"]["adaptations"]
    assert len(adaptations) == RECURRENT[name] and all(f"{TIMESTEPS} time steps" in a for a in adaptations)
    tf_loss, tfl_loss = (np.array(result.train.loss[k]) for k in ("tensorflow", "tflite"))
    assert np.max(np.abs(tf_loss - tfl_loss)) < 1e-5
    assert tfl_loss[-5:].mean() < tfl_loss[:5].mean()  # it learns
    assert result.verdict.value == "consistent", result.explanation


def test_unknown_sequence_length_is_refused_naming_the_layer():
    model = keras.Sequential([keras.Input((None, FEATURES)), L.LSTM(4, name="encoder"), L.Dense(CLASSES)])
    with pytest.raises(UnsupportedModelError, match="'encoder'.*unknown number of time steps"):
        litetrain.build(model, loss="sparse_categorical_crossentropy", batch_size=4)
