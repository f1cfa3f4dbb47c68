"""``Float64ModuleFromModule``: the float64 reference twin of a TrainableModule.

The same layers, loss and optimizer in float64, starting from the float32 twin's exact weights (float32 values are
exactly representable in float64). Its trajectory is what the float32 runtimes approximate: the "float64 truth".

A twin that computes something else than the float32 model (a Normalization layer back at mean 0 / variance 1, a
BatchNormalization without its moving statistics) would make a real difference look like rounding, so the clone is
checked layer by layer against the float32 model before it is used, and refused when it is not faithful.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from litetrain.config import TrainableSpec
from litetrain.errors import UnsupportedModelError
from litetrain.trainable.keras_objects import keras_module
from litetrain.trainable.loaders import LoadedModel
from litetrain.trainable.module import TrainableModule

SHARED_LAYERS = frozenset({
    "Discretization", "StringLookup", "IntegerLookup", "TextVectorization", "Hashing", "HashedCrossing",
})
"""Layers whose outputs are exact (bucket indices, vocabulary ids, hashes): the clone uses the same layer object,
so its state (adapted boundaries, vocabularies, lookup tables) cannot be lost in a copy."""

RTOL = 1e-5
"""A layer of the clone may differ from the float32 layer by this fraction of the output's scale..."""
NOISE_FACTOR = 10.0
"""...or by this multiple of what a last-bit change of the layer's float inputs moves the float32 output."""
SAMPLE_BATCH = 8
_NOT_FAITHFUL_HINT = ("The comparison runs without the float64 reference; report the layer to litetrain if it is a "
                      "standard Keras layer.")


def float64_model(model: Any, framework: Any, sample_x: Any = None) -> Any:
    """Clones a Sequential/functional Keras model with every float layer in float64 and copies its state.

    Every weight is copied, non-trainable ones too (BatchNormalization moving statistics, adapted Normalization
    mean and variance), then ``finalize_state()`` turns adapted state into what the layer computes with. The clone
    is then checked against the float32 model layer by layer on ``sample_x`` (default: seeded standard-normal
    floats, zeros and ones for integer inputs).

    Raises:
        UnsupportedModelError: the model cannot be cloned (e.g. subclassed layers without ``get_config``), or a
            layer of the clone computes something else than the float32 layer (named in the message).
    """
    keras = keras_module(framework)
    try:
        clone = _clone(model, keras)
    except UnsupportedModelError:
        raise
    except Exception as exc:  # Keras raises many types for layers it cannot clone
        raise UnsupportedModelError(
            f"The model cannot be cloned in float64 for the reference twin ({type(exc).__name__}: {exc}).",
            hint="Use Sequential/functional models of serializable layers, or run without the float64 reference.",
        ) from exc
    check_faithful(model, clone, keras, sample_inputs(model, sample_x))
    return clone


def _clone(model: Any, keras: Any) -> Any:
    """The float64 clone of ``model`` (nested models cloned the same way), with its weights and state."""

    def clone_layer(layer: Any) -> Any:
        if type(layer).__name__ in SHARED_LAYERS or not isinstance(layer, keras.layers.Layer):
            return layer  # a Keras 3 operation (``x + y`` in a functional model) computes in its inputs' dtype
        if isinstance(layer, keras.Model):
            return _clone(layer, keras)
        config = layer.get_config()
        if _is_float(layer.compute_dtype):
            config["dtype"] = "float64"
        return layer.__class__.from_config(config)

    inputs = [keras.Input(tuple(t.shape)[1:], dtype="float64" if _is_float(t.dtype) else t.dtype, name=_name(t))
              for t in model.inputs]
    clone = keras.models.clone_model(
        model, input_tensors=inputs if len(inputs) > 1 else inputs[0], clone_function=clone_layer
    )
    _copy_state(model, clone)
    return clone


