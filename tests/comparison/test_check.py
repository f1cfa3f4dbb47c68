"""check: TensorFlow and TFLite twins trained on identical batches agree for every optimizer and loss."""

from __future__ import annotations

import json

import numpy as np
import pytest

import litetrain
from litetrain import LossConfig, Optimizer, OptimizerConfig
from tests import models

STEPS = 50
LOSS_ATOL = 1e-5  # the bar: TF/TFLite loss agreement within 1e-5 over 50 steps

OPTIMIZERS = {
    "sgd": OptimizerConfig(Optimizer.SGD, learning_rate=0.05),
    "sgd-nesterov": OptimizerConfig(Optimizer.SGD, learning_rate=0.05, momentum=0.9, nesterov=True),
    "adam": OptimizerConfig(Optimizer.ADAM, learning_rate=0.005),
    "adamw": OptimizerConfig(Optimizer.ADAMW, learning_rate=0.005, weight_decay=0.01),
    "rmsprop": OptimizerConfig(Optimizer.RMSPROP, learning_rate=0.002, momentum=0.5),
}


def _assert_twins_agree(result, steps=STEPS):
    losses = result.train.loss
    tf_loss, tfl_loss = np.array(losses["tensorflow"]), np.array(losses["tflite"])
    assert len(tf_loss) == steps and np.all(np.isfinite(tf_loss))
    assert np.max(np.abs(tf_loss - tfl_loss)) < LOSS_ATOL
    assert result.verdict.value == "consistent", result.explanation
    assert bool(result) is True
    assert result.checkpoint.roundtrip_exact


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_each_optimizer(name):
    result = litetrain.check(models.mlp(), "digits", loss="sparse_categorical_crossentropy",
                             optimizer=OPTIMIZERS[name], batch_size=16, steps=STEPS)
    _assert_twins_agree(result)
    # Training works, not only agrees: the loss falls.
    loss = result.train.loss["tflite"]
    assert np.mean(loss[-10:]) < np.mean(loss[:10])
    # Optimizer state is part of save/restore.
    assert any(v["role"] == "optimizer" for v in result.model["variables"])


@pytest.mark.parametrize(("loss", "model", "data"), [
    ("sparse_categorical_crossentropy", lambda: models.mlp(), "digits"),
    ("categorical_crossentropy", lambda: models.mlp(out_act="softmax"), "digits"),
    ("binary_crossentropy", lambda: models.dense_model(6, 1, "sigmoid"), models.binary_data()),
    ("mse", lambda: models.dense_model(6, 2), models.regression_data(outputs=2)),
    ("mae", lambda: models.dense_model(6, 1), models.regression_data()),
])
def test_each_loss(loss, model, data):
    result = litetrain.check(model(), data, loss=loss, optimizer=OPTIMIZERS["adam"], batch_size=8, steps=STEPS)
    _assert_twins_agree(result)


def test_tf_keras_model_trains_like_tensorflow():
    result = litetrain.check(models.tf_keras_mlp(), "digits", loss="sparse_categorical_crossentropy",
                             optimizer=OPTIMIZERS["sgd-nesterov"], batch_size=16, steps=STEPS)
    _assert_twins_agree(result)
    assert result.model["framework"] == "tf_keras"


def test_result_json_schema_and_rendering(tmp_path):
    result = litetrain.check(models.mlp(), "digits", loss=LossConfig.parse("sparse-ce"),
                             optimizer=OPTIMIZERS["sgd"], batch_size=32, steps=12, seed=3)
    path = result.save(tmp_path / "r.json")
    data = json.loads(path.read_text())
    assert data["schema_version"] == "1.0" and data["verdict"] == "consistent"
    assert data["model"]["size_bytes"] > 0 and data["model"]["ops"]["flex"] == {}
    assert set(data["model"]["ops"]) >= {"builtin", "flex", "custom"}
    assert data["train"]["steps"] == 12 and len(data["train"]["loss"]["tflite"]) == 12
    assert sorted(data["train"]["weights"], key=int) == ["1", "10", "12"]
    assert data["train"]["max_abs_loss_diff"] < 1e-5 and data["train"]["max_abs_weight_diff"] < 1e-5
    after = data["inference"]["after"]
    assert after["argmax_agreement"] == 1.0 and after["max_abs_error"] < 1e-4
    assert set(after["accuracy"]) == {"tensorflow", "tflite"}
    assert data["checkpoint"]["roundtrip_exact"] is True
    assert data["initial_weights"]["identical"] is True
    assert data["environment"]["packages"]["tensorflow"].startswith("2.")
    text = str(result)
    assert "verdict: CONSISTENT" in text and "loss at step 12" in text and "builtin-only" in text
    assert "<table>" in result._repr_html_()


def test_seed_changes_batches_and_initialization():
    a = litetrain.check(models.mlp, "digits",
                        loss="sparse_categorical_crossentropy", batch_size=8, steps=3, seed=1)
    b = litetrain.check(models.mlp, "digits", loss="sparse_categorical_crossentropy", batch_size=8, steps=3, seed=1)
    c = litetrain.check(models.mlp, "digits", loss="sparse_categorical_crossentropy", batch_size=8, steps=3, seed=2)
    assert a.train.loss == b.train.loss
    assert a.train.loss != c.train.loss
