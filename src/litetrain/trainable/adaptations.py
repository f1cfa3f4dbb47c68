"""Graph changes (never changes of the math) that make a user's Keras model traceable to builtin TFLite ops.

Each adaptation sets an attribute of a layer before the train step is traced, so both twins, the float64 twin
(cloned from the layers' configs) and the TFLite model compute the same function in the adapted form; the build
lists each one under ``adaptations``.
"""

from __future__ import annotations

from typing import Any

from litetrain.trainable.recurrent import unroll_recurrent_layers


def adapt_for_training(model: Any, training_mode: bool) -> tuple[str, ...]:
    """Applies every adaptation ``model`` needs; returns one line per adapted layer.

    Args:
        model: The Keras 3 or tf_keras model (changed in place).
        training_mode: The train step calls the model with ``training=True`` (the build's ``--layers fit``).
    """
    done = [u.describe() for u in unroll_recurrent_layers(model)]
    if training_mode:
        done += unfuse_batch_norm(model) + freeze_geometric_augmentation(model)
    return tuple(done)


# Augmentation layers whose training-mode forward pass resamples the image with ImageProjectiveTransformV3, which
# TFLite has no builtin for. Flips, crops, contrast and brightness are builtin ops and stay active.
GEOMETRIC_AUGMENTATION = frozenset(
    {"RandomRotation", "RandomZoom", "RandomTranslation", "RandomShear", "RandomPerspective"}
)


def freeze_geometric_augmentation(model: Any) -> list[str]:
    """Runs geometric augmentation layers as in inference (they pass their input through) inside ``train``."""
    done = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if type(layer).__name__ in GEOMETRIC_AUGMENTATION and not getattr(layer, "_litetrain_inference", False):
            layer.call = _in_inference(layer.call)
            layer._litetrain_inference = True
            done.append(f"{type(layer).__name__} {layer.name!r} is inactive in train (its image resampling, "
                        "ImageProjectiveTransformV3, has no TFLite builtin): augment the data before training")
    return done


def _in_inference(call: Any) -> Any:
    def inference_call(*args: Any, **kwargs: Any) -> Any:
        kwargs["training"] = False
        return call(*args, **kwargs)

    return inference_call


def unfuse_batch_norm(model: Any) -> list[str]:
    """tf_keras's training-mode BatchNormalization runs FusedBatchNormV3 (is_training=True), whose forward and
    gradient ops have no TFLite builtin; its unfused path (moments, then the normalization formula) has builtin
    gradients and computes the same statistics. Keras 3 has no fused kernel to switch off."""
    done = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if layer.trainable and getattr(layer, "fused", False) and type(layer).__name__.endswith("BatchNormalization"):
            layer.fused = False
            done.append(f"{type(layer).__name__} {layer.name!r} runs its unfused training formula (tf_keras's "
                        "fused kernel has no builtin gradient)")
    return done
