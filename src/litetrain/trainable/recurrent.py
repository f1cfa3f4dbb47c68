"""Recurrent layers as users write them (``LSTM(64)``, ``unroll=False``) made traceable to builtin TFLite ops.

A Keras RNN layer with ``unroll=False`` runs a ``tf.while_loop`` over a TensorList. TFLite converts such a loop
only with a static element shape (the dynamic-batch ``infer`` has none) and cannot convert its gradient at all
(``ZerosLike`` of a TensorList). The same recurrence unrolled over a static number of time steps is a chain of
ordinary ops whose gradients are builtin (cf. tensorflow/tensorflow#61513, which asks for an LSTM training path).

Unrolling computes the same function: it changes the graph, not the math, so the TensorFlow twin, the float64
twin (cloned from the layer's config) and the TFLite model all run the unrolled form.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from litetrain.errors import UnsupportedModelError

MAX_UNROLLED_STEPS = 512
"""Longer sequences make graphs whose size and conversion time grow without bound; such models are refused."""


@dataclasses.dataclass(frozen=True)
class Unrolled:
    """One recurrent layer that litetrain unrolled for the trace."""

    layer: str
    kind: str
    steps: int

    def describe(self) -> str:
        return (f"{self.kind} {self.layer!r} unrolled over its {self.steps} time steps (a while loop over a "
                "TensorList has no builtin gradient)")


def unroll_recurrent_layers(model: Any) -> tuple[Unrolled, ...]:
    """Sets ``unroll=True`` on every recurrent layer of ``model`` that loops (Keras 3 or tf_keras).

    Raises:
        UnsupportedModelError: a recurrent layer's number of time steps is unknown or above
            :data:`MAX_UNROLLED_STEPS`.
    """
    done = []
    for layer in _recurrent_layers(model):
        if getattr(layer, "unroll", True):
            continue
        steps = _time_steps(layer)
        if steps is None or steps > MAX_UNROLLED_STEPS:
            raise UnsupportedModelError(
                f"The recurrent layer {layer.name!r} ({type(layer).__name__}) loops over "
                f"{'an unknown number of' if steps is None else steps} time steps; litetrain trains recurrent "
                f"layers unrolled, which needs a static sequence length of at most {MAX_UNROLLED_STEPS}.",
                hint="Give keras.Input a fixed sequence length (e.g. shape=(100,) for token ids), or shorten "
                "the sequences (pad or truncate them).",
            )
        layer.unroll = True
        if hasattr(layer, "_could_use_gpu_kernel"):
            # tf_keras's LSTM/GRU decide at construction to run their fused "standard_lstm" loop (it ignores
            # unroll); only the generic path unrolls.
            layer._could_use_gpu_kernel = False
        done.append(Unrolled(layer.name, type(layer).__name__, steps))
    return tuple(done)


def _recurrent_layers(model: Any) -> list[Any]:
    # Both Keras flavours name their base class RNN; LSTM, GRU, SimpleRNN and the inner layers of Bidirectional
    # derive from it (ConvLSTM too, which has no unroll).
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if any(cls.__name__ == "RNN" for cls in type(layer).__mro__) and hasattr(layer, "unroll")]


def _time_steps(layer: Any) -> int | None:
    """The static sequence length the layer was built on (axis 0 of a time-major input, else axis 1)."""
    shape = _built_input_shape(layer)
    if shape is None or len(shape) < 3:
        return None
    steps = shape[0 if getattr(layer, "time_major", False) else 1]
    return int(steps) if steps is not None else None


def _built_input_shape(layer: Any) -> tuple[Any, ...] | None:
    for attr in ("_build_shapes_dict", "_build_input_shape"):
        value = getattr(layer, attr, None)
        if isinstance(value, dict) and value:
            value = next(iter(value.values()))  # Keras 3: {"sequences_shape": (...)}
        if value is not None and not isinstance(value, dict):
            try:
                return tuple(value.as_list() if hasattr(value, "as_list") else value)
            except (TypeError, ValueError):
                return None
    return None
