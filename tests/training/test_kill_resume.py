"""``kill -9`` at random points, during steps and during checkpoint writes; ``--resume`` ends bit-identical.

Every run is the real ``litetrain train`` command in a fresh process, killed with SIGKILL (nothing to clean up,
no handler runs), as the OS kills a background job on a phone.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from litetrain.training.checkpoint import load_checkpoint
from litetrain.training.session import train
from tests.training.conftest import BATCH, TRAIN_SAMPLES, cli, popen, untimed

EPOCHS = 4
TOTAL = EPOCHS * (TRAIN_SAMPLES // BATCH)
HOOK = "LITETRAIN_TEST_CHECKPOINT_HOOK"


def _newest_step(folder: Path) -> int:
    steps = [int(m.group(1)) for p in folder.glob("ckpt-*.npz") if (m := re.match(r"ckpt-(\d+)\.npz", p.name))]
    return max(steps, default=0)


def _temporaries(folder: Path) -> list[Path]:
    return list(folder.glob(".ckpt-*.tmp"))


def _kill_when(proc, folder: Path, step: int, extra_delay: float, timeout: float = 60) -> int:
    """SIGKILLs ``proc`` once a checkpoint of at least ``step`` exists, after ``extra_delay`` seconds."""
    deadline = time.monotonic() + timeout
    while _newest_step(folder) < step:
        assert proc.poll() is None, f"the run ended before step {step}: {proc.communicate()}"
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.0005)
    time.sleep(extra_delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    return _newest_step(folder)


def test_kill_9_anywhere_then_resume_ends_bit_identical(tm: SimpleNamespace, tmp_path: Path) -> None:
    reference = train(tm.adam, tm.npz, epochs=EPOCHS, checkpoint_dir=tmp_path / "reference", checkpoint_every=1)
    ck = tmp_path / "killed"
    args = ["train", str(tm.adam), "--data", str(tm.npz), "--epochs", str(EPOCHS), "--checkpoint-dir", str(ck),
            "--checkpoint-every", "1", "--keep", "2", "--resume", "-q"]
    rng = np.random.default_rng(20240601)
    # Seeded kill plan: "step" kills a random fraction of a step after a checkpoint (during a step or a write),
    # "write" kills during a checkpoint write (the writer pauses after its first array and SIGKILL lands in the
    # pause), "exit" makes the process die (os._exit) inside its n-th checkpoint write.
    kinds = rng.permutation(["step"] * 4 + ["write"] * 3 + ["exit"] * 2)
    targets = iter(sorted(rng.choice(np.arange(2, TOTAL - 8), size=7, replace=False)))
    reached = [0]
    mid_write = 0
    for kind in kinds:
        if kind == "exit":
            n = int(rng.integers(1, 4))
            proc = cli(*args, env={**os.environ, HOOK: f"exit:{n}"})
            assert proc.returncode == 137, (reached, n, proc.stdout, proc.stderr)
            assert _temporaries(ck), "the writer should have died with its temporary file half-written"
            reached.append(_newest_step(ck))
            assert reached[-1] == reached[-2] + n - 1
            continue
        target = max(int(next(targets)), reached[-1] + 1)
        if kind == "step":
            reached.append(_kill_when(popen(*args), ck, target, float(rng.uniform(0, 0.003))))
        else:
            env = {**os.environ, HOOK: "sleep:0.05"}
            reached.append(_kill_when(popen(*args, env=env), ck, target, float(rng.uniform(0.0, 0.05))))
            mid_write += bool(_temporaries(ck))
    assert mid_write >= 1, "no kill landed inside a checkpoint write"

    assert reached == sorted(reached) and reached[1] > 0 and reached[-1] < TOTAL, reached
    out = cli(*args[:-1], "--json", str(tmp_path / "final.json"))
    assert out.returncode == 0, out.stderr
    final = json.loads((tmp_path / "final.json").read_text())
    assert final["resumed_from"]["step"] == reached[-1] and final["steps"] == TOTAL
    assert not _temporaries(ck)

    got = load_checkpoint(final["final_checkpoint"]).arrays
    want = load_checkpoint(reference.final_checkpoint).arrays
    assert sorted(got) == sorted(want) and int(got["opt_iteration"].item()) == TOTAL
    for name in want:
        assert got[name].dtype == want[name].dtype and np.array_equal(got[name], want[name]), name
    # Even the checkpoint file is the same, byte for byte (state, manifest and arrays are all deterministic).
    assert Path(final["final_checkpoint"]).read_bytes() == reference.final_checkpoint.read_bytes()
    # The report of the interrupted session is the uninterrupted one's: same losses and accuracies, bit for bit.
    assert [untimed(e) for e in final["epochs"]] == [e.to_json() for e in reference.epochs]
    # Timings are this session's own: none for the epochs finished before the last resume, part of that epoch.
    spe = TRAIN_SAMPLES // BATCH
    done, position = divmod(reached[-1], spe)
    assert [e["steps_this_session"] for e in final["epochs"]] == [0] * done + [spe - position] + [spe] * (
        EPOCHS - done - 1)
    assert all((e["seconds"] is None) == (e["steps_this_session"] == 0) for e in final["epochs"])
