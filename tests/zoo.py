"""The model zoo: real architectures as their tutorials write them, each with its data (cf. Polygraphy's
``tests/models/meta.py``).

Every entry builds a Keras model with ``weights=None`` at a small input size, compiled with the loss and optimizer
its tutorial uses, and names the data, the ``--trainable`` spec, the number of steps and the batch size that
``litetrain.check`` runs it with. ``tests/test_zoo.py`` checks each one and ``dev/zoo_table.py`` turns the same runs
into the README's coverage table.

Where the real model ships pretrained BatchNormalization statistics, a random-init model at its initial statistics
outputs near-zero features (FACTS.md, "Real models"), so a head on it learns nothing; :func:`calibrate_batchnorm`
sets them from one batch of the entry's own data instead. All data is built in code (seeded numpy generators) or
comes from scikit-learn's bundled datasets: nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from litetrain.data.dataset import Dataset

CALIBRATION_SAMPLES = 64
"""Samples of the entry's training data that set the BatchNorm statistics (one batch, like a pretrained model's)."""


@dataclasses.dataclass(frozen=True)
class ZooModel:
    """One architecture of the zoo and how ``litetrain.check`` runs it."""

    name: str
    family: str
    factory: Callable[[], Any]
    """Returns a fresh (compiled) Keras model; ``check`` seeds the weights before calling it."""
    data: Callable[[], Dataset]
    trainable: str = "all"
    steps: int = 20
    batch_size: int = 8
    slow: bool = False
    """Marked ``zoo_slow`` (``dev/zoo_table.py --only slow``): the larger Keras applications, whose SavedModel save
    and conversion take longest."""
    known_issue: str | None = None
    """An open finding that makes this entry fail today (its test is a strict xfail: it fails once fixed)."""

    def check_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``litetrain.check`` for this entry (model and data included)."""
        return {"model": self.factory, "data": self.data(), "trainable": self.trainable, "steps": self.steps,
                "batch_size": self.batch_size}


# --------------------------------------------------------------------------------------------------------- data


def _split(name: str, x: Any, y: Any, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """A seeded shuffle and split; ``x``/``y`` may be arrays or dicts of arrays (one per model input/output)."""
    n = len(next(iter(x.values()))) if isinstance(x, dict) else len(x)
    order = np.random.default_rng(seed).permutation(n)
    cut = int(n * (1 - test_fraction))
    tr, te = order[:cut], order[cut:]

    def take(a: Any, idx: np.ndarray) -> Any:
        return {k: v[idx] for k, v in a.items()} if isinstance(a, dict) else a[idx]

    return Dataset(name, take(x, tr), take(y, tr), take(x, te), take(y, te))


@functools.cache
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.images / 16.0).astype(np.float32), bunch.target.astype(np.int32)


@functools.cache
def digit_images(size: int, channels: int = 1, scale: float = 1.0, samples: int = 480) -> Dataset:
    """Digits resized to ``size`` x ``size``, ``channels`` copies, values in [0, scale] (255: raw pixels)."""
    from scipy.ndimage import zoom

    x, y = _digits_arrays()
    x, y = x[:samples], y[:samples]
    if size != 8:
        x = np.clip(zoom(x, (1, size / 8, size / 8), order=1), 0.0, 1.0)
    x = np.repeat(x[..., None], channels, axis=-1) * scale
    return _split(f"digits:{size}x{size}x{channels}", x.astype(np.float32), y)


TINTS = np.array([[0.4, -0.16, -0.16], [-0.16, 0.4, -0.16], [-0.16, -0.16, 0.4], [0.24, 0.24, -0.32]])


@functools.cache
def tinted_images(size: int, noise: float = 0.02, samples: int = 320, seed: int = 14) -> Dataset:
    """RGB images (raw 0..255 pixels) whose class is their colour cast, over a faint smooth texture.

    A randomly initialized base stands in for a pretrained one in the zoo, and its features keep colour but lose
    most shape (the digits' classes are near chance in MobileNetV2's random features), so a transfer head can only
    learn a class that colour carries.
    """
    from scipy.ndimage import zoom

    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(TINTS), size=samples)
    texture = zoom(rng.standard_normal((samples, 8, 8, 3)), (1, size / 8, size / 8, 1), order=1)
    x = 255.0 * np.clip(0.5 + noise * texture + TINTS[y][:, None, None, :], 0.0, 1.0)
    return _split(f"tinted:{size}x{size}", x.astype(np.float32), y.astype(np.int32))


