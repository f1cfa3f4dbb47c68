"""``LiteRTRunner``: trains a .tflite model through its signatures in ``ai_edge_litert``'s interpreter.

Imports only the interpreter and numpy, never TensorFlow, so it is what a phone runs and nothing more.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from litetrain.convert.census import op_census
from litetrain.errors import ConversionError, ModelLoadError, RuntimeUnavailableError, SignatureError
from litetrain.runtime.base import Runner, TensorInfo


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
        from ai_edge_litert.interpreter import Interpreter

        self.name = name
        self.kernels = kernels
        self.model_bytes = read_model(model)
        census = op_census(self.model_bytes)
        if census.flex:
            raise RuntimeUnavailableError(
                f"The model contains select-TF (Flex) ops {sorted(census.flex)}; the LiteRT and TensorFlow "
                "interpreters for desktop Python no longer include the Flex delegate (google-ai-edge/LiteRT#6458), "
                "so it cannot be run or compared here.",
                hint="Build it builtin-only (the default of 'litetrain build'), or run it on a device that links "
                "the select-tf-ops library.",
            )
        try:
            self._interp = Interpreter(
                model_content=self.model_bytes,
                num_threads=num_threads,
                experimental_op_resolver_type=_resolver(kernels),
            )
        except (ValueError, RuntimeError) as exc:
            raise ConversionError(f"The LiteRT interpreter cannot load the model: {exc}") from exc
        signatures = self._interp.get_signature_list()
        required = ["train", "infer"] + (["save", "restore"] if require_weights else [])
        missing = [k for k in required if k not in signatures]
        if missing:
            raise SignatureError(
                f"The TFLite model lacks the signature(s) {missing}; it has {sorted(signatures)}.",
                hint="A trainable model needs train(x, y) -> loss, infer(x) -> output, save() -> weights and "
                "restore(weights) (see 'litetrain build').",
            )
        self._runners = {k: self._interp.get_signature_runner(k) for k in signatures if k in
                         ("train", "infer", "save", "restore")}
        self.train_inputs = self._train_inputs()
        infer_in = self._runners["infer"].get_input_details()
        if len(infer_in) != 1:
            raise SignatureError(f"The infer signature must take one input; it takes {sorted(infer_in)}.")
        self.infer_input = _info(*next(iter(infer_in.items())))
        self.infer_outputs = tuple(self._runners["infer"].get_output_details())
        self.has_weights = "save" in self._runners and "restore" in self._runners
        self.weight_infos = (
            {n: _info(n, d) for n, d in self._runners["restore"].get_input_details().items()}
            if self.has_weights else {}
        )
        self._x_name, self._y_name = self.train_inputs[0].name, self.train_inputs[1].name
        self._train = self._runners["train"]

    def _train_inputs(self) -> tuple[TensorInfo, TensorInfo]:
        details = self._runners["train"].get_input_details()
        outs = self._runners["train"].get_output_details()
        if set(details) != {"x", "y"} or "loss" not in outs:
            raise SignatureError(
                f"The train signature must take x and y and return loss; it takes {sorted(details)} and returns "
                f"{sorted(outs)}.",
                hint="Rename the signature's inputs/outputs to the convention (see 'litetrain compare --help').",
            )
        return _info("x", details["x"]), _info("y", details["y"])

    def _call(self, key: str, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        try:
            return self._runners[key](**inputs)
        except (RuntimeError, ValueError) as exc:
            raise ConversionError(f"The LiteRT interpreter failed in the {key!r} signature: {exc}") from exc

    def _train_step_impl(self, x: np.ndarray, y: np.ndarray) -> float:
        try:
            out = self._train(**{self._x_name: x, self._y_name: y})
        except (RuntimeError, ValueError) as exc:
            raise ConversionError(f"The LiteRT interpreter failed in the 'train' signature: {exc}") from exc
        return float(out["loss"])

    def _infer_impl(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return self._call("infer", **{self.infer_input.name: x})

    def _get_weights_impl(self) -> dict[str, np.ndarray]:
        self._require_weights()
        return {k: np.array(v) for k, v in self._call("save").items()}

    def _set_weights_impl(self, weights: Mapping[str, np.ndarray]) -> None:
        self._require_weights()
        self._call("restore", **dict(weights))

    def _require_weights(self) -> None:
        if not self.has_weights:
            raise SignatureError(f"{self.name}: the model has no save/restore signatures, so weights cannot move.")


def _info(name: str, detail: dict) -> TensorInfo:
    sig = detail.get("shape_signature", detail["shape"])
    return TensorInfo(name, tuple(None if int(d) < 0 else int(d) for d in sig), np.dtype(detail["dtype"]))
