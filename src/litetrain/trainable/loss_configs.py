"""A loss config from what Keras holds: a compiled loss object, and ``from_logits`` from the activation that ends an
output. Shared by the one-output rules (:mod:`litetrain.trainable.keras_objects`) and the per-output ones
(:mod:`litetrain.trainable.outputs`).
"""

from __future__ import annotations

from typing import Any

from litetrain.config import Loss, LossConfig
from litetrain.errors import UsageError

LOSS_CLASSES = {
    Loss.SPARSE_CATEGORICAL_CROSSENTROPY: "SparseCategoricalCrossentropy",
    Loss.CATEGORICAL_CROSSENTROPY: "CategoricalCrossentropy",
    Loss.BINARY_CROSSENTROPY: "BinaryCrossentropy",
    Loss.MSE: "MeanSquaredError",
    Loss.MAE: "MeanAbsoluteError",
}


def layer_activation(layer: Any) -> str | None:
    """Name of the activation that ends ``layer`` ('softmax', 'sigmoid', ...) or None for a linear one."""
    if layer is None:
        return None
    cls = type(layer).__name__
    if cls == "Softmax":
        return "softmax"
    act = getattr(layer, "activation", None)
    if act is None:
        return None
    name = getattr(act, "__name__", None) or str(act)
    return None if name == "linear" else name


def with_from_logits(config: LossConfig, layer: Any) -> LossConfig:
    """``config`` with ``from_logits`` inferred from the activation ending ``layer`` when not given."""
    if config.name.has_from_logits and config.from_logits is None:
        act = layer_activation(layer)
        probs = {"softmax"} if config.name is not Loss.BINARY_CROSSENTROPY else {"sigmoid"}
        config = LossConfig(config.name, from_logits=act not in probs)
    if not config.name.has_from_logits and config.from_logits is not None:
        config = LossConfig(config.name, None)
    return config


def loss_config_of(loss: Any) -> LossConfig:
    """The config of one compiled loss (a name or a Keras loss object).

    Raises:
        UsageError: a loss litetrain does not build.
    """
    if isinstance(loss, str):
        return LossConfig.parse(loss)
    name = getattr(loss, "name", None) or type(loss).__name__
    cfg = loss.get_config() if hasattr(loss, "get_config") else {}
    for enum_value, cls_name in LOSS_CLASSES.items():
        if type(loss).__name__ == cls_name or name == enum_value.value:
            return LossConfig(enum_value, cfg.get("from_logits"))
    raise UsageError(
        f"The model was compiled with the loss {name!r}, which litetrain does not build.",
        hint="Pass --loss with one of: " + ", ".join(v.value for v in Loss) + ".",
    )
