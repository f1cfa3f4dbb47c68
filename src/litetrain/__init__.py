"""litetrain: build on-device-trainable TFLite models from Keras and verify they train like TensorFlow.

Importing litetrain is instant: TensorFlow loads only when a function that needs it runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litetrain.config import LossConfig, Optimizer, OptimizerConfig, Tolerances, TrainableSpec
from litetrain.errors import ExitCode, InternalError, LitetrainError

__version__ = "0.1.0"

__all__ = [
    "ExitCode",
    "InternalError",
    "LitetrainError",
    "LossConfig",
    "Optimizer",
    "OptimizerConfig",
    "Tolerances",
    "TrainableSpec",
    "build",
    "check",
    "compare",
    "demo",
]

if TYPE_CHECKING:
    from litetrain.api import build, check, compare, demo


def __getattr__(name: str) -> Any:
    if name in ("build", "check", "compare", "demo"):
        from litetrain import api

        return getattr(api, name)
    raise AttributeError(f"module 'litetrain' has no attribute {name!r}")
