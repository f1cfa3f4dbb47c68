"""Quantizing trainable models: an MLP, a CNN and a frozen-base transfer model, every mode, real conversions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from litetrain import Optimizer, OptimizerConfig
from litetrain.quantization.api import quantize
from litetrain.quantization.conversion import same_content
from tests import models

pytestmark = pytest.mark.slow  # CI's second stage (quantizing trainable models, each mode converted: ~1.5 min)

STEPS = 30
ACCURACY_BOUND = 0.03
"""Deploy models may lose at most 3 percentage points of digits accuracy against float32 in any mode."""


def _run(factory: Any, out: Path, **kw: Any) -> Any:
    import keras

    keras.utils.set_random_seed(0)
    kw.setdefault("loss", "sparse_categorical_crossentropy")
    kw.setdefault("optimizer", OptimizerConfig(Optimizer.ADAM, learning_rate=0.01))
    return quantize(factory(), kw.pop("data", "digits"), steps=STEPS, batch_size=16, samples=64, output_dir=out,
                    **kw)


def cnn_model() -> Any:
    """Conv2D + MaxPool + Dense on 8x8 digits, big enough (17k weights) that weights dominate the file."""
    import keras

    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv"),
        keras.layers.MaxPooling2D(name="pool"),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu", name="dense"),
        keras.layers.Dense(10, name="head"),
    ])


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """All modes on an all-trainable MLP with SGD, int8/int16x8 built anyway to measure them."""
    return _run(lambda: models.mlp(hidden=256), tmp_path_factory.mktemp("mlp"), allow_untrainable=True,
                optimizer=OptimizerConfig(Optimizer.SGD, learning_rate=0.1))


@pytest.fixture(scope="module")
def cnn(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """All modes on a small CNN (Adam) with the defaults: int8/int16x8 on the train graph are refused."""
    return _run(cnn_model, tmp_path_factory.mktemp("cnn"), per_layer=False)


@pytest.fixture(scope="module")
def transfer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A frozen dense base and a trainable head (--trainable last:1)."""
    return _run(lambda: models.mlp(hidden=96), tmp_path_factory.mktemp("transfer"), trainable="last:1",
                modes="dynamic,float16", per_layer=False)


def test_dynamic_on_an_all_trainable_model_is_a_reported_no_op(mlp: Any) -> None:
    dyn = mlp.modes["dynamic"]
    assert dyn.status == "no-op" and "no-op" in dyn.note
    assert dyn.size_bytes == mlp.modes["none"].size_bytes and dyn.trains is True
    a = Path(mlp.files["trainable_dynamic.tflite"]).read_bytes()
    b = Path(mlp.files["trainable_none.tflite"]).read_bytes()
    assert a != b  # the converter's metadata records the option ...
    assert same_content(a, b)  # ... and nothing else differs


def test_float16_trains_from_rounded_weights_and_drifts(mlp: Any) -> None:
    f16 = mlp.modes["float16"]
    assert f16.trains is True
    assert f16.training["verdict"] == "drift"
    assert 1e-6 < f16.training["initial_weights_max_abs_diff"] < 1e-2  # float16 rounding of O(0.1) weights
    # Half of the weights' bytes; the train graph (gradients, optimizer) is the rest of a small model's file.
    assert 0.6 < f16.size_ratio < 0.9
    own = f16.training["from_file_initial_weights"]
    assert 0 < own["max_abs_loss_diff"] < 0.05
    assert abs(f16.inference.accuracy_drop) <= ACCURACY_BOUND


def test_int8_training_graph_is_built_on_request_and_measured_not_to_train(mlp: Any) -> None:
    int8 = mlp.modes["int8"]
    assert int8.trains is False
    if int8.status == "measured":
        assert "does NOT train" in int8.note and int8.training["learning_ratio"] < 0.5
    else:  # with Adam, the int8 update divides by a sqrt(v) + eps that int8 rounds to zero
        assert int8.status == "failed" and "training it fails" in int8.note, int8.note
    # The trainable variables stay float32 in the file, so int8 does not even shrink a trainable model.
    assert int8.size_ratio > 0.9
    assert mlp.modes["int16x8"].trains is False  # built and not training, or not buildable at all
    assert mlp.recommendation["mode"] in ("none", "dynamic", "float16")


def test_trainable_figures_are_consistent_with_check(mlp: Any) -> None:
    none = mlp.modes["none"]
    assert none.trains is True and none.training["verdict"] in ("consistent", "consistent-sensitive")
    assert none.inference.max_abs_error < 1e-4 and none.inference.argmax_agreement == 1.0
    assert none.latency_us is not None and none.latency_us > 0


