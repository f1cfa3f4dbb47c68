"""An ordinary short run is not broken: a loss that barely moved in fewer than 50 steps is a note, not ``unhealthy``;
the same flat loss over a run long enough to judge still is."""

from __future__ import annotations

import pytest

import litetrain
from litetrain import Optimizer, OptimizerConfig
from litetrain.cli.app import main
from tests import models

SLOW = OptimizerConfig(Optimizer.SGD, learning_rate=1e-5)


def test_a_short_slow_run_gets_the_agreement_verdict_and_a_note() -> None:
    result = litetrain.check(models.mlp(), "digits", loss="sparse_categorical_crossentropy", optimizer=SLOW,
                             batch_size=16, steps=20, noise_floor=False, float64=False)
    assert result.verdict.value == "consistent" and bool(result)
    assert "Note: the loss barely moved in 20 steps" in result.explanation
    assert all(h["healthy"] and h["notes"] for h in result.to_json()["health"])


def test_the_same_flat_loss_over_a_long_run_is_unhealthy() -> None:
    result = litetrain.check(models.mlp(), "digits", loss="sparse_categorical_crossentropy", optimizer=SLOW,
                             batch_size=16, steps=60, noise_floor=False, float64=False)
    assert result.verdict.value == "unhealthy" and not bool(result)
    assert all("not-learning" in h["flags"] for h in result.to_json()["health"])


@pytest.mark.parametrize(("optimizer", "lr"), [("adam", "1e-3"), ("sgd", "0.01")])
def test_twenty_ordinary_steps_exit_0(optimizer: str, lr: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "tests.models:small_cnn", "--loss", "sparse_categorical_crossentropy", "--optimizer",
                 optimizer, "--lr", lr, "--steps", "20", "--batch-size", "16", "--no-noise-floor"])
    assert code == 0, capsys.readouterr()
