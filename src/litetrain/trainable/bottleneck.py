"""Feature caching for a frozen base: the ``bottleneck`` and ``train_head`` signatures.

When every layer below the first trainable one is frozen, the frozen part's output for a sample (its bottleneck)
never changes, so a session can compute it once per sample and train the head on it, as the TensorFlow Lite
personalization example did. This is only sound when the frozen part computes the same thing in ``train`` at every
step: no active Dropout or noise (each step draws a new mask), no random augmentation, no BatchNormalization that
normalizes with batch statistics, no activity regularization (a loss term of the frozen part), and one tensor (the
cut) through which the trainable head reads everything it reads of the input. Otherwise the build has no bottleneck
signatures and says why.

- ``bottleneck(x) -> {"features"}``: the frozen part's output at the train batch size (as ``train`` computes it).
- ``train_head(features, y, ...) -> {"loss"}``: the ``train`` step from the cut on: the same loss, gradients,
  optimizer update and variables as ``train(x, y)`` given ``features = bottleneck(x)``; it takes every input of
  ``train`` after ``x`` in the same order and under the same names.
- ``infer_head(features) -> {"output"}``: ``infer`` from the cut on (train batch size), so a session evaluates its
  held-out samples on cached features too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from litetrain._lazy import import_module
from litetrain.trainable.loaders import Framework

tf = import_module("tensorflow")

BOTTLENECK, TRAIN_HEAD, INFER_HEAD = "bottleneck", "train_head", "infer_head"
FEATURES = "features"

RANDOM_LAYERS = frozenset({"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
                           "GaussianDropout", "AlphaDropout"})


@dataclasses.dataclass(frozen=True, eq=False)
class BottleneckPlan:
    """Where the frozen base ends (``cut``) and the two models on either side of it, or why there is no cut."""

    cut: str | None = None
    """The layer whose output is the bottleneck."""
    shape: tuple[int, ...] | None = None
    """The bottleneck's shape per sample."""
    dtype: str = "float32"
    reason: str | None = None
    """Why the build has no bottleneck signatures (None when it has them)."""
    prefix: Any = dataclasses.field(default=None, repr=False)
    head: Any = dataclasses.field(default=None, repr=False)
    verification: dict[str, Any] | None = None
    """Cached against uncached training on the built .tflite (:func:`verify_cached_training`)."""

    def __bool__(self) -> bool:
        return self.reason is None

    @property
    def bytes_per_sample(self) -> int | None:
        return None if self.shape is None else int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    def to_json(self) -> dict[str, Any]:
        return {
            "signatures": [BOTTLENECK, TRAIN_HEAD, INFER_HEAD] if self else [],
            "cut_layer": self.cut,
            "features_shape": list(self.shape) if self.shape is not None else None,
            "features_bytes_per_sample": self.bytes_per_sample,
            "reason": self.reason,
            "verification": self.verification,
        }


def plan_bottleneck(module: Any) -> BottleneckPlan:
    """The cut of ``module``'s model between its frozen base and its trainable head, or the reason there is none.

    The cut starts at the input of the first layer with trainable weights and moves down past weightless
    single-input layers (pooling, a Dropout in front of the classifier) until the part below it is sound to cache.
    """
    model = module.model
    if module.framework is not Framework.KERAS3:
        return BottleneckPlan(reason="feature caching supports Keras 3 models for now; this one is tf_keras")
    if len(module.inputs) != 1:
        return BottleneckPlan(reason=f"the model has {len(module.inputs)} inputs; feature caching needs one")
    first = next((layer for layer in model.layers if layer.trainable_weights), None)
    if first is None:
        return BottleneckPlan(reason="no layer has trainable weights")
    tensor, why = _single_input(model, first)
    if tensor is None:
        return BottleneckPlan(reason=why)
    reasons = []
    while tensor is not None and not _is_model_input(model, tensor):
        plan = _try_cut(module, tensor)
        if plan:
            return plan
        reasons.append(plan.reason)
        tensor = _below(model, tensor)
    if not reasons:
        return BottleneckPlan(reason=f"nothing is frozen below the first trainable layer {first.name!r}")
    return BottleneckPlan(reason=reasons[0])


