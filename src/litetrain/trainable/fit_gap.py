"""What a ``--layers inference`` train step leaves out of Keras ``model.fit``, in words for the verdict."""

from __future__ import annotations

from typing import Any

RANDOM_LAYERS = frozenset({
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout",
    "AlphaDropout",
})
"""Keras layers that are active only with ``training=True`` (random masks or noise)."""


def _is_batch_norm(layer: Any) -> bool:
    return any(c.__name__ == "BatchNormalization" for c in type(layer).__mro__)


def _is_random(layer: Any) -> bool:
    return any(c.__name__ in RANDOM_LAYERS for c in type(layer).__mro__)


def inference_mode_note(model: Any, layers: str) -> str | None:
    """The note for a model trained with ``layers="inference"`` whose training differs from ``model.fit``.

    Returns None in ``fit`` mode, and for a model without trainable BatchNormalization or dropout/noise layers
    (then both modes train the same graph).
    """
    if layers != "inference":
        return None
    flat = list(model._flatten_layers(include_self=False, recursive=True))
    norms = [layer.name for layer in flat if layer.trainable and _is_batch_norm(layer)]
    noise = [layer.name for layer in flat if _is_random(layer)]
    parts = []
    if norms:
        parts.append(f"BatchNormalization {_names(norms)} normalizes with its frozen moving statistics (it neither "
                     "uses batch statistics nor updates them)")
    if noise:
        parts.append(f"dropout/noise {_names(noise)} is off")
    if not parts:
        return None
    return (f"--layers inference ran: in train, {' and '.join(parts)}, so this training differs from Keras "
            "model.fit (a lower accuracy than fit's is expected, not a conversion defect; --layers fit trains "
            "as fit does)")


def _names(names: list[str], most: int = 3) -> str:
    shown = ", ".join(repr(n) for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")
