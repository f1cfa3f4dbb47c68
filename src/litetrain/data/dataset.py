"""Datasets: :func:`load_dataset`, the one place that decides how ``--data`` is read, and the bundled digits and
``.npz`` files; every source is validated alike (:mod:`litetrain.data.record`; the other file formats are in
:mod:`litetrain.data.sources`). :class:`Dataset` is defined in :mod:`litetrain.data.record` and importable here."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from litetrain.config import DATA_FORMS
from litetrain.data.record import (
    SPLIT_SEED,
    TEST_FRACTION,
    Dataset,
    fixed_split,
    require_data_file,
    split_validated,
    validated,
)
from litetrain.data.sources import load_csv, load_image_folder, load_npy_pair
from litetrain.errors import DataError, UsageError

__all__ = ["Dataset", "load_dataset", "load_digits", "load_npz"]

_DIGITS_RE = re.compile(r"^digits(?::(\d+)x(\d+))?$")


def load_dataset(
    spec: str | Path | Dataset | tuple | list | None,
    *,
    labels: str | Path | None = None,
    input_shape: Sequence[int | None] | None = None,
) -> Dataset:
    """Loads ``--data``: every command that reads data comes here, so all accept the same forms (:data:`DATA_FORMS`).

    Args:
        spec: ``digits`` (also None), ``digits:HxW`` (resized), an ``.npz`` with ``x``, ``y`` [, ``x_test``,
            ``y_test``], a ``.npy`` of inputs (with ``labels``), a ``.csv`` file, a folder of images with one
            subfolder per class (or ``train/`` and ``test/`` with one each), a :class:`Dataset` (validated), or
            arrays in memory: ``(x, y)`` (split 80/20 as a file without a test set is) or
            ``(x, y, x_test, y_test)``.
        labels: The ``.npy`` of labels for a ``.npy`` of inputs; refused with every other form, which holds its own.
        input_shape: The model's input shape without the batch dimension: an image folder's images are converted
            to its channels and resized to it (None, or a shape with unknown dimensions: images keep their size).

    Raises:
        DataError: missing, corrupt or unknown data (or an object of another type); arrays that lack samples, hold non-finite values or disagree
            in length; an image folder with fewer than two classes.
        UsageError: ``labels`` with anything but a ``.npy`` of inputs.
    """
    if isinstance(spec, Dataset):
        _no_labels(labels, f"the dataset {spec.name!r}")
        return validated(spec)
    if isinstance(spec, tuple | list):
        _no_labels(labels, "the arrays passed in")
        return _from_arrays(spec)
    if spec is not None and not isinstance(spec, str | Path):
        raise DataError(f"Unknown data of type {type(spec).__name__}.",
                        hint=f"Pass (x, y) or (x, y, x_test, y_test) arrays, a Dataset, or {DATA_FORMS}.")
    text = str(spec) if spec is not None and str(spec) else "digits"
    m = _DIGITS_RE.match(text)
    if m:
        _no_labels(labels, "digits")
        return load_digits((int(m.group(1)), int(m.group(2))) if m.group(1) else None)
    path = Path(text)
    suffix = path.suffix.lower()
    if path.is_dir():
        _no_labels(labels, f"the image folder {text!r} (its subfolders are the classes)")
        return load_image_folder(path, input_shape=input_shape)
    if suffix == ".npy":
        if labels is None:
            raise DataError(
                f"{text!r} is one .npy array (the inputs); the labels are missing.",
                hint="Pass the labels as a second .npy file (--labels y.npy), or save both with "
                "numpy.savez(path, x=..., y=...) and pass the .npz.",
            )
        return load_npy_pair(path, Path(labels))
    _no_labels(labels, repr(text))
    if suffix == ".csv":
        return load_csv(path)
    if suffix == ".npz":
        return load_npz(path)
    raise DataError(f"Unknown data {text!r}.", hint=f"Use {DATA_FORMS}.")


def _from_arrays(arrays: tuple | list) -> Dataset:
    """``(x, y)`` as Keras ``fit`` takes them (split 80/20 like a file without a test set), or ``(x, y, x_test, y_test)``."""
    if len(arrays) == 2:
        return split_validated("arrays", np.asarray(arrays[0]), np.asarray(arrays[1]))
    if len(arrays) == 4:
        return validated(Dataset("arrays", *(a if isinstance(a, dict) else np.asarray(a) for a in arrays)))
    raise DataError(f"Data as a sequence of {len(arrays)} arrays.", hint="Pass (x, y) or (x, y, x_test, y_test).")


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
    return Dataset(name, *fixed_split(x, y))


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
        return validated(Dataset(path.name, x, y, arrays["x_test"], arrays["y_test"]))
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
        return validated(Dataset(path.name, train, train, test, test))
    n = {len(v) if np.ndim(v) else 0 for v in train.values()}
    if len(n) != 1 or min(n) < 2:
        raise DataError(f"{path.name}: the arrays {sorted(train)} need the same number of samples, at least 2; "
                        f"they have {sorted(n)}.")
    from sklearn.model_selection import train_test_split

    rows, rows_test = train_test_split(np.arange(n.pop()), test_size=TEST_FRACTION, random_state=SPLIT_SEED)
    tr = {k: v[rows] for k, v in train.items()}
    te = {k: v[rows_test] for k, v in train.items()}
    return validated(Dataset(path.name, tr, tr, te, te))


