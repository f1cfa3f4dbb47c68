"""The isolated worker: same results as the in-process runner, real resource figures, crashes contained."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from litetrain.errors import (
    ConversionError,
    DataError,
    ExitCode,
    MissingDependencyError,
    RuntimeCrashError,
    RuntimeUnavailableError,
    SignatureError,
    UsageError,
)
from litetrain.runtime.litert import LiteRTRunner
from litetrain.runtime.worker import WorkerRunner, WorkerStats
from tests.models import mlp

BATCH = 8


@pytest.fixture(scope="module")
def tflite() -> bytes:
    import keras

    from litetrain.trainable.builder import build

    keras.utils.set_random_seed(7)
    return build(mlp(), loss="sparse_categorical_crossentropy", batch_size=BATCH).tflite


@pytest.fixture(scope="module")
def worker(tflite: bytes):
    with WorkerRunner(tflite) as runner:
        yield runner


@pytest.fixture(scope="module")
def batches() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(66)
    x = rng.standard_normal((12, BATCH, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, (12, BATCH)).astype(np.int32)
    return x, y


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def crashing_model(tflite: bytes) -> bytes:
    """The model with its initializer subgraph and a new one calling each other through CALL_ONCE.

    The flatbuffer stays valid and the interpreter loads it. CALL_ONCE refuses a subgraph that calls itself
    (call_once.cc checks ``init_subgraph_index != this_subgraph``) but not a cycle of two, so the first signature
    call recurses until the stack overflows: SIGSEGV every time. (An earlier version overflowed a variable's
    initial value into the heap; whether that crashed depended on the allocator, and once it ran without error.)
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(tflite, 0))
    signature_graphs = {sd.subgraphIndex for sd in model.signatureDefs}
    (initializer,) = [i for i in range(len(model.subgraphs)) if i not in signature_graphs]
    call_once = [c.builtinCode for c in model.operatorCodes].index(schema.BuiltinOperator.CALL_ONCE)
    loop = schema.SubGraphT()
    loop.name, loop.tensors, loop.inputs, loop.outputs = b"loop", [], [], []
    loop.operators = [_call_once(schema, call_once, initializer)]
    model.subgraphs.append(loop)
    model.subgraphs[initializer].operators.insert(0, _call_once(schema, call_once, len(model.subgraphs) - 1))
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _call_once(schema, opcode_index: int, subgraph: int):
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = opcode_index, [], []
    op.builtinOptionsType = schema.BuiltinOptions.CallOnceOptions
    op.builtinOptions = schema.CallOnceOptionsT()
    op.builtinOptions.initSubgraphIndex = subgraph
    return op


def test_trains_bit_identical_to_the_in_process_runner(tflite, batches):
    x, y = batches
    with WorkerRunner(tflite) as worker, LiteRTRunner(tflite) as local:
        start = local.get_weights()
        worker.set_weights(start)
        w_losses = [worker.train_step(xb, yb) for xb, yb in zip(x, y, strict=True)]
        l_losses = [local.train_step(xb, yb) for xb, yb in zip(x, y, strict=True)]
        assert w_losses == l_losses
        assert w_losses[-1] < w_losses[0]  # it trained
        w_weights, l_weights = worker.get_weights(), local.get_weights()
        assert sorted(w_weights) == sorted(l_weights)
        for name, value in l_weights.items():
            assert w_weights[name].dtype == value.dtype
            np.testing.assert_array_equal(w_weights[name], value, err_msg=name)
        assert not np.array_equal(w_weights["hidden_kernel"], start["hidden_kernel"])
        probe = x[0, :5]
        np.testing.assert_array_equal(worker.infer(probe)["output"], local.infer(probe)["output"])


