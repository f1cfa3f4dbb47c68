"""The data stage: bundled digits, .npz files, batch plans and fitting data to a model."""

from __future__ import annotations

import numpy as np
import pytest

from litetrain.config import LossConfig
from litetrain.data.batching import plan_batches
from litetrain.data.dataset import Dataset, load_dataset
from litetrain.data.fit import TaskKind, fit_to_model
from litetrain.errors import DataError, UsageError
from litetrain.runtime.base import TensorInfo


def test_digits_split_and_range():
    ds = load_dataset("digits")
    assert ds.x.shape == (1437, 8, 8) and ds.x_test.shape == (360, 8, 8)
    assert ds.x.dtype == np.float32 and ds.x.min() >= 0.0 and ds.x.max() <= 1.0
    assert sorted(np.unique(ds.y_test)) == list(range(10))
    again = load_dataset("digits")
    np.testing.assert_array_equal(ds.x_test, again.x_test)  # fixed split, independent of any training seed


def test_digits_resized_to_28x28():
    ds = load_dataset("digits:28x28")
    assert ds.x.shape == (1437, 28, 28) and ds.name == "digits:28x28"
    assert ds.x.min() >= 0.0 and ds.x.max() <= 1.0
    # Same images, resized: shrinking them back gives the 8x8 originals up to interpolation blur.
    from scipy.ndimage import zoom

    back = zoom(ds.x[:50], (1, 8 / 28, 8 / 28), order=1)
    original = load_dataset("digits").x[:50]
    assert np.corrcoef(back.ravel(), original.ravel())[0, 1] > 0.9


def test_npz_without_test_split(tmp_path, rng):
    path = tmp_path / "d.npz"
    np.savez(path, x=rng.random((50, 4), dtype=np.float32), y=rng.integers(0, 3, 50))
    ds = load_dataset(str(path))
    assert len(ds.x) == 40 and len(ds.x_test) == 10


def test_arrays_in_memory_as_keras_fit_takes_them(rng):
    x, y = rng.random((50, 4), dtype=np.float32), rng.integers(0, 3, 50)
    ds = load_dataset((x, y))
    assert len(ds.x) == 40 and len(ds.x_test) == 10 and ds.name == "arrays"
    assert {tuple(r) for r in ds.x} | {tuple(r) for r in ds.x_test} == {tuple(r) for r in x}
    four = load_dataset([x[:30], y[:30], x[30:], y[30:]])
    np.testing.assert_array_equal(four.x_test, x[30:])
    with pytest.raises(DataError, match="x has 50 samples but y has 49"):
        load_dataset((x, y[:49]))
    with pytest.raises(DataError, match="sequence of 3 arrays"):
        load_dataset((x, y, x))
    with pytest.raises(DataError, match="type dict") as info:
        load_dataset({"x": x, "y": y})
    assert "(x, y)" in info.value.hint


