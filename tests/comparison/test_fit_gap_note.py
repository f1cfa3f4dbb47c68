"""``--layers inference`` on a model with trainable BatchNormalization or dropout says, in the explanation (JSON and
console), that this training differs from Keras ``model.fit``; a model without such layers, or fit mode, gets no
such note."""

from __future__ import annotations

import json

import pytest

import litetrain
from litetrain import Optimizer, OptimizerConfig
from litetrain.cli.app import main
from tests import models

NOTE = "--layers inference ran"
SGD = OptimizerConfig(Optimizer.SGD, learning_rate=0.05)


def bn_dropout_mlp():
    import keras

    keras.utils.set_random_seed(11)
    return keras.Sequential([
        keras.Input((8, 8)), keras.layers.Flatten(), keras.layers.Dense(16, name="hidden"),
        keras.layers.BatchNormalization(name="bn"), keras.layers.Dropout(0.2, name="drop"), keras.layers.Dense(10),
    ])


def _check(model, layers: str):
    return litetrain.check(model, "digits", loss="sparse_categorical_crossentropy", optimizer=SGD, batch_size=16,
                           steps=5, noise_floor=False, float64=False, layers=layers)


def test_inference_mode_names_the_frozen_statistics_and_the_inactive_dropout() -> None:
    result = _check(bn_dropout_mlp(), "inference")
    text = result.to_json()["explanation"]
    assert NOTE in text
    assert "BatchNormalization 'bn' normalizes with its frozen moving statistics" in text
    assert "dropout/noise 'drop' is off" in text and "differs from Keras model.fit" in text


@pytest.mark.parametrize(("factory", "layers"), [(bn_dropout_mlp, "fit"), (models.mlp, "inference")])
def test_no_note_when_train_runs_as_fit_does(factory, layers: str) -> None:
    assert NOTE not in _check(factory(), layers).explanation


def test_frozen_batch_norm_alone_is_not_a_difference_from_fit() -> None:
    model = bn_dropout_mlp()
    model.get_layer("bn").trainable = False
    text = _check(model, "inference").explanation
    assert "dropout/noise 'drop' is off" in text and "BatchNormalization" not in text


def test_the_console_and_json_of_check_carry_the_note(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.json"
    code = main(["check", "tests.comparison.test_fit_gap_note:bn_dropout_mlp", "--loss",
                 "sparse_categorical_crossentropy", "--steps", "5", "--batch-size", "16", "--layers", "inference",
                 "--no-noise-floor", "--no-float64", "--json", str(out)])
    console = " ".join(capsys.readouterr().out.split())
    assert code == 0
    assert NOTE in console and "frozen moving statistics" in console
    assert NOTE in json.loads(out.read_text())["explanation"]
