"""Datasets: :func:`load_dataset`, the one place that decides how ``--data`` is read, and the bundled digits and
``.npz`` files; every source is validated alike (the other file formats are in :mod:`litetrain.data.sources`)."""

from __future__ import annotations

import dataclasses
import re
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from litetrain.config import DATA_FORMS
from litetrain.errors import DataError, UsageError

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

    def head(self, n: int) -> Dataset:
        """The first ``n`` samples of each split (each array of a dict too)."""

        def first(arrays: np.ndarray | Mapping[str, np.ndarray]) -> np.ndarray | Mapping[str, np.ndarray]:
            return {k: v[:n] for k, v in arrays.items()} if isinstance(arrays, Mapping) else arrays[:n]

        return Dataset(self.name, first(self.x), first(self.y), first(self.x_test), first(self.y_test))

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


_DIGITS_RE = re.compile(r"^digits(?::(\d+)x(\d+))?$")


def require_data_file(path: Path) -> None:
    """Raises DataError naming the accepted forms unless ``path`` is an existing file."""
    if not path.is_file():
        raise DataError(f"Data file {str(path)!r} does not exist.", hint=f"Check --data; it takes {DATA_FORMS}.")


def load_dataset(
    spec: str | Path | Dataset | None,
    *,
    labels: str | Path | None = None,
    input_shape: Sequence[int | None] | None = None,
) -> Dataset:
    """Loads ``--data``: every command that reads data comes here, so all accept the same forms (:data:`DATA_FORMS`).

    Args:
        spec: ``digits`` (also None), ``digits:HxW`` (resized), an ``.npz`` with ``x``, ``y`` [, ``x_test``,
            ``y_test``], a ``.npy`` of inputs (with ``labels``), a ``.csv`` file, a folder of images with one
            subfolder per class (or ``train/`` and ``test/`` with one each), or a :class:`Dataset` (validated).
        labels: The ``.npy`` of labels for a ``.npy`` of inputs; refused with every other form, which holds its own.
        input_shape: The model's input shape without the batch dimension: an image folder's images are converted
            to its channels and resized to it (None, or a shape with unknown dimensions: images keep their size).

    Raises:
        DataError: missing, corrupt or unknown data; arrays that lack samples, hold non-finite values or disagree
            in length; an image folder with fewer than two classes.
        UsageError: ``labels`` with anything but a ``.npy`` of inputs.
    """
    if isinstance(spec, Dataset):
        _no_labels(labels, f"the dataset {spec.name!r}")
        return _validated(spec)
    text = str(spec) if spec is not None and str(spec) else "digits"
    m = _DIGITS_RE.match(text)
    if m:
        _no_labels(labels, "digits")
        return load_digits((int(m.group(1)), int(m.group(2))) if m.group(1) else None)
    path = Path(text)
    suffix = path.suffix.lower()
    if path.is_dir():
        from litetrain.data.sources import load_image_folder

        _no_labels(labels, f"the image folder {text!r} (its subfolders are the classes)")
        return load_image_folder(path, input_shape=input_shape)
    if suffix == ".npy":
        if labels is None:
            raise DataError(
                f"{text!r} is one .npy array (the inputs); the labels are missing.",
                hint="Pass the labels as a second .npy file (--labels y.npy), or save both with "
                "numpy.savez(path, x=..., y=...) and pass the .npz.",
            )
        from litetrain.data.sources import load_npy_pair

        return load_npy_pair(path, Path(labels))
    _no_labels(labels, repr(text))
    if suffix == ".csv":
        from litetrain.data.sources import load_csv

        return load_csv(path)
    if suffix == ".npz":
        return load_npz(path)
    raise DataError(f"Unknown data {text!r}.", hint=f"Use {DATA_FORMS}.")


def _no_labels(labels: object, what: str) -> None:
    if labels is not None:
        raise UsageError(f"--labels applies to a .npy of inputs only; {what} holds its own labels.",
                         hint="Omit --labels.")