def test_npz_with_test_arrays(tmp_path, rng):
    path = tmp_path / "d.npz"
    np.savez(path, x=rng.random((20, 4)), y=rng.integers(0, 3, 20), x_test=rng.random((7, 4)),
             y_test=rng.integers(0, 3, 7))
    ds = load_dataset(str(path))
    assert len(ds.x) == 20 and len(ds.x_test) == 7


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((4, 2))}, "lacks ['y']"),
        ({"x": np.full((10, 2), np.nan), "y": np.zeros(10)}, "NaN or Inf"),
        ({"x": np.zeros((10, 2)), "y": np.zeros(9)}, "x has 10 samples but y has 9"),
        ({"x": np.zeros((1, 2)), "y": np.zeros(1)}, "x has 1 sample; at least 2 are needed"),
        ({"x": np.zeros((0, 2)), "y": np.zeros(0)}, "no samples"),
        ({"x": np.zeros((3, 2)).astype(str), "y": np.zeros(3)}, "x has dtype <U32"),
        ({"x": np.zeros((10, 2)), "y": np.zeros(10), "x_test": np.zeros((2, 2))}, "only one of x_test and y_test"),
    ],
)
def test_npz_bad_contents(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_dataset(str(path))


def test_corrupt_and_missing_files(tmp_path):
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_dataset(str(bad))
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(str(tmp_path / "missing.npz"))
    with pytest.raises(DataError, match="Unknown data"):
        load_dataset("mnist")


def test_batch_plan_is_deterministic_and_keeps_every_sample():
    a = plan_batches(100, 32, steps=7, seed=5)
    b = plan_batches(100, 32, steps=7, seed=5)
    c = plan_batches(100, 32, steps=7, seed=6)
    assert [len(r) for r in a.indices] == [32, 32, 32, 4, 32, 32, 32] and a.steps_per_epoch == 4
    assert all(np.array_equal(r, s) for r, s in zip(a.indices, b.indices, strict=True))
    assert not all(np.array_equal(r, s) for r, s in zip(a.indices, c.indices, strict=True))
    # An epoch holds every sample once, the last batch the 4 left over; the next epoch is a new permutation.
    assert sorted(np.concatenate(a.indices[:4]).tolist()) == list(range(100))
    assert plan_batches(100, 32, epochs=2, seed=0).steps == 8


def test_a_dataset_smaller_than_one_batch_is_one_partial_batch_per_epoch():
    plan = plan_batches(5, 32, epochs=3, seed=1)
    assert plan.steps == 3 and plan.steps_per_epoch == 1
    assert all(sorted(r.tolist()) == [0, 1, 2, 3, 4] for r in plan.indices)
    assert not np.array_equal(plan.indices[0], plan.indices[1])


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"steps": 0}, UsageError), ({"steps": 3, "epochs": 1}, UsageError), ({"epochs": 0}, UsageError),
])
def test_batch_plan_rejects_bad_lengths(kwargs, error):
    with pytest.raises(error):
        plan_batches(100, 10, seed=0, **kwargs)


def test_batch_plan_needs_one_sample():
    with pytest.raises(DataError, match="no samples"):
        plan_batches(0, 32, steps=1)


def _infos(batch, in_shape, y_shape, y_dtype):
    return (TensorInfo("x", (batch, *in_shape), np.dtype(np.float32)),
            TensorInfo("y", (batch, *y_shape), np.dtype(y_dtype)))


def test_fit_reshapes_inputs_and_one_hot_encodes():
    ds = load_dataset("digits")
    x_info, y_info = _infos(32, (64,), (10,), np.float32)
    fitted = fit_to_model(ds, x_info, y_info, (10,), LossConfig.parse("categorical_crossentropy"))
    assert fitted.x.shape == (1437, 64) and fitted.y.shape == (1437, 10)
    np.testing.assert_array_equal(np.argmax(fitted.y, axis=1), ds.y)
    assert fitted.task is TaskKind.MULTICLASS and fitted.num_classes == 10


def test_fit_rejects_labels_out_of_range_and_wrong_sizes():
    ds = load_dataset("digits")
    x_info, y_info = _infos(32, (8, 8), (), np.int32)
    with pytest.raises(DataError, match="range from 0 to 9.*5 outputs"):
        fit_to_model(ds, x_info, y_info, (5,), LossConfig.parse("sparse_categorical_crossentropy"))
    x_info, y_info = _infos(32, (28, 28), (), np.int32)
    with pytest.raises(DataError, match="digits:28x28"):
        fit_to_model(ds, x_info, y_info, (10,), LossConfig.parse("sparse_categorical_crossentropy"))
    x_info, y_info = _infos(32, (8, 8), (1,), np.float32)
    with pytest.raises(DataError, match="one output per class"):
        fit_to_model(ds, x_info, y_info, (1,), LossConfig.parse("sparse_categorical_crossentropy"))
    with pytest.raises(DataError, match=r"labels in \[0, 1\]"):
        fit_to_model(ds, x_info, y_info, (1,), LossConfig.parse("binary_crossentropy"))


def test_fit_accuracy_for_binary_outputs():
    x = np.zeros((4, 2), np.float32)
    ds = Dataset("t", x, np.array([0, 1, 1, 0.0]), x, np.array([0, 1, 1, 0.0]))
    x_info, y_info = _infos(2, (2,), (1,), np.float32)
    fitted = fit_to_model(ds, x_info, y_info, (1,), LossConfig.parse("bce"))
    logits = np.array([[-1.0], [2.0], [-0.5], [-3.0]])
    assert fitted.accuracy(logits, from_logits=True) == 0.75
