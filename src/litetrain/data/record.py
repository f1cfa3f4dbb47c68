"""The :class:`Dataset` record and the checks every source's arrays pass, whatever file they came from.

:func:`litetrain.data.dataset.load_dataset` decides how ``--data`` is read; the loaders (there and in
:mod:`litetrain.data.sources`) build their datasets through :func:`validated` or :func:`split_validated`, so every
source is refused for the same reasons with the same messages.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from litetrain.config import DATA_FORMS
from litetrain.errors import DataError

TEST_FRACTION = 0.2
SPLIT_SEED = 0
"""The train/test split is fixed (independent of the training seed) so results of different seeds share a test set."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Arrays for training and held-out evaluation.

    ``y`` is as the source gave it (class indices or one-hot / targets); :mod:`litetrain.data.fit` converts it
    to what the loss needs. For a model with several inputs or outputs, each of ``x``, ``y``, ... may be a dict of
    equal-length arrays keyed by input/output name (Keras names, or the signature names ``x_<input>``,
    ``y_<output>``); an ``.npz`` of named arrays gives every array to both ``x`` and ``y``, and fitting picks
    each input and target by name.
    """

    name: str
    x: np.ndarray | Mapping[str, np.ndarray]
    y: np.ndarray | Mapping[str, np.ndarray]
    x_test: np.ndarray | Mapping[str, np.ndarray]
    y_test: np.ndarray | Mapping[str, np.ndarray]

    def describe(self) -> dict[str, object]:
        """Shapes and sizes for reports."""
        return {
            "name": self.name,
            "train_samples": num_samples(self.x),
            "test_samples": num_samples(self.x_test),
            "x_shape": _shapes(self.x),
            "y_shape": _shapes(self.y),
        }


def num_samples(arrays: np.ndarray | Mapping[str, np.ndarray]) -> int:
    """Samples in an array, or in each array of a dict (all have as many)."""
    if isinstance(arrays, Mapping):
        return int(len(next(iter(arrays.values())))) if arrays else 0
    return int(arrays.shape[0])


def _shapes(arrays: np.ndarray | Mapping[str, np.ndarray]) -> object:
    if isinstance(arrays, Mapping):
        return {k: list(np.shape(v)[1:]) for k, v in arrays.items()}
    return list(arrays.shape[1:])


def require_data_file(path: Path) -> None:
    """Raises DataError naming the accepted forms unless ``path`` is an existing file."""
    if not path.is_file():
        raise DataError(f"Data file {str(path)!r} does not exist.", hint=f"Check --data; it takes {DATA_FORMS}.")


def fixed_split(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A fixed stratified 80/20 split; returns ``x, y, x_test, y_test``."""
    from sklearn.model_selection import train_test_split

    stratify = y if y.ndim == 1 and np.issubdtype(y.dtype, np.integer) else None
    try:
        x_tr, x_te, y_tr, y_te = train_test_split(
            x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=stratify
        )
    except ValueError:  # too few samples of some class to stratify
        x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED)
    return x_tr, y_tr, x_te, y_te


def split_validated(name: str, x: np.ndarray, y: np.ndarray) -> Dataset:
    """A source without its own test set: checks what the split needs, splits 80/20, then validates.

    Raises:
        DataError: no samples, x and y of different lengths, a single sample, or anything :func:`validated` refuses
            (checked before the split, so messages name the source's own arrays).
    """
    if np.ndim(x) == 0 or np.ndim(y) == 0 or len(x) == 0:
        raise DataError(f"{name}: no samples (x has shape {np.shape(x)}, y has shape {np.shape(y)}).",
                        hint="Provide at least two samples.")
    if len(x) != len(y):
        raise DataError(f"{name}: x has {len(x)} samples but y has {len(y)}.")
    if len(x) < 2:
        raise DataError(f"{name}: x has {len(x)} sample; at least 2 are needed to hold some out for testing.")
    validated(Dataset(name, x, y, x, y))
    return validated(Dataset(name, *fixed_split(x, y)))


def validated(ds: Dataset) -> Dataset:
    """``ds`` itself once every array is numeric, finite and non-empty, and each x as long as its y."""
    for xname, yname, x, y in (("x", "y", ds.x, ds.y), ("x_test", "y_test", ds.x_test, ds.y_test)):
        named = _arrays(xname, x) | _arrays(yname, y)
        for name, arr in named.items():
            _check_array(ds.name, name, arr)
        if not isinstance(x, Mapping) and not isinstance(y, Mapping):
            if len(x) != len(y):
                raise DataError(f"{ds.name}: {xname} has {len(x)} samples but {yname} has {len(y)}.")
            continue
        lengths = {name: len(arr) for name, arr in named.items()}
        if not lengths or len(set(lengths.values())) > 1:
            raise DataError(f"{ds.name}: the arrays of {xname} and {yname} need the same number of samples; "
                            f"received {lengths}.", hint="Give one array per input and output, one row per sample.")
    return ds


def _arrays(what: str, value: object) -> dict[str, object]:
    """``{what: value}``, or one entry per array of a dict (``x['tokens']``)."""
    if isinstance(value, Mapping):
        return {f"{what}[{k!r}]": v for k, v in value.items()}
    return {what: value}


def _check_array(source: str, name: str, arr: object) -> None:
    if not isinstance(arr, np.ndarray) or arr.dtype == object:
        raise DataError(f"{source}: {name} must be a numeric array; received {type(arr).__name__}.")
    if np.issubdtype(arr.dtype, np.complexfloating) or not (
        np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
    ):
        raise DataError(
            f"{source}: {name} has dtype {arr.dtype}; a real numeric dtype (float, int or bool) is needed.",
            hint="Convert it before saving, e.g. x.astype('float32').",
        )
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise DataError(f"{source}: {name} is empty (shape {arr.shape}).", hint="Provide at least one sample.")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise DataError(
            f"{source}: {name} contains {bad} NaN or Inf value(s).",
            hint="Clean or impute the data; training on non-finite values makes every comparison meaningless.",
        )
