"""--repeats K: the twins over K more seeds, the spread of the final metric and the paired difference's CI."""

from __future__ import annotations

import json

import numpy as np
import pytest

import litetrain
from litetrain import Optimizer, OptimizerConfig
from litetrain.cli.app import main
from litetrain.comparison.repeats import VARIES_ALL, VARIES_ORDER, keras_initial_weights, paired_difference
from litetrain.errors import UsageError
from tests import models

K = 3
STEPS = 30
SGD = OptimizerConfig(Optimizer.SGD, learning_rate=0.05)


# --- the statistics --------------------------------------------------------------------------------------
def test_known_difference_is_significant():
    ref = np.array([0.81, 0.84, 0.86, 0.83, 0.88, 0.85, 0.82, 0.87])
    noise = np.array([0.003, -0.002, 0.001, -0.004, 0.002, 0.0, -0.001, 0.001])  # mean 0, std 0.0023
    d = paired_difference(ref, ref + 0.05 + noise)
    assert d["mean"] == pytest.approx(0.05) and d["std"] == pytest.approx(np.std(noise, ddof=1))
    low, high = d["ci95"]
    assert high - 0.05 == pytest.approx(0.05 - low)
    # t(0.975, 7) = 2.365: half-width 2.365 * 0.0023 / sqrt(8) = 0.0019.
    assert high - low == pytest.approx(2 * 2.3646 * np.std(noise, ddof=1) / np.sqrt(8), rel=1e-3)
    assert 0 < low < 0.05 < high and d["significant"] is True
    # The same +0.05 drowned in noise 50 times larger is not significant.
    noisy = paired_difference(ref, ref + 0.05 + 50 * noise)
    assert noisy["ci95"][0] < 0 < noisy["ci95"][1] and noisy["significant"] is False


def test_identical_values_and_one_repeat():
    same = paired_difference([0.9, 0.8, 0.85], [0.9, 0.8, 0.85])
    assert same["mean"] == 0 and same["std"] == 0 and same["ci95"] == [0, 0] and same["significant"] is False
    one = paired_difference([0.9], [0.8])
    assert one["ci95"] is None and one["std"] is None and one["significant"] is False
    assert one["mean"] == pytest.approx(-0.1)


# --- check: initialization and data order vary ------------------------------------------------------------
def test_check_repeats_report(tmp_path):
    result = litetrain.check(models.mlp(), "digits", loss="sparse_categorical_crossentropy", optimizer=SGD,
                             batch_size=16, steps=STEPS, repeats=K, noise_floor=False, float64=False)
    rep = json.loads(result.save(tmp_path / "r.json").read_text())["repeats"]
    assert rep["k"] == K and rep["seeds"] == [1, 2, 3] and rep["metric"] == "accuracy"
    assert rep["varies"] == VARIES_ALL and rep["steps"] == STEPS
    for name in ("tensorflow", "tflite"):
        assert len(rep["values"][name]) == K and len(rep["final_loss"][name]) == K
        assert set(rep["mean"]) == set(rep["std"]) == {"tensorflow", "tflite"}
    # A faithful conversion: the paired difference is tiny; the seed moves accuracy far more.
    diff = rep["difference"]
    assert abs(diff["mean"]) < 0.01 and len(diff["ci95"]) == 2 and isinstance(diff["significant"], bool)
    assert rep["std"]["tensorflow"] > 0
    assert "repeats_s" in result.timings
    text = str(result)
    assert f"over {K} more seeds" in text and "95% CI" in text
    assert "repeats:" in result._repr_html_()


def test_initial_weights_are_redrawn_per_seed(monkeypatch):
    built = litetrain.build(models.mlp(), loss="sparse_categorical_crossentropy", optimizer=SGD, batch_size=16,
                            trainable="last:1")
    module = built.module
    initial = module.get_weights()
    draw, varies = keras_initial_weights(module, initial)
    assert varies == VARIES_ALL
    a, a2, b = draw(5), draw(5), draw(6)
    weights = [v.name for v in module.variables_info if v.role == "weight"]
    others = [v.name for v in module.variables_info if v.role != "weight"]
    assert weights and set(a) == set(initial)
    assert all(np.array_equal(a[n], a2[n]) for n in a)  # deterministic per seed
    assert not np.array_equal(a[weights[0]], b[weights[0]])  # another seed, other weights
    assert not np.array_equal(a[weights[0]], initial[weights[0]])
    assert all(np.array_equal(a[n], initial[n]) for n in others)  # optimizer state from the start
    # A model that cannot be cloned keeps its weights: only the data order varies.
    import keras

    def refuse(*args, **kwargs):
        raise TypeError("cannot clone")

    monkeypatch.setattr(keras.models, "clone_model", refuse)
    with pytest.warns(UserWarning, match="cannot be re-drawn"):
        draw, varies = keras_initial_weights(module, initial)
    assert varies == VARIES_ORDER and all(np.array_equal(draw(9)[n], initial[n]) for n in initial)


# --- compare: only the data order varies --------------------------------------------------------------------
def test_compare_repeats_vary_data_order(tmp_path):
    from tests.comparison.test_compare_pair import HandWritten, _export

    sm, tfl = _export(HandWritten(), tmp_path)
    result = litetrain.compare(sm, tfl, "digits", steps=STEPS, repeats=2, noise_floor=False)
    rep = result.repeats
    assert rep["varies"] == VARIES_ORDER and rep["k"] == 2 and len(rep["values"]["tflite"]) == 2
    assert abs(rep["difference"]["mean"]) < 0.01


# --- usage --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ["check", "tests.models:mlp", "--repeats", "0"],
    ["demo", "--repeats", "-2", "--json", ""],
    ["compare", "--reference", "nowhere", "--candidate", "nothing.tflite", "--repeats", "0"],
])
def test_cli_repeats_below_one_is_a_usage_error(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--repeats must be at least 1" in err and "Traceback" not in err


def test_api_rejects_bad_repeats():
    with pytest.raises(UsageError, match="at least 1"):
        litetrain.check(models.mlp(), "digits", loss="mse", repeats=0)
    with pytest.raises(UsageError, match="whole number"):
        litetrain.compare("a", "b", repeats=2.5)