@functools.cache
def digit_autoencoder(size: int = 16, samples: int = 480) -> Dataset:
    """Digits as both input and target (an autoencoder's data)."""
    ds = digit_images(size, 1, 1.0, samples)
    return Dataset(f"digits-autoencoder:{size}x{size}", ds.x, ds.x.copy(), ds.x_test, ds.x_test.copy())


VOCAB = 200
POSITIVE = np.arange(2, 22)
NEGATIVE = np.arange(22, 42)
PLANTED_FRACTION = 3 / 8


@functools.cache
def token_ids(length: int = 16, samples: int = 512, padded: bool = False, seed: int = 11) -> Dataset:
    """Int32 token-id sequences (0 is padding, ids 1..VOCAB-1) labelled 1 when "positive" tokens outnumber
    "negative" ones, like a sentiment data set after ``TextVectorization``."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, VOCAB, size=(samples, length)).astype(np.int32)
    label = rng.integers(0, 2, size=samples)
    # Plant a few tokens of the label's kind so the label is learnable from the bag of tokens.
    planted_count = max(3, int(length * PLANTED_FRACTION))
    planted = rng.integers(0, length, size=(samples, planted_count))
    for i in range(samples):
        pool = POSITIVE if label[i] else NEGATIVE
        x[i, planted[i]] = rng.choice(pool, size=planted_count)
    if padded:  # variable lengths, zero-padded at the end (what TextVectorization's output looks like)
        lengths = rng.integers(length // 2, length + 1, size=samples)
        x[np.arange(length)[None, :] >= lengths[:, None]] = 0
    return _split(f"tokens:{length}{'-padded' if padded else ''}", x, label.astype(np.float32))


@functools.cache
def waveforms(length: int = 128, classes: int = 4, samples: int = 384, seed: int = 12) -> Dataset:
    """Noisy tones (one channel); the class is the tone's frequency band, like a keyword-spotting toy set."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=samples)
    t = np.arange(length) / length
    freq = 4.0 + 6.0 * y + rng.uniform(-1.0, 1.0, size=samples)
    phase = rng.uniform(0, 2 * np.pi, size=samples)
    x = np.sin(2 * np.pi * freq[:, None] * t[None, :] + phase[:, None]) + 0.3 * rng.standard_normal((samples, length))
    return _split(f"tones:{length}", x[..., None].astype(np.float32), y.astype(np.int32))


@functools.cache
def breast_cancer() -> Dataset:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    return _split("breast_cancer", bunch.data.astype(np.float32), bunch.target.astype(np.float32))


@functools.cache
def diabetes() -> Dataset:
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(scaled=False)  # raw features and targets (25..346), as a user has them
    return _split("diabetes", bunch.data.astype(np.float32), bunch.target.astype(np.float32)[:, None])


@functools.cache
def two_tower_data(samples: int = 512, seed: int = 13) -> Dataset:
    """User and item feature vectors (one array per named input); label: does the user like the item."""
    rng = np.random.default_rng(seed)
    user = rng.standard_normal((samples, 8)).astype(np.float32)
    item = rng.standard_normal((samples, 6)).astype(np.float32)
    w = rng.standard_normal((8, 6)).astype(np.float32)
    like = (np.einsum("ni,ij,nj->n", user, w, item) > 0).astype(np.float32)
    return _split("two-tower", {"user": user, "item": item}, like)


@functools.cache
def multi_task_data(samples: int = 480) -> Dataset:
    """Digits with two targets (one array per named output): the class and the amount of ink (regression)."""
    x, y = _digits_arrays()
    x = x[:samples].reshape(samples, 64)
    ink = x.mean(axis=1, keepdims=True).astype(np.float32)
    return _split("digits-multi-task", x, {"digit": y[:samples], "ink": ink})