def load_digits(size: tuple[int, int] | None = None) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 images, 10 classes), scaled to [0, 1], optionally resized."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = (bunch.images / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int32)
    name = "digits"
    if size is not None and size != (8, 8):
        if min(size) < 1 or max(size) > 512:
            raise DataError(f"digits can be resized to 1..512 pixels a side; received {size[0]}x{size[1]}.")
        from scipy.ndimage import zoom

        # Bilinear resize (order=1) keeps values in [0, 1]; it mirrors the 28x28 shapes of Fashion-MNIST.
        x = zoom(x, (1, size[0] / 8, size[1] / 8), order=1).astype(np.float32)
        x = np.clip(x, 0.0, 1.0)
        name = f"digits:{size[0]}x{size[1]}"
    return Dataset(name, *_split(x, y))


def _split(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
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


def load_npz(path: Path) -> Dataset:
    """Loads an ``.npz`` with ``x`` and ``y`` and optionally ``x_test``/``y_test`` (else a fixed 80/20 split)."""
    require_data_file(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise DataError(
            f"Data file {str(path)!r} is not a readable .npz archive ({exc}).",
            hint="Write it with numpy.savez(path, x=..., y=...).",
        ) from exc
    if "x" not in arrays and "y" not in arrays and len(arrays) >= 2:
        return _named_npz(path, arrays)
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise DataError(
            f"Data file {str(path)!r} has arrays {sorted(arrays)} but lacks {missing}.",
            hint="An .npz for litetrain needs x (inputs) and y (labels or targets); x_test/y_test are optional. "
            "For a model with several inputs or outputs, name one array per input and output instead.",
        )
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DataError(f"Data file {str(path)!r} has only one of x_test and y_test.", hint="Provide both or neither.")
    x, y = arrays["x"], arrays["y"]
    if "x_test" in arrays:
        return _validated(Dataset(path.name, x, y, arrays["x_test"], arrays["y_test"]))
    return split_validated(path.name, x, y)


def _named_npz(path: Path, arrays: dict[str, np.ndarray]) -> Dataset:
    """An ``.npz`` with one array per model input and output name (``<name>_test`` arrays: the held-out set)."""
    test = {k[: -len("_test")]: v for k, v in arrays.items() if k.endswith("_test")}
    train = {k: v for k, v in arrays.items() if not k.endswith("_test")}
    if test and set(test) != set(train):
        raise DataError(
            f"Data file {str(path)!r} has held-out arrays for {sorted(test)} but training arrays for {sorted(train)}.",
            hint="Give every array a <name>_test counterpart, or none (then a fixed 80/20 split is made).",
        )
    if test:
        return _validated(Dataset(path.name, train, train, test, test))
    n = {len(v) if np.ndim(v) else 0 for v in train.values()}
    if len(n) != 1 or min(n) < 2:
        raise DataError(f"{path.name}: the arrays {sorted(train)} need the same number of samples, at least 2; "
                        f"they have {sorted(n)}.")
    from sklearn.model_selection import train_test_split

    rows, rows_test = train_test_split(np.arange(n.pop()), test_size=TEST_FRACTION, random_state=SPLIT_SEED)
    tr = {k: v[rows] for k, v in train.items()}
    te = {k: v[rows_test] for k, v in train.items()}
    return _validated(Dataset(path.name, tr, tr, te, te))


def split_validated(name: str, x: np.ndarray, y: np.ndarray) -> Dataset:
    """A source without its own test set: checks what the split needs, splits 80/20, then validates.

    Raises:
        DataError: no samples, x and y of different lengths, a single sample, or anything :func:`_validated` refuses
            (checked before the split, so messages name the source's own arrays).
    """
    if np.ndim(x) == 0 or np.ndim(y) == 0 or len(x) == 0:
        raise DataError(f"{name}: no samples (x has shape {np.shape(x)}, y has shape {np.shape(y)}).",
                        hint="Provide at least two samples.")
    if len(x) != len(y):
        raise DataError(f"{name}: x has {len(x)} samples but y has {len(y)}.")
    if len(x) < 2:
        raise DataError(f"{name}: x has {len(x)} sample; at least 2 are needed to hold some out for testing.")
    _validated(Dataset(name, x, y, x, y))
    return _validated(Dataset(name, *_split(x, y)))


def _validated(ds: Dataset) -> Dataset:
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