def _model_nodes(model: Any) -> set[int]:
    graph = getattr(model, "_functional", None) or model
    return {id(n) for nodes in getattr(graph, "_nodes_by_depth", {}).values() for n in nodes}


def _single_input(model: Any, layer: Any) -> tuple[Any, str | None]:
    """The one tensor ``layer`` reads in ``model``'s graph, or None and why not."""
    nodes = [n for n in layer._inbound_nodes if id(n) in _model_nodes(model)]
    if len(nodes) != 1:
        return None, f"the first trainable layer {layer.name!r} is called {len(nodes)} times in the model's graph " \
            "(feature caching needs a functional or sequential model that calls it once)"
    inputs = list(nodes[0].input_tensors)
    if len(inputs) != 1:
        return None, f"the first trainable layer {layer.name!r} reads {len(inputs)} tensors; feature caching needs " \
            "one tensor feeding the trainable head"
    return inputs[0], None


def _is_model_input(model: Any, tensor: Any) -> bool:
    return any(tensor is t for t in model.inputs)


def _below(model: Any, tensor: Any) -> Any:
    """The input of the weightless single-input layer that made ``tensor``, or None."""
    layer = tensor._keras_history[0]
    if layer.weights:
        return None
    found, _ = _single_input(model, layer)
    return found


def _try_cut(module: Any, tensor: Any) -> BottleneckPlan:
    keras = import_module("keras")
    model = module.model
    layer = tensor._keras_history[0]
    shape = tuple(tensor.shape)[1:]
    if any(d is None for d in shape):
        return BottleneckPlan(reason=f"the output of {layer.name!r} has shape {shape} per sample, with unknown "
                              "dimensions")
    try:
        head = keras.Model(tensor, model.outputs)
    except ValueError:
        return BottleneckPlan(reason=f"a layer after {layer.name!r} also reads a tensor from below it (a connection "
                              "across the cut), so no single tensor feeds the trainable head")
    prefix = keras.Model(model.inputs, tensor)
    if not prefix.weights:
        return BottleneckPlan(reason=f"nothing with weights is frozen below {layer.name!r}: its output is as cheap "
                              "as the inputs themselves")
    if {id(v) for v in head.trainable_variables} != {id(v) for v in model.trainable_variables}:
        return BottleneckPlan(reason=f"trainable layers lie below {layer.name!r}: the frozen layers do not form "
                              "one prefix of the model")
    unsound = _unsound(prefix, module.layers == "fit")
    if unsound:
        return BottleneckPlan(reason=unsound)
    return BottleneckPlan(cut=layer.name, shape=tuple(int(d) for d in shape), dtype=str(tensor.dtype),
                          prefix=prefix, head=head)


def _unsound(prefix: Any, training_mode: bool) -> str | None:
    """Why the frozen part's output may change from step to step in ``train``, or None."""
    for layer in prefix._flatten_layers(include_self=False, recursive=True):
        kind = type(layer).__name__
        what = f"{kind} {layer.name!r} lies below the first trainable layer"
        if getattr(layer, "activity_regularizer", None) is not None:
            return f"{what} and adds an activity-regularization loss, which caching its output would drop"
        if not training_mode:
            continue
        if kind in RANDOM_LAYERS and float(getattr(layer, "rate", getattr(layer, "stddev", 1.0)) or 0.0) > 0.0:
            return f"{what} and draws a new random mask in every train step, so caching its output would change " \
                "training (move it above the cut, or build with --layers inference)"
        if kind.startswith("Random") and not getattr(layer, "_litetrain_inference", False):
            return f"{what} and augments each step's batch at random, so a cached output would lose the augmentation"
        if layer.trainable and "BatchNormalization" in kind:
            return f"{what} and normalizes with each batch's statistics in train (it is not frozen)"
    return None


