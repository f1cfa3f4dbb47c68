"""Integer inputs (token ids) and models with several inputs and outputs, through build and check."""

from __future__ import annotations

import json

import numpy as np
import pytest

from litetrain import Optimizer, OptimizerConfig
from litetrain.api import check
from litetrain.data.batching import plan_batches
from litetrain.data.dataset import Dataset, load_dataset
from litetrain.errors import DataError, UnsupportedModelError
from litetrain.trainable.builder import build

ADAM = OptimizerConfig(Optimizer.ADAM, learning_rate=0.05)
SEQ, VOCAB = 6, 20


def text_model(dtype: str = "int32"):
    import keras

    inp = keras.Input((SEQ,), dtype=dtype, name="tokens")
    h = keras.layers.Embedding(VOCAB, 4, name="embed")(inp)
    h = keras.layers.GlobalAveragePooling1D()(h)
    return keras.Model(inp, keras.layers.Dense(3, name="head")(h))


def token_data(n: int = 160) -> Dataset:
    rng = np.random.default_rng(66)
    x = rng.integers(0, VOCAB, (n, SEQ))
    y = np.minimum(x[:, :3].mean(1) // 7, 2).astype(np.int64)
    cut = n * 4 // 5
    return Dataset("tokens", x[:cut], y[:cut], x[cut:], y[cut:])


def two_output_model():
    import keras

    inp = keras.Input((5,), name="features")
    h = keras.layers.Dense(8, activation="tanh", name="trunk")(inp)
    cls = keras.layers.Dense(3, activation="softmax", name="cls")(h)
    reg = keras.layers.Dense(2, name="reg")(h)
    model = keras.Model(inp, [cls, reg])
    model.compile(optimizer=keras.optimizers.Adam(0.02),
                  loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"}, loss_weights={"cls": 1.0, "reg": 0.5})
    return model


def two_output_data(n: int = 160) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(66)
    x = rng.standard_normal((n, 5)).astype(np.float32)
    return {"features": x, "cls": np.argmax(x[:, :3], axis=1), "reg": x[:, 3:] * 0.5}


def two_tower_model(as_dict: bool = False):
    import keras

    a = keras.Input((4,), name="user")
    b = keras.Input((3,), name="item")
    ha = keras.layers.Dense(6, activation="tanh", name="user_tower")(a)
    hb = keras.layers.Dense(6, activation="tanh", name="item_tower")(b)
    out = keras.layers.Dense(2, name="score")(keras.layers.Concatenate()([ha, hb]))
    model = keras.Model({"user": a, "item": b} if as_dict else [a, b], out)
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def two_tower_data(n: int = 160) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(66)
    user, item = rng.standard_normal((n, 4)).astype(np.float32), rng.standard_normal((n, 3)).astype(np.float32)
    return {"user": user, "item": item, "score": (user[:, 0] + item[:, 0] > 0).astype(np.int64)}


def named_dataset(arrays: dict[str, np.ndarray], inputs: list[str]) -> Dataset:
    cut = len(next(iter(arrays.values()))) * 4 // 5
    x = {k: v[:cut] for k, v in arrays.items() if k in inputs}
    y = {k: v[:cut] for k, v in arrays.items() if k not in inputs}
    xt = {k: v[cut:] for k, v in arrays.items() if k in inputs}
    yt = {k: v[cut:] for k, v in arrays.items() if k not in inputs}
    return Dataset("named", x, y, xt, yt)


def keras_first_loss(model, ds: Dataset, batch_size: int, steps: int) -> float:
    """Keras's own (weighted) loss of the model on the first batch the comparison trains on."""
    n = len(next(iter(ds.x.values())))
    rows = plan_batches(n, batch_size, steps=steps, seed=0).indices[0]
    x = [ds.x[t.name][rows] for t in model.inputs]
    x = x if len(x) > 1 else x[0]
    y = [ds.y[name][rows] for name in model.output_names]
    y = y if len(y) > 1 else y[0]
    return float(model.compute_loss(x=x, y=y, y_pred=model(x, training=False)))


def assert_consistent(result) -> None:
    assert result.model["ops"]["builtin_only"], result.model["ops"]
    assert result.verdict.value in ("consistent", "consistent-sensitive"), (result.verdict, result.cause)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_embedding_on_token_ids_trains_builtin_only_and_consistent(dtype):
    result = check(text_model(dtype), token_data(), loss="sparse_categorical_crossentropy", optimizer=ADAM,
                   batch_size=8, steps=30)
    assert_consistent(result)
    train_in = {t["name"]: t for t in result.model["signatures"]["train"]["inputs"]}
    assert train_in["x"]["dtype"] == "int32"  # int64 Keras inputs are cast inside the graph
    ops = result.model["ops"]
    assert "UNSORTED_SEGMENT_SUM" in json.dumps(ops)  # the Embedding gradient, dense and builtin


def test_build_json_shows_int32_token_inputs(tmp_path):
    build(text_model("int64"), loss="sparse_categorical_crossentropy", batch_size=4, output_dir=tmp_path / "b")
    sigs = json.loads((tmp_path / "b" / "build.json").read_text())["signatures"]
    assert {t["name"]: t["dtype"] for t in sigs["train"]["inputs"]} == {"x": "int32", "y": "int32", "n": "int32"}
    assert sigs["infer"]["inputs"] == [{"name": "x", "shape": [-1, SEQ], "dtype": "int32"}]


def test_non_integer_values_for_an_integer_input_are_refused():
    ds = token_data()
    ds = Dataset(ds.name, ds.x + 0.5, ds.y, ds.x_test, ds.y_test)
    with pytest.raises(DataError, match="takes integers .* received float64 values such as"):
        check(text_model(), ds, loss="sparse_categorical_crossentropy", batch_size=8, steps=2,
              noise_floor=False, float64=False)


def test_two_outputs_with_loss_weights_match_keras_weighted_loss():
    model = two_output_model()
    ds = named_dataset(two_output_data(), ["features"])
    expected = keras_first_loss(model, ds, 8, 30)
    result = check(model, ds, batch_size=8, steps=30)
    assert_consistent(result)
    assert abs(result.train.loss["tensorflow"][0] - expected) <= 1e-6
    sigs = result.model["signatures"]
    assert sorted(t["name"] for t in sigs["train"]["inputs"]) == ["n", "x", "y_cls", "y_reg"]
    assert sorted(t["name"] for t in sigs["infer"]["outputs"]) == ["cls", "reg"]
    assert result.inference["after"].accuracy["tflite"] is not None  # of the classification head
    assert [(o["output"], o["name"], o["weight"]) for o in result.settings["losses"]] == [
        ("cls", "sparse_categorical_crossentropy", 1.0), ("reg", "mse", 0.5)]


def test_two_inputs_from_an_npz_of_named_arrays(tmp_path):
    model = two_tower_model()
    arrays = two_tower_data()
    ds = named_dataset(arrays, ["user", "item"])
    expected = keras_first_loss(model, ds, 8, 30)
    path = tmp_path / "towers.npz"
    np.savez(path, **{k: v[:128] for k, v in arrays.items()}, **{f"{k}_test": v[128:] for k, v in arrays.items()})
    result = check(model, str(path), batch_size=8, steps=30)
    assert_consistent(result)
    assert abs(result.train.loss["tensorflow"][0] - expected) <= 1e-6
    sigs = result.model["signatures"]
    assert sorted(t["name"] for t in sigs["train"]["inputs"]) == ["n", "x_item", "x_user", "y"]
    assert [t["name"] for t in sigs["infer"]["outputs"]] == ["output"]


def test_named_npz_without_test_arrays_is_split_alike(tmp_path):
    arrays = two_tower_data()
    np.savez(tmp_path / "t.npz", **arrays)
    ds = load_dataset(str(tmp_path / "t.npz"))
    assert ds.x is ds.y and sorted(ds.x) == ["item", "score", "user"]
    assert len(ds.x["user"]) == 128 and len(ds.x_test["item"]) == 32
    row = ds.x_test["user"][0]
    i = int(np.flatnonzero((arrays["user"] == row).all(axis=1))[0])
    assert ds.x_test["score"][0] == arrays["score"][i]  # one split for every array


def test_a_missing_input_array_is_named(tmp_path):
    arrays = two_tower_data()
    del arrays["item"]
    path = tmp_path / "towers.npz"
    np.savez(path, **arrays)
    ds = load_dataset(str(path))
    with pytest.raises(DataError, match="no array for 'item'"):
        check(two_tower_model(), ds, batch_size=8, steps=2, noise_floor=False, float64=False)


def test_train_export_and_quantize_refuse_multi_io_models_in_one_line(tmp_path):
    import litetrain
    from litetrain.training.export import export_inference_model

    built = build(two_tower_model(as_dict=True), batch_size=4, output_dir=tmp_path / "b")  # Keras 3 wants the dict
    assert built.verification.initial_weights_exact
    tflite = tmp_path / "b" / "model.tflite"
    ds = named_dataset(two_tower_data(), ["user", "item"])
    match = "supports one input and one output for now"
    with pytest.raises(UnsupportedModelError, match="litetrain train " + match):
        litetrain.train(tflite, ds, epochs=1, checkpoint_dir=tmp_path / "ckpt")
    with pytest.raises(UnsupportedModelError, match="litetrain export " + match):
        export_inference_model(tflite, checkpoint=tmp_path / "ckpt", output=tmp_path / "out.tflite")
    with pytest.raises(UnsupportedModelError, match="litetrain quantize " + match):
        litetrain.quantize(two_tower_model(), ds)


def test_compare_reads_a_built_two_output_pair(tmp_path):
    from litetrain.api import compare

    build(two_output_model(), batch_size=8, output_dir=tmp_path / "b")
    arrays = two_output_data()
    path = tmp_path / "heads.npz"
    np.savez(path, **arrays)
    result = compare(tmp_path / "b" / "saved_model", tmp_path / "b" / "model.tflite", str(path), steps=20)
    assert result.verdict.value in ("consistent", "consistent-sensitive"), (result.verdict, result.cause)
    assert result.inference["after"].accuracy["tflite"] is not None


def test_export_and_quantize_refuse_integer_inputs_in_one_line(tmp_path):
    import litetrain
    from litetrain.training.export import export_inference_model

    build(text_model("int64"), loss="sparse_categorical_crossentropy", batch_size=4, output_dir=tmp_path / "b")
    with pytest.raises(UnsupportedModelError, match="litetrain export supports float inputs for now"):
        export_inference_model(tmp_path / "b" / "model.tflite", checkpoint=tmp_path / "ckpt",
                               output=tmp_path / "out.tflite")
    with pytest.raises(UnsupportedModelError, match="litetrain quantize supports float inputs for now.*'tokens'"):
        litetrain.quantize(text_model(), token_data(), loss="sparse_categorical_crossentropy")


def test_worker_and_interpreter_train_a_two_output_model_alike():
    from litetrain.data.fit import fit_to_model
    from litetrain.runtime.litert import LiteRTRunner
    from litetrain.runtime.worker import WorkerRunner

    tflite = build(two_output_model(), batch_size=8).tflite
    lite = LiteRTRunner(tflite)
    assert lite.train_inputs[1].dtype.names == ("y_cls", "y_reg") and lite.infer_outputs == ("cls", "reg")
    ds = named_dataset(two_output_data(), ["features"])
    fitted = fit_to_model(ds, *lite.train_inputs, (3,), None)
    with WorkerRunner(tflite) as worker:
        for start in (0, 8, 16):
            rows = slice(start, start + 8)
            assert worker.train_step(fitted.x[rows], fitted.y[rows]) == lite.train_step(fitted.x[rows], fitted.y[rows])
        out = worker.infer(fitted.x_test)
        np.testing.assert_array_equal(out["reg"], lite.infer(fitted.x_test)["reg"])
