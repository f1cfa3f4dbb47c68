"""Run stage: one ``Runner`` interface over every runtime (TensorFlow, LiteRT, ...).

One module per runtime on the base class in :mod:`litetrain.runtime.base`; :mod:`litetrain.runtime.registry` names
them (a new runtime is one module plus one registry line, docs/adding-a-runtime.md); the worker protocol
(:mod:`litetrain.runtime.worker`) is the one way a runtime runs out of process.
"""

from litetrain.runtime.base import Runner, TensorInfo

__all__ = ["Runner", "TensorInfo"]
