"""Feature caching for a frozen base: ``bottleneck`` + ``train_head`` train as ``train`` does; refused when unsound."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from litetrain.cli.app import main
from litetrain.config import LossConfig, Optimizer, OptimizerConfig, TrainableSpec
from litetrain.runtime.litert import LiteRTRunner
from litetrain.training.checkpoint import load_checkpoint
from litetrain.training.feature_cache import FeatureCache

BATCH = 8
CLASSES = 4
SCCE = "sparse_categorical_crossentropy"


def _base_and_head(dropout_below: bool = False, skip: bool = False, flatten_first: bool = False,
                   augment: bool = False) -> Any:
    """A small CNN: conv, BatchNorm, conv, pooling, Dropout, Dense 16, Dense 4 (the last two train with last:2)."""
    import keras

    keras.utils.set_random_seed(5)
    inp = keras.Input((8, 8, 1))
    if flatten_first:  # weightless layers before the first trainable one: no cut worth caching
        return keras.Sequential([inp, keras.layers.Flatten(), keras.layers.Dense(CLASSES)])
    h = keras.layers.RandomFlip("horizontal", seed=3)(inp) if augment else inp
    h = first = keras.layers.Conv2D(6, 3, activation="relu")(h)
    h = keras.layers.BatchNormalization()(h)
    if dropout_below:
        h = keras.layers.Dropout(0.3)(h)
    h = keras.layers.Conv2D(6, 3, activation="tanh")(h)
    pooled = keras.layers.GlobalAveragePooling2D()(h)
    h = keras.layers.Dropout(0.25)(pooled)
    h = keras.layers.Dense(6, activation="relu")(h)
    if skip:  # the head also reads the first convolution's output: no single tensor feeds the head
        h = keras.layers.Concatenate()([h, keras.layers.GlobalMaxPooling2D()(first)])
    out = keras.layers.Dense(CLASSES)(h)
    model = keras.Model(inp, out)
    x = np.random.default_rng(0).standard_normal((32, 8, 8, 1)).astype(np.float32)
    model(x, training=True)  # non-trivial BatchNorm statistics are not needed; just build the variables
    return model


def _data(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 8, 8, 1)).astype(np.float32), rng.integers(0, CLASSES, n).astype(np.int32)


@pytest.fixture(scope="module")
def built() -> Any:
    from litetrain.trainable.builder import build

    return build(_base_and_head(), loss=LossConfig.parse(SCCE, from_logits=True),
                 optimizer=OptimizerConfig(Optimizer.ADAM, learning_rate=0.01), batch_size=BATCH, trainable="last:2")


def test_train_head_on_cached_bottlenecks_trains_as_train_does(built: Any) -> None:
    """Eight Adam steps (dropout active in the head) on cached features end where eight train(x, y) steps end."""
    info = built.to_json()["bottleneck"]
    assert info["signatures"] == ["bottleneck", "train_head", "infer_head"]
    assert info["cut_layer"].startswith("global_average_pooling2d")  # below the head's Dropout, not above it
    assert info["features_shape"] == [6] and info["features_bytes_per_sample"] == 24
    sigs = built.signatures()
    train_in = {t["name"] for t in sigs["train"]["inputs"]}
    assert {t["name"] for t in sigs["train_head"]["inputs"]} == train_in - {"x"} | {"features"}  # y (and n) mirrored
    assert sigs["bottleneck"]["outputs"] == [{"name": "features", "shape": [BATCH, 6], "dtype": "float32"}]
    assert info["verification"]["max_weight_difference"] <= 1e-6

    x, y = _data(4 * BATCH)
    plain, cached = LiteRTRunner(built.tflite), LiteRTRunner(built.tflite)
    cache, status = FeatureCache.open(cached)
    assert cache is not None and status == "on"
    cache.fill(x, x[:-3])  # the held-out set's last partial batch is padded, then cut
    assert cache.features.shape == (4 * BATCH, 6) and cache.test_features.shape == (4 * BATCH - 3, 6)
    assert cache.nbytes == (8 * BATCH - 3) * 24
    losses = []
    for step in range(8):
        idx = np.arange(BATCH) + (step % 4) * BATCH
        losses.append((plain.train_step(x[idx], y[idx]), cache.train_step(idx, y[idx])))
    a, b = np.array(losses).T
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    assert cached.train_calls == 8
    wa, wb = plain.get_weights(), cached.get_weights()
    # The weights moved, so equal weights do not just mean that nothing trained.
    moved = max(float(np.max(np.abs(wa[k] - built.module.get_weights()[k]))) for k in wa if wa[k].dtype.kind == "f")
    assert moved > 1e-3
    for k in wa:
        np.testing.assert_allclose(wa[k], wb[k], rtol=0, atol=1e-6, err_msg=k)
    logits = plain.infer(x[:-3])["output"]
    np.testing.assert_allclose(logits, cached.infer(x[:-3])["output"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(logits, cache.infer_test()["output"], rtol=0, atol=1e-5)


def _plan(model: Any, trainable: str, layers: str = "fit") -> Any:
    from litetrain.trainable.bottleneck import plan_bottleneck
    from litetrain.trainable.loaders import Framework, LoadedModel
    from litetrain.trainable.module import TrainableModule

    loaded = LoadedModel(model, Framework.KERAS3, "test")
    module = TrainableModule(loaded, LossConfig.parse(SCCE, from_logits=True), OptimizerConfig(Optimizer.SGD, learning_rate=0.05), BATCH,
                             TrainableSpec.parse(trainable), layers=layers)
    return plan_bottleneck(module)


@pytest.mark.parametrize(("kwargs", "trainable", "layers", "reason"), [
    ({"dropout_below": True}, "last:2", "fit", "Dropout 'dropout"),
    ({"skip": True}, "last:2", "fit", "a connection across the cut"),
    ({}, "all", "fit", "nothing is frozen below the first trainable layer"),
    ({"flatten_first": True}, "all", "fit", "nothing with weights is frozen below 'flatten"),
    ({"augment": True}, "last:2", "fit", "RandomFlip 'random_flip"),
])
def test_no_bottleneck_when_caching_is_unsound(kwargs: dict[str, bool], trainable: str, layers: str,
                                               reason: str) -> None:
    plan = _plan(_base_and_head(**kwargs), trainable, layers)
    assert not plan and plan.cut is None
    assert reason in plan.reason
    assert plan.to_json()["signatures"] == []


def test_dropout_below_the_cut_is_fine_in_inference_layers() -> None:
    """With --layers inference every Dropout is inactive in train, so the frozen part is deterministic."""
    plan = _plan(_base_and_head(dropout_below=True), "last:2", "inference")
    assert plan and plan.cut.startswith("dropout") and plan.shape == (6,)


def test_a_build_without_a_cut_says_why_and_has_no_bottleneck_signatures(tmp_path: Path) -> None:
    from litetrain.trainable.builder import build

    result = build(_base_and_head(dropout_below=True), loss=LossConfig.parse(SCCE, from_logits=True),
                   batch_size=BATCH, trainable="last:2", output_dir=tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "build.json").read_text())
    assert saved["bottleneck"]["signatures"] == [] and "draws a new random mask" in saved["bottleneck"]["reason"]
    assert set(saved["signatures"]) == {"train", "infer", "infer_fixed", "save", "restore"}
    cache, why = FeatureCache.open(LiteRTRunner(result.tflite))
    assert cache is None and "no bottleneck/train_head/infer_head signatures" in why


def test_cli_train_uses_the_cache_and_reports_its_memory(built: Any, tmp_path: Path) -> None:
    model = tmp_path / "model.tflite"
    model.write_bytes(built.tflite)
    x, y = _data(44, seed=2)  # the last batch of each epoch is partial: train_head takes n as train does
    xt, yt = _data(16, seed=3)
    data = tmp_path / "data.npz"
    np.savez(data, x=x, y=y, x_test=xt, y_test=yt)
    reports = {}
    for name, extra in (("cached", []), ("plain", ["--no-feature-cache"])):
        out = tmp_path / f"{name}.json"
        args = ["train", str(model), "--data", str(data), "--epochs", "2", "--checkpoint-dir", str(tmp_path / name),
                "-q", "--json", str(out), *extra]
        assert main(args) == 0
        reports[name] = json.loads(out.read_text())
    cached, plain = reports["cached"], reports["plain"]
    assert cached["settings"]["feature_cache"] == "on"
    assert plain["settings"]["feature_cache"] == "off (--no-feature-cache)"
    assert cached["budget"]["feature_cache_bytes"] == (44 + 16) * 24 and cached["budget"]["feature_cache_seconds"] > 0
    assert plain["budget"]["feature_cache_bytes"] is None
    assert cached["steps"] == plain["steps"] == 2 * 6
    for a, b in zip(cached["epochs"], plain["epochs"], strict=True):
        assert abs(a["loss"] - b["loss"]) <= 1e-6 and a["accuracy"] == b["accuracy"]
    wa = load_checkpoint(cached["final_checkpoint"]).arrays
    wb = load_checkpoint(plain["final_checkpoint"]).arrays
    floats = [k for k in wa if wa[k].dtype.kind == "f"]
    assert floats
    for k in floats:
        np.testing.assert_allclose(wa[k], wb[k], rtol=0, atol=1e-6, err_msg=k)