# ------------------------------------------------------------------------------------------------------ helpers


def _keras() -> Any:
    import keras

    return keras


def _all_layers(model: Any) -> list[Any]:
    return list(model._flatten_layers(include_self=False, recursive=True))


def calibrate_batchnorm(model: Any, x: np.ndarray) -> Any:
    """Sets every BatchNormalization's moving statistics from one batch, standing in for pretrained ones.

    Momentum 0 and one call with ``training=True`` make the moving mean and variance equal that batch's; the
    momentum is restored afterwards. Call it before freezing layers: frozen BatchNorm ignores ``training``.
    """
    bns = [layer for layer in _all_layers(model) if "BatchNormalization" in type(layer).__name__]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 0.0
    model(x, training=True)
    for bn, m in zip(bns, momenta, strict=True):
        bn.momentum = m
    return model


def _calibration_x(data: Callable[[], Dataset], transform: Callable[[np.ndarray], np.ndarray] | None = None):
    x = data().x[:CALIBRATION_SAMPLES]
    return transform(x) if transform else x


# ------------------------------------------------------------------------------------ Keras applications (images)

IMAGE = 32  # the smallest input every application below accepts


def _images() -> Dataset:
    return tinted_images(IMAGE)  # raw pixel values; each model rescales as its tutorial does


FINE_TUNE_TEXTURE = 0.25


def _textured_images() -> Dataset:
    """The same classes over a strong texture, for full fine-tuning: BatchNorm statistics calibrated on nearly flat
    images have tiny variances, and dividing by them makes every float32 rounding difference explode within a few
    steps (the noise floor itself moved weights by ~500), which judges the data, not the conversion."""
    return tinted_images(IMAGE, noise=FINE_TUNE_TEXTURE)


def _image_data(fine_tune: bool) -> Callable[[], Dataset]:
    return _textured_images if fine_tune else _images


def _transfer_classifier(keras: Any, base: Any, inputs: Any, x: Any, classes: int = len(TINTS),
                         lr: float = 1e-3) -> Any:
    """The transfer-learning tutorial's head: ``base(x, training=False)``, global pooling, dropout, a Dense."""
    h = base(x, training=False)
    if len(h.shape) == 4:
        h = keras.layers.GlobalAveragePooling2D()(h)
    h = keras.layers.Dropout(0.2)(h)
    outputs = keras.layers.Dense(classes)(h)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def mobilenet_v2(fine_tune: bool) -> Any:
    """TensorFlow's "Transfer learning and fine-tuning" tutorial: MobileNetV2 with ``Rescaling(1/127.5, -1)``."""
    keras = _keras()
    base = keras.applications.MobileNetV2(input_shape=(IMAGE, IMAGE, 3), alpha=0.35, include_top=False,
                                          weights=None)
    calibrate_batchnorm(base, _calibration_x(_image_data(fine_tune), lambda x: x / 127.5 - 1.0))
    base.trainable = fine_tune
    inputs = keras.Input((IMAGE, IMAGE, 3))
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1)(inputs)
    return _transfer_classifier(keras, base, inputs, x, lr=1e-4 if fine_tune else 1e-3)


def mobilenet_v3_small(fine_tune: bool) -> Any:
    """MobileNetV3Small with its built-in preprocessing (raw 0..255 pixels in)."""
    keras = _keras()
    base = keras.applications.MobileNetV3Small(input_shape=(IMAGE, IMAGE, 3), include_top=False, weights=None,
                                               pooling="avg")
    calibrate_batchnorm(base, _calibration_x(_image_data(fine_tune)))
    base.trainable = fine_tune
    inputs = keras.Input((IMAGE, IMAGE, 3))
    return _transfer_classifier(keras, base, inputs, inputs, lr=1e-4 if fine_tune else 1e-3)


