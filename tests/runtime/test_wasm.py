"""The wasm runtime: LiteRT.js (WebAssembly/XNNPACK) in a Node worker trains, saves, restores and infers like the
Interpreter. Runs when Node and ``litetrain runtimes install wasm`` are there; otherwise only the refusal is tested."""

from __future__ import annotations

import numpy as np
import pytest

from litetrain.config import Optimizer, OptimizerConfig
from litetrain.errors import RuntimeUnavailableError
from litetrain.runtime.wasm import WasmRunner
from tests.models import mlp

BATCH = 8


def test_not_installed_is_refused_naming_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("LITETRAIN_CACHE", str(tmp_path))
    missing = WasmRunner.unavailable()
    assert isinstance(missing, RuntimeUnavailableError)
    assert "litetrain runtimes install wasm" in (missing.hint or "") or "Node.js" in missing.message
    with pytest.raises(RuntimeUnavailableError):
        WasmRunner(b"not even a model")


@pytest.mark.skipif(WasmRunner.unavailable() is not None, reason="needs Node and 'litetrain runtimes install wasm'")
def test_litertjs_trains_saves_restores_and_infers_like_the_interpreter():
    import keras

    from litetrain.runtime.litert import LiteRTRunner
    from litetrain.trainable.builder import build

    keras.utils.set_random_seed(0)
    # Adam and sparse labels: an int32 step counter and int32 targets cross into wasm and back.
    tflite = build(mlp(), loss="sparse_categorical_crossentropy", batch_size=BATCH,
                   optimizer=OptimizerConfig(Optimizer.ADAM, learning_rate=0.01)).tflite
    rng = np.random.default_rng(5)
    xs = rng.standard_normal((6, BATCH, 8, 8)).astype(np.float32)
    ys = rng.integers(0, 10, (6, BATCH)).astype(np.int32)
    x_test = rng.standard_normal((13, 8, 8)).astype(np.float32)  # 13: chunks of 8 through infer_fixed, padded
    with LiteRTRunner(tflite) as interp, WasmRunner(tflite) as wasm:
        assert wasm.info.interpreter == "litertjs" and wasm.infer_input.shape == (BATCH, 8, 8)
        losses_i = [interp.train_step(x, y) for x, y in zip(xs, ys, strict=True)]
        losses_w = [wasm.train_step(x, y) for x, y in zip(xs, ys, strict=True)]
        np.testing.assert_allclose(losses_w, losses_i, rtol=1e-6)  # same XNNPACK kernels, wasm SIMD: a few ulps
        saved, again = wasm.get_weights(), wasm.get_weights()
        assert saved["opt_iteration"].tolist() == [6] and saved["opt_iteration"].dtype == np.int32
        expected = interp.get_weights()
        for name, value in expected.items():  # save twice: the second call once returned garbage
            np.testing.assert_array_equal(saved[name], again[name], err_msg=name)
            np.testing.assert_allclose(saved[name], value, rtol=0, atol=1e-6, err_msg=name)
        with WasmRunner(tflite) as fresh:
            fresh.set_weights(saved)
            for name, value in fresh.get_weights().items():
                np.testing.assert_array_equal(value, saved[name], err_msg=name)
            np.testing.assert_array_equal(fresh.infer(x_test)["output"], wasm.infer(x_test)["output"])
            np.testing.assert_allclose(fresh.infer(x_test)["output"], interp.infer(x_test)["output"], atol=1e-5)
