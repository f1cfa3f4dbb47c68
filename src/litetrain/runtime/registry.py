"""Every runtime litetrain runs models on, by name: a new runtime is one module with a ``Runner`` subclass plus
one line in :data:`RUNTIMES` (docs/adding-a-runtime.md).

Entries name their runner as ``"module:Class"`` and import it on first use, so that listing the runtimes (for
``--help`` or an error message) never imports TensorFlow or an interpreter.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING, Any

from litetrain.errors import UsageError

if TYPE_CHECKING:
    from litetrain.runtime.base import Runner


@dataclasses.dataclass(frozen=True)
class RuntimeEntry:
    """One runtime: its name, where its runner lives, what it runs and whether it runs in another process.

    Attributes:
        name: The name users and reports use (``interpreter``, ``compiled``, ``tensorflow``, ...; the LiteRT
            runtimes of ``litetrain check --runtimes`` go by the same names).
        runner: ``"module:Class"`` of its :class:`~litetrain.runtime.base.Runner` subclass.
        model: What the runner's first argument is: ``tflite`` (a flatbuffer or path), ``module`` (a built
            ``TrainableModule``) or ``saved_model`` (a SavedModel folder).
        description: One line for listings.
        out_of_process: Runs the model in a child process over the worker protocol
            (:mod:`litetrain.runtime._worker_main`), the one way a runtime runs out of process.
    """

    name: str
    runner: str
    model: str
    description: str
    out_of_process: bool = False


RUNTIMES: dict[str, RuntimeEntry] = {e.name: e for e in (
    RuntimeEntry("interpreter", "litetrain.runtime.litert:LiteRTRunner", "tflite",
                 "LiteRT interpreter in this process (numpy and ai_edge_litert only)"),
    RuntimeEntry("compiled", "litetrain.runtime.compiled:CompiledModelRunner", "tflite",
                 "LiteRT 2.x's CompiledModel API in this process (numpy and ai_edge_litert only)"),
    RuntimeEntry("worker", "litetrain.runtime.worker:WorkerRunner", "tflite",
                 "a TFLite interpreter in a child process: device-like memory and time, crashes contained, "
                 "optionally under another Python", out_of_process=True),
    RuntimeEntry("arm64", "litetrain.runtime.arm64:Arm64Runner", "tflite",
                 "the aarch64 LiteRT interpreter (ARM64/NEON kernels, a phone's CPU) under qemu-user, in a worker "
                 "process (litetrain runtimes install arm64)", out_of_process=True),
    RuntimeEntry("wasm", "litetrain.runtime.wasm:WasmRunner", "tflite",
                 "LiteRT.js (WebAssembly/XNNPACK, a web app's runtime) in Node, in a worker process "
                 "(litetrain runtimes install wasm)", out_of_process=True),
    RuntimeEntry("tensorflow", "litetrain.runtime.tensorflow:TensorflowModuleRunner", "module",
                 "the TensorFlow twin: a TrainableModule's train step with TensorFlow's own gradients"),
    RuntimeEntry("saved-model", "litetrain.runtime.tensorflow:SavedModelRunner", "saved_model",
                 "a SavedModel's train/infer/save/restore signatures in TensorFlow"),
)}

EMULATED = ("arm64",)
"""Runtimes whose speed is an emulator's, not the device's (arm64 runs under qemu-user on x86)."""


def runtime(name: str) -> RuntimeEntry:
    """The registry entry of ``name``.

    Raises:
        UsageError: an unknown runtime, naming the known ones.
    """
    try:
        return RUNTIMES[name]
    except KeyError:
        raise UsageError(f"Unknown runtime {name!r}; litetrain runs {', '.join(RUNTIMES)}.") from None


def runner_class(name: str) -> type[Runner]:
    """The runner class of runtime ``name``, imported now."""
    module, _, cls = runtime(name).runner.partition(":")
    found: type[Runner] = getattr(importlib.import_module(module), cls)
    return found


def open_runner(name: str, model: Any, **options: Any) -> Runner:
    """A runner of runtime ``name`` for ``model`` (see :attr:`RuntimeEntry.model`); ``options`` go to its class."""
    return runner_class(name)(model, **options)
