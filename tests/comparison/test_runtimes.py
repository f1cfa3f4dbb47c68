"""--runtimes: every LiteRT runtime trains the same batches from the same weights and gets its own row."""

from __future__ import annotations

import json
import shlex

import pytest

from litetrain.api import check
from litetrain.cli.app import make_parser
from litetrain.comparison.runtimes import parse_runtimes
from litetrain.config import Optimizer, OptimizerConfig
from litetrain.errors import RuntimeUnavailableError, UsageError
from litetrain.reporting.comparison_page import reproduce_command
from litetrain.reporting.console import render_comparison
from litetrain.reporting.html import render_html
from tests import models
from tests.reporting.schema_doc import assert_documented

STEPS = 24


def test_parse_runtimes(tmp_path, monkeypatch):
    monkeypatch.setenv("LITETRAIN_CACHE", str(tmp_path))  # arm64 not installed: not part of all
    assert parse_runtimes(None) == ("interpreter",)
    assert parse_runtimes("compiled") == ("interpreter", "compiled")  # the interpreter always runs
    assert parse_runtimes(" interpreter , compiled,compiled") == ("interpreter", "compiled")
    assert parse_runtimes("all") == ("interpreter", "compiled", "worker")
    with pytest.raises(UsageError, match=r"Unknown runtime\(s\) \['gpu'\]"):
        parse_runtimes("interpreter,gpu")
    with pytest.raises(RuntimeUnavailableError, match="wasm runtime is not installed"):
        parse_runtimes("wasm")  # known, not installed: exit code 3 naming the install command


def test_check_with_every_tflite_runtime(tmp_path):
    result = check(models.mlp(), "digits", loss="sparse_categorical_crossentropy", batch_size=16, steps=STEPS,
                   optimizer=OptimizerConfig(Optimizer.ADAM, learning_rate=0.01), float64=False,
                   runtimes="interpreter,compiled,worker")
    rows = result.runtimes
    names = ["interpreter", "compiled", "worker"]
    assert list(rows) == names and result.settings["runtimes"] == names
    interp, compiled, worker = rows["interpreter"], rows["compiled"], rows["worker"]
    # The retrained interpreter reproduces the main comparison's candidate; CompiledModel equals it bit for bit.
    assert interp["loss"] == result.train.loss["tflite"]
    assert interp["max_abs_loss_diff"] == result.train.max_abs_loss_diff
    for row in (compiled, worker):  # the same XNNPACK kernels, in another API and in a child process
        assert row["identical_to_interpreter"] and row["loss"] == interp["loss"]
    for row in (interp, compiled, worker):
        assert row["verdict"] == result.verdict.value and row["checkpoint_exact"] is True
        assert row["judged_by"] == "noise_floor" and 0 <= row["floor_ratio"] <= 10
        assert row["max_abs_weight_diff"] < 1e-5 and row["steps"] == STEPS and row["steps_per_second"] > 0
    assert result.passed
    saved = json.loads(result.save(tmp_path / "r.json").read_text())
    assert saved["runtimes"]["compiled"]["verdict"] == result.verdict.value
    assert_documented(saved, closed=False)
    page = render_html(saved)
    assert 'id="runtimes"' in page and "fig-runtimes" in page  # a table row and a loss curve per runtime
    command = reproduce_command(saved)
    assert command.endswith("--runtimes interpreter,compiled,worker") and "--runtimes interpreter,compiled,worker" in page
    assert make_parser().parse_args(shlex.split(command)[1:]).runtimes == "interpreter,compiled,worker"
    text = render_comparison(result)
    assert "runtimes: each trained the same 24 batches" in text
    assert [line.split()[0] for line in text.splitlines() if line.split()[:1] and line.split()[0] in names
            and line.startswith("  ")] == names


def test_without_runtimes_nothing_changes():
    result = check(models.mlp(), "digits", loss="sparse_categorical_crossentropy", batch_size=16, steps=8,
                   float64=False, noise_floor=False)
    assert result.runtimes is None and result.to_json()["runtimes"] is None
    assert "runtimes" not in result.settings and "runtimes:" not in render_comparison(result)


def test_compare_a_pair_with_more_runtimes(tmp_path):
    from litetrain.api import compare
    from litetrain.trainable.builder import build

    build(models.mlp(), loss="sparse_categorical_crossentropy", batch_size=16, output_dir=tmp_path / "built")
    result = compare(tmp_path / "built" / "saved_model", tmp_path / "built" / "model.tflite", "digits", steps=12,
                     noise_floor=False, runtimes="compiled,worker")
    rows = result.runtimes
    assert list(rows) == ["interpreter", "compiled", "worker"]
    assert all(r["judged_by"] == "tolerances" and r["checkpoint_exact"] for r in rows.values())
    assert rows["compiled"]["identical_to_interpreter"] and rows["worker"]["identical_to_interpreter"]
    assert rows["interpreter"]["loss"] == result.train.loss["tflite"]