def _copy_state(model: Any, clone: Any) -> None:
    sources, targets = model.weights, clone.weights
    if len(sources) != len(targets):
        raise UnsupportedModelError(
            f"The float64 clone has {len(targets)} weights and the model {len(sources)}.",
            hint=_NOT_FAITHFUL_HINT,
        )
    for src, dst in zip(sources, targets, strict=True):
        if dst is not src:  # a shared layer's own variables
            value = np.asarray(src.numpy())
            dst.assign(value.astype(np.asarray(dst.numpy()).dtype))
    for src_layer, dst_layer in zip(model.layers, clone.layers, strict=True):
        if dst_layer is src_layer:
            continue
        dst_layer.trainable = src_layer.trainable
        finalize = getattr(dst_layer, "finalize_state", None)
        if callable(finalize) and dst_layer.built:
            finalize()  # adapted state (Normalization mean/variance) -> the tensors the layer computes with


def sample_inputs(model: Any, sample_x: Any = None) -> list[np.ndarray]:
    """One array per model input: ``sample_x`` (array, list or dict by input name) or seeded synthetic data."""
    if sample_x is not None:
        if isinstance(sample_x, Mapping):
            return [np.asarray(sample_x[_name(t)])[:SAMPLE_BATCH] for t in model.inputs]
        if isinstance(sample_x, Sequence) and not isinstance(sample_x, np.ndarray):
            return [np.asarray(a)[:SAMPLE_BATCH] for a in sample_x]
        return [np.asarray(sample_x)[:SAMPLE_BATCH]]
    rng = np.random.default_rng(0)
    out = []
    for t in model.inputs:
        shape = (SAMPLE_BATCH, *(4 if d is None else int(d) for d in tuple(t.shape)[1:]))
        dtype = _dtype_name(t.dtype)
        if _is_float(dtype):
            out.append(rng.standard_normal(shape).astype(dtype))
        elif dtype == "string":
            out.append(np.full(shape, "", dtype=object))
        else:
            out.append(rng.integers(0, 2, shape).astype(dtype))
    return out


def check_faithful(model: Any, clone: Any, keras: Any, xs: list[np.ndarray]) -> None:
    """Checks that each layer of ``clone`` computes what the float32 layer does, given the float32 layer's inputs.

    Judged per layer, so a model that amplifies rounding (large BatchNorm statistics on unrealistic inputs) is not
    mistaken for an unfaithful clone. Layers that cannot be called alone on their recorded inputs (several call
    arguments, as MultiHeadAttention's query and value) are covered by a check of the whole model's outputs.

    Raises:
        UnsupportedModelError: naming the first layer whose outputs differ, or when the model cannot be run.
    """
    layer_inputs = _layer_inputs(model, keras, xs)
    unchecked = []
    for src, dst in zip(model.layers, clone.layers, strict=True):
        if dst is src or isinstance(src, keras.layers.InputLayer):
            continue
        try:
            bad = _difference(lambda a, layer=src: layer(a, training=False),
                              lambda a, layer=dst: layer(a, training=False), layer_inputs[src.name])
        except Exception:  # noqa: BLE001 - not callable alone: the whole-model check below covers it
            unchecked.append(src.name)
            continue
        if bad is not None:
            raise _not_faithful(f"layer {src.name!r} ({type(src).__name__})", bad)
    if unchecked:
        feed = xs if len(xs) > 1 else xs[0]
        try:
            bad = _difference(lambda a: model(a, training=False), lambda a: clone(a, training=False), feed)
        except Exception as exc:  # Keras raises many types
            raise UnsupportedModelError(
                f"The float64 clone could not be checked against the model ({type(exc).__name__}: {exc}).",
                hint=_NOT_FAITHFUL_HINT,
            ) from exc
        if bad is not None:
            raise _not_faithful(f"the model's outputs (layers checked only as a whole: {', '.join(unchecked)})", bad)


def _layer_inputs(model: Any, keras: Any, xs: list[np.ndarray]) -> dict[str, Any]:
    """The float32 model's input value of every layer whose input is known, from one run of the model (empty when
    the model cannot be split so)."""
    wanted: dict[str, Any] = {}
    for layer in model.layers:
        try:
            wanted[layer.name] = layer.input
        except (AttributeError, ValueError, RuntimeError):  # several inbound nodes, or not connected
            continue
    tree = _nest()
    try:
        extractor = keras.Model(model.inputs, tree.flatten(list(wanted.values())))
        values = extractor(xs, training=False)
    except Exception:  # noqa: BLE001 - every layer is then covered by the whole-model check
        return {}
    values = [np.asarray(v) for v in (values if isinstance(values, (list, tuple)) else [values])]
    packed = tree.pack_sequence_as(list(wanted.values()), values)
    return dict(zip(wanted, packed, strict=True))


