"""A mode that fails is a row, not the end of ``quantize``: real TensorFlow conversions and the real LiteRT interpreter.

The failing mode is real, not injected: ``dead_depthwise`` (tests/quantization/failing_models.py) is a DepthwiseConv2D
with ReLU6 whose outputs are ~1e-9, and its int16x8 model converts but the interpreter refuses to prepare
DEPTHWISE_CONV_2D (``no_integer_overflow_from_quantization``), as on MobileNetV2's deploy model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import pytest

from litetrain.cli.app import main
from litetrain.cli.quantize import EVERY_MODE_FAILED, exit_code
from litetrain.quantization.failures import ModeFailure, one_line
from litetrain.quantization.inference import InferenceFigures
from litetrain.quantization.modes import QuantMode
from litetrain.quantization.recommend import chance_level, recommend
from litetrain.quantization.result import ModeReport, QuantizeResult, Status

MODEL = "tests.quantization.failing_models:dead_depthwise"
FIGURES = ("size_bytes", "max_abs_error", "mean_abs_error", "argmax_agreement", "accuracy", "latency_us")


@dataclasses.dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str
    doc: dict[str, Any]
    html: str


def _run(argv: list[str], folder: Path) -> Run:
    out, err = io.StringIO(), io.StringIO()
    json_path, html_path = folder / "q.json", folder / "q.html"
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["quantize", MODEL, *argv, "--samples", "32", "--json", str(json_path), "--html", str(html_path)])
    return Run(code, out.getvalue(), err.getvalue(), json.loads(json_path.read_text()), html_path.read_text())


@pytest.fixture(scope="module")
def trainable(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The trainable model with a frozen depthwise base: dynamic works, the deploy model's int16x8 fails."""
    return _run(["--loss", "sparse_categorical_crossentropy", "--from-logits", "--trainable", "last:1",
                 "--modes", "dynamic,int16x8", "--steps", "20", "--batch-size", "16", "--no-noise-floor",
                 "--no-per-layer"], tmp_path_factory.mktemp("trainable"))


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """``--mode int16x8`` alone on the inference model: the one mode asked for fails."""
    return _run(["--inference-only", "--mode", "int16x8"], tmp_path_factory.mktemp("single"))


def test_the_failed_mode_is_a_row_with_model_stage_and_a_one_line_reason(trainable: Run) -> None:
    row = trainable.doc["deploy"]["modes"]["int16x8"]
    assert row["status"] == "failed" and row["kind"] == "inference" and row["trains"] is None
    failure = row["failure"]
    assert failure["model"] == "deploy" and failure["stage"] == "interpreter"
    reason = failure["reason"]
    assert "DEPTHWISE_CONV_2D" in reason and "no_integer_overflow_from_quantization" in reason
    assert "\n" not in reason and len(reason) <= 240 and reason.count("DEPTHWISE_CONV_2D") == 1
    assert "Node number 1 (DEPTHWISE_CONV_2D) failed to prepare" in failure["detail"]  # the raw text, kept aside
    assert row["size_bytes"] > 0 and row["max_abs_error"] is None  # built, never ran
    assert row["note"].startswith("the interpreter cannot run it")


def test_the_other_modes_are_measured_and_the_json_is_complete(trainable: Run) -> None:
    from tests.reporting.schema_doc import assert_documented

    assert trainable.code == 0
    doc = trainable.doc
    assert_documented(doc)
    assert set(doc["modes"]) == set(doc["deploy"]["modes"]) == {"none", "dynamic", "int16x8"}
    for mode in ("none", "dynamic"):
        row = doc["deploy"]["modes"][mode]
        assert row["status"] == "measured" and row["failure"] is None
        assert all(row[key] is not None for key in FIGURES), (mode, row)
        assert doc["modes"][mode]["size_bytes"] > 0 and doc["modes"][mode]["accuracy"] is not None
    assert doc["modes"]["int16x8"]["status"] == "refused"  # the train graph's int16x8, refused as before
    assert doc["deploy"]["recommendation"]["mode"] in ("none", "dynamic")