def efficientnet_b0(fine_tune: bool) -> Any:
    """Keras' "Image classification via fine-tuning with EfficientNet": EfficientNetB0, raw pixels in."""
    keras = _keras()
    base = keras.applications.EfficientNetB0(input_shape=(IMAGE, IMAGE, 3), include_top=False, weights=None)
    calibrate_batchnorm(base, _calibration_x(_image_data(fine_tune)))
    base.trainable = fine_tune
    inputs = keras.Input((IMAGE, IMAGE, 3))
    return _transfer_classifier(keras, base, inputs, inputs, lr=1e-4 if fine_tune else 1e-3)


def _resnet_base(keras: Any) -> Any:
    """A ResNet v1 in the style of Keras' CIFAR-10 ResNet example: conv-BN-ReLU, three stages of one residual
    block, strided 3x3 convolutions and 1x1 projection shortcuts between stages."""
    layers = keras.layers

    def conv_bn(x: Any, filters: int, strides: int = 1, activation: bool = True) -> Any:
        x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.Activation("relu")(x) if activation else x

    inputs = keras.Input((IMAGE, IMAGE, 3))
    x = conv_bn(layers.Rescaling(1.0 / 255)(inputs), 8)
    for stage, filters in enumerate((8, 16, 32)):
        strides = 1 if stage == 0 else 2
        y = conv_bn(x, filters, strides)
        y = conv_bn(y, filters, activation=False)
        if strides != 1:
            x = layers.Conv2D(filters, 1, strides=strides, padding="same")(x)
        x = layers.Activation("relu")(layers.Add()([x, y]))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, x, name="resnet_small")


def resnet_small(fine_tune: bool) -> Any:
    keras = _keras()
    base = _resnet_base(keras)
    calibrate_batchnorm(base, _calibration_x(_image_data(fine_tune)))
    base.trainable = fine_tune
    inputs = keras.Input((IMAGE, IMAGE, 3))
    return _transfer_classifier(keras, base, inputs, inputs, lr=1e-3 if fine_tune else 1e-2)


def tf_keras_mobilenet_v2() -> Any:
    """The transfer-learning tutorial as written for TF 2 / tf.keras (``tf_keras``)."""
    import tf_keras

    base = tf_keras.applications.MobileNetV2(input_shape=(IMAGE, IMAGE, 3), alpha=0.35, include_top=False,
                                             weights=None)
    calibrate_batchnorm(base, _calibration_x(_images, lambda x: x / 127.5 - 1.0))
    base.trainable = False
    inputs = tf_keras.Input((IMAGE, IMAGE, 3))
    x = tf_keras.layers.Rescaling(1.0 / 127.5, offset=-1)(inputs)
    x = base(x, training=False)
    x = tf_keras.layers.GlobalAveragePooling2D()(x)
    x = tf_keras.layers.Dropout(0.2)(x)
    outputs = tf_keras.layers.Dense(len(TINTS))(x)
    model = tf_keras.Model(inputs, outputs)
    model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate=1e-3),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


# ------------------------------------------------------------------------------------------------------- text

TEXT_LEN = 16


def _text() -> Dataset:
    return token_ids(TEXT_LEN)