def test_same_signature_view_and_checks_as_the_in_process_runner(tflite, worker):
    local = LiteRTRunner(tflite)
    assert worker.train_inputs == local.train_inputs
    assert worker.infer_input == local.infer_input
    assert worker.infer_outputs == local.infer_outputs
    assert worker.weight_infos == local.weight_infos
    assert worker.train_batch_size == BATCH
    assert worker.count_input == local.count_input
    with pytest.raises(DataError, match=r"expects shape \(8, 8, 8\).*received \(9, 8, 8\)"):
        worker.train_step(np.zeros((9, 8, 8), np.float32), np.zeros(9, np.int32))
    with pytest.raises(DataError, match=r"expects shape \(-1, 8, 8\).*received \(4, 7, 8\)"):  # a partial batch
        worker.train_step(np.zeros((4, 7, 8), np.float32), np.zeros(4, np.int32))
    with pytest.raises(SignatureError, match="missing"):
        worker.set_weights({"hidden_kernel": np.zeros((64, 16), np.float32)})


def test_stats_report_the_worker_not_this_process(tflite, batches):
    x, y = batches
    with WorkerRunner(tflite) as worker:
        for xb, yb in zip(x[:5], y[:5], strict=True):
            worker.train_step(xb, yb)
        worker.infer(x[0])
        stats = worker.stats()
        assert isinstance(stats, WorkerStats)
        assert 10 * 2**20 < stats.peak_rss_bytes < 1024 * 2**20
        assert worker.peak_rss_bytes() >= stats.peak_rss_bytes
        # What makes the figure the device side's: the worker never imported TensorFlow.
        assert "tensorflow" in sys.modules
        assert "tensorflow" not in stats.modules and "keras" not in stats.modules
        assert {"numpy", "ai_edge_litert"} <= set(stats.modules)
        assert "litetrain" not in stats.modules
        assert stats.calls["train"]["count"] == 5 and stats.calls["infer"]["count"] == 1
        timings = worker.timings()["signatures"]["train"]
        assert timings["calls"] == 5
        assert 0 < timings["interpreter_s"] <= timings["round_trip_s"]
        assert worker.info.interpreter == "ai_edge_litert" and worker.info.pid == worker.pid


def test_close_reaps_the_worker(tflite):
    runner = WorkerRunner(tflite)
    pid = runner.pid
    assert pid is not None and runner.alive and not _gone(pid)
    runner.close()
    assert _gone(pid) and not runner.alive and runner.pid is None
    runner.close()  # idempotent
    with pytest.raises(UsageError, match="closed"):
        runner.infer(np.zeros((1, 8, 8), np.float32))


def test_a_malformed_model_that_crashes_the_interpreter_is_a_clean_error(tflite, batches):
    x, y = batches
    with WorkerRunner(crashing_model(tflite)) as runner, pytest.raises(RuntimeCrashError) as info:
        for _ in range(3):
            runner.train_step(x[0], y[0])
            runner.infer(x[0])
            runner.get_weights()
    message = str(info.value)
    assert "SIGSEGV" in message or "SIGABRT" in message
    assert "litetrain itself is unaffected" in message and info.value.hint
    assert info.value.exit_code == ExitCode.RUNTIME_UNAVAILABLE
    assert _gone(runner.info.pid)
    with pytest.raises(RuntimeCrashError, match="crashed earlier"):
        runner.train_step(x[0], y[0])


def test_a_killed_worker_is_reported_with_its_signal(tflite, batches):
    x, y = batches
    with WorkerRunner(tflite) as runner:
        runner.train_step(x[0], y[0])
        os.kill(runner.pid, signal.SIGKILL)
        with pytest.raises(RuntimeCrashError, match=r"died with signal SIGKILL.*while calling 'train'"):
            runner.train_step(x[1], y[1])


def test_an_interpreter_error_leaves_the_worker_usable(worker, batches):
    x, y = batches
    with pytest.raises(ConversionError, match="failed in the 'nope' signature"):
        worker.call("nope")
    assert np.isfinite(worker.train_step(x[0], y[0]))


