"""Fitting a dataset to a model: input shapes, label encoding, label range; clear errors when they do not fit."""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from collections.abc import Mapping

import numpy as np

from litetrain.config import Loss, LossConfig
from litetrain.data.dataset import Dataset
from litetrain.errors import DataError
from litetrain.runtime.base import TensorInfo


class TaskKind(enum.StrEnum):
    MULTICLASS = "multiclass"  # one label per sample, an output per class
    BINARY = "binary"  # one or more independent 0/1 labels
    REGRESSION = "regression"


@dataclasses.dataclass(frozen=True)
class FittedData:
    """Arrays in the model's shapes and the label encoding its train signature takes.

    A model with several inputs (outputs) gets ``x`` (``y``) as a record array with one field per signature tensor
    (:func:`litetrain.runtime.base.record_info`); ``task``, ``num_classes`` and ``test_labels`` then describe the
    output whose accuracy is reported, ``accuracy_output`` (the first classification output, else the first).
    """

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task: TaskKind
    num_classes: int | None
    test_labels: np.ndarray | None  # class indices (multiclass) or 0/1 labels (binary) for accuracy
    accuracy_output: str | None = None  # the infer output that accuracy reads (None: the runner's primary output)
    accuracy_target: str | None = None  # its field in ``y``/``y_test`` (None: they are plain arrays)

    def accuracy(self, outputs: np.ndarray, from_logits: bool | None) -> float | None:
        """Accuracy of ``outputs`` (of infer on ``x_test``) or None for regression."""
        if self.test_labels is None:
            return None
        if self.task is TaskKind.MULTICLASS:
            return float(np.mean(np.argmax(outputs, axis=-1) == self.test_labels))
        if from_logits is None:  # unknown: probabilities lie in [0, 1]
            from_logits = not (np.min(outputs) >= 0.0 and np.max(outputs) <= 1.0)
        predicted = outputs > (0.0 if from_logits else 0.5)
        return float(np.mean(predicted.reshape(self.test_labels.shape) == (self.test_labels > 0.5)))


@dataclasses.dataclass(frozen=True)
class Slot:
    """One tensor of the train signature that the data fills, and the dataset keys its array may have."""

    info: TensorInfo  # batch dimension first
    keys: tuple[str, ...]  # e.g. ("x_tokens", "tokens"); a dataset of plain arrays fills a model's only x/y
    output: str | None = None  # targets: the infer output they train
    output_shape: tuple[int, ...] = ()  # targets: that output's shape without the batch dimension
    loss: LossConfig | None = None  # targets: the loss, when known (check); else inferred from the tensor


def fit_to_model(
    ds: Dataset, x_info: TensorInfo, y_info: TensorInfo, output_shape: tuple[int, ...], loss: LossConfig | None
) -> FittedData:
    """Reshapes inputs and encodes labels for a model's train signature.

    Args:
        ds: The dataset.
        x_info, y_info: The train signature's inputs (batch dimension first).
        output_shape: The model output's shape without the batch dimension.
        loss: The loss, when known (``check``); for ``compare`` it is inferred from ``y_info``.

    Raises:
        DataError: inputs of another size, labels out of range or of the wrong kind for the loss.
    """
    inputs = [Slot(f, _keys(f.name, "x")) for f in x_info.fields]
    targets = [Slot(f, _keys(f.name, "y"), None, output_shape, loss) for f in y_info.fields]
    return fit_to_slots(ds, inputs, targets)


def _keys(name: str, prefix: str) -> tuple[str, ...]:
    return (name, name[len(prefix) + 1:]) if name.startswith(prefix + "_") else (name,)