def _binary_text_model(keras: Any, body: Callable[[Any], Any], length: int = TEXT_LEN, mask_zero: bool = False,
                       lr: float = 1e-3) -> Any:
    inputs = keras.Input((length,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, 16, mask_zero=mask_zero)(inputs)
    outputs = keras.layers.Dense(1)(body(x))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def text_embedding_pool() -> Any:
    """TensorFlow's "Basic text classification": Embedding, Dropout, GlobalAveragePooling1D, Dropout, Dense(1)."""
    keras = _keras()
    layers = keras.layers
    return _binary_text_model(
        keras, lambda x: layers.Dropout(0.2)(layers.GlobalAveragePooling1D()(layers.Dropout(0.2)(x))), lr=1e-2)


def text_lstm() -> Any:
    keras = _keras()
    return _binary_text_model(keras, lambda x: keras.layers.LSTM(16)(x), lr=1e-2)


def text_gru() -> Any:
    keras = _keras()
    return _binary_text_model(keras, lambda x: keras.layers.GRU(16)(x), lr=1e-2)


def text_bilstm() -> Any:
    """TensorFlow's "Text classification with an RNN": Embedding(mask_zero=True), Bidirectional(LSTM), Dense."""
    keras = _keras()
    layers = keras.layers
    return _binary_text_model(
        keras, lambda x: layers.Dense(16, activation="relu")(layers.Bidirectional(layers.LSTM(16))(x)),
        mask_zero=True, lr=1e-2)


def text_simple_rnn() -> Any:
    keras = _keras()
    return _binary_text_model(keras, lambda x: keras.layers.SimpleRNN(16)(x), lr=1e-2)


CONV_TEXT_LEN = 40


def text_conv1d() -> Any:
    """Keras' "Text classification from scratch": two strided Conv1D, GlobalMaxPooling1D, Dense, sigmoid output."""
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input((CONV_TEXT_LEN,), dtype="int64")
    x = layers.Embedding(VOCAB, 32)(inputs)
    x = layers.Dropout(0.5)(x)
    x = layers.Conv1D(32, 7, padding="valid", activation="relu", strides=3)(x)
    x = layers.Conv1D(32, 7, padding="valid", activation="relu", strides=3)(x)
    x = layers.GlobalMaxPooling1D()(x)
    x = layers.Dense(32, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(1, activation="sigmoid", name="predictions")(x)
    model = keras.Model(inputs, outputs)
    model.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam(3e-3), metrics=["accuracy"])
    return model


def _transformer_layers(keras: Any) -> tuple[type, type]:
    layers = keras.layers

    class TransformerBlock(layers.Layer):
        def __init__(self, embed_dim: int, num_heads: int, ff_dim: int, rate: float = 0.1, **kwargs: Any):
            super().__init__(**kwargs)
            self.att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
            self.ffn = keras.Sequential([layers.Dense(ff_dim, activation="relu"), layers.Dense(embed_dim)])
            self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
            self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
            self.dropout1 = layers.Dropout(rate)
            self.dropout2 = layers.Dropout(rate)

        def call(self, inputs: Any, training: Any = None) -> Any:
            attn_output = self.att(inputs, inputs)
            attn_output = self.dropout1(attn_output, training=training)
            out1 = self.layernorm1(inputs + attn_output)
            ffn_output = self.ffn(out1)
            ffn_output = self.dropout2(ffn_output, training=training)
            return self.layernorm2(out1 + ffn_output)

    class TokenAndPositionEmbedding(layers.Layer):
        def __init__(self, maxlen: int, vocab_size: int, embed_dim: int, **kwargs: Any):
            super().__init__(**kwargs)
            self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
            self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

        def call(self, x: Any) -> Any:
            maxlen = keras.ops.shape(x)[-1]
            positions = keras.ops.arange(start=0, stop=maxlen, step=1)
            return self.token_emb(x) + self.pos_emb(positions)

    return TransformerBlock, TokenAndPositionEmbedding


def text_transformer() -> Any:
    """Keras' "Text classification with Transformer" (its TransformerBlock and TokenAndPositionEmbedding)."""
    keras = _keras()
    layers = keras.layers
    transformer_block, token_and_position = _transformer_layers(keras)
    inputs = layers.Input(shape=(TEXT_LEN,))
    x = token_and_position(TEXT_LEN, VOCAB, 16)(inputs)
    x = transformer_block(16, 2, 16)(x)
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dropout(0.1)(x)
    x = layers.Dense(16, activation="relu")(x)
    x = layers.Dropout(0.1)(x)
    outputs = layers.Dense(2, activation="softmax")(x)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def tf_keras_lstm() -> Any:
    """A text LSTM written against ``tf_keras`` (TF 2's tf.keras)."""
    import tf_keras

    model = tf_keras.Sequential([
        tf_keras.Input((TEXT_LEN,), dtype="int32"),
        tf_keras.layers.Embedding(VOCAB, 16),
        tf_keras.layers.LSTM(16),
        tf_keras.layers.Dense(1),
    ])
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-2),
                  loss=tf_keras.losses.BinaryCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


# -------------------------------------------------------------------------------------- audio / time series


def _tones() -> Dataset:
    return waveforms()


