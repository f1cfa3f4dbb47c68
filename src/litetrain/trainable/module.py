"""``TrainableModule``: a Keras model, its loss and optimizer as a ``tf.Module`` with the four signatures.

Signature convention (also what ``litetrain compare`` expects of models built by other means):

- ``train(x, y, n) -> {"loss"}``: one optimizer step on a batch of fixed size ``B`` whose first ``n`` rows (int32,
  shape ``[1]``, ``1 <= n <= B``) are real and the rest padding that changes nothing: the loss (the mean over the
  real rows), the gradients, BatchNormalization's batch statistics and the update are those of the ``n`` rows alone
  (:mod:`litetrain.trainable.real_rows`). A full batch passes ``n = B``.
- ``infer(x) -> {"output"}``: the model's output (logits or probabilities, as the model ends), any batch size.
- A model with several inputs takes ``x_<input name>`` for each instead of ``x``; one with several outputs takes
  ``y_<output name>`` for each instead of ``y`` and ``infer`` returns ``<output name>`` for each instead of
  ``output`` (Keras names, sanitized; see :func:`io_names`). The loss is the compiled per-output losses times their
  ``loss_weights``, summed, as Keras ``fit`` computes it.
- Integer inputs (token ids) are int32 in the signatures; int64 Keras inputs are cast inside the graph, since
  LiteRT.js and other runtimes reject int64 tensors.
- ``infer_fixed(x) -> {"output"}``: ``infer`` at the train batch size, for runtimes without dynamic batches.
- ``save() -> {name: tensor}``: every trainable weight and every optimizer state variable, by name.
- ``restore(**{name: tensor}) -> {name: tensor}``: assigns them; returns what it assigned.
- Portable to every LiteRT runtime (docs/signatures.md, "Runtimes"): no int64 tensor (the optimizer's step counter
  is int32), scalars exchanged as ``[1]``, ``save``/``restore`` outputs made by a copy op, not by READ_VARIABLE.

``train`` calls the model with ``training=True``, as ``model.fit`` does (``layers="fit"``, the default): a
BatchNormalization that trains normalizes with the batch statistics and updates its moving ones (model state,
exchanged by ``save``/``restore`` with role ``state``); a frozen one runs in inference mode, as in Keras. Dropout
and noise layers are active, drawing from a counter-based hash of (draw, step, element) that TensorFlow and every
TFLite runtime compute bit for bit alike (:mod:`litetrain.trainable.randomness`), so the twins stay comparable
step by step. ``layers="inference"`` runs every layer as in ``infer``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from typing import Any

import numpy as np

from litetrain._lazy import import_module
from litetrain.config import Loss, LossConfig, OptimizerConfig, TrainableSpec
from litetrain.errors import UnsupportedModelError, UsageError
from litetrain.trainable.keras_objects import make_loss, make_optimizer
from litetrain.trainable.loaders import Framework, LoadedModel
from litetrain.trainable.randomness import counter_randomness
from litetrain.trainable.real_rows import count_spec, real_rows

tf = import_module("tensorflow")

TRAIN, INFER, SAVE, RESTORE = "train", "infer", "save", "restore"
INFER_FIXED = "infer_fixed"
LAYERS_FIT, LAYERS_INFERENCE = "fit", "inference"
LAYER_MODES = (LAYERS_FIT, LAYERS_INFERENCE)
SIGNATURE_KEYS = (TRAIN, INFER, SAVE, RESTORE, INFER_FIXED)


@dataclasses.dataclass(frozen=True)
class VariableInfo:
    """One variable exchanged by ``save``/``restore``."""

    name: str  # the signature tensor name
    path: str  # the Keras path of the variable
    role: str  # "weight", "state" (BatchNorm moving statistics that train updates) or "optimizer"
    shape: tuple[int, ...]
    dtype: str

    @property
    def size_bytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "role": self.role,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "size_bytes": self.size_bytes,
        }


def _sanitize(name: str) -> str:
    name = re.sub(r":\d+$", "", name)
    out = re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_") or "var"
    return out if out[0].isalpha() else f"v_{out}"


def _keras_path(var: Any, framework: Framework) -> str:
    return str(getattr(var, "path", None) or var.name) if framework is Framework.KERAS3 else str(var.name)


def _tf_variable(var: Any, framework: Framework) -> Any:
    # Keras 3 variables wrap a tf.Variable; traced functions capture the inner one, which the SavedModel only
    # serializes if it is tracked directly (FACTS.md: "Keras 3 silently loses the weights").
    return var.value if framework is Framework.KERAS3 else var


class TrainableModule(tf.Module):
    """A Keras model with loss and optimizer, exposing train/infer/save/restore as TensorFlow functions.

    Args:
        loaded: The model and its Keras flavour.
        loss: Resolved loss config (``from_logits`` set).
        optimizer: Resolved optimizer config.
        batch_size: The fixed batch size of the train signature.
        trainable: Which layers train; the others are frozen (and folded to constants by the converter).
        names: Signature names for the exchanged variables, in order (default: from their Keras paths). A
            float64 twin takes its float32 twin's names so weights move between them by name.
        layers: ``"fit"`` (default): the train step calls the model with ``training=True``, as ``model.fit``
            does (trainable BatchNormalization normalizes with batch statistics and updates its moving ones,
            Dropout and noise layers are active with masks both runtimes draw alike); ``"inference"``: every layer
            runs as in ``infer``, a deterministic graph.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        loss: LossConfig,
        optimizer: OptimizerConfig,
        batch_size: int,
        trainable: TrainableSpec,
        *,
        names: tuple[str, ...] | None = None,
        layers: str = LAYERS_FIT,
    ) -> None:
        super().__init__(name="litetrain_module")
        if layers not in LAYER_MODES:
            raise UsageError(f"--layers must be one of {', '.join(LAYER_MODES)}; received {layers!r}.")
        self.layers = layers
        self.random_draws = 0
        """How many random tensors (dropout masks, noise) the traced train step draws."""
        model = loaded.model
        self.framework = loaded.framework
        self.model = model
        self.loss_config = loss
        self.optimizer_config = optimizer
        self.batch_size = int(batch_size)
        self.inputs, self.outputs = model_io(model, loss)
        self.input_shape, self.input_dtype = self.inputs[0].shape, self.inputs[0].dtype
        self.output_shape = self.outputs[0].shape
        for out in self.outputs:
            _check_loss_fits_output(out.loss, out.shape)
        self.frozen_layers = _apply_trainable(model, trainable)
        trainable_vars = list(model.trainable_variables)
        if not trainable_vars:
            raise UsageError(
                "No layer of the model has trainable weights with this --trainable selection.",
                hint="Choose layers that have weights, e.g. --trainable last:1 or --trainable all.",
            )
        self._trainable = trainable_vars
        self._loss_fns = [make_loss(self.framework, out.loss) for out in self.outputs]
        self.optimizer = make_optimizer(self.framework, optimizer)
        self.optimizer.build(trainable_vars)
        _int32_step_counter(self.optimizer, self.framework)
        opt_vars = self.optimizer.variables
        opt_vars = list(opt_vars() if callable(opt_vars) else opt_vars)
        self._all_tf_variables = [_tf_variable(v, self.framework) for v in list(model.variables) + opt_vars]
        state_vars = _updated_state(model) if layers == LAYERS_FIT else []
        self.variables_info, self._exchanged = self._name_variables(trainable_vars, opt_vars, state_vars)
        if names is not None:
            if len(names) != len(self.variables_info):
                raise UnsupportedModelError(
                    f"The model has {len(self.variables_info)} exchanged variables; expected {len(names)}."
                )
            self.variables_info = tuple(
                dataclasses.replace(info, name=name) for info, name in zip(self.variables_info, names, strict=True)
            )

    # -- naming -------------------------------------------------------------------------------------------
    def _name_variables(
        self, weights: list[Any], opt_vars: list[Any], state: list[Any]
    ) -> tuple[tuple[VariableInfo, ...], list[Any]]:
        infos: list[VariableInfo] = []
        tf_vars: list[Any] = []
        used: set[str] = set()
        for role, group in (("weight", weights), ("state", state), ("optimizer", opt_vars)):
            for var in group:
                path = _keras_path(var, self.framework)
                base = _sanitize(self._stable_name(path, role))
                name, k = base, 2
                while name in used:
                    name, k = f"{base}_{k}", k + 1
                used.add(name)
                tv = _tf_variable(var, self.framework)
                infos.append(VariableInfo(name, path, role, _exchange_shape(tv), _exchange_dtype(tv)))
                tf_vars.append(tv)
        return tuple(infos), tf_vars

    def _stable_name(self, path: str, role: str) -> str:
        """A name that does not depend on how many models or optimizers the process created before.

        Keras numbers its default model and optimizer names (``sequential_6``, ``adam_3``); the signature
        names drop them, so two builds of one model exchange weights under the same names.
        """
        parts = re.sub(r":\d+$", "", path).split("/")
        model_name = str(getattr(self.model, "name", ""))
        if role == "optimizer":
            if self.framework is Framework.KERAS3:
                parts = parts[1:] or parts  # the optimizer's own name (tf_keras paths have none)
            if model_name and parts[-1].startswith(model_name + "_"):
                parts[-1] = parts[-1][len(model_name) + 1:]  # Keras 3 slots: <model>_<layer>_<var>_<slot>
            return "opt_" + "_".join(parts)
        if len(parts) > 1 and parts[0] == model_name:
            parts = parts[1:]
        return "_".join(parts)

    # -- specs --------------------------------------------------------------------------------------------
    @property
    def x_specs(self) -> list[Any]:
        """The train signature's inputs, one per model input (fixed batch)."""
        return [tf.TensorSpec((self.batch_size, *i.shape), i.signature_dtype, name=i.name) for i in self.inputs]

    @property
    def y_specs(self) -> list[Any]:
        """The train signature's targets, one per model output (fixed batch)."""
        return [o.target_spec(self.batch_size) for o in self.outputs]

    @property
    def train_specs(self) -> list[Any]:
        """The train signature's inputs: the model inputs, the targets and the count ``n`` of real rows."""
        return [*self.x_specs, *self.y_specs, count_spec()]

    @property
    def infer_specs(self) -> list[Any]:
        return [tf.TensorSpec((None, *i.shape), i.signature_dtype, name=i.name) for i in self.inputs]

    @property
    def infer_fixed_specs(self) -> list[Any]:
        """``infer_fixed``'s inputs: the train signature's batch size, for runtimes without dynamic batches."""
        return [tf.TensorSpec((self.batch_size, *i.shape), i.signature_dtype, name=i.name) for i in self.inputs]

    @property
    def x_spec(self) -> Any:
        return self.x_specs[0]

    @property
    def y_spec(self) -> Any:
        return self.y_specs[0]

    @property
    def y_dtype(self) -> np.dtype:
        return np.dtype(self.y_spec.dtype.as_numpy_dtype)

    def data_slots(self) -> tuple[list[Any], list[Any]]:
        """The train signature's inputs and targets as data must fill them (:func:`litetrain.data.fit.fit_to_slots`),
        each with the names a dataset may use for it: the signature name, ``x_<keras name>``, the Keras name."""
        from litetrain.data.fit import Slot
        from litetrain.runtime.base import TensorInfo

        def info(spec: Any) -> TensorInfo:
            return TensorInfo(spec.name, tuple(spec.shape.as_list()), np.dtype(spec.dtype.as_numpy_dtype))

        def names(*candidates: str) -> tuple[str, ...]:
            return tuple(dict.fromkeys(candidates))

        inputs = [Slot(info(spec), names(i.name, f"x_{i.keras_name}", i.keras_name))
                  for i, spec in zip(self.inputs, self.x_specs, strict=True)]
        targets = [Slot(info(spec), names(o.target, f"y_{o.keras_name}", o.keras_name), o.name, o.shape, o.loss)
                   for o, spec in zip(self.outputs, self.y_specs, strict=True)]
        return inputs, targets

    def sample_inputs(self, n: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Seeded inputs for ``infer`` by signature name: standard-normal floats, zeros and ones for integer inputs
        (valid ids for any Embedding or lookup)."""
        rng = np.random.default_rng(seed)
        out = {}
        for i in self.inputs:
            dtype = i.signature_dtype.as_numpy_dtype
            values = rng.integers(0, 2, (n, *i.shape)) if i.dtype.is_integer else rng.standard_normal((n, *i.shape))
            out[i.name] = values.astype(dtype)
        return out

    # -- the computations ---------------------------------------------------------------------------------
    def _forward(self, xs: tuple[Any, ...], training: bool = False) -> list[Any]:
        """The model's outputs, in ``self.outputs`` order, on signature inputs (cast to the model's dtypes)."""
        cast = [x if x.dtype == i.dtype else tf.cast(x, i.dtype) for x, i in zip(xs, self.inputs, strict=True)]
        out = self.model(_packed_inputs(self.model, cast), training=training)
        return list(tf.nest.flatten(out))

    def train_step(self, *tensors: Any) -> dict[str, Any]:
        """One optimizer step on ``(*xs, *ys, n)``, the first ``n`` rows real; returns the loss before the update
        (as Keras ``fit`` reports it)."""
        xs, ys, n = tensors[: len(self.inputs)], tensors[len(self.inputs) : -1], tensors[-1]
        fit = self.layers == LAYERS_FIT
        keras3 = self.framework is Framework.KERAS3
        randomness = counter_randomness(self.optimizer.iterations, keras3) if fit else _nothing()
        with tf.GradientTape() as tape, randomness as draws, real_rows(n, self.batch_size, keras3) as rows:
            outs = self._forward(xs, training=fit)
            # Set while tracing: the step draws random masks, so a batch's row order is no longer a no-op.
            self.random_draws = draws.count if draws is not None else 0
            terms = [fn(y, o, sample_weight=rows.loss_weights(o.dtype, o.shape.rank))
                     for fn, y, o in zip(self._loss_fns, ys, outs, strict=True)]
            terms = [t if o.weight == 1.0 else tf.cast(o.weight, t.dtype) * t for t, o in zip(terms, self.outputs, strict=True)]
            loss = tf.add_n(terms) if len(terms) > 1 else terms[0]
            if self.model.losses:
                loss = loss + tf.add_n(self.model.losses)
        # An Embedding's gradient is IndexedSlices, which optimizers apply with ResourceScatter* ops (no builtin);
        # as a dense tensor it is UNSORTED_SEGMENT_SUM and a dense update, the same values.
        grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g
                 for g in tape.gradient(loss, self._trainable)]
        if self.framework is Framework.KERAS3:
            self.optimizer.apply(grads, self._trainable)
        else:
            self.optimizer.apply_gradients(zip(grads, self._trainable, strict=True))
        return {"loss": loss}

    def infer(self, *xs: Any) -> dict[str, Any]:
        return {o.name: t for o, t in zip(self.outputs, self._forward(xs), strict=True)}

    def save(self) -> dict[str, Any]:
        return {info.name: _copied_out(v) for info, v in zip(self.variables_info, self._exchanged, strict=True)}

    def restore(self, tensors: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for info, var in zip(self.variables_info, self._exchanged, strict=True):
            var.assign(tf.reshape(tf.cast(tensors[info.name], var.dtype), var.shape))
            out[info.name] = _copied_out(var)
        return out

    def restore_specs(self) -> dict[str, Any]:
        return {i.name: tf.TensorSpec(i.shape, i.dtype, name=i.name) for i in self.variables_info}

    def save_to_path(self, checkpoint_path: Any) -> dict[str, Any]:
        """The 2021 recipe's save: ``tf.raw_ops.Save`` to a path (a Flex op; kept for --select-tf-ops)."""
        names = [i.name for i in self.variables_info]
        tf.raw_ops.Save(filename=checkpoint_path, tensor_names=names, data=[v.read_value() for v in self._exchanged])
        return {"checkpoint_path": checkpoint_path}

    def restore_from_path(self, checkpoint_path: Any) -> dict[str, Any]:
        """The 2021 recipe's restore: ``tf.raw_ops.Restore`` from a path (a Flex op; kept for --select-tf-ops)."""
        out = {}
        for info, var in zip(self.variables_info, self._exchanged, strict=True):
            value = tf.raw_ops.Restore(file_pattern=checkpoint_path, tensor_name=info.name, dt=var.dtype)
            var.assign(tf.reshape(value, var.shape))
            out[info.name] = tf.identity(var)
        return out

    def concrete_functions(self, *, path_checkpoints: bool = False) -> dict[str, Any]:
        """Traces the four signatures (train under whatever gradient registry is active).

        Args:
            path_checkpoints: save/restore through a checkpoint file path with raw Save/Restore ops, as the
                2021 "On-device training in TensorFlow Lite" recipe does (needs select-TF ops), instead of
                exchanging named tensors.
        """
        path_spec = tf.TensorSpec((), tf.string, name="checkpoint_path")
        return {
            TRAIN: tf.function(self.train_step).get_concrete_function(*self.train_specs),
            INFER: tf.function(self.infer).get_concrete_function(*self.infer_specs),
            INFER_FIXED: tf.function(self.infer).get_concrete_function(*self.infer_fixed_specs),
            SAVE: tf.function(self.save_to_path).get_concrete_function(path_spec)
            if path_checkpoints else tf.function(self.save).get_concrete_function(),
            RESTORE: tf.function(self.restore_from_path).get_concrete_function(path_spec)
            if path_checkpoints else tf.function(self.restore).get_concrete_function(self.restore_specs()),
        }

    def get_weights(self) -> dict[str, np.ndarray]:
        """Current values of the exchanged variables, by signature name."""
        return {i.name: v.numpy().reshape(i.shape).astype(i.dtype, copy=False)
                for i, v in zip(self.variables_info, self._exchanged, strict=True)}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        for i, v in zip(self.variables_info, self._exchanged, strict=True):
            v.assign(np.reshape(weights[i.name], v.shape).astype(v.dtype.as_numpy_dtype, copy=False))


