"""The ``Runner`` interface: the base class validates and converts, subclasses implement ``*_impl``.

Modelled on Polygraphy's ``backend/base/runner.py``: public methods check inputs, keep timings and return
numpy; a subclass implements only how its runtime infers, trains a step and moves weights.
"""

from __future__ import annotations

import abc
import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from litetrain.errors import DataError, SignatureError

PRIMARY_OUTPUT_NAMES = ("output", "logits", "probabilities", "outputs")


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """Name, shape (None for a dynamic dimension) and numpy dtype of a signature tensor."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": [d if d is not None else -1 for d in self.shape], "dtype": self.dtype.name}

    @property
    def fields(self) -> tuple[TensorInfo, ...]:
        """The signature tensors this stands for: itself, or one per field of a record (see :func:`record_info`)."""
        if self.dtype.names is None:
            return (self,)
        return tuple(TensorInfo(n, (*self.shape, *self.dtype[n].shape), self.dtype[n].base) for n in self.dtype.names)

    def tensors(self, value: np.ndarray) -> dict[str, np.ndarray]:
        """The signature inputs in ``value`` (checked by :meth:`check`): by this name, or one per record field."""
        if self.dtype.names is None:
            return {self.name: value}
        return {n: np.ascontiguousarray(value[n]) for n in self.dtype.names}

    def check(self, value: np.ndarray, what: str) -> np.ndarray:
        """Returns ``value`` as this tensor's dtype, raising DataError on a shape or dtype mismatch."""
        value = np.asarray(value)
        if value.dtype == self.dtype and value.shape == self.shape:  # fast path of the train loop
            return value
        if self.dtype.names is not None or value.dtype.names is not None:
            return self._check_record(value, what)
        if value.ndim != len(self.shape) or any(
            d is not None and d != v for d, v in zip(self.shape, value.shape, strict=False)
        ):
            shape = tuple(-1 if d is None else d for d in self.shape)
            raise DataError(
                f"{what}: input {self.name!r} expects shape {shape} (-1: any size); received {value.shape}.",
                hint="Reshape the data to the model's input shape (and use the batch size the train signature "
                "was built with).",
            )
        if value.dtype != self.dtype:
            same_kind = np.issubdtype(value.dtype, np.floating) == np.issubdtype(self.dtype, np.floating)
            if not same_kind and not (np.issubdtype(value.dtype, np.integer) and np.issubdtype(self.dtype, np.floating)):
                raise DataError(f"{what}: input {self.name!r} expects dtype {self.dtype}; received {value.dtype}.")
            value = value.astype(self.dtype)
        return value


    def _check_record(self, value: np.ndarray, what: str) -> np.ndarray:
        expected = list(self.dtype.names or ())
        received = list(value.dtype.names or ())
        if expected != received:
            raise DataError(f"{what}: {self.name} holds the tensors {expected}; received {received or value.dtype}.",
                            hint="Give one array per model input (or output), named as the signatures name them.")
        batch = self.shape[0]
        if value.ndim != 1 or (batch is not None and len(value) != batch):
            raise DataError(f"{what}: {self.name} takes {batch or 'any number of'} samples; received {value.shape}.")
        out = np.empty(value.shape, self.dtype)
        for field in self.fields:
            out[field.name] = TensorInfo(field.name, (None, *field.shape[1:]), field.dtype).check(value[field.name], what)
        return out


def record_info(name: str, infos: Sequence[TensorInfo]) -> TensorInfo:
    """One tensor standing for several signature tensors of one batch: itself if there is one, else a record.

    A model with several inputs (or outputs) moves its batches as numpy record arrays with one field per signature
    tensor (in name order), so batching, indexing and padding work on every input at once, as on one array.
    """
    if len(infos) == 1:
        return infos[0]
    batches = {i.shape[0] if i.shape else None for i in infos}
    if len(batches) != 1:
        raise SignatureError(f"The {name} tensors {[i.name for i in infos]} have different batch dimensions.")
    ordered = sorted(infos, key=lambda i: i.name)
    dtype = np.dtype([(i.name, i.dtype, tuple(d or 1 for d in i.shape[1:])) for i in ordered])
    return TensorInfo(name, (batches.pop(),), dtype)