def audio_conv1d() -> Any:
    """Keras' "Timeseries classification from scratch": three Conv1D-BN-ReLU, GlobalAveragePooling1D, softmax."""
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input((128, 1))
    x = inputs
    for _ in range(3):
        x = layers.Conv1D(filters=16, kernel_size=3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling1D()(x)
    outputs = layers.Dense(4, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    calibrate_batchnorm(model, _calibration_x(_tones))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["sparse_categorical_accuracy"])
    return model


# ----------------------------------------------------------------------------------------------- convolutions


def _digits16() -> Dataset:
    return digit_images(16)


def _digits16_rgb() -> Dataset:
    return digit_images(16, 3, 255.0)


def _compile_classifier(keras: Any, model: Any, lr: float = 3e-3) -> Any:
    model.compile(optimizer=keras.optimizers.Adam(lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def conv_autoencoder() -> Any:
    """A convolutional autoencoder (TensorFlow's "Intro to Autoencoders"): Conv2D + MaxPooling2D encoder,
    UpSampling2D and a strided Conv2DTranspose decoder, sigmoid output, mse."""
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input((16, 16, 1))
    x = layers.Conv2D(8, 3, activation="relu", padding="same")(inputs)
    x = layers.MaxPooling2D(2, padding="same")(x)
    x = layers.Conv2D(4, 3, activation="relu", padding="same")(x)
    encoded = layers.MaxPooling2D(2, padding="same")(x)
    x = layers.UpSampling2D(2)(encoded)
    x = layers.Conv2D(4, 3, activation="relu", padding="same")(x)
    x = layers.Conv2DTranspose(8, 3, strides=2, activation="relu", padding="same")(x)
    outputs = layers.Conv2D(1, 3, activation="sigmoid", padding="same")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mse")
    return model


def cnn_group_norm() -> Any:
    keras = _keras()
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((16, 16, 1)),
        layers.Conv2D(8, 3, padding="same"),
        layers.GroupNormalization(groups=4),
        layers.Activation("relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(8, 3, padding="same"),
        layers.GroupNormalization(groups=2),
        layers.Activation("relu"),
        layers.Flatten(),
        layers.Dense(10),
    ])
    return _compile_classifier(keras, model)


def mini_xception() -> Any:
    """Keras' "Image classification from scratch" (a small Xception): Rescaling, strided Conv2D, SeparableConv2D
    blocks with BatchNorm, MaxPooling2D and strided 1x1 residual projections, GlobalAveragePooling2D."""
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input((16, 16, 3))
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.Conv2D(16, 3, strides=2, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    previous_block_activation = x
    for size in (16, 32):
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        residual = layers.Conv2D(size, 1, strides=2, padding="same")(previous_block_activation)
        x = layers.add([x, residual])
        previous_block_activation = x
    x = layers.SeparableConv2D(48, 3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.25)(x)
    outputs = layers.Dense(10, activation=None)(x)
    model = keras.Model(inputs, outputs)
    calibrate_batchnorm(model, _calibration_x(_digits16_rgb))
    return _compile_classifier(keras, model)


def cnn_dilated_strided() -> Any:
    keras = _keras()
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((16, 16, 1)),
        layers.Conv2D(8, 3, dilation_rate=2, padding="same", activation="relu"),
        layers.Conv2D(8, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2D(8, 3, strides=2, padding="valid", activation="relu"),
        layers.Flatten(),
        layers.Dense(10),
    ])
    return _compile_classifier(keras, model)


def cnn_crop_pad() -> Any:
    keras = _keras()
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((16, 16, 1)),
        layers.ZeroPadding2D(2),
        layers.Conv2D(8, 3, activation="relu"),
        layers.Cropping2D(((1, 2), (2, 1))),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(10),
    ])
    return _compile_classifier(keras, model)


# -------------------------------------------------------------------------------- several inputs or outputs