@dataclasses.dataclass(frozen=True)
class InputInfo:
    """One model input as the signatures take it."""

    name: str  # the signature name: "x", or "x_<Keras name>" when the model has several inputs
    keras_name: str
    shape: tuple[int, ...]  # without the batch dimension
    dtype: Any  # the model's tf.DType

    @property
    def signature_dtype(self) -> Any:
        """int32 for every integer input (the cast to the model's dtype is inside the graph), else the model's."""
        return tf.int32 if self.dtype.is_integer else self.dtype


@dataclasses.dataclass(frozen=True)
class OutputInfo:
    """One model output: its names in the signatures, its loss and the loss's weight."""

    name: str  # the infer output: "output", or the Keras output name when the model has several outputs
    target: str  # the train input of its targets: "y", or "y_<Keras name>"
    keras_name: str
    shape: tuple[int, ...]
    dtype: Any  # float dtype of the output (float64 in the reference twin)
    loss: LossConfig
    weight: float = 1.0

    def target_spec(self, batch_size: int) -> Any:
        if self.loss.name is Loss.SPARSE_CATEGORICAL_CROSSENTROPY:
            return tf.TensorSpec((batch_size,), tf.int32, name=self.target)
        return tf.TensorSpec((batch_size, *self.shape), self.dtype, name=self.target)


