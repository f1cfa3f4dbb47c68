"""File loaders beyond ``.npz``: a pair of ``.npy`` files, a CSV file, and a folder of images (one subfolder per class).

:func:`litetrain.data.dataset.load_dataset` decides which one reads a ``--data`` argument. Every loader returns a
:class:`~litetrain.data.record.Dataset` that went through the same validation as the other sources (numeric
dtypes, no NaN/Inf, no empty arrays, as many labels as samples); the held-out split is the same fixed, stratified
80/20 split unless the source gives its own test set.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from litetrain.data.record import Dataset, require_data_file, split_validated, validated
from litetrain.errors import DataError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
LABEL_COLUMNS = ("label", "labels", "y", "class", "target")
"""Header names recognised as the label column of a CSV file (case-insensitive); otherwise the last column."""


@dataclasses.dataclass(frozen=True)
class ImageFolderDataset(Dataset):
    """A dataset read from a folder of images; ``classes[i]`` is the subfolder whose images have label ``i``."""

    classes: tuple[str, ...] = ()
    image_shape: tuple[int, ...] = ()

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "classes": list(self.classes), "image_shape": list(self.image_shape)}


def load_npy_pair(x_path: Path, y_path: Path) -> Dataset:
    """Inputs from one ``.npy`` and labels from another, split 80/20."""
    arrays = []
    for path in (x_path, y_path):
        require_data_file(path)
        try:
            arrays.append(np.load(path, allow_pickle=False))
        except (OSError, ValueError, EOFError) as exc:
            raise DataError(f"Data file {str(path)!r} is not a readable .npy array ({exc}).",
                            hint="Write it with numpy.save(path, array).") from exc
    x, y = arrays
    return split_validated(x_path.name, x, y)


def load_csv(path: Path) -> Dataset:
    """A CSV file of numbers: one sample per row, the label in the ``label`` (or ``y``/``class``/``target``)
    column if there is a header, else in the last column; every other column is an input feature.

    Raises:
        DataError: empty file, ragged rows, missing or non-numeric values (naming row and column).
    """
    require_data_file(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = [row for row in csv.reader(f) if row and any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"Data file {str(path)!r} is not a readable CSV file ({exc}).") from exc
    if not rows:
        raise DataError(f"{path.name}: the CSV file is empty.", hint="Provide a header (optional) and one row per sample.")
    header: list[str] | None = None
    if any(not _is_number(cell) for cell in rows[0]):
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    if not rows:
        raise DataError(f"{path.name}: the CSV file has a header but no samples.", hint="Add one row per sample.")
    width = len(header) if header else len(rows[0])
    if width < 2:
        raise DataError(f"{path.name}: each row needs at least one feature and a label; it has {width} column(s).")
    label_col = width - 1
    if header:
        named = [i for i, name in enumerate(header) if name.lower() in LABEL_COLUMNS]
        if named:
            label_col = named[0]
    values = np.empty((len(rows), width), np.float64)
    first_line = 2 if header else 1
    for r, row in enumerate(rows):
        if len(row) != width:
            raise DataError(f"{path.name}: line {r + first_line} has {len(row)} columns; expected {width}.",
                            hint="Every row needs the same columns as the first.")
        for c, cell in enumerate(row):
            try:
                values[r, c] = float(cell)
            except ValueError:
                column = repr(header[c]) if header else str(c + 1)
                what = "is empty" if not cell.strip() else f"is {cell.strip()!r}, not a number"
                raise DataError(f"{path.name}: line {r + first_line}, column {column} {what}.",
                                hint="Every cell must be a number; class labels are integers 0..N-1.") from None
    y = values[:, label_col]
    x = np.delete(values, label_col, axis=1).astype(np.float32)
    whole = bool(np.all(np.isfinite(y)) and np.all(np.mod(y, 1) == 0))
    y = y.astype(np.int64 if whole else np.float32)  # whole numbers are class indices, others targets
    return split_validated(path.name, x, y)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def load_image_folder(path: Path, *, input_shape: Sequence[int | None] | None = None) -> ImageFolderDataset:
    """A folder with one subfolder of images per class (sorted names are classes 0, 1, ...).

    If the folder has ``train/`` and ``test/`` subfolders, each with the same class subfolders, they are the
    training and held-out sets; otherwise a fixed stratified 80/20 split is made. Pixels are scaled to [0, 1]
    (float32). With ``input_shape`` ``(H, W)`` or ``(H, W, 1)`` images become grayscale, with ``(H, W, 3)``
    RGB, resized to ``H x W`` (bilinear); otherwise they keep their size, which must be the same for all.

    Raises:
        DataError: fewer than two class subfolders, a class without images, an image that cannot be decoded,
            images of different sizes without an ``input_shape`` to resize to.
    """
    from litetrain._lazy import import_module

    import_module("PIL.Image")  # a clear "pip install pillow" if missing
    if not path.is_dir():
        raise DataError(f"Image folder {str(path)!r} does not exist.", hint="Check the path passed to --data; the folder holds one subfolder of images per class.")
    target = _image_target(input_shape)
    train_dir, test_dir = path / "train", path / "test"
    if train_dir.is_dir() and test_dir.is_dir():
        classes = _class_names(train_dir, layout=f"{str(path)!r} (train/ and test/)")
        if _subfolders(test_dir) != classes:
            raise DataError(
                f"{path.name}: train/ has classes {list(classes)} but test/ has {list(_subfolders(test_dir))}.",
                hint="Give test/ the same class subfolders as train/.",
            )
        x, y = _read_images(train_dir, classes, target)
        x_test, y_test = _read_images(test_dir, classes, target)
        if x.shape[1:] != x_test.shape[1:]:
            raise DataError(f"{path.name}: train images are {x.shape[1:]} but test images are {x_test.shape[1:]}.",
                            hint="Use images of one size, or train a model whose input size they can be resized to.")
        ds = validated(Dataset(path.name, x, y, x_test, y_test))
    else:
        classes = _class_names(path, layout=repr(str(path)))
        x, y = _read_images(path, classes, target)
        ds = split_validated(path.name, x, y)
    return ImageFolderDataset(ds.name, ds.x, ds.y, ds.x_test, ds.y_test, classes=classes,
                              image_shape=tuple(int(d) for d in ds.x.shape[1:]))


def _image_target(input_shape: Sequence[int | None] | None) -> tuple[tuple[int, int], str] | None:
    """((height, width), Pillow mode) to convert every image to, from the model's input shape."""
    if input_shape is None or any(d is None for d in input_shape):
        return None  # an unknown size to resize to: the images keep theirs
    shape = tuple(int(d) for d in input_shape)
    if len(shape) == 2:
        return (shape[0], shape[1]), "L"
    if len(shape) == 3 and shape[2] in (1, 3):
        return (shape[0], shape[1]), "L" if shape[2] == 1 else "RGB"
    return None  # e.g. a flat (784,) input: keep the images' size; fit_to_model reshapes when sizes agree


