"""TensorFlow runners: a ``TrainableModule`` with TF's own autodiff, or a SavedModel's signatures."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from litetrain._lazy import import_module
from litetrain.errors import ModelLoadError, SignatureError
from litetrain.runtime.base import Runner, TensorInfo, record_info
from litetrain.runtime.signatures import signature_layout

tf = import_module("tensorflow")


def load_saved_model(path: str | Path) -> Any:
    """``tf.saved_model.load``, raising ModelLoadError (with the cause) for a folder that does not load."""
    try:
        return tf.saved_model.load(str(path))
    except Exception as exc:
        raise ModelLoadError(f"Could not load the SavedModel {str(path)!r}: {type(exc).__name__}: {exc}") from exc


def _info(spec: Any, name: str | None = None) -> TensorInfo:
    return TensorInfo(name or spec.name, tuple(spec.shape.as_list()), np.dtype(spec.dtype.as_numpy_dtype))


def _detail(spec: Any) -> dict[str, Any]:
    """A TensorSpec as an interpreter tensor detail, for :func:`signature_layout`."""
    shape = [-1 if d is None else d for d in spec.shape.as_list()]
    return {"shape": shape, "dtype": np.dtype(spec.dtype.as_numpy_dtype)}


class TensorflowModuleRunner(Runner):
    """The TensorFlow twin: the module's train step traced with TensorFlow's standard gradients.

    The TFLite twin is traced from the same Python step with builtin-only gradient rewrites; this twin is not,
    so a mistake in a rewrite shows up as a difference instead of being copied into the reference.
    """

    name = "tensorflow"

    def __init__(self, module: Any, *, name: str = "tensorflow") -> None:
        super().__init__()
        self.name = name
        self.module = module
        self._train = tf.function(module.train_step, input_signature=module.train_specs)
        self._infer = tf.function(module.infer, input_signature=module.infer_specs)
        self.train_inputs = (
            record_info("x", [_info(s) for s in module.x_specs]),
            record_info("y", [_info(s) for s in module.y_specs]),
        )
        self.infer_input = record_info("x", [_info(s) for s in module.infer_specs])
        self.infer_outputs = tuple(o.name for o in module.outputs)
        self._x_order = [s.name for s in module.x_specs]
        self._y_order = [s.name for s in module.y_specs]
        self.weight_infos = {i.name: TensorInfo(i.name, i.shape, np.dtype(i.dtype)) for i in module.variables_info}
        self.count_input = _info(module.train_specs[-1])

    def _train_step_impl(self, x: np.ndarray, y: np.ndarray, n: int) -> float:
        xs, ys = self.train_inputs[0].tensors(x), self.train_inputs[1].tensors(y)
        count = np.array([n], np.int32)
        return float(self._train(*(xs[k] for k in self._x_order), *(ys[k] for k in self._y_order), count)["loss"])

    def _infer_impl(self, x: np.ndarray) -> dict[str, np.ndarray]:
        xs = self.infer_input.tensors(x)
        return {k: v.numpy() for k, v in self._infer(*(xs[n] for n in self._x_order)).items()}

    def _get_weights_impl(self) -> dict[str, np.ndarray]:
        return self.module.get_weights()

    def _set_weights_impl(self, weights: Mapping[str, np.ndarray]) -> None:
        self.module.set_weights(weights)


class SavedModelRunner(Runner):
    """A SavedModel that follows the signature convention (``train``, ``infer``, ``save``, ``restore``).

    Raises:
        ModelLoadError: not a SavedModel.
        SignatureError: ``train`` or ``infer`` is missing or has other inputs/outputs.
    """

    name = "tensorflow"

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        path = Path(path)
        if not (path / "saved_model.pb").is_file():
            raise ModelLoadError(
                f"{str(path)!r} is not a SavedModel folder (no saved_model.pb).",
                hint="Pass the folder written by tf.saved_model.save (the reference of the pair).",
            )
        self._loaded = load_saved_model(path)
        sigs = dict(self._loaded.signatures)
        missing = [k for k in ("train", "infer") if k not in sigs]
        if missing:
            raise SignatureError(
                f"The SavedModel lacks the signature(s) {missing}; it has {sorted(sigs)}.",
                hint="Export train(x, y) -> loss and infer(x) -> output as signatures (see the README's "
                "signature convention).",
            )
        self._sigs = sigs
        layout = signature_layout({
            key: {"inputs": {n: _detail(v) for n, v in sigs[key].structured_input_signature[1].items()},
                  "outputs": {n: _detail(v) for n, v in sigs[key].structured_outputs.items()}}
            for key in ("train", "infer")
        }, require_weights=False)
        self.train_inputs = layout.train_inputs
        self.count_input = layout.count_input
        self.infer_input = layout.infer_input
        self.infer_outputs = tuple(sigs["infer"].structured_outputs)
        self.has_weights = "save" in sigs and "restore" in sigs
        self.weight_infos = (
            {k: _info(v, k) for k, v in sigs["restore"].structured_input_signature[1].items()}
            if self.has_weights else {}
        )

    def _train_step_impl(self, x: np.ndarray, y: np.ndarray, n: int) -> float:
        inputs = {**self.train_inputs[0].tensors(x), **self.train_inputs[1].tensors(y), **self.count_feed(n)}
        return float(self._sigs["train"](**{k: tf.constant(v) for k, v in inputs.items()})["loss"].numpy())

    def _infer_impl(self, x: np.ndarray) -> dict[str, np.ndarray]:
        out = self._sigs["infer"](**{k: tf.constant(v) for k, v in self.infer_input.tensors(x).items()})
        return {k: v.numpy() for k, v in out.items()}

    def _get_weights_impl(self) -> dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in self._sigs["save"]().items()}

    def _set_weights_impl(self, weights: Mapping[str, np.ndarray]) -> None:
        self._sigs["restore"](**{k: tf.constant(v) for k, v in weights.items()})