def _packed_inputs(model: Any, flat: list[Any]) -> Any:
    """``flat`` (in ``model.inputs`` order) in the structure the model was built on: one tensor, a list, or a dict
    keyed by input name (Keras 3 refuses a list for a model built on a dict)."""
    if len(flat) == 1:
        return flat[0]
    struct = getattr(model, "_inputs_struct", None) or getattr(model, "_nested_inputs", None)
    return tf.nest.pack_sequence_as(struct, flat) if isinstance(struct, dict) else flat


def io_names(prefix: str, keras_names: list[str], single: str) -> list[str]:
    """Signature names: ``single`` for one tensor, else ``<prefix><sanitized Keras name>``, made unique."""
    if len(keras_names) == 1:
        return [single]
    used: set[str] = set()
    out = []
    for keras_name in keras_names:
        base = prefix + re.sub(r"[^A-Za-z0-9_]", "_", keras_name).strip("_") if prefix else _sanitize(keras_name)
        name, k = base, 2
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        out.append(name)
    return out


def model_io(model: Any, loss: LossConfig) -> tuple[tuple[InputInfo, ...], tuple[OutputInfo, ...]]:
    """The inputs and outputs of ``model`` with their signature names, shapes, dtypes and losses.

    Raises:
        UnsupportedModelError: no defined inputs/outputs, dimensions besides the batch unknown, or an input that
            is neither float nor integer.
    """
    inputs, outputs = _defined_io(model)
    in_names = [str(n) for n in (getattr(model, "input_names", None) or [t.name for t in inputs])]
    out_names = [str(n) for n in (getattr(model, "output_names", None) or [f"output_{i}" for i in range(len(outputs))])]
    ins = []
    for tensor, keras_name, name in zip(inputs, in_names, io_names("x_", in_names, "x"), strict=True):
        dtype = tf.as_dtype(getattr(tensor, "dtype", "float32") or "float32")
        if not (dtype.is_floating or dtype.is_integer):
            raise UnsupportedModelError(
                f"The model input {keras_name!r} has dtype {dtype.name}; litetrain trains float and integer inputs.",
                hint="Preprocess to numbers outside the model (e.g. token ids as int32) and start the trainable "
                "model at keras.Input(shape, dtype='int32') or 'float32'.",
            )
        ins.append(InputInfo(name, keras_name, _static_shape(tensor, keras_name), dtype))
    per_output = getattr(loss, "outputs", None) or [None] * len(outputs)
    outs = []
    names = zip(io_names("", out_names, "output"), io_names("y_", out_names, "y"), strict=True)
    for tensor, keras_name, (name, target), head in zip(outputs, out_names, names, per_output, strict=True):
        dtype = tf.as_dtype(getattr(tensor, "dtype", "float32") or "float32")
        outs.append(OutputInfo(
            name, target, keras_name, _static_shape(tensor, keras_name), dtype if dtype.is_floating else tf.float32,
            head.loss if head is not None else loss, head.weight if head is not None else 1.0,
        ))
    return tuple(ins), tuple(outs)