def record(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """Equal-length arrays as one record array with a field per name (in name order); one array as it is."""
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    names = sorted(arrays)
    first = np.asarray(arrays[names[0]])
    dtype = np.dtype([(n, np.asarray(arrays[n]).dtype, np.shape(arrays[n])[1:]) for n in names])
    out = np.empty(len(first), dtype)
    for n in names:
        out[n] = arrays[n]
    return out


class Runner(abc.ABC):
    """One runtime that can train a model step by step and move its weights in and out.

    Subclasses set ``train_inputs``, ``infer_input``, ``infer_outputs`` and ``weight_infos`` in ``__init__``.
    A model with several inputs (outputs) has a record ``x`` (``y``) with one field per signature tensor
    (:func:`record_info`); ``TensorInfo.tensors`` splits a batch into the signature's named inputs.
    """

    name: str = "runner"
    train_inputs: tuple[TensorInfo, TensorInfo]
    infer_input: TensorInfo
    infer_outputs: tuple[str, ...]
    weight_infos: Mapping[str, TensorInfo]
    has_weights: bool = True
    """False for a model without ``save``/``restore``: it trains and infers, but its weights cannot move."""
    count_input: TensorInfo | None = None
    """The train signature's count of real rows ``n`` (``[1]`` int32), or None for a model built without it."""

    def __init__(self) -> None:
        self.train_seconds = 0.0
        self.train_calls = 0

    # Context-manager protocol so runners that hold resources can release them.
    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:  # noqa: B027 - optional hook, most runners hold nothing to release
        """Releases the runtime's resources (default: nothing to release)."""

    @property
    def primary_output(self) -> str:
        """The output compared for accuracy: ``output``/``logits``/... if present, else the only one."""
        for name in PRIMARY_OUTPUT_NAMES:
            if name in self.infer_outputs:
                return name
        return sorted(self.infer_outputs)[0]

    @property
    def train_batch_size(self) -> int | None:
        return self.train_inputs[0].shape[0]

    @property
    def takes_partial_batches(self) -> bool:
        """Whether :meth:`train_step` takes fewer samples than the batch: a dynamic batch, or a count input."""
        return self.train_batch_size is None or self.count_input is not None

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        """Runs one optimizer step on a batch and returns the loss.

        A batch with fewer samples than the train signature's fixed batch size is padded to it (its rows repeated)
        and the count input ``n`` says how many rows are real, so the step trains on those samples alone.
        """
        x, y, n = self._padded(x, y)
        start = time.perf_counter()
        loss = self._train_step_impl(x, y, n)
        self.train_seconds += time.perf_counter() - start
        self.train_calls += 1
        return loss

    def count_feed(self, n: int) -> dict[str, np.ndarray]:
        """The count input of a train call with ``n`` real rows (nothing for a model without one)."""
        return {} if self.count_input is None else {self.count_input.name: np.array([n], np.int32)}

    def _padded(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """The checked batch at the signature's batch size, and how many of its rows are real."""
        xi, yi = self.train_inputs
        batch, what = xi.shape[0], f"{self.name} train"
        n = len(x) if np.ndim(x) else 0
        if batch is None or n >= batch or n == 0:
            return xi.check(x, what), yi.check(y, what), batch or n
        if self.count_input is None:
            raise DataError(
                f"{what}: the train signature takes exactly {batch} samples and has no count input 'n' to mark "
                f"padding; received {n}.",
                hint="Rebuild the model with litetrain build (its train signature takes n), or give full batches.",
            )
        x = TensorInfo(xi.name, (None, *xi.shape[1:]), xi.dtype).check(x, what)
        y = TensorInfo(yi.name, (None, *yi.shape[1:]), yi.dtype).check(y, what)
        if len(y) != n:
            raise DataError(f"{what}: {n} inputs but {len(y)} targets.", hint="Give one target per sample.")
        rows = np.arange(batch) % n
        return x[rows], y[rows], n

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Runs inference on any number of samples (chunked when the signature has a fixed batch size)."""
        x = np.asarray(x)
        batch = self.infer_input.shape[0]
        per_sample = TensorInfo(self.infer_input.name, (None, *self.infer_input.shape[1:]), self.infer_input.dtype)
        x = per_sample.check(x, f"{self.name} infer")
        if batch is None or batch == len(x):
            return self._infer_impl(x)
        chunks: list[dict[str, np.ndarray]] = []
        for start in range(0, len(x), batch):
            part = x[start : start + batch]
            n = len(part)
            if n < batch:  # pad the last chunk to the fixed batch, then drop the padding
                part = np.concatenate([part, np.repeat(part[-1:], batch - n, axis=0)])
            out = self._infer_impl(part)
            chunks.append({k: v[:n] for k, v in out.items()})
        return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}

    def get_weights(self) -> dict[str, np.ndarray]:
        """Every exchanged variable (weights and optimizer state) by name."""
        self._require_weights()
        return self._get_weights_impl()

    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Assigns every exchanged variable; names and shapes must match, and values must be exact in its dtype.

        A value of another dtype is accepted only when converting it changes nothing (float32 weights into a float64
        twin, 3.0 into an int32 step counter); float64 values that float32 would round, or 2.5 for an integer, are
        refused rather than silently cast. A 0-d value fills a ``[1]`` weight and the other way round: the
        signatures exchange scalars as ``[1]`` (portable to every LiteRT runtime); older checkpoints hold them 0-d.
        """
        self._require_weights()
        missing = sorted(set(self.weight_infos) - set(weights))
        extra = sorted(set(weights) - set(self.weight_infos))
        if missing or extra:
            raise SignatureError(
                f"{self.name}: the weights to restore do not match the model's restore signature "
                f"(missing {missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected {extra[:5]}).",
                hint="Weights are matched by name; the two models must have the same variables.",
            )
        checked = {}
        for name, info in self.weight_infos.items():
            value = np.asarray(weights[name])
            if {tuple(value.shape), tuple(info.shape)} == {(), (1,)}:
                value = value.reshape(info.shape)  # a scalar saved before the signatures exchanged them as [1]
            if tuple(value.shape) != tuple(info.shape):
                raise SignatureError(
                    f"{self.name}: weight {name!r} has shape {tuple(info.shape)} here; received {value.shape}."
                )
            checked[name] = _exact_cast(value, info.dtype, f"{self.name}: weight {name!r}")
        self._set_weights_impl(checked)

    def _require_weights(self) -> None:
        if not self.has_weights:
            raise SignatureError(f"{self.name}: the model has no save/restore signatures, so weights cannot move.")

    @abc.abstractmethod
    def _train_step_impl(self, x: np.ndarray, y: np.ndarray, n: int) -> float:
        """One step on a full batch whose first ``n`` rows are real (feed :meth:`count_feed` to the model)."""

    @abc.abstractmethod
    def _infer_impl(self, x: np.ndarray) -> dict[str, np.ndarray]: ...

    @abc.abstractmethod
    def _get_weights_impl(self) -> dict[str, np.ndarray]: ...

    @abc.abstractmethod
    def _set_weights_impl(self, weights: Mapping[str, np.ndarray]) -> None: ...


def require_single_io_signatures(runner: Runner, command: str, *, float_input: bool = False) -> None:
    """Refuses a model whose signatures take several inputs or targets (and with ``float_input`` an integer
    input), for commands that do not support them yet.

    Raises:
        UnsupportedModelError: naming the command and the signature's tensors.
    """
    from litetrain.errors import UnsupportedModelError

    x, y = runner.train_inputs
    if x.dtype.names is not None or y.dtype.names is not None:
        names = [f.name for f in (*x.fields, *y.fields)]
        raise UnsupportedModelError(
            f"{command} supports one input and one output for now; this model's train signature takes {names}.",
            hint="Use litetrain check or build, which support several inputs and outputs.",
        )
    if float_input and not np.issubdtype(x.dtype, np.floating):
        raise UnsupportedModelError(
            f"{command} supports float inputs for now; this model's input {x.name!r} is {x.dtype}.",
            hint="Use litetrain check or build, which support integer inputs (token ids).",
        )


def _exact_cast(value: np.ndarray, dtype: np.dtype, what: str) -> np.ndarray:
    """``value`` as ``dtype``, or SignatureError if the conversion would change any value."""
    if value.dtype == dtype:
        return value
    converted = value.astype(dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        exact = np.array_equal(converted.astype(value.dtype), value, equal_nan=value.dtype.kind in "fc")
    if not exact:
        raise SignatureError(
            f"{what} is {dtype} in the model; received {value.dtype} values that {dtype} cannot hold exactly.",
            hint=f"Save the weights in the model's dtypes (e.g. np.asarray(w, dtype='{dtype}')) so that restoring "
            "them changes nothing.",
        )
    return converted
