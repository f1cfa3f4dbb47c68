"""``LiteRTRunner``: trains a .tflite model through its signatures in ``ai_edge_litert``'s interpreter.

Imports only the interpreter and numpy, never TensorFlow, so it is what a phone runs and nothing more.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from litetrain.convert.census import op_census
from litetrain.errors import ConversionError, ModelLoadError
from litetrain.runtime.base import Runner
from litetrain.runtime.signatures import (
    CONVENTION_KEYS,
    flex_unavailable_error,
    signature_call_error,
    signature_layout,
)


class Kernels(enum.StrEnum):
    """Kernel paths of the interpreter (its op resolver)."""

    DEFAULT = "default"
    """Builtin kernels with the XNNPACK delegate applied by default (what apps get)."""
    REFERENCE = "reference"
    """Builtin reference kernels: simple loops, slow, a different summation order."""
    NO_DELEGATE = "no_delegate"
    """Optimized builtin kernels without the default XNNPACK delegate."""


def _resolver(kernels: Kernels) -> object:
    from ai_edge_litert.interpreter import OpResolverType

    return {
        Kernels.DEFAULT: OpResolverType.AUTO,
        Kernels.REFERENCE: OpResolverType.BUILTIN_REF,
        Kernels.NO_DELEGATE: OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    }[kernels]


def new_interpreter(**kwargs: Any) -> Any:
    """``ai_edge_litert.interpreter.Interpreter(**kwargs)`` without LiteRT's one-time XNNPACK notice on stderr.

    Every interpreter litetrain creates goes through here, so the notice never interleaves with litetrain's output;
    anything else the native code writes (a real error) is passed through.
    """
    from ai_edge_litert.interpreter import Interpreter

    from litetrain._lazy import filtered_stderr

    with filtered_stderr():
        interp = Interpreter(**kwargs)
        # The default delegate is applied (and announced) on the first allocation; do it here, where the notice is
        # filtered. A model that cannot allocate fails again, with its message, when a signature is first used.
        with contextlib.suppress(Exception):
            interp.allocate_tensors()
    return interp


def read_model(model: bytes | str | Path) -> bytes:
    """Returns the flatbuffer bytes of ``model`` (bytes or a path)."""
    if isinstance(model, bytes | bytearray):
        return bytes(model)
    path = Path(model)
    if not path.is_file():
        raise ModelLoadError(f"TFLite model {str(path)!r} does not exist.", hint="Check the path to the .tflite file.")
    return path.read_bytes()


class LiteRTRunner(Runner):
    """A .tflite model with litetrain's signature convention, run by the LiteRT interpreter.

    Args:
        model: The flatbuffer, or a path to a .tflite file.
        num_threads: Interpreter threads (None: the interpreter's default).
        kernels: Which kernel path to use.
        name: Label used in messages and reports.
        require_weights: Also require the ``save``/``restore`` signatures.

    Raises:
        ConversionError: not a TFLite model.
        RuntimeUnavailableError: the model has select-TF (Flex) ops, which this interpreter cannot run.
        SignatureError: a required signature, input or output is missing.
    """

    def __init__(
        self,
        model: bytes | str | Path,
        *,
        num_threads: int | None = None,
        kernels: Kernels = Kernels.DEFAULT,
        name: str = "tflite",
        require_weights: bool = True,
    ) -> None:
        super().__init__()
        self.name = name
        self.kernels = kernels
        self.model_bytes = read_model(model)
        census = op_census(self.model_bytes)
        if census.flex:
            raise flex_unavailable_error(census.flex)
        try:
            self._interp = new_interpreter(
                model_content=self.model_bytes,
                num_threads=num_threads,
                experimental_op_resolver_type=_resolver(kernels),
            )
        except (ValueError, RuntimeError) as exc:
            raise ConversionError(f"The LiteRT interpreter cannot load the model: {exc}") from exc
        signatures = self._interp.get_signature_list()
        self._runners = {k: self._interp.get_signature_runner(k) for k in signatures if k in CONVENTION_KEYS}
        layout = signature_layout(
            {k: {"inputs": r.get_input_details(), "outputs": r.get_output_details()} for k, r in self._runners.items()},
            require_weights=require_weights,
            names=signatures,
        )
        self.train_inputs = layout.train_inputs
        self.count_input = layout.count_input
        self.infer_input = layout.infer_input
        self.infer_outputs = layout.infer_outputs
        self.has_weights = layout.has_weights
        self.weight_infos = layout.weight_infos
        self._train = self._runners["train"]

    def signature(self, key: str) -> Any:
        """The interpreter's runner of any signature of the model (e.g. ``bottleneck``), or None if it has none."""
        if key not in self._interp.get_signature_list():
            return None
        return self._interp.get_signature_runner(key)

    def _call(self, key: str, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        try:
            return self._runners[key](**inputs)
        except (RuntimeError, ValueError) as exc:
            raise signature_call_error("LiteRT", key, exc) from exc

    def _train_step_impl(self, x: np.ndarray, y: np.ndarray, n: int) -> float:
        try:
            out = self._train(**self.train_inputs[0].tensors(x), **self.train_inputs[1].tensors(y), **self.count_feed(n))
        except (RuntimeError, ValueError) as exc:
            raise signature_call_error("LiteRT", "train", exc) from exc
        return float(out["loss"])

    def _infer_impl(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return self._call("infer", **self.infer_input.tensors(x))

    def _get_weights_impl(self) -> dict[str, np.ndarray]:
        return {k: np.array(v) for k, v in self._call("save").items()}

    def _set_weights_impl(self, weights: Mapping[str, np.ndarray]) -> None:
        self._call("restore", **dict(weights))