def test_console_and_html_show_the_failed_row(trainable: Run) -> None:
    deploy_table = trainable.out.split("deploy: inference model")[1]
    row = next(line for line in deploy_table.splitlines() if line.strip().startswith("int16x8"))
    assert row.rstrip().endswith("failed")
    assert "int16x8 (deploy model) failed in the interpreter" in deploy_table
    assert "litetrain: warning: int16x8 (deploy model) failed in the interpreter: " in trainable.err
    assert "Traceback" not in trainable.err and "loc(" not in trainable.err
    assert 'data-key="/deploy/modes/int16x8/status"' in trainable.html
    assert 'data-key="/deploy/modes/int16x8/failure/reason"' in trainable.html


def test_chance_level_accuracy_is_warned_about(trainable: Run) -> None:
    """The dead base carries no signal: the head cannot learn, accuracies sit at chance, the budget means nothing."""
    rec = trainable.doc["deploy"]["recommendation"]
    assert rec["warnings"] and "chance level" in rec["warnings"][0]
    assert "WARNING: held-out accuracy is at chance level" in trainable.out
    # The float32 trainable twin cannot learn either, but 20 steps are too few to call that broken (a note, not
    # unhealthy): it is recommended, and the recommendation carries the chance-level warning.
    assert trainable.doc["modes"]["none"]["training"]["verdict"] == "consistent"
    assert any("chance level" in w for w in trainable.doc["recommendation"]["warnings"])


def test_a_single_requested_mode_that_fails_exits_non_zero_with_one_line(single: Run) -> None:
    assert single.code == EVERY_MODE_FAILED == 4
    lines = [line for line in single.err.splitlines() if line.startswith("litetrain: error:")]
    assert lines[0].startswith("litetrain: error: int16x8 (inference model) failed in the interpreter: ")
    assert "no requested mode could be measured (int16x8)" in lines[1]
    assert "Traceback" not in single.err
    row = single.doc["modes"]["int16x8"]
    assert row["status"] == "failed" and row["failure"]["model"] == "inference"
    assert single.doc["modes"]["none"]["status"] == "measured"  # the reference still has its figures
    assert "int16x8 (inference model) failed" in single.html


# -- unit level: reasons, the recommendation rule, the exit rule -------------------------------------------------


def test_one_line_drops_mlir_locations_and_repeated_prepare_failures() -> None:
    mlir = ("<unknown>:0: error: loc(callsite(callsite(fused[\"TensorListReserve:\", \"x@__inference_fn\"] at "
            "fused[\"StatefulPartitionedCall:\"]) at \"infer\")): 'tf.TensorListReserve' op requires element_shape "
            "to be static\n<unknown>:0: note: see current operation: %0 = \"tf.TensorListReserve\"(...)")
    assert one_line(mlir) == "error: 'tf.TensorListReserve' op requires element_shape to be static"
    prepare = "kernel_util.cc:349 check was not true.Node number 7 (CONV_2D) failed to prepare." * 2
    assert one_line(prepare) == "CONV_2D (node 7) failed to prepare: kernel_util.cc:349 check check failed"
    assert len(one_line("x" * 1000)) == 240


def _report(mode: str, size: int, accuracy: float, *, verdict: str | None = None, trains: bool | None = None,
            float_accuracy: float = 0.9, status: str = Status.MEASURED) -> ModeReport:
    figures = InferenceFigures(samples=100, max_abs_error=0.01, mean_abs_error=0.001, max_rel_error=0.01,
                               argmax_agreement=1.0, accuracy=accuracy, accuracy_float32=float_accuracy,
                               output_scale=1.0)
    kind = "trainable" if verdict is not None else "inference"
    training = {"verdict": verdict} if verdict is not None else None
    return ModeReport(QuantMode(mode), kind, status, size, 1000, figures, 5.0, trains, "", training=training)