def fit_to_slots(ds: Dataset, inputs: list[Slot], targets: list[Slot]) -> FittedData:
    """Fits ``ds`` to every input and target of a train signature (one of each, or several of either).

    Arrays of a dataset given as dicts are found by name (:attr:`Slot.keys`); plain arrays fill a model's only
    input and only target.

    Raises:
        DataError: a missing or misfit array (naming it), labels out of range or of the wrong kind for the loss.
    """
    from litetrain.runtime.base import record

    xs, xs_test, ys, ys_test = {}, {}, {}, {}
    for slot in inputs:
        shape = tuple(int(d) for d in slot.info.shape[1:])
        name, test_name = ("x", "x_test") if len(inputs) == 1 else (repr(slot.keys[-1]), f"{slot.keys[-1]!r} (test)")
        xs[slot.info.name] = _fit_x(_pick(ds.x, slot, inputs, targets, "x", ds.name), shape, name, ds.name, slot.info.dtype)
        xs_test[slot.info.name] = _fit_x(_pick(ds.x_test, slot, inputs, targets, "x_test", ds.name), shape, test_name,
                                         ds.name, slot.info.dtype)
    report: tuple[Slot, TaskKind, int | None, np.ndarray | None] | None = None
    for slot in targets:
        train_y = _pick(ds.y, slot, targets, inputs, "y", ds.name)
        kind, classes = _task(slot.info, slot.output_shape, slot.loss, train_y if slot.loss is None else None)
        fit = (slot.info, slot.output_shape, kind, classes)
        ys[slot.info.name], _ = _fit_y(train_y, *fit, "y", ds.name)
        ys_test[slot.info.name], labels = _fit_y(_pick(ds.y_test, slot, targets, inputs, "y_test", ds.name), *fit,
                                                 "y_test", ds.name)
        if report is None or (report[3] is None and labels is not None):
            report = (slot, kind, classes, labels)
    assert report is not None
    slot, kind, classes, test_labels = report
    lengths = {len(a) for a in xs.values()} | {len(a) for a in ys.values()}
    if len(lengths) > 1:
        raise DataError(f"{ds.name}: the inputs and targets have different numbers of samples {sorted(lengths)}.")
    multi = len(targets) > 1
    return FittedData(record(xs), record(ys), record(xs_test), record(ys_test), kind, classes, test_labels,
                      slot.output if multi else None, slot.info.name if multi else None)


def _pick(arrays: np.ndarray | Mapping[str, np.ndarray], slot: Slot, kind: list[Slot], others: list[Slot],
          what: str, source: str) -> np.ndarray:
    """The array of ``slot`` (one of ``kind``) in a dataset's ``x``/``y``/...: a dict by name, or one plain array.

    A model's only input (or target) that its signature calls plain ``x`` (``y``) takes the one array of a dict that
    no slot of ``others`` names.
    """
    count = len(kind)
    if not isinstance(arrays, Mapping):
        if count > 1:
            raise DataError(
                f"{source}: the model has {count} {'inputs' if what.startswith('x') else 'outputs'} but {what} is "
                "one array.",
                hint="Give one array per input and output, named after them: a dict in code, or an .npz with "
                "arrays named like the model's inputs and outputs (x_<input> / y_<output> also work).",
            )
        return arrays
    by_key = {_plain(k): v for k, v in arrays.items()}
    for key in slot.keys:
        if _plain(key) in by_key:
            return by_key[_plain(key)]
    if count == 1:
        claimed = {_plain(k) for other in others for k in other.keys}
        left = [k for k in by_key if k not in claimed]
        if len(left) == 1:
            return by_key[left[0]]
    raise DataError(
        f"{source}: {what} has no array for {slot.keys[-1]!r}; it has {sorted(arrays)}.",
        hint=f"Name the arrays after the model's inputs and outputs ({slot.keys[-1]!r} or {slot.keys[0]!r}).",
    )


