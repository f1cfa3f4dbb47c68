"""``CompiledModelRunner``: trains a .tflite model through LiteRT 2.x's ``CompiledModel`` API.

``CompiledModel`` is the API that LiteRT 2.x apps use (Kotlin and C++ wrap the same C API, ``libLiteRt.so``): tensor
buffers are created once per signature, written, run and read, instead of the Interpreter's signature runners. Like
:mod:`litetrain.runtime.litert` it imports only numpy and ``ai_edge_litert``, never TensorFlow.

Runtime specifics (FACTS.md, "Runtimes other than the Interpreter"):

- A signature input of unknown batch size cannot take a buffer of another size, so ``infer`` runs through the
  ``infer_fixed`` signature (the train batch size) when the model has it; the base class chunks and pads. A model
  without it infers one sample at a time.
- ``save`` outputs must be made by an op, not come straight from READ_VARIABLE (models from ``litetrain build`` do).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from litetrain.convert.census import op_census
from litetrain.errors import ConversionError
from litetrain.runtime.base import Runner
from litetrain.runtime.litert import read_model
from litetrain.runtime.signatures import (
    CONVENTION_KEYS,
    flex_unavailable_error,
    signature_call_error,
    signature_layout,
)

INFER_FIXED = "infer_fixed"
_WHO = "LiteRT CompiledModel"


class CompiledModelRunner(Runner):
    """A .tflite model with litetrain's signature convention, run by ``ai_edge_litert.compiled_model.CompiledModel``.

    Args:
        model: The flatbuffer, or a path to a .tflite file.
        num_threads: CPU threads (None: LiteRT's default).
        name: Label used in messages and reports.
        require_weights: Also require the ``save``/``restore`` signatures.

    Raises:
        ConversionError: not a TFLite model, or one the CompiledModel API cannot load.
        RuntimeUnavailableError: the model has select-TF (Flex) ops.
        SignatureError: a required signature, input or output is missing.
    """

    def __init__(
        self,
        model: bytes | str | Path,
        *,
        num_threads: int | None = None,
        name: str = "compiled",
        require_weights: bool = True,
    ) -> None:
        super().__init__()
        from litetrain._lazy import filtered_stderr

        self.name = name
        self.model_bytes = read_model(model)
        census = op_census(self.model_bytes)
        if census.flex:
            raise flex_unavailable_error(census.flex)
        _quiet_exit()
        self._state: dict[str, Any] = {}
        self._release = weakref.finalize(self, _release, self._state)
        try:
            # LiteRT logs its accelerator registry (NPU, GPU, WebGPU, vendor plugins) when the model is created
            # and when it first runs; none of it concerns a CPU run.
            with filtered_stderr():
                self._model = self._state["model"] = _compiled_model(self.model_bytes, num_threads)
                keys = list(self._model.get_signature_list())
                details = {
                    k: {"inputs": self._model.get_input_tensor_details(k),
                        "outputs": self._model.get_output_tensor_details(k)}
                    for k in keys
                }
                conv = {k: v for k, v in details.items() if k in CONVENTION_KEYS}
                self._infer_key = INFER_FIXED if INFER_FIXED in details else "infer"
                if "infer" in conv:
                    conv["infer"] = details[self._infer_key]
                layout = signature_layout(conv, require_weights=require_weights, names=keys)
                self._buffers = self._state["buffers"] = {
                    k: self._bind(k, details[k]) for k in (*layout.keys, self._infer_key)}
                ins, outs, _ = self._buffers[self._infer_key]
                for info in layout.infer_input.fields:  # zeros: a new buffer's garbage makes an embedding's GATHER fail
                    ins[info.name].write(np.zeros(tuple(d or 1 for d in info.shape), info.dtype))
                self._model.run_by_name(self._infer_key, ins, outs)  # the first run; infer changes no state
        except (RuntimeError, ValueError) as exc:
            self._release()
            raise ConversionError(f"The {_WHO} API cannot load the model: {exc}") from exc
        self.train_inputs = layout.train_inputs
        self.count_input = layout.count_input
        self.infer_input = layout.infer_input
        self.infer_outputs = layout.infer_outputs
        self.has_weights = layout.has_weights
        self.weight_infos = layout.weight_infos

    def _bind(self, key: str, details: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """Input and output buffers of one signature (made once, reused by every call), and its output details."""
        model = self._model
        ins = {n: model.create_input_buffer_by_name(key, n) for n in details["inputs"]}
        outs = {n: model.create_output_buffer_by_name(key, n) for n in details["outputs"]}
        return ins, outs, dict(details["outputs"])

    def _call(self, key: str, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        ins, outs, out_details = self._buffers[key]
        try:
            for name, buffer in ins.items():
                buffer.write(np.ascontiguousarray(inputs[name]))
            self._model.run_by_name(key, ins, outs)
            result = {}
            for name, buffer in outs.items():
                shape = tuple(int(d) for d in out_details[name]["shape"])
                result[name] = buffer.read(int(np.prod(shape)), np.dtype(out_details[name]["dtype"])).reshape(shape)
            return result
        except (RuntimeError, ValueError, KeyError) as exc:
            raise signature_call_error(_WHO, key, exc) from exc

    def _train_step_impl(self, x: np.ndarray, y: np.ndarray, n: int) -> float:
        out = self._call("train", **self.train_inputs[0].tensors(x), **self.train_inputs[1].tensors(y), **self.count_feed(n))
        return float(out["loss"].reshape(-1)[0])

    def _infer_impl(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return self._call(self._infer_key, **self.infer_input.tensors(x))

    def _get_weights_impl(self) -> dict[str, np.ndarray]:
        out = self._call("save")
        return {k: v.reshape(self.weight_infos[k].shape) if k in self.weight_infos else v for k, v in out.items()}

    def _set_weights_impl(self, weights: Mapping[str, np.ndarray]) -> None:
        self._call("restore", **dict(weights))

    def close(self) -> None:
        """Releases the tensor buffers, the compiled model and its environment (also at exit, if never called)."""
        self._release()


def _release(state: dict[str, Any]) -> None:
    """Frees what a runner holds, filtering the accelerator lines LiteRT logs as it destroys them."""
    from litetrain._lazy import filtered_stderr

    buffers, model = state.pop("buffers", {}), state.pop("model", None)
    with filtered_stderr():
        for ins, outs, _ in buffers.values():
            for buffer in (*ins.values(), *outs.values()):
                with contextlib.suppress(Exception):
                    buffer.destroy()
        del buffers
        if model is not None:
            environment = getattr(model, "environment", None)
            with contextlib.suppress(Exception):
                model.close()
            with contextlib.suppress(Exception):
                environment.close()
            del model, environment


_QUIET_EXIT: list[bool] = []


def _quiet_exit() -> None:
    """Silences native stderr once Python has finished, in a process that used the CompiledModel API.

    Writing a tensor buffer creates a process-wide LiteRT environment whose accelerators announce their destruction
    (``INFO: ... DestroyAccelerator``) from a C++ static destructor, after every Python-level filter is gone; only
    the interpreter's teardown writes to stderr then. ``LITETRAIN_VERBOSE_NATIVE_LOGS=1`` keeps it.
    """
    import atexit
    import os
    import sys

    if _QUIET_EXIT or os.environ.get("LITETRAIN_VERBOSE_NATIVE_LOGS"):
        return
    _QUIET_EXIT.append(True)

    def silence() -> None:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)

    atexit.register(silence)


def _compiled_model(model_bytes: bytes, num_threads: int | None) -> Any:
    from ai_edge_litert.compiled_model import CompiledModel

    if num_threads is None:
        return CompiledModel.from_buffer(model_bytes)
    from ai_edge_litert.options import CpuOptions, Options

    return CompiledModel.from_buffer(model_bytes, options=Options(cpu_options=CpuOptions(num_threads=int(num_threads))))
