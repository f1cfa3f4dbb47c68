"""Tests of litetrain.trainable.gradients against real TensorFlow, Keras and LiteRT (no mocks).

Two levels:
- op level: each rewritten gradient equals TensorFlow's own gradient in TF, and the rewritten graph converts
  with TFLITE_BUILTINS only and gives the same values in LiteRT;
- layer level: small Keras 3 and tf_keras models whose SGD train step, traced inside ``builtin_gradients()``,
  converts builtin-only, runs in ai_edge_litert's Interpreter and reproduces TF's losses for 10 steps.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402
from tensorflow.python.framework import ops  # noqa: E402

from litetrain.trainable.gradients import REWRITES, builtin_gradients  # noqa: E402

# Gradient ops that TFLite only has as Flex ops; none may appear in a graph traced inside the context.
FLEX_GRADIENT_OPS = {
    "ReluGrad",
    "Relu6Grad",
    "LeakyReluGrad",
    "EluGrad",
    "SoftsignGrad",
    "Conv2DBackpropFilter",
    "DepthwiseConv2dNativeBackpropInput",
    "DepthwiseConv2dNativeBackpropFilter",
    "MaxPoolGrad",
    "AvgPoolGrad",
    "FusedBatchNormGrad",
    "FusedBatchNormGradV2",
    "FusedBatchNormGradV3",
    "StridedSliceGrad",
    "ResizeBilinearGrad",
    "ResizeNearestNeighborGrad",
}
STEPS = 10
BATCH = 4
LEARNING_RATE = 0.01
LOSS_ATOL = 1e-5


# --- shared helpers --------------------------------------------------------------------------------------


def convert(concrete_function: tf.types.experimental.ConcreteFunction, trackable: tf.Module) -> bytes:
    """Converts one concrete function with builtin ops only (raises if any op would need Flex)."""
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete_function], trackable)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.experimental_enable_resource_variables = True
    return converter.convert()


def signature_runner(model: bytes) -> Callable[..., dict[str, np.ndarray]]:
    """Returns the model's only signature runner in ai_edge_litert's Interpreter."""
    return Interpreter(model_content=model).get_signature_runner()


def op_types(concrete_function: tf.types.experimental.ConcreteFunction) -> set[str]:
    return {op.type for op in concrete_function.graph.get_operations()}


def assert_close(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    # Rewritten gradients sum the same float32 products in another order (and TFLite kernels use yet another
    # one); sums of a few hundred terms then differ by a few ulps of the largest values, so the tolerance
    # scales with the magnitude: 1e-5 of it is ~80 ulps.
    atol = 1e-5 * max(1.0, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=atol, err_msg=what)


def train_module(model: keras.Model | tf_keras.Model, keras3: bool) -> tf.Module:
    """A tf.Module with a fixed-batch SGD train step on MSE: ``train`` (to trace inside the context and
    convert) and ``reference`` (the same step traced with TensorFlow's own gradients)."""
    module = tf.Module()
    optimizer = (keras.optimizers.SGD if keras3 else tf_keras.optimizers.SGD)(LEARNING_RATE)
    optimizer.build(model.trainable_variables)
    if keras3:
        # Traced functions capture the tf.Variable inside each Keras 3 variable, which nothing tracks: without
        # these attributes the .tflite variables are never initialized.
        module.model_variables = [v.value for v in model.weights]
        module.optimizer_variables = [v.value for v in optimizer.variables]
    else:
        module.model, module.optimizer = model, optimizer

    def step(x: tf.Tensor, y: tf.Tensor) -> dict[str, tf.Tensor]:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=False) - y))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return {"loss": loss}

    # A fixed batch keeps tape gradients free of FlexBroadcastGradientArgs.
    spec = [
        tf.TensorSpec([BATCH, *model.input_shape[1:]], tf.float32),
        tf.TensorSpec([BATCH, *model.output_shape[1:]], tf.float32),
    ]
    module.train = tf.function(step, input_signature=spec)
    module.reference = tf.function(step, input_signature=spec)
    return module


