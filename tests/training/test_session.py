"""Training sessions in-process: epochs, held-out accuracy, checkpoints, resume, schedules, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from litetrain.data.batching import plan_batches
from litetrain.errors import DataError, ExitCode, SignatureError, UsageError
from litetrain.runtime.litert import LiteRTRunner
from litetrain.training.checkpoint import CheckpointError, load_checkpoint
from litetrain.training.session import epoch_orders, train
from tests.training.conftest import BATCH, TRAIN_SAMPLES

SPE = TRAIN_SAMPLES // BATCH


def _final_weights(result) -> dict[str, np.ndarray]:
    return load_checkpoint(result.final_checkpoint).arrays


def test_epoch_orders_are_the_batches_check_plans() -> None:
    plan = plan_batches(50, 8, epochs=3, seed=4)  # 7 batches per epoch, the last one of 2 samples

    def batches(order: np.ndarray) -> list[np.ndarray]:
        return [order[at:at + 8] for at in range(0, 50, 8)]

    def same(a: list[np.ndarray], b: tuple[np.ndarray, ...]) -> bool:
        return len(a) == len(b) and all(np.array_equal(r, s) for r, s in zip(a, b, strict=True))

    orders = epoch_orders(50, 4)
    for e in range(3):
        assert same(batches(next(orders)), plan.indices[e * 7:(e + 1) * 7])
    third = next(epoch_orders(50, 4, start_epoch=2))
    assert same(batches(third), plan.indices[14:21]) and len(plan.indices[20]) == 2


def test_a_session_trains_evaluates_and_checkpoints(tm: SimpleNamespace, tmp_path: Path) -> None:
    result = train(tm.adam, tm.npz, epochs=3, checkpoint_dir=tmp_path / "ck", keep=2, project_samples=1000)
    assert result and result.steps == 3 * SPE and result.steps_per_epoch == SPE
    losses = [e.loss for e in result.epochs]
    assert losses[2] < losses[0] and all(np.isfinite(losses))
    assert result.epochs[-1].accuracy is not None and result.epochs[-1].accuracy > 0.5  # 10 classes: chance 0.1
    assert [p.name for p in result.checkpoints] == [f"ckpt-{2 * SPE:010d}.npz", f"ckpt-{3 * SPE:010d}.npz"]
    assert result.final_checkpoint == result.checkpoints[-1]

    # The checkpoint holds what the interpreter holds, and the held-out accuracy is infer's on the test split.
    with LiteRTRunner(tm.adam) as runner:
        ckpt = load_checkpoint(result.final_checkpoint)
        runner.set_weights(ckpt.arrays)
        assert int(ckpt.arrays["opt_iteration"].item()) == 3 * SPE
        logits = runner.infer(tm.x_test)["output"]
    assert np.mean(np.argmax(logits, -1) == tm.y_test) == result.epochs[-1].accuracy
    assert ckpt.state["epoch"] == 3 and ckpt.state["position"] == 0

    # The same loss values as a bare loop over plan_batches: nothing but the model's own train signature.
    with LiteRTRunner(tm.adam) as bare:
        plan = plan_batches(TRAIN_SAMPLES, BATCH, epochs=3, seed=0)
        bare_losses = [bare.train_step(tm.x[i], tm.y[i].astype(np.int32)) for i in plan.indices]
        assert all(np.array_equal(bare.get_weights()[k], ckpt.arrays[k]) for k in ckpt.arrays)
    assert [e.loss for e in result.epochs] == [sum(bare_losses[i * SPE:(i + 1) * SPE]) / SPE for i in range(3)]

    data = result.to_json()
    for key in ("steps", "epochs", "final_checkpoint", "peak_rss_bytes", "seconds_per_step"):
        assert key in data
    assert data["kind"] == "train" and data["schema_version"] == "1.0"
    assert data["epochs"][0]["loss"] == losses[0] and data["final_checkpoint"] == str(result.final_checkpoint)
    assert data["peak_rss_bytes"] > 10 * 2**20 and data["rss_source"] == "in-process"
    assert 0 < data["seconds_per_step"] < 0.1
    # Per-epoch timing: every epoch ran here; their steps average to the session's time per step, and their wall
    # times (steps, checkpoint, evaluation) fit in the session's.
    for e in data["epochs"]:
        assert e["steps_this_session"] == SPE and e["interpreter_seconds_per_step"] is None  # in-process
        assert 0 < e["seconds_per_step"] < 0.1 and SPE * e["seconds_per_step"] < e["seconds"]
    assert sum(e["seconds_per_step"] for e in data["epochs"]) / 3 == pytest.approx(data["seconds_per_step"])
    assert sum(e["seconds"] for e in data["epochs"]) < data["budget"]["wall_seconds"]
    proj = data["budget"]["projection"]
    assert proj["samples"] == 1000 and proj["steps_per_epoch"] == 1000 // BATCH
    assert proj["seconds"] == pytest.approx(3 * proj["seconds_per_epoch"])
    assert proj["seconds_per_epoch"] >= (1000 // BATCH) * data["seconds_per_step"]
    assert data["budget"]["checkpoint_size_bytes"] == result.final_checkpoint.stat().st_size
    json.dumps(data, allow_nan=False)
    text = str(result)
    assert "test accuracy" in text and "peak RSS" in text and "projection for 1,000 samples" in text


def test_the_result_has_the_documented_keys(tm: SimpleNamespace, tmp_path: Path) -> None:
    """Every field docs/report-schema.md gives a train result is there, and nothing it does not name."""
    from tests.reporting.schema_doc import assert_documented

    data = train(tm.sgd, tm.npz, epochs=2, checkpoint_dir=tmp_path, project_samples=500).to_json()
    assert data["schema_version"] == "1.0"
    for key in ("steps", "final_checkpoint", "peak_rss_bytes", "seconds_per_step"):
        assert data[key] is not None, key
    for e in data["epochs"]:
        assert {"loss", "accuracy", "seconds", "seconds_per_step"} <= set(e) and e["seconds"] > 0
    assert_documented(data)


def test_resume_mid_epoch_is_bit_identical(tm: SimpleNamespace, tmp_path: Path) -> None:
    full = train(tm.adam, tm.npz, epochs=2, checkpoint_dir=tmp_path / "full")
    # Stop after 1 epoch + 7 steps (as a kill right after a checkpoint would), then resume to 2 epochs.
    part = tmp_path / "part"
    train(tm.adam, tm.npz, epochs=1, checkpoint_dir=part, checkpoint_every=SPE + 7, keep=10)
    first = train(tm.adam, tm.npz, epochs=2, checkpoint_dir=part, checkpoint_every=SPE + 7, keep=10, resume=True)
    # Drop the checkpoints after step SPE + 7 and resume from there.
    for p in list(part.iterdir()):
        if p.name.startswith("ckpt-") and int(p.stem[5:]) > SPE + 7:
            p.unlink()
    resumed = train(tm.adam, tm.npz, epochs=2, checkpoint_dir=part, checkpoint_every=SPE + 7, resume=True)
    assert resumed.resumed_from is not None and resumed.resumed_from["step"] == SPE + 7
    assert resumed.resumed_from["epoch"] == 1 and resumed.resumed_from["position"] == 7
    assert resumed.budget.steps == SPE - 7
    # Its timings cover what it ran: nothing of epoch 1, the last SPE - 7 steps of epoch 2.
    timed = resumed.to_json()["epochs"]
    assert [e["steps_this_session"] for e in timed] == [0, SPE - 7]
    assert timed[0]["seconds"] is None and timed[0]["seconds_per_step"] is None and timed[1]["seconds"] > 0
    for r in (first, resumed):
        a, b = _final_weights(full), _final_weights(r)
        assert sorted(a) == sorted(b)
        for name in a:
            assert a[name].dtype == b[name].dtype and np.array_equal(a[name], b[name]), name
        assert [e.to_json() for e in r.epochs] == [e.to_json() for e in full.epochs]


def test_resume_without_checkpoints_starts_fresh_and_a_finished_session_reports(tm: SimpleNamespace,
                                                                                tmp_path: Path) -> None:
    lines: list[str] = []
    first = train(tm.sgd, tm.npz, epochs=1, checkpoint_dir=tmp_path / "ck", resume=True, log=lines.append)
    assert first.resumed_from is None and first.steps == SPE
    assert any("starting from step 0" in line for line in lines)
    again = train(tm.sgd, tm.npz, epochs=1, checkpoint_dir=tmp_path / "ck", resume=True)
    assert again.budget.steps == 0 and again.steps == SPE and again.epochs == first.epochs
    assert again.final_checkpoint == first.final_checkpoint
    train(tm.sgd, tm.npz, epochs=2, checkpoint_dir=tmp_path / "ck2", keep=1)
    with pytest.raises(UsageError, match="has 2 completed epochs, more than --epochs 1"):
        train(tm.sgd, tm.npz, epochs=1, checkpoint_dir=tmp_path / "ck2", resume=True)


def test_existing_checkpoints_need_resume(tm: SimpleNamespace, tmp_path: Path) -> None:
    train(tm.sgd, tm.npz, epochs=1, checkpoint_dir=tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(UsageError, match="already holds checkpoints") as info:
        train(tm.sgd, tm.npz, epochs=1, checkpoint_dir=tmp_path)
    assert "--resume" in (info.value.hint or "")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_resume_refuses_other_model_data_or_order(tm: SimpleNamespace, tmp_path: Path) -> None:
    train(tm.adam, tm.npz, epochs=1, checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointError, match="another model") as info:
        train(tm.other, tm.npz, epochs=2, checkpoint_dir=tmp_path, resume=True)
    assert info.value.exit_code == ExitCode.USER_ERROR and str(tmp_path) in info.value.message
    with pytest.raises(UsageError, match="--shuffle-seed 0.*has 1"):
        train(tm.adam, tm.npz, epochs=2, checkpoint_dir=tmp_path, resume=True, shuffle_seed=1)
    # A checkpoint of the same model written by something else (e.g. a federated server) is not a session's.
    with LiteRTRunner(tm.adam) as runner:
        from litetrain.training.checkpoint import CheckpointStore, model_fingerprint

        foreign = tmp_path.parent / "foreign"
        CheckpointStore(foreign, fingerprint=model_fingerprint(tm.adam.read_bytes(), runner.weight_infos)).write(
            3, runner.get_weights(), {"round": 3})
    with pytest.raises(CheckpointError, match=r"not written by a training session .*\['epoch'"):
        train(tm.adam, tm.npz, epochs=2, checkpoint_dir=foreign, resume=True)
    other_data = tmp_path.parent / "other.npz"
    np.savez(other_data, x=tm.x[::-1], y=tm.y[::-1], x_test=tm.x_test, y_test=tm.y_test)
    with pytest.raises(UsageError, match="the training data"):
        train(tm.adam, other_data, epochs=2, checkpoint_dir=tmp_path, resume=True)


def test_learning_rate_schedules(tm: SimpleNamespace, tmp_path: Path) -> None:
    step = train(tm.sgd, tm.npz, epochs=3, checkpoint_dir=tmp_path / "step", lr_schedule="step:1:0.5")
    assert [e.learning_rate for e in step.epochs] == [pytest.approx(0.1), pytest.approx(0.05), pytest.approx(0.025)]
    assert load_checkpoint(step.final_checkpoint).arrays["opt_learning_rate"].item() == np.float32(0.025)
    constant = train(tm.sgd, tm.npz, epochs=3, checkpoint_dir=tmp_path / "const")
    assert step.epochs[0].loss == constant.epochs[0].loss  # the first epoch runs at the model's own rate
    assert step.epochs[1].loss != constant.epochs[1].loss  # then the halved rate changes the updates
    # A rate of ~0 in epoch 2 leaves the weights bit-identical: the schedule really reaches the interpreter.
    tiny = train(tm.sgd, tm.npz, epochs=2, checkpoint_dir=tmp_path / "tiny", lr_schedule="step:1:1e-30")
    end1, end2 = (load_checkpoint(p).arrays for p in tiny.checkpoints)
    weights = [k for k in end1 if not k.startswith("opt_")]
    assert len(weights) == 4 and all(np.array_equal(end1[k], end2[k]) for k in weights)
    assert int(end2["opt_iteration"].item()) == 2 * SPE
    cosine = train(tm.sgd, tm.npz, epochs=2, checkpoint_dir=tmp_path / "cos", lr_schedule="cosine")
    assert cosine.epochs[-1].learning_rate == pytest.approx(0.1 * 0.5 * (1 + np.cos(np.pi * (2 * SPE - 1) / (2 * SPE))))
    with pytest.raises(UsageError, match="Unknown learning-rate schedule"):
        train(tm.sgd, tm.npz, epochs=1, checkpoint_dir=tmp_path / "bad", lr_schedule="step:0:2")


def test_bad_input_is_refused_before_training(tm: SimpleNamespace, tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    with pytest.raises(UsageError, match="--batch-size 4 differs from the batch size 8"):
        train(tm.adam, tm.npz, epochs=1, checkpoint_dir=ck, batch_size=4)
    bad = tmp_path / "labels.npz"
    np.savez(bad, x=tm.x, y=tm.y + 3, x_test=tm.x_test, y_test=tm.y_test)
    with pytest.raises(DataError, match="labels in y range from 3 to 12, but the model has 10 outputs"):
        train(tm.adam, bad, epochs=1, checkpoint_dir=ck)
    nan = tmp_path / "nan.npz"
    x_nan = tm.x.copy()
    x_nan[5, 1, 1] = np.nan
    np.savez(nan, x=x_nan, y=tm.y, x_test=tm.x_test, y_test=tm.y_test)
    with pytest.raises(DataError, match="1 NaN or Inf"):
        train(tm.adam, nan, epochs=1, checkpoint_dir=ck)
    shape = tmp_path / "shape.npz"
    np.savez(shape, x=tm.x[:, :7, :7], y=tm.y, x_test=tm.x_test[:, :7, :7], y_test=tm.y_test)
    with pytest.raises(DataError, match=r"shape \(7, 7\), but the model expects \(8, 8\)"):
        train(tm.adam, shape, epochs=1, checkpoint_dir=ck)
    with pytest.raises(SignatureError, match="lacks the signature"):
        train(tm.infer_only, tm.npz, epochs=1, checkpoint_dir=ck)
    with pytest.raises(UsageError, match="--epochs must be an integer of at least 1"):
        train(tm.adam, tm.npz, epochs=0, checkpoint_dir=ck)
    assert not ck.exists() or not list(ck.glob("ckpt-*"))


def test_a_loss_that_becomes_nan_stops_without_checkpointing_it(tm: SimpleNamespace, tmp_path: Path) -> None:
    huge = tmp_path / "huge.npz"  # finite data whose first update blows the weights up
    np.savez(huge, x=tm.x * np.float32(1e30), y=tm.y, x_test=tm.x_test, y_test=tm.y_test)
    ck = tmp_path / "ck"
    with pytest.raises(DataError, match=r"loss became nan at step 2 \(epoch 1\).*last good checkpoint is "
                       r"'.*ckpt-0000000001.npz'") as info:
        train(tm.sgd, huge, epochs=1, checkpoint_dir=ck, checkpoint_every=1)
    assert info.value.exit_code == ExitCode.USER_ERROR
    assert [p.name for p in ck.glob("ckpt-*")] == ["ckpt-0000000001.npz"]
    assert all(np.all(np.isfinite(a)) for a in load_checkpoint(ck / "ckpt-0000000001.npz").arrays.values())
