"""The float64 twin computes what the float32 model computes: every layer's state is carried over, or it is refused."""

from __future__ import annotations

import numpy as np
import pytest

from litetrain.errors import UnsupportedModelError
from litetrain.trainable.loaders import Framework
from litetrain.trainable.precision import float64_model


def _stateful_model(keras):
    """Normalization adapted on data of mean 5 / std 3, an adapted Discretization, BatchNorm with real statistics."""
    rng = np.random.default_rng(7)
    data = rng.normal(5.0, 3.0, (256, 4)).astype("float32")
    norm = keras.layers.Normalization(name="norm")
    norm.adapt(data)
    disc = keras.layers.Discretization(num_bins=4, output_mode="count", name="disc")
    disc.adapt(data)
    inp = keras.Input((4,))
    a = keras.layers.Dense(8, name="dense")(norm(inp))
    bn = keras.layers.BatchNormalization(name="bn")
    a = bn(a)
    b = keras.layers.Normalization(mean=1.0, variance=4.0, name="given")(disc(inp))
    h = keras.layers.Concatenate()([a, b])
    out = keras.layers.Dense(3, name="head")(keras.layers.Rescaling(0.5, offset=1.0)(h))
    model = keras.Model(inp, out)
    bn.moving_mean.assign(rng.normal(2.0, 1.0, 8).astype("float32"))
    bn.moving_variance.assign(rng.uniform(0.5, 4.0, 8).astype("float32"))
    bn.gamma.assign(rng.normal(1.0, 0.2, 8).astype("float32"))
    return model, data[:32]


@pytest.mark.parametrize("framework", [Framework.KERAS3, Framework.TF_KERAS])
def test_float64_clone_keeps_normalization_discretization_and_batchnorm_state(framework):
    keras = pytest.importorskip("keras" if framework is Framework.KERAS3 else "tf_keras")
    model, x = _stateful_model(keras)
    clone = float64_model(model, framework, sample_x=x)

    expected = np.asarray(model(x, training=False), np.float64)
    got = np.asarray(clone(x.astype(np.float64), training=False))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.max(np.abs(expected)))
    norm = clone.get_layer("norm")
    np.testing.assert_allclose(np.ravel(norm.mean), np.ravel(model.get_layer("norm").mean), rtol=1e-6)
    bn = clone.get_layer("bn")
    np.testing.assert_array_equal(np.asarray(bn.moving_variance), np.asarray(model.get_layer("bn").moving_variance))


def test_a_clone_that_lost_state_is_refused_naming_the_layer(monkeypatch):
    import keras

    model, x = _stateful_model(keras)
    # What the twin did before: the adapted mean and variance copied, but never turned into what the layer uses
    # (finalize_state runs once, when the clone's layer is built with mean 0 / variance 1, and then no more).
    original = keras.layers.Normalization.finalize_state

    def only_at_build(self):
        if not getattr(self, "_finalized_once", False):
            self._finalized_once = True
            original(self)

    monkeypatch.setattr(keras.layers.Normalization, "finalize_state", only_at_build)
    with pytest.raises(UnsupportedModelError, match=r"layer 'norm' \(Normalization\)"):
        float64_model(model, Framework.KERAS3, sample_x=x)


def test_rounding_amplified_by_the_model_is_not_mistaken_for_a_lost_state():
    import keras

    # BatchNorm subtracting a moving mean of 1000 from values near 1000 cancels most float32 bits: the whole
    # model's outputs differ from float64 by far more than 1e-5 of their scale, yet every layer is faithful.
    inp = keras.Input((6,))
    h = inp
    for i in range(3):
        dense = keras.layers.Dense(6, name=f"dense{i}")
        bn = keras.layers.BatchNormalization(name=f"bn{i}")
        h = bn(dense(h))
        dense.bias.assign(np.full(6, 1000.0, "float32"))
        bn.moving_mean.assign(np.full(6, 1000.0, "float32"))
    model = keras.Model(inp, h)
    clone = float64_model(model, Framework.KERAS3)

    x = np.random.default_rng(0).standard_normal((8, 6)).astype("float32")
    expected = np.asarray(model(x))
    assert np.max(np.abs(np.asarray(clone(x.astype(np.float64))) - expected)) > 1e-5 * np.max(np.abs(expected))


def test_float64_twin_of_a_module_infers_like_the_float32_model():
    import keras

    from litetrain.config import Loss, LossConfig, Optimizer, OptimizerConfig, TrainableSpec
    from litetrain.runtime.tensorflow import TensorflowModuleRunner
    from litetrain.trainable.loaders import LoadedModel
    from litetrain.trainable.module import TrainableModule
    from litetrain.trainable.precision import float64_module

    rng = np.random.default_rng(3)
    x = rng.normal(5.0, 3.0, (64, 4)).astype("float32")
    norm = keras.layers.Normalization()
    norm.adapt(x)
    model = keras.Sequential([keras.Input((4,)), norm, keras.layers.Dense(2, name="head")])
    module = TrainableModule(LoadedModel(model, Framework.KERAS3, "test"), LossConfig(Loss.MSE),
                             OptimizerConfig(Optimizer.SGD, learning_rate=0.01), 8, TrainableSpec())
    twin = TensorflowModuleRunner(float64_module(module, sample_x=x), name="float64")

    got = next(iter(twin.infer(x[:8]).values()))
    expected = np.asarray(model(x[:8]))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.max(np.abs(expected)))


def test_attention_and_operations_are_cloned_and_checked():
    import keras

    # MultiHeadAttention takes query and value as two arguments, and `h + inp` is a Keras operation, not a layer.
    inp = keras.Input((6, 8))
    h = keras.layers.MultiHeadAttention(2, 4, name="mha")(inp, inp)
    h = keras.layers.LayerNormalization(name="ln")(h + inp)
    model = keras.Model(inp, keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling1D()(h)))
    clone = float64_model(model, Framework.KERAS3)

    x = np.random.default_rng(0).standard_normal((4, 6, 8)).astype("float32")
    expected = np.asarray(model(x))
    got = np.asarray(clone(x.astype(np.float64)))
    assert got.dtype == np.float64 and clone.get_layer("mha").dtype == "float64"
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.max(np.abs(expected)))