def test_runtime_python_that_does_not_exist(tflite, tmp_path: Path):
    missing = tmp_path / "no-env" / "bin" / "python"
    with pytest.raises(UsageError, match=r"--runtime-python .*no-env/bin/python.* does not exist") as info:
        WorkerRunner(tflite, runtime_python=str(missing))
    assert "tensorflow-cpu==2.18" in info.value.hint


def test_runtime_python_that_is_not_python(tflite, tmp_path: Path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'not a python' >&2\nexit 5\n")
    fake.chmod(0o755)
    with pytest.raises(RuntimeUnavailableError, match=r"(?s)exit status 5 before it was ready.*not a python"):
        WorkerRunner(tflite, runtime_python=str(fake))
    with pytest.raises(UsageError, match="folder without bin/python"):
        WorkerRunner(tflite, runtime_python=str(tmp_path))


def test_missing_interpreter_package_names_what_to_install(tflite):
    with pytest.raises(MissingDependencyError, match="tflite_runtime") as info:
        WorkerRunner(tflite, interpreter="tflite_runtime")
    assert "pip install" in info.value.hint


def test_select_tf_ops_model_points_to_runtime_python():
    import keras

    from litetrain.trainable.builder import build

    keras.utils.set_random_seed(7)
    flex = build(mlp(), loss="sparse_categorical_crossentropy", batch_size=BATCH, select_tf_ops=True).tflite
    with pytest.raises(RuntimeUnavailableError, match="Flex") as info:
        WorkerRunner(flex)
    assert "--runtime-python" in info.value.hint


@pytest.mark.skipif(not os.environ.get("LITETRAIN_FLEX_PYTHON"),
                    reason="set LITETRAIN_FLEX_PYTHON to a Python with tensorflow 2.18 (see the README)")
def test_select_tf_ops_model_trains_under_a_flex_capable_python(batches):  # pragma: no cover - opt-in
    import keras

    from litetrain.trainable.builder import build

    keras.utils.set_random_seed(7)
    flex = build(mlp(), loss="sparse_categorical_crossentropy", batch_size=BATCH, select_tf_ops=True).tflite
    x, y = batches
    with WorkerRunner(flex, runtime_python=os.environ["LITETRAIN_FLEX_PYTHON"], interpreter="tensorflow") as runner:
        assert runner.path_checkpoints and "hidden_kernel" in runner.weight_infos
        start = runner.get_weights()
        losses = [runner.train_step(xb, yb) for xb, yb in zip(x, y, strict=True)]
        assert all(np.isfinite(losses)) and losses[-1] < losses[0]
        assert not np.array_equal(runner.get_weights()["hidden_kernel"], start["hidden_kernel"])
        runner.set_weights(start)  # raw Save/Restore checkpoint files, written and read inside the worker
        assert runner.train_step(x[0], y[0]) == losses[0]
        assert "tensorflow" in runner.stats().modules


def _without_save_restore(tflite: bytes) -> bytes:
    """The model with its save and restore signatures removed (train and infer stay)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(tflite, 0))
    model.signatureDefs = [sd for sd in model.signatureDefs if sd.signatureKey not in (b"save", b"restore")]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_both_runners_refuse_to_move_weights_alike(tflite):
    """A model without save/restore: the in-process runner and the worker refuse with the same words."""
    bare = _without_save_restore(tflite)
    messages = set()
    with LiteRTRunner(bare, require_weights=False, name="m") as local, \
            WorkerRunner(bare, require_weights=False, name="m") as isolated:
        for runner in (local, isolated):
            assert not runner.has_weights
            for move in (runner.get_weights, lambda r=runner: r.set_weights({})):
                with pytest.raises(SignatureError) as info:
                    move()
                messages.add(info.value.message)
            assert np.isfinite(runner.infer(np.zeros((2, 8, 8), np.float32))["output"]).all()  # still runs
    assert messages == {"m: the model has no save/restore signatures, so weights cannot move."}