def two_tower() -> Any:
    """A two-tower recommender: user and item towers, their dot product, a sigmoid."""
    keras = _keras()
    layers = keras.layers
    user = keras.Input((8,), name="user")
    item = keras.Input((6,), name="item")
    u = layers.Dense(16, activation="relu")(user)
    u = layers.Dense(8)(u)
    v = layers.Dense(16, activation="relu")(item)
    v = layers.Dense(8)(v)
    score = layers.Dot(axes=1)([u, v])
    outputs = layers.Dense(1, activation="sigmoid", name="like")(score)
    model = keras.Model({"user": user, "item": item}, outputs)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def multi_task() -> Any:
    """A shared trunk with two heads, per-output losses and ``loss_weights`` (Keras' functional API guide)."""
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input((64,), name="pixels")
    h = layers.Dense(32, activation="relu")(inputs)
    digit = layers.Dense(10, name="digit")(h)
    ink = layers.Dense(1, name="ink")(h)
    model = keras.Model(inputs, {"digit": digit, "ink": ink})
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss={"digit": keras.losses.SparseCategoricalCrossentropy(from_logits=True), "ink": "mse"},
        loss_weights={"digit": 1.0, "ink": 0.5},
    )
    return model


# ------------------------------------------------------------------------------------------------------ LoRA


def lora_dense() -> Any:
    """An MLP whose hidden Dense layers get ``enable_lora(4)`` (the kernels freeze; only the LoRA factors and
    the head train), as Keras' LoRA guides do to a "pretrained" model."""
    keras = _keras()
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((8, 8)),
        layers.Flatten(),
        layers.Dense(32, activation="relu", name="hidden1"),
        layers.Dense(32, activation="relu", name="hidden2"),
        layers.Dense(10, name="head"),
    ])
    for name in ("hidden1", "hidden2"):
        model.get_layer(name).enable_lora(4)
    return _compile_classifier(keras, model, lr=1e-2)


def lora_einsum_dense() -> Any:
    """EinsumDense layers (what attention projections are made of) with ``enable_lora(4)``."""
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input((8, 8))
    x = layers.EinsumDense("abc,cd->abd", output_shape=(8, 16), bias_axes="d", activation="tanh", name="proj")(inputs)
    x = layers.EinsumDense("abd,bde->ae", output_shape=32, bias_axes="e", activation="tanh", name="mix")(x)
    outputs = layers.Dense(10, name="head")(x)
    model = keras.Model(inputs, outputs)
    for name in ("proj", "mix"):
        model.get_layer(name).enable_lora(4)
    return _compile_classifier(keras, model, lr=1e-2)


# --------------------------------------------------------------------------------------------------- tabular