def test_the_recommendation_never_picks_an_inconsistent_or_unhealthy_trainable_mode() -> None:
    reports = {
        "none": _report("none", 1000, 0.9, verdict="consistent", trains=True),
        "dynamic": _report("dynamic", 300, 0.9, verdict="inconsistent", trains=True),
        "float16": _report("float16", 500, 0.9, verdict="unhealthy", trains=True),
        "int8": _report("int8", 250, 0.9, verdict="drift", trains=False),
    }
    rec = recommend(reports, 0.01, trainable=True, chance=0.1)
    assert rec is not None and rec["mode"] == "none"
    assert rec["excluded"] == ["dynamic: verdict inconsistent", "float16: verdict unhealthy", "int8: does not train"]
    assert "excluded" in rec["reason"] and rec["warnings"] == []
    drift = {**reports, "float16": _report("float16", 500, 0.9, verdict="drift", trains=True)}
    assert recommend(drift, 0.01, trainable=True)["mode"] == "float16"  # drift is not excluded
    only_bad = {"dynamic": reports["dynamic"], "float16": reports["float16"]}
    assert recommend(only_bad, 0.01, trainable=True) is None
    # Inference models have no verdict: the same figures are candidates.
    assert recommend(reports, 0.01, trainable=False)["mode"] == "int8"


def test_the_recommendation_warns_when_accuracy_is_at_chance_level() -> None:
    at_chance = {"none": _report("none", 1000, 0.12, float_accuracy=0.12),
                 "int8": _report("int8", 250, 0.115, float_accuracy=0.12)}
    rec = recommend(at_chance, 0.01, trainable=False, chance=0.1)
    assert rec["mode"] == "int8" and len(rec["warnings"]) == 1
    assert "chance level" in rec["warnings"][0] and "float32 12.0%" in rec["warnings"][0]
    learned = {"none": _report("none", 1000, 0.9), "int8": _report("int8", 250, 0.895)}
    assert recommend(learned, 0.01, trainable=False, chance=0.1)["warnings"] == []
    assert recommend(at_chance, 0.01, trainable=False, chance=None)["warnings"] == []  # regression: no chance
    assert chance_level(10) == 0.1 and chance_level(None) is None
    assert chance_level(2, [0, 1, 1, 1]) == 0.75  # guessing the most frequent class
    failed = ModeReport(QuantMode.INT8, "inference", Status.FAILED, 200, 1000, None, None, None, "",
                        failure=ModeFailure("inference", "interpreter", "x", "x"))
    assert recommend({"int8": failed}, 0.01, trainable=False) is None


def _result(modes: dict[str, ModeReport], asked: list[str], deploy: dict[str, ModeReport] | None = None,
            ) -> QuantizeResult:
    return QuantizeResult(model={"kind": "trainable" if deploy is not None else "inference"}, data={},
                          representative={}, settings={"modes": asked}, modes=modes, recommendation=None,
                          deploy=deploy, deploy_recommendation=None, notes=(), environment={}, timings={})


def test_the_exit_rule(capsys: pytest.CaptureFixture) -> None:
    def failed(model: str) -> ModeReport:
        return ModeReport(QuantMode.INT8, "inference", Status.FAILED, None, 1000, None, None, None, "",
                          failure=ModeFailure(model, "conversion", "the converter said no", "full text"))

    refused = ModeReport(QuantMode.INT8, "trainable", Status.REFUSED, None, 1000, None, None, False, "")
    none = _report("none", 1000, 0.9)
    dynamic = _report("dynamic", 300, 0.9)
    # One requested mode measured, another failed: 0, and the failure is a warning line.
    assert exit_code(_result({"none": none, "dynamic": dynamic, "int8": failed("inference")},
                             ["none", "dynamic", "int8"])) == 0
    assert "litetrain: warning: int8 (inference model) failed to convert: the converter said no" in \
        capsys.readouterr().err
    # Refused in the trainable model but measured in the deploy model: 0.
    deploy = {"none": none, "int8": _report("int8", 250, 0.9)}
    assert exit_code(_result({"none": none, "int8": refused}, ["none", "int8"], deploy)) == 0
    # Refused in one model and failed in the other: nothing asked for was measured.
    deploy = {"none": none, "int8": failed("deploy")}
    assert exit_code(_result({"none": none, "int8": refused}, ["none", "int8"], deploy)) == EVERY_MODE_FAILED
    err = capsys.readouterr().err
    assert "litetrain: error: int8 (deploy model) failed to convert: the converter said no" in err
    assert "no requested mode could be measured (int8); refused: int8 (trainable model)" in err
    # 'none' alone is a request like any other.
    assert exit_code(_result({"none": none}, ["none"])) == 0
