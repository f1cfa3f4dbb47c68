"""The arm64 runtime: the aarch64 LiteRT interpreter under qemu-user, in a worker process, trains as x86 does.

Runs when ``litetrain runtimes install arm64`` has filled the cache ($LITETRAIN_CACHE or ~/.cache/litetrain);
otherwise only the refusal is tested.
"""

from __future__ import annotations

import numpy as np
import pytest

from litetrain.errors import RuntimeUnavailableError
from litetrain.runtime.install import arm64_python
from tests.models import mlp

BATCH = 8


def test_a_runtime_that_is_not_installed_is_refused_naming_the_command(tmp_path, monkeypatch):
    from litetrain.cli.app import main
    from litetrain.comparison.runtimes import parse_runtimes

    monkeypatch.setenv("LITETRAIN_CACHE", str(tmp_path))
    with pytest.raises(RuntimeUnavailableError, match="arm64 runtime is not installed") as err:
        parse_runtimes("interpreter,arm64")
    assert "litetrain runtimes install arm64" in err.value.hint
    assert "arm64" not in parse_runtimes("all")  # all: every runtime that can run here
    assert main(["check", "tests.models:mlp", "--runtimes", "arm64", "--steps", "2"]) == 3  # before any build


@pytest.mark.skipif(not arm64_python().is_file(), reason="run 'litetrain runtimes install arm64'")
def test_arm64_trains_saves_restores_and_infers_like_x86():
    import keras

    from litetrain.runtime.arm64 import Arm64Runner
    from litetrain.runtime.litert import LiteRTRunner
    from litetrain.trainable.builder import build

    keras.utils.set_random_seed(0)
    tflite = build(mlp(), loss="sparse_categorical_crossentropy", batch_size=BATCH).tflite
    rng = np.random.default_rng(3)
    xs = rng.standard_normal((3, BATCH, 8, 8)).astype(np.float32)
    ys = rng.integers(0, 10, (3, BATCH)).astype(np.int32)
    x_test = rng.standard_normal((11, 8, 8)).astype(np.float32)
    with LiteRTRunner(tflite) as x86, Arm64Runner(tflite) as arm:
        assert "arm64/sysroot" in arm.info.executable and arm.info.interpreter == "ai_edge_litert"
        losses_x86 = [x86.train_step(x, y) for x, y in zip(xs, ys, strict=True)]
        losses_arm = [arm.train_step(x, y) for x, y in zip(xs, ys, strict=True)]
        np.testing.assert_allclose(losses_arm, losses_x86, rtol=1e-6)  # ARM NEON vs x86 AVX kernels: a few ulps
        saved, again = arm.get_weights(), arm.get_weights()
        expected = x86.get_weights()
        for name, value in expected.items():
            np.testing.assert_array_equal(saved[name], again[name], err_msg=name)
            np.testing.assert_allclose(saved[name], value, rtol=0, atol=1e-6, err_msg=name)
        with Arm64Runner(tflite) as fresh:  # restore: its [1]-shaped scalars crashed when they were 0-d
            fresh.set_weights(saved)
            for name, value in fresh.get_weights().items():
                np.testing.assert_array_equal(value, saved[name], err_msg=name)
            np.testing.assert_allclose(fresh.infer(x_test)["output"], arm.infer(x_test)["output"], rtol=0, atol=0)
            np.testing.assert_allclose(fresh.infer(x_test)["output"], x86.infer(x_test)["output"], atol=1e-5)
