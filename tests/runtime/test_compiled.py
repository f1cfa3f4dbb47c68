"""The LiteRT 2.x CompiledModel API runs every signature of a built model as the Interpreter does."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from litetrain.config import Optimizer, OptimizerConfig
from litetrain.runtime.compiled import CompiledModelRunner
from litetrain.runtime.litert import LiteRTRunner
from tests.models import mlp

BATCH = 8


@pytest.fixture(scope="module")
def tflite() -> bytes:
    import keras

    from litetrain.trainable.builder import build

    keras.utils.set_random_seed(0)
    # Adam: its bias correction reads the step counter, which must survive save/restore exactly.
    return build(mlp(), loss="sparse_categorical_crossentropy", batch_size=BATCH,
                 optimizer=OptimizerConfig(Optimizer.ADAM, learning_rate=0.01)).tflite


def test_train_save_twice_restore_infer_match_the_interpreter(tflite):
    rng = np.random.default_rng(7)
    xs = rng.standard_normal((5, BATCH, 8, 8)).astype(np.float32)
    ys = rng.integers(0, 10, (5, BATCH)).astype(np.int32)
    x_test = rng.standard_normal((19, 8, 8)).astype(np.float32)  # not a multiple of the batch: padded chunks
    with LiteRTRunner(tflite) as interp, CompiledModelRunner(tflite) as compiled:
        assert compiled.infer_input.shape == (BATCH, 8, 8)  # infer_fixed: no dynamic batch
        losses_i = [interp.train_step(x, y) for x, y in zip(xs, ys, strict=True)]
        losses_c = [compiled.train_step(x, y) for x, y in zip(xs, ys, strict=True)]
        assert losses_c == losses_i  # bit for bit: the same XNNPACK kernels
        expected = interp.get_weights()
        assert expected["opt_iteration"].tolist() == [5]
        for _ in range(2):  # a save output bound straight to READ_VARIABLE read garbage after its first call
            saved = compiled.get_weights()
            assert sorted(saved) == sorted(expected)
            for name, value in expected.items():
                np.testing.assert_array_equal(saved[name], value, err_msg=name)
                assert saved[name].dtype == value.dtype and saved[name].shape == value.shape
        with CompiledModelRunner(tflite) as fresh:
            fresh.set_weights(saved)
            for name, value in fresh.get_weights().items():
                np.testing.assert_array_equal(value, expected[name], err_msg=name)
            np.testing.assert_array_equal(fresh.infer(x_test)["output"], interp.infer(x_test)["output"])
            # The restored step counter carries on: the next step is Adam's sixth, as in the interpreter.
            assert fresh.train_step(xs[0], ys[0]) == interp.train_step(xs[0], ys[0])


def test_a_compiled_model_prints_nothing_and_needs_no_tensorflow(tflite, tmp_path):
    """LiteRT's accelerator-registry INFO lines (NPU, GPU, vendor plugins) are filtered like other start-up noise."""
    path = tmp_path / "model.tflite"
    path.write_bytes(tflite)
    code = (
        "import sys, numpy as np\n"
        "from litetrain.runtime.compiled import CompiledModelRunner\n"
        f"with CompiledModelRunner({str(path)!r}) as r:\n"
        "    r.infer(np.zeros((3, 8, 8), np.float32)); r.get_weights()\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "accelerator" not in done.stderr.lower() and "INFO:" not in done.stderr, done.stderr


def test_an_embedding_over_token_ids_loads_and_trains_like_the_interpreter():
    """The first run at load reads the new input buffers: zeros there, since an embedding's GATHER fails on the
    garbage of an unwritten buffer (an out-of-range token id), which once refused every token model."""
    import keras

    from litetrain.trainable.builder import build

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,), dtype="int32"), keras.layers.Embedding(50, 4),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(3)])
    tflite = build(model, loss="sparse_categorical_crossentropy", batch_size=4).tflite
    rng = np.random.default_rng(2)
    xs, ys = rng.integers(0, 50, (5, 4, 6)).astype(np.int32), rng.integers(0, 3, (5, 4)).astype(np.int32)
    with LiteRTRunner(tflite) as interp, CompiledModelRunner(tflite) as compiled:
        for x, y in zip(xs, ys, strict=True):
            assert compiled.train_step(x, y) == interp.train_step(x, y)
        np.testing.assert_array_equal(compiled.infer(xs[0])["output"], interp.infer(xs[0])["output"])
