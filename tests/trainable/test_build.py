"""The build stage: Keras model -> trainable, builtin-only .tflite with four signatures, verified."""

from __future__ import annotations

import json

import numpy as np
import pytest

from litetrain import LossConfig, Optimizer, OptimizerConfig
from litetrain.runtime.litert import LiteRTRunner
from litetrain.trainable.builder import build
from tests import models


def test_keras3_build_writes_artifacts_with_the_signature_convention(tmp_path):
    out = tmp_path / "built"
    result = build(models.mlp(), loss="sparse_categorical_crossentropy",
                   optimizer=OptimizerConfig(Optimizer.ADAM, learning_rate=0.01), batch_size=16, output_dir=out)
    assert sorted(p.name for p in out.iterdir()) == ["build.json", "model.tflite", "saved_model"]
    assert (out / "model.tflite").read_bytes() == result.tflite
    assert result.census.builtin_only and not result.census.flex
    assert result.census.uninitialized_variables == ()  # every variable has an initializer
    assert "Relu" in result.rewritten_gradients

    info = json.loads((out / "build.json").read_text())
    sigs = info["signatures"]
    assert sorted(sigs) == ["infer", "infer_fixed", "restore", "save", "train"]
    assert sigs["infer_fixed"]["inputs"][0]["shape"] == [16, 8, 8]
    # Portable to every LiteRT runtime: no 64-bit tensors anywhere, no 0-d tensor in save/restore.
    tensors = [t for sig in sigs.values() for t in (*sig["inputs"], *sig["outputs"])]
    assert not [t["name"] for t in tensors if t["dtype"] in ("int64", "float64")]
    assert not [t["name"] for k in ("save", "restore") for t in (*sigs[k]["inputs"], *sigs[k]["outputs"])
                if t["shape"] == []]
    assert {t["name"]: t for t in sigs["restore"]["inputs"]}["opt_iteration"]["dtype"] == "int32"
    train_in = {t["name"]: t for t in sigs["train"]["inputs"]}
    assert train_in["x"]["shape"] == [16, 8, 8] and train_in["y"] == {"name": "y", "shape": [16], "dtype": "int32"}
    assert train_in["n"] == {"name": "n", "shape": [1], "dtype": "int32"}  # the count of real rows (no 0-d input)
    assert [t["name"] for t in sigs["train"]["outputs"]] == ["loss"]
    assert sigs["infer"]["inputs"][0]["shape"] == [-1, 8, 8]
    roles = [v["role"] for v in info["variables"]]
    # 4 weights; Adam adds iteration, learning rate and m/v per weight.
    assert roles.count("weight") == 4 and roles.count("optimizer") == 2 + 2 * 4
    assert {v["name"] for v in info["variables"]} == {t["name"] for t in sigs["restore"]["inputs"]}
    assert info["model"]["ops"]["builtin_only"] is True
    assert info["verification"]["initial_weights_exact"] is True
    assert info["model"]["size_bytes"] == len(result.tflite)


def test_saved_weights_match_keras_weights_bit_for_bit():
    model = models.mlp()
    result = build(model, loss="sparse_categorical_crossentropy", batch_size=8)
    saved = LiteRTRunner(result.tflite).get_weights()
    by_path = {v.path: v.name for v in result.variables}
    for w in model.weights:
        np.testing.assert_array_equal(saved[by_path[w.path]], np.asarray(w.numpy()))


def test_tf_keras_model_builds_and_verifies():
    result = build(models.tf_keras_mlp(), loss="sparse_categorical_crossentropy", batch_size=8)
    assert result.loaded.framework.value == "tf_keras"
    assert result.census.builtin_only and result.verification.initial_weights_exact
    assert len([v for v in result.variables if v.role == "weight"]) == 4


def test_trainable_last_layer_freezes_and_folds_the_rest():
    result = build(models.mlp(), loss="sparse_categorical_crossentropy", trainable="last:1", batch_size=8)
    weights = [v for v in result.variables if v.role == "weight"]
    assert [v.path.split("/")[-2] for v in weights] == ["head", "head"]
    assert result.module.frozen_layers == ("hidden",)
    # Folded: the frozen kernel is a constant, so only the head's variables exist in the interpreter.
    runner = LiteRTRunner(result.tflite)
    assert all("hidden" not in name for name in runner.weight_infos)


def test_compiled_model_supplies_loss_and_optimizer(tmp_path):
    import keras

    model = models.mlp(out_act="softmax")
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=0.002, rho=0.8),
                  loss=keras.losses.CategoricalCrossentropy())
    path = tmp_path / "m.keras"
    model.save(path)
    result = build(str(path), batch_size=8)
    assert result.settings["loss"] == {"name": "categorical_crossentropy", "from_logits": False}
    assert result.settings["optimizer"]["name"] == "rmsprop"
    assert result.settings["optimizer"]["learning_rate"] == pytest.approx(0.002)
    assert result.settings["optimizer"]["rho"] == pytest.approx(0.8)


def test_from_logits_is_inferred_from_the_output_activation():
    assert build(models.mlp(out_act="softmax"), loss="ce", batch_size=4).settings["loss"]["from_logits"] is False
    assert build(models.mlp(), loss=LossConfig.parse("ce"), batch_size=4).settings["loss"]["from_logits"] is True


def test_select_tf_ops_reproduces_the_2021_recipe_with_flex_checkpoints():
    result = build(models.mlp(), loss="sparse_categorical_crossentropy", batch_size=4, select_tf_ops=True)
    assert {"FlexSave", "FlexRestore", "FlexReluGrad"} <= set(result.census.flex)
    assert result.verification is None  # nothing on this machine can run it


@pytest.mark.parametrize("fmt", ["h5", "saved_model"])
def test_tf_keras_files_load_with_their_compiled_loss_and_optimizer(tmp_path, fmt):
    import tf_keras

    model = models.tf_keras_mlp()
    model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate=0.003),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    path = tmp_path / ("m.h5" if fmt == "h5" else "sm")
    model.save(path) if fmt == "h5" else model.save(path, save_format="tf")
    result = build(str(path), batch_size=8)
    assert result.loaded.framework.value == "tf_keras"
    assert result.settings["loss"] == {"name": "sparse_categorical_crossentropy", "from_logits": True}
    assert result.settings["optimizer"]["name"] == "adam"
    assert result.settings["optimizer"]["learning_rate"] == pytest.approx(0.003)
    # The loaded weights are the saved ones, bit for bit.
    saved = LiteRTRunner(result.tflite).get_weights()
    np.testing.assert_array_equal(saved["hidden_kernel"], model.get_layer("hidden").kernel.numpy())


def test_factory_string_builds_the_demo_model():
    result = build("litetrain.models:tutorial_2021", loss="categorical_crossentropy", batch_size=4)
    assert result.loaded.source == "litetrain.models:tutorial_2021"
    assert result.settings["loss"]["from_logits"] is True  # the model ends in a linear Dense
    assert {v.name for v in result.variables if v.role == "weight"} == {
        "dense_1_kernel", "dense_1_bias", "dense_2_kernel", "dense_2_bias"}


@pytest.mark.parametrize(("trainable", "expected"), [("last:1", ()), ("all", ("Conv2D", "MaxPool", "Relu"))])
def test_rewritten_gradients_lists_only_the_gradient_path(trainable, expected):
    """A frozen conv base before the trained head gets no gradient, so its rewrites do not fire and are not listed."""
    result = build(models.small_cnn(), loss="sparse_categorical_crossentropy", batch_size=4, trainable=trainable)
    assert result.rewritten_gradients == expected
