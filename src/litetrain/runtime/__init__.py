"""Run stage: one ``Runner`` interface over every runtime (TensorFlow, LiteRT, ...)."""

from litetrain.runtime.base import Runner, TensorInfo

__all__ = ["Runner", "TensorInfo"]