def test_deploy_int8_is_about_a_quarter_and_keeps_accuracy(mlp: Any, cnn: Any) -> None:
    # int8 weights are a quarter of float32's; per-channel scales and zero points (12 bytes per output channel)
    # and the op tables come on top, which a small model feels: 0.37 for this MLP (0.27 for the 2021 tutorial's
    # 784-128-10 model).
    for result, band in ((mlp, (0.2, 0.4)), (cnn, (0.2, 0.45))):
        deploy = result.deploy
        ratio = deploy["int8"].size_bytes / deploy["none"].size_bytes
        assert band[0] < ratio < band[1], ratio
        assert deploy["int8"].trains is None
        for mode, report in deploy.items():
            assert abs(report.inference.accuracy_drop) <= ACCURACY_BOUND, (mode, report.inference)
        assert deploy["none"].inference.max_abs_error < 1e-4
        assert deploy["float16"].inference.max_abs_error < 0.02
        assert deploy["int8"].inference.argmax_agreement > 0.95
        assert result.deploy_recommendation["size_bytes"] <= deploy["float16"].size_bytes


def test_int8_on_a_training_graph_is_refused_by_default_with_the_reason(cnn: Any) -> None:
    for mode in ("int8", "int16x8"):
        report = cnn.modes[mode]
        assert report.status == "refused" and report.trains is False and report.size_bytes is None
        assert "no longer learns like float32" in report.note and "--allow-untrainable" in report.note
    assert "calibration range" in cnn.modes["int16x8"].note and "int8 zero" in cnn.modes["int8"].note
    # With Adam, float16 also rounds the optimizer's constants (beta_2 0.999 -> 0.99902, epsilon), so single
    # steps differ by percents: it trains, but the verdict may say the dynamics differ.
    assert cnn.modes["float16"].trains is True
    assert abs(cnn.modes["float16"].inference.accuracy_drop) <= ACCURACY_BOUND
    assert cnn.modes["dynamic"].status == "no-op"
    assert cnn.recommendation["trains"] is True


def test_dynamic_quantizes_a_frozen_base_and_training_still_works(transfer: Any) -> None:
    dyn = transfer.modes["dynamic"]
    assert transfer.model["frozen_layers"] == ["hidden"]
    assert dyn.status == "measured" and dyn.trains is True
    # The frozen 64x96 kernel is stored as int8 (24 KiB -> 6 KiB); the rest of this tiny file is the five signatures'
    # graphs and Adam's float state, which no mode changes.
    float_size = transfer.modes["none"].size_bytes
    assert float_size - dyn.size_bytes > 0.7 * 64 * 96 * 3 and dyn.size_ratio < 0.8
    assert "frozen" in dyn.note
    assert abs(dyn.inference.accuracy_drop) <= ACCURACY_BOUND
    # A mode whose twin verdict is inconsistent or unhealthy is never recommended (dynamic's forward pass differs
    # from float32 by design; float16 rounds Adam's constants), and the recommendation says which were left out.
    rec = transfer.recommendation
    for mode, report in transfer.modes.items():
        if report.training["verdict"] in ("inconsistent", "unhealthy"):
            assert rec["mode"] != mode and f"{mode}: verdict {report.training['verdict']}" in rec["excluded"]
    assert rec["mode"] in ("none", "dynamic", "float16") and rec["trains"] is True


def test_json_holds_every_mode_with_the_documented_keys(mlp: Any, tmp_path: Path) -> None:
    import json

    doc = json.loads(mlp.save(tmp_path / "q.json").read_text())
    assert doc["kind"] == "quantize" and doc["schema_version"] == "1.0"
    assert {"environment", "settings", "recommendation", "deploy"} <= set(doc)
    for mode in ("none", "dynamic", "float16", "int8", "int16x8"):
        entry = doc["modes"][mode]
        for key in ("size_bytes", "max_abs_error", "argmax_agreement", "accuracy", "trains"):
            assert key in entry, (mode, key)
        assert doc["deploy"]["modes"][mode]["trains"] is None
    assert doc["modes"]["dynamic"]["trains"] is True
    assert doc["recommendation"]["size_bytes"] > 0
    text = str(mlp)
    assert "trainable model" in text and "deploy" in text and "recommendation" in text
    assert np.isfinite(doc["modes"]["none"]["latency_us"])


def test_the_result_has_the_documented_keys(mlp: Any) -> None:
    """Every field docs/report-schema.md gives a quantize result is there, and nothing it does not name."""
    from tests.reporting.schema_doc import assert_documented

    doc = mlp.to_json()
    assert doc["schema_version"] == "1.0"
    for mode in doc["modes"].values():
        assert {"size_bytes", "max_abs_error", "argmax_agreement", "accuracy", "trains"} <= set(mode)
    assert doc["recommendation"]["mode"] in doc["modes"]
    assert_documented(doc)
