"""Where the twins part: the first step and the first variable whose update differs, from identical weights."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from litetrain._lazy import import_module
from litetrain.data.batching import BatchPlan
from litetrain.runtime.base import Runner

MAX_STEPS = 50
FORWARD_PROBE_SAMPLES = 32
UPDATE_MISMATCH = 1e-3
"""A relative update difference above this is not float32 rounding of one step (that is ~1e-6)."""


@dataclasses.dataclass(frozen=True)
class Location:
    """The first step whose single-step update differs, and the worst variable there."""

    step: int | None
    variable: str | None
    layer: str | None
    update_rel_error: float  # at ``step`` (or the largest seen when no step crossed the threshold)
    loss_diff: float
    steps_examined: int
    per_variable: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        if self.step is None:
            return (f"single steps from identical weights agree (largest relative update difference "
                    f"{self.update_rel_error:.2g} over {self.steps_examined} steps)")
        where = f"variable {self.variable!r}" + (f" (layer {self.layer!r})" if self.layer else "")
        return (f"from identical weights, step {self.step}'s update of {where} differs by "
                f"{self.update_rel_error:.1%} relative to TensorFlow's")


def locate(
    reference: Runner,
    candidate: Runner,
    x: np.ndarray,
    y: np.ndarray,
    plan: BatchPlan,
    start_step: int,
    start_weights: Mapping[str, np.ndarray],
    float_names: Sequence[str],
    layer_of: Mapping[str, str] | None = None,
) -> Location:
    """Re-synchronizes both twins before every step from ``start_step`` on and compares their updates.

    Args:
        start_step: Steps already taken in ``start_weights`` (0: the initial weights).
        start_weights: The reference's weights and optimizer state after ``start_step`` steps.
        float_names: The float variables to compare (weights and optimizer state).
        layer_of: Variable name -> layer name, for the message.
    """
    weights = dict(start_weights)
    worst = (0.0, None, 0.0, {})  # error, variable, loss diff, per-variable
    stop = min(plan.steps, start_step + MAX_STEPS)
    examined = 0
    for step in range(start_step + 1, stop + 1):
        rows = plan.indices[step - 1]
        reference.set_weights(weights)
        candidate.set_weights(weights)
        loss_r = reference.train_step(x[rows], y[rows])
        loss_c = candidate.train_step(x[rows], y[rows])
        after_r, after_c = reference.get_weights(), candidate.get_weights()
        examined += 1
        per_var = {}
        for name in float_names:
            delta_r = np.asarray(after_r[name], np.float64) - np.asarray(weights[name], np.float64)
            delta_c = np.asarray(after_c[name], np.float64) - np.asarray(weights[name], np.float64)
            scale = float(np.max(np.abs(delta_r))) if delta_r.size else 0.0
            diff = float(np.max(np.abs(delta_c - delta_r))) if delta_r.size else 0.0
            per_var[name] = diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))
        name, err = max(per_var.items(), key=lambda kv: kv[1], default=(None, 0.0))
        loss_diff = abs(loss_c - loss_r)
        if err > worst[0] or worst[1] is None:
            worst = (err, name, loss_diff, per_var)
        if err > UPDATE_MISMATCH or not np.isfinite(err):
            return Location(step, name, (layer_of or {}).get(name or ""), err, loss_diff, examined,
                            dict(sorted(per_var.items(), key=lambda kv: -kv[1])[:8]))
        weights = after_r
    return Location(None, worst[1], (layer_of or {}).get(worst[1] or ""), worst[0], worst[2], examined,
                    dict(sorted(worst[3].items(), key=lambda kv: -kv[1])[:8]))


@dataclasses.dataclass(frozen=True)
class ForwardLocation:
    """Per-layer outputs of ``infer`` in TensorFlow and TFLite, and the first layer whose output differs."""

    layer: str | None
    max_abs_error: float
    per_layer: dict[str, float]  # layer -> smallest difference to any TFLite tensor of the same shape

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        if self.layer is None:
            return "every layer's output of infer matches a TFLite tensor"
        return (f"the forward pass parts at layer {self.layer!r}: its TensorFlow output differs from every TFLite "
                f"tensor of its shape by at least {self.max_abs_error:.3g}")


def locate_forward(model: Any, tflite: bytes, x: np.ndarray, rtol: float = 1e-4, atol: float = 1e-5
                   ) -> ForwardLocation | None:
    """Finds the first Keras layer whose output no TFLite tensor of the ``infer`` signature reproduces.

    TFLite tensor names do not reliably name Keras layers (ops are fused and renamed), so each layer's output is
    matched by value: the closest intermediate tensor of the same shape. Intermediates are kept by the
    interpreter's ``experimental_preserve_all_tensors`` on the builtin kernels (XNNPACK would fuse them away).
    Returns None for models whose layers cannot be probed (e.g. layers called more than once).
    """
    keras = import_module("keras")
    from ai_edge_litert.interpreter import OpResolverType

    from litetrain.runtime.litert import new_interpreter

    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    try:
        if isinstance(model, keras.Model):
            probe_model = keras.Model(model.inputs, [layer.output for layer in layers])
        else:
            tf_keras = import_module("tf_keras")

            probe_model = tf_keras.Model(model.inputs, [layer.output for layer in layers])
        outputs = probe_model(x, training=False)
    except Exception:  # a layer used twice has no single output; such models are not probed
        return None
    outputs = [np.asarray(o) for o in (outputs if isinstance(outputs, list | tuple) else [outputs])]
    interp = new_interpreter(model_content=tflite, experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    runner = interp.get_signature_runner("infer")
    name, detail = next(iter(runner.get_input_details().items()))
    runner(**{name: x.astype(detail["dtype"])})  # float32, or int32 token ids
    subgraph = runner._subgraph_index
    tensors: list[np.ndarray] = []
    for detail in interp.get_tensor_details(subgraph):
        if detail["dtype"] != np.float32:
            continue
        try:
            tensors.append(interp.get_tensor(detail["index"], subgraph))
        except ValueError:  # tensors without data (e.g. variables' handles)
            continue
    per_layer: dict[str, float] = {}
    first, first_err = None, 0.0
    for layer, out in zip(layers, outputs, strict=True):
        same = [t for t in tensors if t.shape == out.shape]
        err = min((float(np.max(np.abs(t.astype(np.float64) - out))) for t in same), default=float("inf"))
        per_layer[layer.name] = err
        if first is None and not err <= atol + rtol * float(np.max(np.abs(out)) if out.size else 0.0):
            first, first_err = layer.name, err
    return ForwardLocation(first, first_err, per_layer)