def _defined_io(model: Any) -> tuple[list[Any], list[Any]]:
    inputs = getattr(model, "inputs", None)
    outputs = getattr(model, "outputs", None)
    if not inputs or not outputs:
        raise UnsupportedModelError(
            f"The model {getattr(model, 'name', '?')!r} has no defined inputs/outputs (a subclassed model that "
            "was never built on keras.Input).",
            hint="Build it as a Sequential or functional model starting with keras.Input(shape=...).",
        )
    return list(inputs), list(outputs)


def _static_shape(tensor: Any, name: str) -> tuple[int, ...]:
    shape = tuple(tensor.shape)[1:]
    if any(d is None for d in shape):
        raise UnsupportedModelError(
            f"The model's {name!r} has shape {shape} per sample, with unknown dimensions besides the batch; the "
            "train signature needs static shapes.",
            hint="Give keras.Input a full shape, e.g. keras.Input(shape=(28, 28)).",
        )
    return tuple(int(d) for d in shape)


def _io_spec(model: Any) -> tuple[tuple[int, ...], Any, tuple[int, ...]]:
    """Input shape, input dtype and output shape of a model with one float input and one output.

    Raises:
        UnsupportedModelError: several inputs or outputs, or an integer input (for commands that support neither).
    """
    require_single_io(model, "This command", float_input=True)
    (info,), (out,) = model_io(model, LossConfig(Loss.MSE))
    return info.shape, info.dtype, out.shape


