"""A device with 10 samples trains a model built for batch 32: ``litetrain train`` and ``litetrain check`` run one
partial batch per epoch (the train signature's count ``n`` keeps the padding out), and nothing is dropped."""

from __future__ import annotations

import json

import numpy as np
import pytest

from litetrain.cli.app import main

FACTORY = "tests.trainable.test_partial_batches:bn_dropout_mlp"
SAMPLES, BATCH, EPOCHS = 10, 32, 4


@pytest.fixture(scope="module")
def ten(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("few")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((SAMPLES + 6, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 1).astype(np.int32)
    data = folder / "ten.npz"
    np.savez(data, x=x[:SAMPLES], y=y[:SAMPLES], x_test=x[SAMPLES:], y_test=y[SAMPLES:])
    assert main(["build", FACTORY, "--loss", "sparse_categorical_crossentropy", "--batch-size", str(BATCH),
                 "--lr", "0.05", "-o", str(folder / "built")]) == 0
    return folder, data


def test_train_runs_a_partial_batch_per_epoch(ten, capsys: pytest.CaptureFixture[str]) -> None:
    folder, data = ten
    out = folder / "train.json"
    code = main(["train", str(folder / "built" / "model.tflite"), "--data", str(data), "--epochs", str(EPOCHS),
                 "--checkpoint-dir", str(folder / "ckpt"), "--json", str(out), "-q"])
    assert code == 0, capsys.readouterr()
    result = json.loads(out.read_text())
    assert result["steps"] == EPOCHS and result["steps_per_epoch"] == 1
    losses = [e["loss"] for e in result["epochs"]]
    assert all(np.isfinite(losses)) and len(set(losses)) == EPOCHS


def test_check_trains_the_twins_on_the_same_partial_batches(ten, capsys: pytest.CaptureFixture[str]) -> None:
    folder, data = ten
    out = folder / "check.json"
    code = main(["check", FACTORY, "--loss", "sparse_categorical_crossentropy", "--batch-size", str(BATCH),
                 "--lr", "0.05", "--data", str(data), "--epochs", str(EPOCHS), "--json", str(out), "-q"])
    assert code == 0, capsys.readouterr()
    result = json.loads(out.read_text())
    assert result["verdict"] == "consistent"
    assert result["train"]["steps"] == EPOCHS and result["train"]["max_abs_loss_diff"] < 1e-5
    assert result["settings"]["batch_size"] == BATCH
