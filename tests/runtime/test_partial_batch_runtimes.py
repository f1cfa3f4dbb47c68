"""Every LiteRT runtime trains a partial batch through the train signature's count ``n`` as the Interpreter does.

The model (Dense, BatchNormalization, Dropout) is built for batch 8 and given batches of 5, 8 and 3 samples; each
runner pads the partial ones and passes ``n``. arm64 and wasm run when ``litetrain runtimes install`` has set them up.
"""

from __future__ import annotations

import numpy as np
import pytest

from litetrain.runtime.install import arm64_python
from litetrain.runtime.wasm import WasmRunner
from tests.trainable.test_partial_batches import BATCH, _build, _data, bn_dropout_mlp

SIZES = (5, BATCH, 3)


def _compiled(tflite):
    from litetrain.runtime.compiled import CompiledModelRunner

    return CompiledModelRunner(tflite)


def _worker(tflite):
    from litetrain.runtime.worker import WorkerRunner

    return WorkerRunner(tflite)


def _arm64(tflite):
    from litetrain.runtime.arm64 import Arm64Runner

    return Arm64Runner(tflite)


RUNTIMES = {
    "compiled": (_compiled, 0.0, None),
    "worker": (_worker, 0.0, None),
    "arm64": (_arm64, 1e-6, None if arm64_python().is_file() else "run 'litetrain runtimes install arm64'"),
    "wasm": (WasmRunner, 1e-6, None if WasmRunner.unavailable() is None else "needs 'litetrain runtimes install wasm'"),
}


@pytest.fixture(scope="module")
def tflite() -> bytes:
    return _build(bn_dropout_mlp(), BATCH).tflite


@pytest.mark.parametrize("name", list(RUNTIMES))
def test_partial_batches_train_alike_in_every_runtime(name: str, tflite: bytes) -> None:
    from litetrain.runtime.litert import LiteRTRunner

    factory, atol, skip = RUNTIMES[name]
    if skip:
        pytest.skip(skip)
    x, y = _data(sum(SIZES), seed=3)
    bounds = np.cumsum((0, *SIZES))
    with LiteRTRunner(tflite) as interp, factory(tflite) as other:
        assert other.count_input is not None and other.count_input.shape == (1,)
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            assert other.train_step(x[a:b], y[a:b]) == pytest.approx(interp.train_step(x[a:b], y[a:b]), abs=atol)
        mine, theirs = other.get_weights(), interp.get_weights()
        for k, v in theirs.items():
            np.testing.assert_allclose(mine[k], v, rtol=0, atol=atol, err_msg=k)