def require_single_io(model: Any, command: str, *, float_input: bool = False) -> None:
    """Refuses a model with several inputs or outputs (and with ``float_input`` an integer input), for commands
    that do not support them yet.

    Raises:
        UnsupportedModelError: naming the command and what it supports.
    """
    inputs, outputs = _defined_io(model)
    if len(inputs) != 1 or len(outputs) != 1:
        raise UnsupportedModelError(
            f"{command} supports one input and one output for now; this model has {len(inputs)} input(s) and "
            f"{len(outputs)} output(s).",
            hint="Use litetrain check or build, which support several inputs and outputs.",
        )
    dtype = tf.as_dtype(getattr(inputs[0], "dtype", "float32") or "float32")
    if float_input and not dtype.is_floating:
        raise UnsupportedModelError(
            f"{command} supports float inputs for now; this model's input {_keras_input_name(model)!r} is "
            f"{dtype.name}.",
            hint="Use litetrain check or build, which support integer inputs (token ids).",
        )


def _keras_input_name(model: Any) -> str:
    return str((getattr(model, "input_names", None) or [t.name for t in model.inputs])[0])


def _check_loss_fits_output(loss: LossConfig, output_shape: tuple[int, ...]) -> None:
    """A cross-entropy over classes needs a model that ends in one output per class (checked before tracing)."""
    width = output_shape[-1] if output_shape else 1
    sparse = loss.name is Loss.SPARSE_CATEGORICAL_CROSSENTROPY  # its labels are (batch,): one output vector
    if (sparse or loss.name is Loss.CATEGORICAL_CROSSENTROPY) and (width < 2 or (sparse and len(output_shape) != 1)):
        raise UsageError(
            f"The loss {loss.name.value} needs a classifier with one output per class, but the model's output "
            f"has shape {output_shape} per sample.",
            hint="End the model with Dense(num_classes), or choose a loss that fits its output: "
            "--loss binary_crossentropy for one sigmoid/logit output, --loss mse or mae for regression.",
        )


