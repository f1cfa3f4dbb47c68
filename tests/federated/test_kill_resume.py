"""FedAdam on both runtimes, and a federation killed with SIGKILL mid-run that ``--resume`` ends bit-identical.

One uninterrupted FedAdam federation (``litetrain federate`` in this process) serves the FedAdam tests and is
the reference of the kill test: the same command runs in a fresh process, is killed with SIGKILL as soon as
round 2's checkpoint lands (while round 3 trains), and is resumed. FedAdam is the strategy with server state
(its moments), so a resume that lost or mangled that state could not end bit-identical.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from litetrain.training.checkpoint import checkpoint_name, load_checkpoint

pytestmark = pytest.mark.slow  # CI's second stage (kill -9 mid-federation and FedAdam federations: ~2 min)

pytest.importorskip("flwr")

ROUNDS, SERVER_LR = 3, 0.05


def _args(rounds: int = ROUNDS) -> list[str]:
    return ["tests.models:mlp", "--batch-size", "16", "--loss", "sparse_categorical_crossentropy", "--optimizer",
            "sgd", "--lr", "0.2", "--clients", "4", "--rounds", str(rounds), "--strategy", "fedadam", "--server-lr",
            str(SERVER_LR), "--runtime", "both", "--no-centralized", "-q"]


ARGS = _args()
RUNTIMES = ("tflite", "tensorflow")
HOOK = "LITETRAIN_TEST_CHECKPOINT_HOOK"


def _federate(*args: str) -> int:
    from litetrain.cli.app import main

    return main(["federate", *args])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("fedadam")
    ckpt, report = folder / "ckpt", folder / "federate.json"
    assert _federate(*ARGS, "--checkpoint-dir", str(ckpt), "--json", str(report)) == 0
    return ckpt, json.loads(report.read_text())


def _arrays(folder: Path, rnd: int) -> dict[str, np.ndarray]:
    return load_checkpoint(folder / checkpoint_name(rnd)).arrays


def test_fedadam_federations_agree_and_learn(uninterrupted) -> None:
    _, report = uninterrupted
    assert report["verdict"] == "consistent"
    assert report["settings"]["strategy"] == "fedadam" and report["settings"]["server_lr"] == SERVER_LR
    for rt in RUNTIMES:
        acc = [report["initial"][rt]["accuracy"]] + [r["accuracy"][rt] for r in report["rounds"]]
        assert acc[0] < 0.2 and all(b > a for a, b in zip(acc, acc[1:], strict=False)) and acc[-1] > 0.5, acc
    for r in report["rounds"]:
        assert r["participants"] == 4
        assert r["agreement"]["max_abs_weight_diff"] < 1e-5  # float rounding, through FedAdam's server step
        assert r["accuracy"]["tflite"] == r["accuracy"]["tensorflow"]


def test_fedadam_moments_are_checkpointed_and_are_the_ones_that_made_the_step(uninterrupted) -> None:
    """Round 3's global model is round 2's plus Flower's FedAdam step computed from round 3's checkpointed
    moments: the checkpoint holds the server state the federation actually used, per runtime."""
    from litetrain.federated.server import StrategyKind, make_strategy

    ckpt, report = uninterrupted
    adam = make_strategy(StrategyKind.FEDADAM, server_lr=SERVER_LR)
    names = report["model"]["exchanged_names"]
    before, after = _arrays(ckpt, ROUNDS - 1), _arrays(ckpt, ROUNDS)
    eta = adam.eta * np.sqrt(1 - adam.beta_2 ** (ROUNDS + 1.0)) / (1 - adam.beta_1 ** (ROUNDS + 1.0))
    assert eta > 0 and adam.eta == SERVER_LR
    for rt in RUNTIMES:
        assert sorted(k for k in after if k.startswith(f"server.{rt}.")) == sorted(
            f"server.{rt}.{slot}.{n}" for slot in ("m_t", "v_t") for n in names)
        for n in names:
            m, v = after[f"server.{rt}.m_t.{n}"], after[f"server.{rt}.v_t.{n}"]
            # (v is 0 exactly where no client's update ever moved a weight: inputs of always-blank pixels.)
            assert np.all(v >= 0) and np.any(v > 0) and np.any(m != before[f"server.{rt}.m_t.{n}"])
            step = eta * m.astype(np.float64) / (np.sqrt(v.astype(np.float64)) + adam.tau)
            expected = (before[f"{rt}.{n}"] + step).astype(np.float32)
            np.testing.assert_allclose(after[f"{rt}.{n}"], expected, rtol=1e-6, atol=1e-7, err_msg=f"{rt}.{n}")
            assert np.abs(step).max() > 1e-3  # the step is FedAdam's, not nothing


def _complete(folder: Path) -> list[int]:
    return sorted(int(p.name[5:15]) for p in folder.glob("ckpt-*.npz"))


def _kill_after_checkpoint(proc: subprocess.Popen[bytes], folder: Path, rnd: int, timeout: float = 300) -> None:
    """SIGKILLs ``proc`` as soon as round ``rnd``'s checkpoint exists, then whatever it had started."""
    import psutil

    target = folder / checkpoint_name(rnd)
    deadline = time.monotonic() + timeout
    while not target.exists():
        assert proc.poll() is None, f"the federation ended (exit {proc.returncode}) before round {rnd}"
        assert time.monotonic() < deadline, f"no checkpoint of round {rnd} after {timeout} s"
        time.sleep(0.002)
    family = psutil.Process(proc.pid).children(recursive=True)  # Ray's GCS, raylet, agents, client actors
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    # Most of Ray dies with its driver; its agents can outlive it. They are this test's processes: end them.
    _, alive = psutil.wait_procs(family, timeout=5)
    for p in alive:
        p.kill()
    psutil.wait_procs(alive, timeout=10)