def check_training(model: keras.Model | tf_keras.Model, keras3: bool) -> None:
    """Converts the model's rewritten train step builtin-only and compares 10 LiteRT steps with TF's."""
    module = train_module(model, keras3)
    with builtin_gradients():
        train = module.train.get_concrete_function()
    assert not op_types(train) & FLEX_GRADIENT_OPS
    run = signature_runner(convert(train, module))  # freezes the initial weights into the model
    rng = np.random.default_rng(0)
    # One batch, fitted for STEPS steps: its loss must fall, which shows that the weights trained (and did not
    # diverge, which would amplify float noise until any two runs disagree).
    x = rng.standard_normal((BATCH, *model.input_shape[1:])).astype(np.float32)
    y = rng.standard_normal((BATCH, *model.output_shape[1:])).astype(np.float32)
    lite = [float(run(x=x, y=y)["loss"]) for _ in range(STEPS)]
    reference = [float(module.reference(x, y)["loss"]) for _ in range(STEPS)]
    assert np.all(np.diff(reference) < 0), reference
    np.testing.assert_allclose(lite, reference, rtol=0, atol=LOSS_ATOL)


def set_batch_norm_statistics(model: keras.Model | tf_keras.Model, seed: int) -> None:
    """Gives every BatchNormalization non-trivial frozen statistics and affine weights."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if "BatchNormalization" in type(layer).__name__:
            channels = layer.gamma.shape[0]
            layer.moving_mean.assign(rng.normal(0.0, 0.5, channels).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, channels).astype(np.float32))
            layer.gamma.assign(rng.uniform(0.5, 1.5, channels).astype(np.float32))
            layer.beta.assign(rng.normal(0.0, 0.1, channels).astype(np.float32))


# --- op level --------------------------------------------------------------------------------------------


def _fused_batch_norm(x: tf.Tensor, scale: tf.Tensor, offset: tf.Tensor) -> tf.Tensor:
    return tf.compat.v1.nn.fused_batch_norm(
        x, scale, offset, mean=[0.1, -0.2, 0.3], variance=[1.0, 2.0, 0.5], epsilon=1e-3, is_training=False
    )[0]


def _gelu_inputs(rng: np.random.Generator) -> np.ndarray:
    # Both branches of the rewrite (|x| below and above 1e-3), exact zero, and saturated tails.
    special = [0.0, 1e-30, -1e-30, 1e-4, -1e-4, 1e-3, -1e-3, 2e-3, 5.0, -5.0, 10.0, -10.0]
    x = rng.standard_normal((4, 24)).astype(np.float32)
    x.flat[: len(special)] = special
    return x


X = (2, 9, 9, 3)
# id -> (function of the inputs, input shapes or a generator, integer-valued inputs to force ties)
OP_CASES: dict[str, tuple[Callable[..., tf.Tensor], Sequence, bool]] = {
    "relu": (tf.nn.relu, [X], False),
    "relu6": (lambda x: tf.nn.relu6(4.0 * x), [X], False),
    "leaky_relu": (lambda x: tf.nn.leaky_relu(x, alpha=0.3), [X], False),
    "elu": (tf.nn.elu, [X], False),
    "softsign": (tf.nn.softsign, [X], False),
    "gelu_exact": (lambda x: tf.nn.gelu(x, approximate=False), _gelu_inputs, False),
    "fused_batch_norm_frozen": (_fused_batch_norm, [X, (3,), (3,)], False),
    "conv2d_dilation2_same": (
        lambda x, w: tf.nn.conv2d(x, w, 1, "SAME", dilations=2),
        [X, (3, 3, 3, 4)],
        False,
    ),
    "conv2d_stride2_dilation2": (
        lambda x, w: tf.nn.conv2d(x, w, 2, "VALID", dilations=2),
        [X, (2, 2, 3, 4)],
        False,
    ),
    "conv2d_explicit_padding": (
        lambda x, w: tf.nn.conv2d(x, w, 2, [[0, 0], [1, 2], [0, 1], [0, 0]]),
        [X, (3, 3, 3, 4)],
        False,
    ),
    # 1x1 stride 1: both gradients as matrix products (BATCH_MATMUL).
    "conv2d_pointwise": (lambda x, w: tf.nn.conv2d(x, w, 1, "SAME"), [X, (1, 1, 3, 5)], False),
    "conv2d_pointwise_stride2": (lambda x, w: tf.nn.conv2d(x, w, 2, "SAME"), [X, (1, 1, 3, 5)], False),
    "depthwise_5x5_stride2_m3": (
        lambda x, w: tf.nn.depthwise_conv2d(x, w, [1, 2, 2, 1], "SAME"), [X, (5, 5, 3, 3)], False),
    "conv2d_rect_kernel_strides": (lambda x, w: tf.nn.conv2d(x, w, (2, 1), "SAME"), [X, (3, 2, 3, 4)], False),
    "depthwise_dilation2": (
        lambda x, w: tf.nn.depthwise_conv2d(x, w, [1, 1, 1, 1], "SAME", dilations=(2, 2)),
        [X, (3, 3, 3, 2)],
        False,
    ),
    "max_pool_3x2_stride_2x1": (lambda x: tf.nn.max_pool2d(x, (3, 2), (2, 1), "SAME"), [X], True),
    "avg_pool_3x2_stride_2x1": (lambda x: tf.nn.avg_pool2d(x, (3, 2), (2, 1), "SAME"), [X], False),
}
# Conv2DTranspose's forward op (Conv2DBackpropInput): output sizes that SAME/VALID and explicit padding give.
for _tag, _shape, _stride, _padding in (
    ("same_stride2", (2, 18, 18, 4), 2, "SAME"),
    ("valid_stride1", (2, 11, 11, 4), 1, "VALID"),
    ("valid_stride2_odd", (2, 20, 20, 4), 2, "VALID"),
    ("explicit_stride2", (2, 18, 17, 4), 2, [[0, 0], [1, 0], [1, 1], [0, 0]]),
):
    OP_CASES[f"conv2d_transpose_{_tag}"] = (
        lambda x, w, o=_shape, s=_stride, p=_padding: tf.nn.conv2d_transpose(x, w, o, s, p),
        [X, (3, 3, 4, 3)],
        False,
    )
OP_CASES["conv2d_transpose_dilation2"] = (
    lambda x, w: tf.nn.conv2d_transpose(x, w, (2, 13, 13, 4), 1, "VALID", dilations=2), [X, (3, 3, 4, 3)], False)
# StridedSlice: unit-step boxes (PAD), shrink/new axes and ellipsis, and strided or reversed slices (SCATTER_ND).
OP_CASES.update({
    "slice_box": (lambda x: x[:, 1:-2, 2:7, :2], [X], False),
    "slice_shrink_newaxis": (lambda x: x[1, ..., tf.newaxis, 0], [X], False),
    "slice_gate_split": (lambda w: w[:, 4:8] * 2.0, [(5, 12)], False),
    "slice_strided": (lambda x: x[:, ::2, 1::3, :], [X], False),
    "slice_reversed": (lambda x: x[:, ::-1, :, 1:], [X], False),
    "slice_empty": (lambda x: x[:, 5:3, :, :] + 0.0, [X], False),
    # Tile: UpSampling's repeat (a 5-D tile whose TF gradient is a 10-D SUM) and several tiled axes.
    "tile_repeat_rows_cols": (lambda x: tf.repeat(tf.repeat(x, 2, axis=1), 3, axis=2), [X], False),
    "tile_several_axes": (lambda x: tf.tile(x, [2, 1, 3, 1]), [X], False),
    "tile_last_axis": (lambda x: tf.tile(x, [1, 1, 1, 2]), [X], False),
    # Resizing: up and down, each corner/centre rule, nearest neighbour included.
    "resize_bilinear_up_half_pixel": (lambda x: tf.image.resize(x, (14, 20)), [X], False),
    "resize_bilinear_down_half_pixel": (lambda x: tf.image.resize(x, (4, 6)), [X], False),
    "resize_bilinear_align_corners": (
        lambda x: tf.compat.v1.image.resize_bilinear(x, (13, 7), align_corners=True), [X], False),
    "resize_bilinear_legacy": (lambda x: tf.compat.v1.image.resize_bilinear(x, (13, 7)), [X], False),
    "resize_nearest_up": (lambda x: tf.image.resize(x, (18, 27), method="nearest"), [X], False),
    "resize_nearest_down_align": (
        lambda x: tf.compat.v1.image.resize_nearest_neighbor(x, (5, 4), align_corners=True), [X], False),
})
for _stride in (1, 2):
    for _padding in ("SAME", "VALID"):
        _tag = f"stride{_stride}_{_padding.lower()}"
        OP_CASES[f"conv2d_{_tag}"] = (
            lambda x, w, s=_stride, p=_padding: tf.nn.conv2d(x, w, s, p),
            [X, (3, 3, 3, 4)],
            False,
        )
        for _mult in (1, 2):
            OP_CASES[f"depthwise_m{_mult}_{_tag}"] = (
                lambda x, w, s=_stride, p=_padding: tf.nn.depthwise_conv2d(x, w, [1, s, s, 1], p),
                [X, (3, 3, 3, _mult)],
                False,
            )
        for _pool in (2, 3):
            # Integer inputs make ties within windows common: TF routes a window's gradient to its first max.
            OP_CASES[f"max_pool{_pool}_{_tag}"] = (
                lambda x, k=_pool, s=_stride, p=_padding: tf.nn.max_pool2d(x, k, s, p),
                [X],
                True,
            )
            OP_CASES[f"avg_pool{_pool}_{_tag}"] = (
                lambda x, k=_pool, s=_stride, p=_padding: tf.nn.avg_pool2d(x, k, s, p),
                [X],
                False,
            )


def _gradient_function(fn: Callable[..., tf.Tensor], dy: np.ndarray) -> Callable[..., dict[str, tf.Tensor]]:
    def gradients(*inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            y = fn(*inputs)
        grads = tape.gradient(y, inputs, output_gradients=tf.constant(dy))
        return {f"grad_{i}": g for i, g in enumerate(grads)}

    return gradients


@pytest.mark.parametrize("case", sorted(OP_CASES))
def test_rewritten_gradient_matches_tensorflow_and_litert(case: str) -> None:
    fn, shapes, integer = OP_CASES[case]
    rng = np.random.default_rng(sorted(OP_CASES).index(case))
    if callable(shapes):
        inputs = [shapes(rng)]
    elif integer:
        inputs = [rng.integers(-2, 3, s).astype(np.float32) for s in shapes]
    else:
        inputs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    dy = rng.standard_normal(fn(*inputs).shape).astype(np.float32)
    spec = [tf.TensorSpec(x.shape, tf.float32, name=f"input_{i}") for i, x in enumerate(inputs)]

    reference = tf.function(_gradient_function(fn, dy), input_signature=spec).get_concrete_function()
    module = tf.Module()
    module.gradients = tf.function(_gradient_function(fn, dy), input_signature=spec)
    with builtin_gradients():
        rewritten = module.gradients.get_concrete_function()
    assert not op_types(rewritten) & FLEX_GRADIENT_OPS

    expected = {k: v.numpy() for k, v in reference(*inputs).items()}
    in_tf = rewritten(*inputs)
    in_litert = signature_runner(convert(rewritten, module))(
        **{f"input_{i}": x for i, x in enumerate(inputs)}
    )
    for key, value in expected.items():
        assert_close(in_tf[key].numpy(), value, f"{case} {key} (TensorFlow)")
        assert_close(in_litert[key], value, f"{case} {key} (LiteRT)")


def test_eager_tape_gradients_match() -> None:
    """Eager tapes use the registry too: the rewrites must work on EagerTensors (GELU's pattern match needs a
    graph and defers to TF's gradient)."""
    rng = np.random.default_rng(7)
    x = tf.constant(rng.integers(-2, 3, (2, 8, 8, 3)).astype(np.float32))
    w = tf.constant(rng.standard_normal((3, 3, 3, 2)).astype(np.float32))

    def gradients() -> list[tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            y = tf.nn.max_pool2d(tf.nn.gelu(tf.nn.relu(tf.nn.conv2d(x, w, 2, "SAME")), False), 3, 2, "SAME")
        return tape.gradient(y, [x, w])

    expected = gradients()
    with builtin_gradients():
        actual = gradients()
    for a, e in zip(actual, expected, strict=True):
        assert_close(a.numpy(), e.numpy(), "eager")


def test_unhandled_cases_keep_tensorflows_gradient() -> None:
    """Unknown spatial sizes and training-mode batch norm are outside the rewrites: TF's gradients stay."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 2)).astype(np.float32)
    scale = rng.uniform(0.5, 1.5, 3).astype(np.float32)

    def gradients(x: tf.Tensor, w: tf.Tensor, scale: tf.Tensor) -> list[tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch([x, w, scale])
            y = tf.nn.conv2d(x, w, 1, "SAME")
            y = tf.compat.v1.nn.fused_batch_norm(y, scale[:2], scale[1:], is_training=True)[0]
        return tape.gradient(y, [x, w, scale])

    spec = [tf.TensorSpec([None, None, None, 3]), tf.TensorSpec(w.shape), tf.TensorSpec(scale.shape)]
    with builtin_gradients():
        traced = tf.function(gradients, input_signature=spec).get_concrete_function()
    assert {"Conv2DBackpropFilter", "FusedBatchNormGradV3"} <= op_types(traced)
    for a, e in zip(traced(x, w, scale), tf.function(gradients)(x, w, scale), strict=True):
        np.testing.assert_array_equal(a.numpy(), e.numpy())


def test_registry_restored_after_nesting_and_exceptions() -> None:
    registry = ops._gradient_registry._registry
    original = {op_type: registry[op_type]["type"] for op_type in registry}
    with builtin_gradients():
        replaced = registry["Relu"]["type"]
        assert replaced is not original["Relu"]
        with builtin_gradients():
            assert registry["Relu"]["type"] is replaced
        assert registry["Relu"]["type"] is replaced  # the inner exit keeps the outer context's rewrites
    assert {op_type: registry[op_type]["type"] for op_type in registry} == original
    with pytest.raises(RuntimeError, match="boom"), builtin_gradients():
        raise RuntimeError("boom")
    assert {op_type: registry[op_type]["type"] for op_type in registry} == original


def test_rewrites_describe_each_forward_op() -> None:
    registry = ops._gradient_registry._registry
    for op_type, description in REWRITES.items():
        assert op_type in registry and description.strip(), op_type


# --- layer level -----------------------------------------------------------------------------------------

L = keras.layers
T = tf_keras.layers


def _keras3(layers: Sequence[keras.layers.Layer], input_shape: tuple[int, ...]) -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input(input_shape), *layers])


def test_keras3_activations_train_builtin_only() -> None:
    # Parallel branches rather than a deep stack, so every activation gets a sizeable gradient.
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    activations = [
        "relu",
        "relu6",
        "leaky_relu",
        "elu",
        "gelu",  # approximate=False: erfc
        lambda x: keras.activations.gelu(x, approximate=True),
        "sigmoid",
        "tanh",
        "softmax",
    ]
    branches = [L.Dense(8, activation=a)(inputs) for a in activations]
    branches.append(L.LeakyReLU(negative_slope=0.1)(L.Dense(8)(inputs)))
    features = L.Dropout(0.5)(L.Concatenate()(branches))
    check_training(keras.Model(inputs, L.Dense(3)(features)), keras3=True)


# Every activation that keras.activations names (threshold and glu take extra arguments or halve the width; they
# are covered as layers below).
ALL_ACTIVATIONS = sorted(
    name for name in dir(keras.activations)
    if not name.startswith("_") and name not in ("threshold", "glu", "get", "serialize", "deserialize")
)


@pytest.mark.parametrize("chunk", range(3))
def test_every_keras3_activation_trains_builtin_only(chunk: int) -> None:
    keras.utils.set_random_seed(chunk)
    inputs = keras.Input((6,))
    names = ALL_ACTIVATIONS[chunk::3]
    branches = [L.Dense(4, activation=name, name=f"act_{name}")(inputs) for name in names]
    if chunk == 0:
        branches.append(L.Activation(lambda t: keras.activations.threshold(t, 0.1, 0.0))(L.Dense(4)(inputs)))
        branches.append(L.Lambda(keras.activations.glu)(L.Dense(8)(inputs)))  # Activation would keep width 8
        branches.append(L.PReLU()(L.Dense(4)(inputs)))
        branches.append(L.ReLU(max_value=3.0, negative_slope=0.1, threshold=0.2)(L.Dense(4)(inputs)))
    check_training(keras.Model(inputs, L.Dense(3)(L.Concatenate()(branches))), keras3=True)


def test_keras3_decoder_trains_builtin_only_under_xnnpack() -> None:
    """UpSampling2D's repeat tiles with multiples packed at run time; TF's gradient of it is a 10-D SUM that
    XNNPACK refuses to prepare. Conv2DTranspose and bilinear upsampling complete the decoder."""
    check_training(_keras3([
        L.Conv2D(4, 3, padding="same", activation="relu"), L.MaxPooling2D(2),
        L.UpSampling2D(2), L.Conv2D(3, 3, padding="same", activation="relu"),
        L.Conv2DTranspose(3, 3, strides=2, padding="same", activation="relu"),
        L.UpSampling2D(interpolation="bilinear"), L.Conv2D(1, 3, padding="same"),
    ], (8, 8, 1)), keras3=True)


def test_keras3_conv2d_trains_builtin_only() -> None:
    model = _keras3(
        [
            L.Conv2D(4, 3, padding="same", activation="relu"),
            L.Conv2D(4, 3, strides=2, padding="valid"),
            L.Conv2D(4, 3, strides=2, padding="same"),
            L.Conv2D(4, 3, dilation_rate=2, padding="same"),
            L.Conv2D(4, 2, padding="valid"),
            L.Flatten(),
            L.Dense(3),
        ],
        (12, 12, 3),
    )
    check_training(model, keras3=True)


def test_keras3_depthwise_conv2d_trains_builtin_only() -> None:
    model = _keras3(
        [
            L.Conv2D(3, 1),
            L.DepthwiseConv2D(3, padding="same"),
            L.DepthwiseConv2D(3, strides=2, padding="valid", depth_multiplier=2),
            L.DepthwiseConv2D(3, strides=2, padding="same"),
            L.DepthwiseConv2D(2, padding="valid", depth_multiplier=2),
            L.GlobalAveragePooling2D(),
            L.Dense(3),
        ],
        (12, 12, 3),
    )
    check_training(model, keras3=True)


def test_keras3_pooling_add_concatenate_train_builtin_only() -> None:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((10, 10, 3))
    features = L.Conv2D(4, 1, activation="relu")(inputs)  # relu zeros make ties in max windows
    pooled = [
        L.Add()([L.MaxPooling2D()(features), L.AveragePooling2D(2)(features)]),
        L.MaxPooling2D(3, strides=2, padding="same")(features),
        L.AveragePooling2D(3, strides=2, padding="same")(features),
    ]
    flat = L.Concatenate()([L.Flatten()(p) for p in pooled])
    check_training(keras.Model(inputs, L.Dense(3)(flat)), keras3=True)


def test_keras3_batch_norm_reshape_train_builtin_only() -> None:
    model = _keras3(
        [L.Conv2D(4, 1), L.BatchNormalization(), L.Reshape((36, 4)), L.Flatten(), L.Dense(3)], (6, 6, 3)
    )
    set_batch_norm_statistics(model, seed=1)
    check_training(model, keras3=True)


def test_tf_keras_cnn_trains_builtin_only() -> None:
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential(
        [
            T.InputLayer((10, 10, 3)),
            T.Conv2D(4, 3, padding="same", activation="relu"),
            T.BatchNormalization(),  # FusedBatchNormV3 in tf_keras
            T.MaxPooling2D(),
            T.Conv2D(4, 3, strides=2, padding="valid"),
            T.Flatten(),
            T.Dense(3),
        ]
    )
    set_batch_norm_statistics(model, seed=2)
    check_training(model, keras3=False)


def test_tf_keras_depthwise_pooling_gelu_train_builtin_only() -> None:
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential(
        [
            T.InputLayer((10, 10, 3)),
            T.Conv2D(4, 1, activation="relu"),
            T.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="gelu"),
            T.AveragePooling2D(3, strides=2, padding="same"),
            T.MaxPooling2D(3, strides=2, padding="same"),
            T.Flatten(),
            T.Dense(3),
        ]
    )
    check_training(model, keras3=False)


@pytest.mark.parametrize("keras3", [True, False], ids=["keras3", "tf_keras"])
def test_plain_train_step_without_context_is_not_builtin_only(keras3: bool) -> None:
    """Guards the premise: without the context, TF's gradients of these layers need Flex ops."""
    if keras3:
        model = _keras3(
            [L.Conv2D(3, 3, activation="relu"), L.MaxPooling2D(), L.Flatten(), L.Dense(2)], (6, 6, 3)
        )
    else:
        model = tf_keras.Sequential(
            [T.InputLayer((6, 6, 3)), T.Conv2D(3, 3), T.BatchNormalization(), T.Flatten()]
        )
    module = train_module(model, keras3)
    assert op_types(module.train.get_concrete_function()) & FLEX_GRADIENT_OPS