_nothing = contextlib.nullcontext


def _updated_state(model: Any) -> list[Any]:
    """Non-trainable variables that a training-mode step updates: the moving statistics of every
    BatchNormalization that trains (a frozen one runs in inference mode, as Keras 3 and tf_keras both do)."""
    return [v for layer in model._flatten_layers(include_self=False, recursive=True)
            if layer.trainable and any(c.__name__ == "BatchNormalization" for c in type(layer).__mro__)
            for v in layer.non_trainable_weights]


def _int32_step_counter(optimizer: Any, framework: Framework) -> None:
    """Replaces the optimizer's int64 step counter with an int32 one, in place.

    LiteRT.js refuses to load a model with any int64 tensor, and the optimizers only ever cast the counter to the
    variables' float dtype (Adam's bias correction ``beta ** (step + 1)``), which int32 feeds exactly up to 2**31
    steps. Both twins share the module, so both count in int32.
    """
    old = getattr(optimizer, "_iterations", None)
    variables = getattr(optimizer, "_variables", None)
    if old is None or not isinstance(variables, list) or tf.as_dtype(old.dtype) != tf.int64:
        return
    if framework is Framework.KERAS3:
        keras = import_module("keras")
        with keras.name_scope(optimizer.name):
            new = keras.Variable(int(old.numpy()), dtype="int32", name="iteration", trainable=False)
    else:
        new = tf.Variable(int(old.numpy()), dtype=tf.int32, name="iteration", trainable=False)
    optimizer._iterations = new  # Keras 3 also appends it to the tracked variables: it takes the old one's place
    # TensorFlow's tracking list refuses to save a list whose element was replaced; edit its storage and snapshot.
    storage = getattr(variables, "_storage", variables)
    storage[:] = [new if v is old else v for v in storage if v is not new]
    getattr(variables, "_update_snapshot", lambda: None)()


