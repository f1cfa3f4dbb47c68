"""The labelled suite: every clean pair and every defect gets its expected verdict (zero errors)."""

from __future__ import annotations

import pytest

from tests.comparison.verdict_suite import CASES, run_case


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_pair_gets_its_expected_verdict(case, tmp_path):
    result = run_case(case, tmp_path)
    assert result.verdict.value == case.expected, f"{case.description}: {result.cause}"
    if case.location:
        assert case.location in result.cause, result.cause
    for flag in case.flags:
        assert all(flag in h["flags"] for h in result.health), result.health
    # Every verdict carries its explanation and the figures behind it.
    assert len(result.explanation) > 80
    data = result.to_json()
    assert data["verdict"] == case.expected and data["cause"] == result.cause
    if case.expected in ("consistent", "consistent-sensitive"):
        assert data["divergence"]["within_floor"] is True
        assert {p["name"] for p in data["noise_floor"]["perturbations"]} >= {
            "tensorflow:summation-order", "tensorflow:last-bit-init", "tflite:no-default-delegate"}


def test_forward_pass_defect_is_located_at_its_layer():
    """A candidate whose hidden activation is relu6 instead of relu, with inputs large enough to tell them apart."""
    import keras
    import numpy as np

    from litetrain.comparison.locate import locate_forward
    from litetrain.trainable.builder import build
    from tests import models

    keras.utils.set_random_seed(0)
    reference = models.mlp()
    keras.utils.set_random_seed(0)
    defect = models.mlp(activation="relu6")
    defect.set_weights(reference.get_weights())
    x = np.random.default_rng(0).random((5, 8, 8)).astype(np.float32) * 40
    clean = locate_forward(reference, build(reference, loss="sparse-ce", batch_size=4).tflite, x)
    assert clean.layer is None and clean.per_layer["hidden"] < 1e-4
    found = locate_forward(reference, build(defect, loss="sparse-ce", batch_size=4).tflite, x)
    assert found.layer == "hidden" and found.max_abs_error > 1.0
    assert "layer 'hidden'" in found.describe()
