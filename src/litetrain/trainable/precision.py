"""``Float64ModuleFromModule``: the float64 reference twin of a TrainableModule.

The same layers, loss and optimizer in float64, starting from the float32 twin's exact weights (float32 values are
exactly representable in float64). Its trajectory is what the float32 runtimes approximate: the "float64 truth".
"""

from __future__ import annotations

from typing import Any

from litetrain.config import TrainableSpec
from litetrain.errors import UnsupportedModelError
from litetrain.trainable.keras_objects import keras_module
from litetrain.trainable.loaders import LoadedModel
from litetrain.trainable.module import TrainableModule


def float64_model(model: Any, framework: Any) -> Any:
    """Clones a Sequential/functional Keras model with every layer in float64 and copies its weights.

    Raises:
        UnsupportedModelError: the model cannot be cloned (e.g. subclassed layers without ``get_config``).
    """
    keras = keras_module(framework)
    shape = tuple(model.inputs[0].shape)[1:]

    def clone_layer(layer: Any) -> Any:
        config = layer.get_config()
        config["dtype"] = "float64"
        return layer.__class__.from_config(config)

    try:
        clone = keras.models.clone_model(
            model, input_tensors=keras.Input(shape, dtype="float64"), clone_function=clone_layer
        )
    except Exception as exc:  # Keras raises many types for layers it cannot clone
        raise UnsupportedModelError(
            f"The model cannot be cloned in float64 for the reference twin ({type(exc).__name__}: {exc}).",
            hint="Use Sequential/functional models of serializable layers, or run without the float64 reference.",
        ) from exc
    sources = model.weights
    targets = clone.weights
    if len(sources) != len(targets):
        raise UnsupportedModelError("The float64 clone has a different number of weights than the model.")
    for src, dst in zip(sources, targets, strict=True):
        dst.assign(src.numpy().astype("float64"))
    for src_layer, dst_layer in zip(model.layers, clone.layers, strict=True):
        dst_layer.trainable = src_layer.trainable
    return clone


def float64_module(module: TrainableModule) -> TrainableModule:
    """The float64 twin of ``module``: same loss, optimizer, batch size, frozen layers and variable names.

    Optimizer state starts from the optimizer's initial values, as in the float32 twins; call
    ``set_weights(float32_twin.get_weights())`` to align everything (values are cast to float64).
    """
    clone = float64_model(module.model, module.framework)
    loaded = LoadedModel(clone, module.framework, "float64 clone")
    return TrainableModule(
        loaded,
        module.loss_config,
        module.optimizer_config,
        module.batch_size,
        TrainableSpec(),  # the clone carries the frozen flags already
        names=tuple(v.name for v in module.variables_info),
    )
