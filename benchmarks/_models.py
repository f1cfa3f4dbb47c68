"""Shared by op_profile.py and conv_speed.py: a zoo entry (or a .keras file) built into a trainable model.

Not a benchmark itself. The zoo lives in ``tests/zoo.py`` (each entry: a Keras factory, its data, ``--trainable``
and batch size); an image size other than the zoo's 32 is set through ``tests.zoo.IMAGE``, which the Keras
application entries and their data read when called.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def zoo() -> Any:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests import zoo as zoo_module

    return zoo_module


@dataclasses.dataclass
class Built:
    """A trainable model ready to time: its BuildResult, a batch, both runners, and the feed of the bare loop."""

    name: str
    result: Any
    x: np.ndarray
    y: np.ndarray
    build_s: float
    batch: int

    def runners(self) -> tuple[Any, Any]:
        from litetrain.runtime.litert import LiteRTRunner
        from litetrain.runtime.tensorflow import TensorflowModuleRunner

        return TensorflowModuleRunner(self.result.module), LiteRTRunner(self.result.tflite)

    def feed(self, runner: Any) -> dict[str, np.ndarray]:
        """The train signature's inputs for one full batch, named as the .tflite names them."""
        xi, yi = runner.train_inputs
        out = {**xi.tensors(xi.check(self.x, "x")), **yi.tensors(yi.check(self.y, "y"))}
        count = getattr(runner, "count_feed", None)
        if count is not None:
            out.update(count(len(self.x)))
        return out


def build_model(name: str, *, image_size: int | None = None, batch: int | None = None,
                trainable: str | None = None, seed: int = 0) -> Built:
    """Builds zoo entry ``name`` (or a .keras/.h5 path) as ``check`` would, and takes its first training batch."""
    from litetrain.api import seed_everything
    from litetrain.trainable.builder import build

    z = zoo()
    seed_everything(seed)
    if image_size is not None:
        z.IMAGE = image_size
    if name in z.BY_NAME:
        entry = z.BY_NAME[name]
        batch = batch or entry.batch_size
        model, data, spec = entry.factory(), entry.data(), trainable or entry.trainable
    elif Path(name).exists():
        model, data, spec = name, None, trainable
        batch = batch or 8
    else:
        raise SystemExit(f"unknown model {name!r}: give a zoo name ({', '.join(sorted(z.BY_NAME))}) or a .keras path")
    start = time.perf_counter()
    result = build(model, batch_size=batch, trainable=spec, data=data)
    build_s = time.perf_counter() - start
    if result.fitted is not None:
        x, y = result.fitted.x[:batch], result.fitted.y[:batch]
    else:
        x, y = _synthetic(result, batch, seed)
    return Built(name, result, x, y, build_s, batch)


def _synthetic(result: Any, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    module = result.module
    x = module.sample_inputs(batch, seed=seed)
    x = next(iter(x.values())) if isinstance(x, dict) and len(x) == 1 else x
    shape = tuple(module.y_spec.shape.as_list())
    dtype = np.dtype(module.y_dtype)
    y = np.zeros(shape, dtype) if dtype.kind in "iu" else rng.standard_normal(shape).astype(dtype)
    return x, y


CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV")


def is_conv_model(result: Any) -> bool:
    """Whether the model's inference graph has a 2-D convolution (the zoo's "conv models")."""
    return any(op in result.census.by_signature.get("infer", {}) for op in CONV_OPS)