def test_sigkill_mid_federation_then_resume_ends_bit_identical(uninterrupted, tmp_path: Path) -> None:
    reference, report = uninterrupted
    killed = tmp_path / "killed"
    workers_tmp = tmp_path / "tmp"
    workers_tmp.mkdir()
    env = {
        **os.environ,
        # Backstop, should the kill below ever land late: the process dies inside round 3's checkpoint write.
        HOOK: f"exit:{ROUNDS}",
        # The killed run cannot clean up its unpacked SavedModels; keep them in this test's folder. Ray's own
        # session folder stays where it always is (socket paths have a length limit).
        "TMPDIR": str(workers_tmp),
        "RAY_TMPDIR": os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp",
    }
    with open(tmp_path / "killed.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "litetrain.cli.app", "federate", *ARGS, "--checkpoint-dir",
                                 str(killed)], stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            _kill_after_checkpoint(proc, killed, ROUNDS - 1)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode in (-signal.SIGKILL, 137), (tmp_path / "killed.log").read_text()
    assert _complete(killed) == [1, 2]
    # Up to the kill, the fresh process ran the very federation of the reference.
    before = _arrays(killed, 2)
    for name, value in _arrays(reference, 2).items():
        assert np.array_equal(before[name], value), name

    out = tmp_path / "resumed.json"
    assert _federate(*ARGS, "--checkpoint-dir", str(killed), "--resume", "--json", str(out)) == 0
    resumed = json.loads(out.read_text())
    assert resumed["checkpoint"]["resumed_from_round"] == 2
    assert [r["round"] for r in resumed["rounds"]] == [1, 2, 3]
    assert _complete(killed) == [1, 2, 3] and not list(killed.glob(".ckpt-*.tmp"))
    got, want = _arrays(killed, ROUNDS), _arrays(reference, ROUNDS)
    assert sorted(got) == sorted(want)
    # Both runtimes, the noise floor's run and FedAdam's state (the noise run's too: it resumes bit-identical as well).
    assert {k.split(".")[0] for k in got} == {"tflite", "tensorflow", "tflite-perturbed", "server"}
    for name in want:
        assert got[name].dtype == want[name].dtype and np.array_equal(got[name], want[name]), name
    assert resumed["rounds"][-1]["accuracy"] == report["rounds"][-1]["accuracy"]
    assert resumed["verdict"] == report["verdict"] == "consistent"


def test_resume_with_fewer_rounds_than_done_is_refused_before_ray(uninterrupted, capsys, monkeypatch) -> None:
    from litetrain.federated import federation

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("must be rejected before Ray starts")

    monkeypatch.setattr(federation, "ray_session", refuse)
    ckpt, _ = uninterrupted
    assert _federate(*_args(rounds=2), "--checkpoint-dir", str(ckpt), "--resume") == 2
    err = capsys.readouterr().err
    assert "already holds round 3 of this federation, more than --rounds 2" in err and "Traceback" not in err
