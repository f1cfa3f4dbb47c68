"""Representative data for int8/int16x8 calibration: the user's own (.npz or a dataset) or the bundled default.

Calibration runs the model on these samples to fix the range of every activation, so they must look like what
the model will see. A model with several signatures is calibrated per signature: the samples are
``(signature_key, {input: array})`` pairs, as ``TFLiteConverter.representative_dataset`` takes them.
"""

from __future__ import annotations

import dataclasses
import math
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from litetrain.data.dataset import Dataset, load_dataset
from litetrain.errors import DataError, UsageError

DEFAULT_SAMPLES = 100
"""TensorFlow's guidance is 100-500 samples; the bundled digits' training split has 1,437."""
CALIBRATION_BATCH = 10


@dataclasses.dataclass(frozen=True)
class RepresentativeData:
    """Calibration inputs in the model's input shape."""

    name: str
    x: np.ndarray

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "samples": int(len(self.x)), "x_shape": list(self.x.shape[1:])}

    def infer_samples(self, signature: str = "infer", input_name: str = "x") -> Callable[[], Iterator[Any]]:
        """Calibration samples for an inference model: ``(signature, {input_name: batch})``."""

        def gen() -> Iterator[Any]:
            for start in range(0, len(self.x), CALIBRATION_BATCH):
                yield signature, {input_name: self.x[start : start + CALIBRATION_BATCH]}

        return gen

    def trainable_samples(
        self, batch_size: int, labels: np.ndarray, weights: Mapping[str, np.ndarray]
    ) -> Callable[[], Iterator[Any]]:
        """Per-signature calibration samples for a trainable model (train, infer, infer_fixed, save, restore).

        ``train`` takes fixed batches of ``batch_size``: the representative inputs (repeated to fill the last
        batch) with ``labels`` cycled, since calibration only needs their range, every row real (``n``);
        ``restore`` takes ``weights``.
        """
        n = max(math.ceil(len(self.x) / batch_size), 1)
        rows = np.resize(np.arange(len(self.x)), n * batch_size).reshape(n, batch_size)
        label_rows = np.resize(np.arange(len(labels)), n * batch_size).reshape(n, batch_size)

        def gen() -> Iterator[Any]:
            for r, lr in zip(rows, label_rows, strict=True):
                yield "train", {"x": self.x[r], "y": labels[lr], "n": np.array([batch_size], np.int32)}
                yield "infer", {"x": self.x[r]}
                yield "infer_fixed", {"x": self.x[r]}
                yield "restore", dict(weights)
                yield "save", {}

        return gen


def load_representative(
    spec: str | Path | Dataset | np.ndarray | None,
    input_shape: tuple[int, ...],
    *,
    samples: int | None = None,
    default: Dataset,
    seed: int = 0,
) -> RepresentativeData:
    """Loads and checks calibration inputs against the model's input (per-sample) shape.

    Args:
        spec: An ``.npz`` with ``x`` (``y`` is not needed), a dataset name (``digits``, ``digits:HxW``), a
            :class:`Dataset` or an array; None: the training split of ``default``.
        input_shape: The model input's shape without the batch dimension.
        samples: How many samples to use (default 100), drawn with a fixed seed.
        default: The dataset used when ``spec`` is None.

    Raises:
        DataError: missing/corrupt file, non-numeric or non-finite values, samples of another size than the input.
        UsageError: ``samples`` below 1.
    """
    n = DEFAULT_SAMPLES if samples is None else int(samples)
    if n < 1:
        raise UsageError(f"--samples must be at least 1; received {samples}.")
    if spec is None:
        name, x = f"{default.name} (training split)", default.x
    elif isinstance(spec, Dataset):
        name, x = spec.name, spec.x
    elif isinstance(spec, np.ndarray):
        name, x = "array", spec
    elif str(spec).endswith(".npz"):
        name, x = Path(spec).name, _npz_inputs(Path(spec))
    else:
        ds = load_dataset(str(spec))
        name, x = ds.name, ds.x
    x = _checked(name, np.asarray(x), input_shape)
    if len(x) > n:
        x = x[np.sort(np.random.default_rng(seed).choice(len(x), n, replace=False))]
    return RepresentativeData(name, np.ascontiguousarray(x))


def _npz_inputs(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"Representative data {str(path)!r} does not exist.",
                        hint="Check the path passed to --representative-data.")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise DataError(f"Representative data {str(path)!r} is not a readable .npz archive ({exc}).",
                        hint="Write it with numpy.savez(path, x=...).") from exc
    if "x" in arrays:
        return arrays["x"]
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    raise DataError(f"Representative data {str(path)!r} has arrays {sorted(arrays)} but no 'x'.",
                    hint="Store the calibration inputs under the name x: numpy.savez(path, x=inputs).")


def _checked(name: str, x: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_) \
            or np.issubdtype(x.dtype, np.complexfloating):
        raise DataError(f"Representative data {name}: x has dtype {x.dtype}; real numbers are needed.",
                        hint="Convert it before saving, e.g. x.astype('float32').")
    if x.ndim == 0 or len(x) == 0:
        raise DataError(f"Representative data {name}: x is empty (shape {x.shape}).",
                        hint="Provide at least one sample.")
    per_sample = tuple(int(d) for d in x.shape[1:])
    if per_sample != tuple(input_shape):
        if math.prod(per_sample) != math.prod(input_shape):
            hint = "Give samples in the model's input shape (the first axis counts samples)."
            if name.startswith("digits") and len(input_shape) >= 2:
                hint = f"Use digits:{input_shape[0]}x{input_shape[1]} to resize the bundled digits to the model."
            raise DataError(
                f"Representative data {name}: each sample has shape {per_sample}, but the model's input signature "
                f"takes {tuple(input_shape)} per sample (x: {(-1, *input_shape)}).",
                hint=hint,
            )
        x = x.reshape((len(x), *input_shape))
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise DataError(f"Representative data {name}: x contains NaN or Inf.",
                        hint="Calibration ranges would be meaningless; clean the data.")
    return x