def bottleneck_functions(module: Any, plan: BottleneckPlan, train: Any) -> dict[str, Any]:
    """The concrete ``bottleneck``, ``train_head`` and ``infer_head`` functions of ``plan`` (none without a cut).

    ``train_head`` takes ``train``'s inputs with the model input replaced by the features, so any input that
    ``train`` has besides ``x`` and ``y`` comes along in the same place under the same name.
    """
    if not plan:
        return {}
    fit = module.layers == "fit"
    x_spec = module.x_specs[0]
    dtype = tf.as_dtype(plan.dtype)
    features = tf.TensorSpec((module.batch_size, *plan.shape), dtype, name=FEATURES)
    args = list(train.structured_input_signature[0])

    def bottleneck(x: Any) -> dict[str, Any]:
        cast = x if x.dtype == module.inputs[0].dtype else tf.cast(x, module.inputs[0].dtype)
        return {FEATURES: tf.cast(plan.prefix(cast, training=fit), dtype)}

    def infer_head(f: Any) -> dict[str, Any]:
        outs = tf.nest.flatten(plan.head(f, training=False))
        return {o.name: t for o, t in zip(module.outputs, outs, strict=True)}

    return {
        BOTTLENECK: tf.function(bottleneck).get_concrete_function(x_spec),
        TRAIN_HEAD: tf.function(_head_step(module, plan.head)).get_concrete_function(features, *args[1:]),
        INFER_HEAD: tf.function(infer_head).get_concrete_function(features),
    }


def _head_step(module: Any, head: Any) -> Callable[..., dict[str, Any]]:
    """``module.train_step`` with the head in place of the model: one train step's code for both signatures."""

    def forward(xs: tuple[Any, ...], training: bool = False) -> list[Any]:
        return list(tf.nest.flatten(head(xs[0], training=training)))

    def step(*tensors: Any) -> dict[str, Any]:
        # An instance attribute, not a tracked one: tf.Module would otherwise try to track the function.
        object.__setattr__(module, "_forward", forward)
        try:
            return module.train_step(*tensors)
        finally:
            object.__delattr__(module, "_forward")

    return step


VERIFY_STEPS = 3


def verify_bottleneck(module: Any, tflite: bytes, plan: BottleneckPlan, fitted: Any) -> BottleneckPlan:
    """``plan`` with the built model's cached training checked against its ``train`` over a few steps, on the
    user's data (``fitted``) or seeded synthetic batches (:func:`verify_cached_training`)."""
    from litetrain.convert.census import op_census
    from litetrain.training.feature_cache import verify_cached_training

    if not plan or op_census(tflite).flex:
        return plan
    n = 2 * module.batch_size
    if fitted is not None and len(fitted.x) >= module.batch_size:
        x, y, source = fitted.x[:n], fitted.y[:n], "data"
    else:
        x, y, source = _synthetic_batches(module, n)
    figures = verify_cached_training(tflite, x, y, VERIFY_STEPS)
    return dataclasses.replace(plan, verification={**figures, "inputs": source})


def _synthetic_batches(module: Any, n: int) -> tuple[Any, Any, str]:
    """Seeded inputs and targets for ``n`` samples: class ids for sparse losses, uniform values in [0, 1) else."""
    from litetrain.runtime.base import record

    rng = np.random.default_rng(0)
    targets = {}
    for out, spec in zip(module.outputs, module.y_specs, strict=True):
        if spec.dtype.is_integer:
            targets[spec.name] = rng.integers(0, max(2, out.shape[-1] if out.shape else 2), n).astype(np.int32)
        else:
            targets[spec.name] = rng.random((n, *spec.shape[1:])).astype(spec.dtype.as_numpy_dtype)
    return record(module.sample_inputs(n)), record(targets), "synthetic"