def tabular_normalization() -> Any:
    """Structured data: a Normalization layer adapted to the training set, Dense layers, a sigmoid."""
    keras = _keras()
    layers = keras.layers
    normalizer = layers.Normalization(axis=-1)
    normalizer.adapt(breast_cancer().x)
    model = keras.Sequential([
        keras.Input((30,)),
        normalizer,
        layers.Dense(16, activation="relu"),
        layers.Dropout(0.2),
        layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def diabetes_regression() -> Any:
    """TensorFlow's "Basic regression" recipe on load_diabetes: Normalization, two Dense(64), mean absolute error."""
    keras = _keras()
    layers = keras.layers
    normalizer = layers.Normalization(axis=-1)
    normalizer.adapt(diabetes().x)
    model = keras.Sequential([
        keras.Input((10,)),
        normalizer,
        layers.Dense(64, activation="relu"),
        layers.Dense(64, activation="relu"),
        layers.Dense(1),
    ])
    model.compile(loss="mean_absolute_error", optimizer=keras.optimizers.Adam(0.001))
    return model


# ----------------------------------------------------------------------------------------------------- registry


# A convolution feeding a training-mode BatchNorm has an ill-conditioned filter gradient (the x*dy terms over
# N*H*W cancel: BatchNorm gives dy zero mean per channel). TFLite sums it in one float32 chain (a CONV_2D with dy as
# the filter, run by the builtin GEMM), 4-38x less precisely than TensorFlow's Conv2DBackpropFilter, and Adam's
# g/(|g|+eps) makes elements near eps differ visibly: resnet_small's step-1 kernel updates 1.8-199% apart, TFLite
# 2.5e-3 from the float64 twin where TensorFlow is 6.5e-5 (README, "Open finding").
BATCHNORM_TRAINING_PRECISION = (
    "open finding: full fine-tuning in fit mode is inconsistent because TFLite sums the filter gradients of "
    "convolutions that feed training-mode BatchNorm (terms that cancel) far less precisely than TensorFlow"
)


def _apps(name: str, family: str, factory: Callable[[bool], Any], slow_finetune: bool = True,
          slow_transfer: bool = False, finetune_issue: str | None = None) -> list[ZooModel]:
    return [
        ZooModel(f"{name}-transfer", family, functools.partial(factory, False), _images, trainable="last:1",
                 steps=20, batch_size=8, slow=slow_transfer),
        ZooModel(f"{name}-finetune", family, functools.partial(factory, True), _textured_images, trainable="all",
                 steps=10, batch_size=8, slow=slow_finetune, known_issue=finetune_issue),
    ]


ZOO: tuple[ZooModel, ...] = (
    *_apps("mobilenet_v2", "keras application", mobilenet_v2,
          finetune_issue=BATCHNORM_TRAINING_PRECISION),
    *_apps("mobilenet_v3_small", "keras application", mobilenet_v3_small, slow_transfer=True),
    *_apps("efficientnet_b0", "keras application", efficientnet_b0, slow_transfer=True),
    *_apps("resnet_small", "resnet-style cnn", resnet_small, slow_finetune=False,
          finetune_issue=BATCHNORM_TRAINING_PRECISION),
    ZooModel("tf_keras-mobilenet_v2-transfer", "tf_keras", tf_keras_mobilenet_v2, _images, trainable="last:1",
             slow=True),
    ZooModel("text-embedding-pool", "text", text_embedding_pool, _text, steps=30, batch_size=16),
    ZooModel("text-lstm", "text", text_lstm, _text, steps=20, batch_size=8),
    ZooModel("text-gru", "text", text_gru, _text, steps=20, batch_size=8),
    ZooModel("text-bilstm", "text", text_bilstm, lambda: token_ids(TEXT_LEN, padded=True), steps=20,
             batch_size=8),
    ZooModel("text-simple_rnn", "text", text_simple_rnn, _text, steps=20, batch_size=8),
    ZooModel("text-conv1d", "text", text_conv1d, lambda: token_ids(CONV_TEXT_LEN), steps=30, batch_size=16),
    ZooModel("text-transformer", "text", text_transformer, _text, steps=20, batch_size=8),
    ZooModel("tf_keras-text-lstm", "tf_keras", tf_keras_lstm, _text, steps=20, batch_size=8),
    ZooModel("audio-conv1d", "audio", audio_conv1d, _tones, steps=20, batch_size=8),
    ZooModel("conv-autoencoder", "autoencoder", conv_autoencoder, digit_autoencoder, steps=20, batch_size=8),
    ZooModel("cnn-group_norm", "cnn", cnn_group_norm, _digits16, steps=20, batch_size=8),
    ZooModel("mini_xception-separable", "cnn", mini_xception, _digits16_rgb, steps=20, batch_size=8),
    ZooModel("cnn-dilated-strided", "cnn", cnn_dilated_strided, _digits16, steps=20, batch_size=8),
    ZooModel("cnn-crop-pad", "cnn", cnn_crop_pad, _digits16, steps=20, batch_size=8),
    ZooModel("two_tower", "multi-input", two_tower, two_tower_data, steps=30, batch_size=16),
    ZooModel("multi_task", "multi-output", multi_task, multi_task_data, steps=30, batch_size=16),
    ZooModel("lora-dense", "lora", lora_dense, lambda: digit_images(8), steps=30, batch_size=16),
    ZooModel("lora-einsum_dense", "lora", lora_einsum_dense, lambda: digit_images(8), steps=30, batch_size=16),
    ZooModel("tabular-normalization", "tabular", tabular_normalization, breast_cancer, steps=30, batch_size=16),
    ZooModel("regression-diabetes", "regression", diabetes_regression, diabetes, steps=30, batch_size=16),
)

BY_NAME = {m.name: m for m in ZOO}
assert len(BY_NAME) == len(ZOO), "zoo names must be unique"
