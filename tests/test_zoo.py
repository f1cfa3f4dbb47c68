"""The model zoo (tests/zoo.py): every architecture trains builtin-only and like TensorFlow.

One test per entry runs ``litetrain.check`` as a user would (the compiled loss and optimizer, the entry's data,
``--trainable`` spec, steps and batch size) and asserts builtin ops only, a consistent verdict and a finite loss
difference. Every entry carries the ``zoo`` marker: CI runs the suite with ``-m "not zoo"`` and the zoo as its
second stage (``-m zoo``); the slowest entries also carry ``zoo_slow``. ``dev/zoo_table.py`` turns the same runs into the README's table.
"""

from __future__ import annotations

import math

import pytest

import litetrain
from tests.zoo import ZOO, ZooModel

PASSING = {"consistent", "consistent-sensitive"}


def _param(entry: ZooModel) -> object:
    marks = [pytest.mark.zoo, *([pytest.mark.zoo_slow] if entry.slow else [])]
    if entry.known_issue:  # strict: once the finding is fixed the entry passes, and this fails until it is removed
        marks.append(pytest.mark.xfail(strict=True, reason=entry.known_issue))
    return pytest.param(entry, id=entry.name, marks=marks)


@pytest.mark.parametrize("entry", [_param(m) for m in ZOO])
def test_zoo_model_trains_builtin_only_like_tensorflow(entry: ZooModel) -> None:
    result = litetrain.check(**entry.check_kwargs())
    report = result.to_json()
    ops = report["model"]["ops"]
    assert ops["builtin_only"] and ops["total"]["flex"] == 0 and ops["total"]["custom"] == 0, (
        f"{entry.name} needs non-builtin ops: flex {ops['flex']}, custom {ops['custom']}")
    assert report["verdict"] in PASSING, f"{entry.name}: {report['verdict']}: {report['explanation']}"
    loss_diff = report["train"]["max_abs_loss_diff"]
    assert isinstance(loss_diff, float) and math.isfinite(loss_diff), f"{entry.name}: loss difference {loss_diff}"


def test_zoo_has_every_family_of_the_issue() -> None:
    """At least 25 architectures with unique names; the families issue 11 lists are all present."""
    assert len(ZOO) >= 25
    families = {m.family for m in ZOO}
    assert {"keras application", "text", "audio", "autoencoder", "multi-input", "multi-output", "lora",
            "tf_keras", "tabular", "regression"} <= families
    assert {m.name for m in ZOO if m.trainable == "last:1"} >= {
        "mobilenet_v2-transfer", "mobilenet_v3_small-transfer", "efficientnet_b0-transfer", "resnet_small-transfer"}
