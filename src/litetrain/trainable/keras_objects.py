"""Keras losses and optimizers from litetrain's configs, and the defaults of a compiled model.

Objects come from the model's own Keras (Keras 3 or tf_keras): mixing them is an error in Keras itself.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from litetrain._lazy import import_module
from litetrain.config import LossConfig, Optimizer, OptimizerConfig
from litetrain.errors import UnsupportedModelError, UsageError
from litetrain.trainable.loaders import Framework
from litetrain.trainable.loss_configs import LOSS_CLASSES, layer_activation, loss_config_of, with_from_logits
from litetrain.trainable.outputs import resolve_output_losses

_OPTIMIZER_CLASSES = {
    Optimizer.SGD: "SGD",
    Optimizer.ADAM: "Adam",
    Optimizer.ADAMW: "AdamW",
    Optimizer.RMSPROP: "RMSprop",
}
DEFAULT_LEARNING_RATE = {Optimizer.SGD: 0.01, Optimizer.ADAM: 0.001, Optimizer.ADAMW: 0.001, Optimizer.RMSPROP: 0.001}


def keras_module(framework: Framework) -> Any:
    return import_module("keras" if framework is Framework.KERAS3 else "tf_keras")


def output_activation(model: Any) -> str | None:
    """Name of the activation that ends the model ('softmax', 'sigmoid', ...) or None for a linear output."""
    if not getattr(model, "layers", None):
        return None  # e.g. a subclassed model that was never built; TrainableModule says what is missing
    return layer_activation(model.layers[-1])


def resolve_loss(config: LossConfig | None, model: Any) -> LossConfig:
    """Fills in the loss from the compiled model and ``from_logits`` from the output activation.

    Raises:
        UsageError: no loss given and the model was not compiled with a supported one.
    """
    if len(getattr(model, "outputs", None) or ()) > 1:
        return resolve_output_losses(config, model)
    if config is None:
        config = _compiled_loss(model)
    return with_from_logits(config, model.layers[-1] if getattr(model, "layers", None) else None)


def _compiled_loss(model: Any) -> LossConfig:
    loss = getattr(model, "loss", None)
    if loss is None:
        raise UsageError(
            "No loss given and the model was not compiled with one.",
            hint="Pass --loss (e.g. sparse_categorical_crossentropy, categorical_crossentropy, "
            "binary_crossentropy, mse, mae).",
        )
    if isinstance(loss, Mapping) and len(loss) == 1:  # loss={"output_name": ...} of a one-output model
        loss = next(iter(loss.values()))
    elif isinstance(loss, Sequence) and not isinstance(loss, str) and len(loss) == 1:
        loss = loss[0]
    return loss_config_of(loss)


def make_loss(framework: Framework, config: LossConfig) -> Any:
    """A Keras loss object of ``framework`` for ``config`` (mean over the batch)."""
    cls = getattr(keras_module(framework).losses, LOSS_CLASSES[config.name])
    return cls(from_logits=bool(config.from_logits)) if config.name.has_from_logits else cls()


def resolve_optimizer(config: OptimizerConfig | None, model: Any) -> OptimizerConfig:
    """The optimizer to build: ``config``, or the compiled model's (else SGD) with ``config``'s hyperparameters.

    A config without a name overrides the compiled optimizer's hyperparameters (``--lr`` without
    ``--optimizer``); a learning rate still unset becomes the Keras default of the optimizer.

    Raises:
        UsageError: a hyperparameter that the compiled optimizer does not take, or an unsupported optimizer.
        UnsupportedModelError: a compiled learning-rate schedule that no ``--lr`` replaces.
    """
    if config is None or config.name is None:
        overrides = {} if config is None else config.keras_kwargs()
        compiled = _compiled_optimizer(model, schedule_ok="learning_rate" in overrides)
        config = _override(compiled or OptimizerConfig(Optimizer.SGD), overrides, compiled is not None)
    if config.learning_rate is None:
        config = dataclasses.replace(config, learning_rate=DEFAULT_LEARNING_RATE[config.name])
    return config


def _override(base: OptimizerConfig, overrides: dict[str, Any], compiled: bool) -> OptimizerConfig:
    try:
        return dataclasses.replace(base, **overrides)
    except UsageError as exc:
        source = "the model was compiled with" if compiled else "is used for a model compiled without one"
        raise UsageError(
            f"{exc.message.rstrip('.')}, which {source}.",
            hint="Pass --optimizer sgd|adam|adamw|rmsprop to choose another optimizer.",
        ) from None


def _compiled_optimizer(model: Any, *, schedule_ok: bool = False) -> OptimizerConfig | None:
    opt = getattr(model, "optimizer", None)
    if opt is None or not getattr(model, "compiled", getattr(model, "_is_compiled", True)):
        return None
    cls = type(opt).__name__
    for enum_value, cls_name in _OPTIMIZER_CLASSES.items():
        if cls == cls_name:
            cfg = opt.get_config()
            lr = cfg.get("learning_rate")
            constant = isinstance(lr, numbers.Real)  # tf_keras reports numpy floats; a schedule is a dict/object
            if not constant and not schedule_ok:
                raise UnsupportedModelError(
                    f"The compiled {cls} optimizer uses a learning-rate schedule ({lr!r}); litetrain builds a "
                    "constant learning rate.",
                    hint="Pass --lr (and --optimizer to choose another optimizer) explicitly.",
                )
            keep = {
                Optimizer.SGD: ("momentum", "nesterov"),
                Optimizer.ADAM: ("beta_1", "beta_2", "epsilon"),
                Optimizer.ADAMW: ("beta_1", "beta_2", "epsilon", "weight_decay"),
                Optimizer.RMSPROP: ("rho", "momentum", "epsilon"),
            }[enum_value]
            return OptimizerConfig(enum_value, float(lr) if constant else None,
                                   **{k: cfg[k] for k in keep if k in cfg})
    raise UsageError(
        f"The model was compiled with the optimizer {cls!r}, which litetrain does not build.",
        hint="Pass --optimizer sgd|adam|adamw|rmsprop.",
    )


def make_optimizer(framework: Framework, config: OptimizerConfig) -> Any:
    """A Keras optimizer of ``framework`` for ``config``."""
    cls = getattr(keras_module(framework).optimizers, _OPTIMIZER_CLASSES[config.name])
    return cls(**config.keras_kwargs())