def _plain(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", str(name)).strip("_")


def _fit_x(x: np.ndarray, shape: tuple[int, ...], name: str, source: str, dtype: np.dtype | None = None) -> np.ndarray:
    per_sample = tuple(x.shape[1:])
    if per_sample != shape:
        if math.prod(per_sample) != math.prod(shape):
            hint = "Reshape or resize the data to the model's input shape."
            if source.startswith("digits") and len(shape) >= 2:
                hint = f"Use --data digits:{shape[0]}x{shape[1]} to resize the bundled digits to the model's input."
            raise DataError(
                f"{source}: each sample of {name} has shape {per_sample}, but the model expects {shape}.", hint=hint
            )
        x = x.reshape((len(x), *shape))  # same values, e.g. (8, 8) -> (8, 8, 1) or (64,)
    if dtype is not None and np.issubdtype(dtype, np.integer):
        return _integer_x(x, name, source, dtype)
    return np.ascontiguousarray(x, dtype=np.float32)


def _integer_x(x: np.ndarray, name: str, source: str, dtype: np.dtype) -> np.ndarray:
    """Integer inputs (token ids) as the signature's int32; non-integer values are refused, never rounded."""
    if not (np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_):
        flat = np.asarray(x, np.float64).ravel()
        bad = np.flatnonzero(~np.isfinite(flat) | (np.mod(flat, 1) != 0))
        if bad.size:
            raise DataError(
                f"{source}: the model's input {name} takes integers (token ids); received {x.dtype} values such as "
                f"{flat[bad[0]]:g}.",
                hint="Give integer ids (e.g. x.astype('int32') after tokenizing).",
            )
    info = np.iinfo(dtype)
    if x.size and (x.min() < info.min or x.max() > info.max):
        raise DataError(f"{source}: the integer input {name} holds values from {x.min()} to {x.max()}, outside {dtype}.")
    return np.ascontiguousarray(x, dtype=dtype)


def _task(y_info: TensorInfo, output_shape: tuple[int, ...], loss: LossConfig | None,
          labels: np.ndarray | None = None) -> tuple[TaskKind, int | None]:
    """What the target trains; without a loss (``compare``) from its dtype, the output's shape and the ``labels``."""
    width = output_shape[-1] if output_shape else 1
    if loss is not None:
        if loss.name in (Loss.SPARSE_CATEGORICAL_CROSSENTROPY, Loss.CATEGORICAL_CROSSENTROPY):
            if width < 2 or len(output_shape) != 1:
                raise DataError(
                    f"The loss {loss.name.value} needs one output per class, but the model's output has shape "
                    f"{output_shape}.",
                    hint="Use --loss binary_crossentropy for a single sigmoid/logit output, or mse/mae for regression.",
                )
            return TaskKind.MULTICLASS, width
        if loss.name is Loss.BINARY_CROSSENTROPY:
            return TaskKind.BINARY, None
        return TaskKind.REGRESSION, None
    if np.issubdtype(y_info.dtype, np.integer):
        return TaskKind.MULTICLASS, width
    if len(output_shape) == 1 and width > 1 and (labels is None or _class_like(labels, width)):
        return TaskKind.MULTICLASS, width
    return TaskKind.REGRESSION, None


def _class_like(y: np.ndarray, classes: int) -> bool:
    """Labels that are class indices or one-hot rows (float targets of a vector output otherwise: regression)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == classes:
        return bool(np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1))
    flat = y.reshape(len(y), -1)
    return flat.shape[1] == 1 and bool(np.all(np.mod(flat, 1) == 0))


def _fit_y(
    y: np.ndarray,
    y_info: TensorInfo,
    output_shape: tuple[int, ...],
    kind: TaskKind,
    classes: int | None,
    name: str,
    source: str,
) -> tuple[np.ndarray, np.ndarray | None]:
    target = tuple(int(d) for d in y_info.shape[1:])
    if kind is TaskKind.MULTICLASS:
        assert classes is not None
        indices = class_indices(y, classes, name, source)
        if np.issubdtype(y_info.dtype, np.integer):
            return indices.astype(y_info.dtype).reshape((len(y), *target)), indices
        return np.eye(classes, dtype=y_info.dtype)[indices].reshape((len(y), *target)), indices
    values = np.asarray(y, dtype=np.float64)
    if tuple(values.shape[1:]) != target:
        if math.prod(values.shape[1:]) != math.prod(target):
            raise DataError(
                f"{source}: each label of {name} has shape {tuple(values.shape[1:])}, but the model's output (and "
                f"the loss target) has shape {target}.",
                hint="Give one target per model output, or choose a loss that matches the labels.",
            )
        values = values.reshape((len(values), *target))
    if kind is TaskKind.BINARY:
        if np.any((values < 0) | (values > 1)):
            raise DataError(
                f"{source}: binary cross-entropy needs labels in [0, 1]; {name} holds values from "
                f"{values.min():g} to {values.max():g}.",
                hint="For more than two classes use --loss sparse_categorical_crossentropy.",
            )
        return values.astype(y_info.dtype), values
    return values.astype(y_info.dtype), None


def class_indices(y: np.ndarray, classes: int, name: str, source: str) -> np.ndarray:
    """Class indices of labels given as indices or one-hot rows of ``classes`` classes.

    Raises:
        DataError: the labels are neither (not one-hot, not whole numbers, or out of 0..classes-1).
    """
    if y.ndim == 2 and y.shape[1] == classes and np.issubdtype(y.dtype, np.number):
        if not np.all((y == 0) | (y == 1)) or not np.all(y.sum(axis=1) == 1):
            raise DataError(f"{source}: {name} has {classes} columns but is not one-hot (one 1 per row).")
        return np.argmax(y, axis=1).astype(np.int64)
    flat = y.reshape(len(y), -1)
    if flat.shape[1] != 1:
        raise DataError(
            f"{source}: {name} has shape {y.shape[1:]} per sample; expected class indices or one-hot vectors of "
            f"{classes} classes.",
            hint="The number of classes comes from the model's output width.",
        )
    flat = flat[:, 0]
    if not np.all(np.equal(np.mod(flat, 1), 0)):
        raise DataError(f"{source}: {name} holds non-integer values; class labels must be whole numbers.")
    lo, hi = int(flat.min()), int(flat.max())
    if lo < 0 or hi >= classes:
        raise DataError(
            f"{source}: labels in {name} range from {lo} to {hi}, but the model has {classes} outputs "
            f"(classes 0..{classes - 1}).",
            hint="Check that the labels belong to this model, or give the model one output per class.",
        )
    return flat.astype(np.int64)