def _exchange_shape(var: Any) -> tuple[int, ...]:
    """A 0-d variable travels as shape ``[1]``: an ARM64 interpreter crashed resizing 0-d ``restore`` inputs."""
    return tuple(int(d) for d in var.shape) or (1,)


def _exchange_dtype(var: Any) -> str:
    """int64 variables travel as int32 (LiteRT.js refuses int64 tensors); the cast back is inside ``restore``."""
    return "int32" if var.dtype == tf.int64 else var.dtype.name


def _copied_out(var: Any) -> Any:
    """The value of ``var`` as a ``save``/``restore`` output, made by an op the converter keeps.

    A signature output that comes straight from READ_VARIABLE is dynamically allocated, which the CompiledModel API
    cannot bind ("Failed to set custom allocation for output") and LiteRT.js returns correctly only once; the
    converter folds an identity, ``x * 1`` or a reshape to the same shape, but keeps a GATHER of every row (a copy
    that keeps NaN payloads and -0.0) and a RESHAPE of a scalar to ``[1]``.
    """
    value = var.read_value() if hasattr(var, "read_value") else tf.convert_to_tensor(var)
    if value.dtype == tf.int64:
        value = tf.cast(value, tf.int32)
    if value.shape.rank == 0:
        return tf.reshape(value, [1])
    return tf.gather(value, tf.range(value.shape[0]))


def _weighted_layers(model: Any) -> list[Any]:
    return [layer for layer in model.layers if layer.weights]


def _apply_trainable(model: Any, spec: TrainableSpec) -> tuple[str, ...]:
    """Sets ``layer.trainable`` per ``spec``; returns the names of the frozen weighted layers."""
    layers = _weighted_layers(model)
    if spec.mode == "last":
        if spec.last > len(layers):
            raise UsageError(
                f"--trainable last:{spec.last} asks for more layers than the {len(layers)} that have weights.",
                hint=f"Use a number from 1 to {len(layers)}.",
            )
        keep = {id(layer) for layer in layers[-spec.last :]}
    elif spec.mode == "names":
        by_name = {layer.name: layer for layer in model.layers}
        unknown = [n for n in spec.names if n not in by_name]
        if unknown:
            raise UsageError(
                f"--trainable names layers that the model does not have: {unknown}.",
                hint=f"The model's layers are: {[layer.name for layer in model.layers]}.",
            )
        keep = {id(by_name[n]) for n in spec.names}
    else:
        return tuple(layer.name for layer in layers if not layer.trainable)
    for layer in layers:
        layer.trainable = id(layer) in keep
    return tuple(layer.name for layer in layers if not layer.trainable)
