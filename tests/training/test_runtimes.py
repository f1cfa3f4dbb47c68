"""``litetrain train --runtimes``: the session trains on the named runtime; several train in lockstep behind the
first, with a row each in the JSON; an uninstalled runtime is refused with exit 3 before any checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from litetrain.cli.app import main
from litetrain.runtime.wasm import WasmRunner
from litetrain.training.checkpoint import load_checkpoint
from tests.reporting.schema_doc import assert_documented
from tests.training.conftest import BATCH, TRAIN_SAMPLES

SPE = TRAIN_SAMPLES // BATCH


def _train(tm: SimpleNamespace, ck: Path, *extra: str) -> tuple[int, dict]:
    out = ck.parent / f"{ck.name}.json"
    code = main(["train", str(tm.adam), "--data", str(tm.npz), "--epochs", "1", "--checkpoint-dir", str(ck),
                 "--json", str(out), "-q", *extra])
    return code, (json.loads(out.read_text()) if out.exists() else {})


def _final_weights(ck: Path) -> dict[str, np.ndarray]:
    newest = max(ck.glob("ckpt-*.npz"), key=lambda p: int(p.stem.split("-")[1]))
    return dict(load_checkpoint(newest).arrays)


def test_compiled_leads_and_the_interpreter_follows_bit_for_bit(tm, tmp_path):
    code, plain = _train(tm, tmp_path / "plain")
    assert code == 0 and plain["runtimes"] is None  # without --runtimes: the Interpreter alone, as before
    code, both = _train(tm, tmp_path / "both", "--runtimes", "compiled,interpreter")
    assert code == 0
    assert both["settings"]["runner"] == "compiled"
    rows = both["runtimes"]
    assert list(rows) == ["compiled", "interpreter"]
    assert rows["compiled"]["leader"] is True and rows["compiled"]["steps"] == SPE
    follower = rows["interpreter"]
    assert follower["steps"] == SPE and follower["identical_to_leader"] is True
    assert follower["max_abs_loss_diff"] == 0.0 and follower["max_abs_weight_diff"] == 0.0
    assert all(r["steps_per_second"] > 0 and r["emulated"] is False for r in rows.values())
    assert_documented(both)
    # The CompiledModel API trains what the Interpreter trains: same epoch loss, same final checkpoint.
    assert both["epochs"][0]["loss"] == plain["epochs"][0]["loss"]
    expected = _final_weights(tmp_path / "plain")
    for name, value in _final_weights(tmp_path / "both").items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


def test_one_runtime_alone_gets_its_row(tm, tmp_path, capsys):
    code = main(["train", str(tm.adam), "--data", str(tm.npz), "--epochs", "1", "--checkpoint-dir",
                 str(tmp_path / "ck"), "--json", str(tmp_path / "r.json"), "--runtimes", "compiled"])
    assert code == 0
    rows = json.loads((tmp_path / "r.json").read_text())["runtimes"]
    assert list(rows) == ["compiled"] and rows["compiled"]["leader"] and rows["compiled"]["steps"] == SPE
    assert rows["compiled"]["max_abs_loss_diff"] is None  # a leader is compared with no one
    out = capsys.readouterr().out
    assert "compiled" in out and "steps/s" in out and "leader" in out


@pytest.mark.skipif(WasmRunner.unavailable() is not None, reason="needs Node and 'litetrain runtimes install wasm'")
def test_wasm_follows_the_interpreter_within_float_noise(tm, tmp_path):
    code, result = _train(tm, tmp_path / "ck", "--runtimes", "interpreter,wasm")
    assert code == 0
    wasm = result["runtimes"]["wasm"]
    assert wasm["steps"] == SPE
    # XNNPACK in wasm SIMD against x86 XNNPACK: a few ulps of the loss (~2.3), nothing like a different trajectory.
    assert wasm["max_abs_loss_diff"] < 1e-5 and wasm["max_abs_weight_diff"] < 1e-5
    assert abs(wasm["final_loss"] - result["runtimes"]["interpreter"]["final_loss"]) < 1e-5


def test_an_uninstalled_runtime_is_refused_with_exit_3_before_any_checkpoint(tm, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LITETRAIN_CACHE", str(tmp_path / "empty-cache"))
    ck = tmp_path / "ck"
    code, _ = _train(tm, ck, "--runtimes", "interpreter,arm64")
    assert code == 3
    err = capsys.readouterr().err
    assert "litetrain runtimes install arm64" in err and "Traceback" not in err
    assert not ck.exists() or not any(ck.iterdir())


def test_runtimes_with_isolated_or_an_unknown_name_is_a_usage_error(tm, tmp_path, capsys):
    code, _ = _train(tm, tmp_path / "a", "--runtimes", "compiled", "--isolated")
    assert code == 2 and "--runtimes cannot be combined with --isolated" in capsys.readouterr().err
    code, _ = _train(tm, tmp_path / "b", "--runtimes", "interpretr")
    assert code == 2 and "Unknown runtime(s) ['interpretr']" in capsys.readouterr().err