def _nest() -> Any:
    from litetrain._lazy import import_module

    return import_module("tensorflow").nest


def _difference(f32: Any, f64: Any, args: Any) -> tuple[float, float, float] | None:
    """(largest difference, output scale, float32 noise) when ``f64`` strays beyond the noise of ``f32``, else None."""
    tree = _nest()
    ref = _flat_numpy(f32(args))
    got = _flat_numpy(f64(tree.map_structure(_to_float64, args)))
    noisy = _flat_numpy(f32(tree.map_structure(_last_bit, args)))
    worst = None
    for r, g, n in zip(ref, got, noisy, strict=True):
        if not _is_float(r.dtype):
            if not np.array_equal(r, g):
                return float("inf"), 0.0, 0.0
            continue
        r64, g64, n64 = (np.asarray(a, np.float64) for a in (r, g, n))
        if not np.array_equal(np.isfinite(r64), np.isfinite(g64)):
            return float("inf"), 0.0, 0.0
        finite = np.isfinite(r64) & np.isfinite(n64)
        diff = float(np.max(np.abs(g64 - r64)[finite], initial=0.0))
        scale = float(np.max(np.abs(r64)[finite], initial=0.0))
        noise = float(np.max(np.abs(n64 - r64)[finite], initial=0.0))
        if diff > RTOL * scale + NOISE_FACTOR * noise + np.finfo(np.float32).tiny:
            worst = (diff, scale, noise)
            break
    return worst


def _not_faithful(where: str, bad: tuple[float, float, float]) -> UnsupportedModelError:
    diff, scale, noise = bad
    figures = ("integer or non-finite outputs differ" if diff == float("inf") else
               f"outputs differ by up to {diff:.3g} at a scale of {scale:.3g}, while a last-bit change of the inputs "
               f"moves them by {noise:.3g}")
    return UnsupportedModelError(
        f"The float64 clone is not faithful at {where}: {figures} (state that was not carried over, for "
        "example), so the float64 reference would call a real difference rounding.",
        hint=_NOT_FAITHFUL_HINT,
    )


def _flat_numpy(value: Any) -> list[np.ndarray]:
    return [np.asarray(v) for v in _nest().flatten(value)]


def _to_float64(a: Any) -> Any:
    a = np.asarray(a)
    return a.astype(np.float64) if _is_float(a.dtype) else a


def _last_bit(a: Any) -> Any:
    """Every float input moved to a neighbouring float32 value (directions seeded), other inputs unchanged."""
    a = np.asarray(a)
    if not _is_float(a.dtype):
        return a
    up = np.random.default_rng(1).random(a.shape) < 0.5
    return np.where(up, np.nextafter(a, np.inf), np.nextafter(a, -np.inf)).astype(a.dtype)


def _dtype_name(dtype: Any) -> str:
    return str(getattr(dtype, "name", dtype))


def _is_float(dtype: Any) -> bool:
    return _dtype_name(dtype).startswith(("float", "bfloat", "half", "double"))


def _name(tensor: Any) -> str:
    """A model input's name without a tf_keras ``:0`` suffix."""
    return str(getattr(tensor, "name", "input")).split(":")[0]


def float64_module(module: TrainableModule, sample_x: Any = None) -> TrainableModule:
    """The float64 twin of ``module``: same loss, optimizer, batch size, frozen layers and variable names.

    Optimizer state starts from the optimizer's initial values, as in the float32 twins; call
    ``set_weights(float32_twin.get_weights())`` to align everything (values are cast to float64).

    Args:
        sample_x: Inputs on which the clone is checked against the float32 model (default: synthetic).
    """
    clone = float64_model(module.model, module.framework, sample_x)
    from litetrain.trainable.adaptations import adapt_for_training

    adapt_for_training(clone, training_mode=module.layers == "fit")  # the clone runs the float32 twins' graph
    loaded = LoadedModel(clone, module.framework, "float64 clone")
    return TrainableModule(
        loaded,
        module.loss_config,
        module.optimizer_config,
        module.batch_size,
        TrainableSpec(),  # the clone carries the frozen flags already
        names=tuple(v.name for v in module.variables_info),
        layers=module.layers,
    )