def _subfolders(folder: Path) -> tuple[str, ...]:
    return tuple(sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")))


def _class_names(folder: Path, *, layout: str | None = None) -> tuple[str, ...]:
    """The class subfolders of ``folder``, sorted; at least two (``layout`` names the folder the user passed)."""
    subdirs = _subfolders(folder)
    hint = "Put the images of each class in a subfolder named after the class: DATA/cat/1.png, DATA/dog/2.png, ..."
    if not subdirs:
        loose = [p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES][:3]
        raise DataError(
            f"Image folder {str(folder)!r} has no class subfolders"
            + (f" (it holds images such as {loose} directly)." if loose else "."),
            hint=hint,
        )
    if len(subdirs) == 1:
        # Every label would be 0: training "learns" a constant and reports a meaningless 100% accuracy.
        raise DataError(
            f"Image folder {layout or repr(str(folder))} has a single class subfolder, {subdirs[0]!r}; a classifier "
            "needs at least two classes.",
            hint="Add a subfolder per class (DATA/cat/, DATA/dog/, ...), each holding that class's images.",
        )
    return subdirs


def _read_images(folder: Path, classes: tuple[str, ...],
                 target: tuple[tuple[int, int], str] | None) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image, UnidentifiedImageError

    images: list[np.ndarray] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        files = sorted(p for p in (folder / name).iterdir()
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        if not files:
            raise DataError(
                f"Class folder {str(folder / name)!r} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}).",
                hint="Add images of that class or remove the empty folder.",
            )
        for file in files:
            try:
                with Image.open(file) as img:
                    img.load()
                    if target is not None:
                        (height, width), mode = target
                        img = img.convert(mode)
                        if img.size != (width, height):
                            img = img.resize((width, height), Image.Resampling.BILINEAR)
                    elif img.mode not in ("L", "RGB"):
                        img = img.convert("RGB")
                    # Grayscale stays (H, W): fit_to_model reshapes it to (H, W, 1) when the model wants that.
                    arr = np.asarray(img, dtype=np.float32) / 255.0
            except (UnidentifiedImageError, OSError, ValueError) as exc:
                raise DataError(f"Cannot decode the image {str(file)!r} ({exc}).",
                                hint="Remove or replace the file.") from exc
            images.append(arr)
            labels.append(index)
    shapes = sorted({a.shape for a in images})
    if len(shapes) > 1:
        raise DataError(
            f"Images in {str(folder)!r} have different sizes {shapes[:4]}.",
            hint="Resize them to one size, or train a model whose input is an image (H, W[, C]) so that litetrain "
            "resizes them to it.",
        )
    return np.stack(images), np.asarray(labels, np.int64)
