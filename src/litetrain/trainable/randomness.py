"""Random masks and noise that TensorFlow and every TFLite runtime compute bit for bit alike.

Dropout and noise layers draw from TensorFlow's stateless RNG in Keras 3 (Flex ops) and from a stateful one in
tf_keras (TFLite's RANDOM_UNIFORM: other numbers than TensorFlow's). Neither lets two runtimes train step by step
alike. While the train step is traced in ``fit`` mode, :func:`counter_randomness` routes both Keras flavours'
random draws through a counter-based hash of (draw, step, element) made of int32 ops that TFLite has as builtins
(BITWISE_XOR, RIGHT_SHIFT, MUL, ADD, SUB, FLOOR_MOD) and whose results are exact integers everywhere:

- every product stays below 2**31 (30-bit state split into 15-bit limbs), so no runtime's overflow behaviour
  matters;
- a uniform is the top 24 bits of the hash times 2**-24, exact in float32 and float64, so the float64 twin draws the
  same numbers;
- a normal is the sum of 12 uniforms minus 6 (Irwin-Hall: mean 0, variance 1, within 0.01 of the normal CDF),
  summed as integers, so exact whatever order a runtime adds in. It is an approximation of Keras's Gaussian draws;
  the masks and noise of a step are a function of the step counter, not of a hidden RNG state.

Masks change every step because the step comes from the optimizer's own step counter (restored with the
checkpoint, so a resumed session draws what an uninterrupted one would have drawn).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
from typing import Any

from litetrain._lazy import import_module
from litetrain.errors import UnsupportedModelError

tf = import_module("tensorflow")

_BITS = 30
_MASK = 2**_BITS
_LIMB = 15
# Odd multipliers below 2**15 (odd: multiplying is a bijection mod 2**30), from the digits of pi and e.
_MULTIPLIERS = (31_415, 27_183, 14_143)
_IRWIN_HALL = 12


def _mul30(h: Any, a: int) -> Any:
    """(h * a) mod 2**30 for 0 <= h < 2**30 and a < 2**15, with every intermediate below 2**31."""
    hi = tf.bitwise.right_shift(h, _LIMB)
    lo = h - hi * (2**_LIMB)
    return tf.math.floormod(tf.math.floormod(hi * a, 2**_LIMB) * (2**_LIMB) + lo * a, _MASK)


def _mix(h: Any) -> Any:
    """A bijection of [0, 2**30) that spreads every input bit over the output (xorshift-multiply rounds)."""
    for shift, a in zip((15, 13, 16), _MULTIPLIERS, strict=True):
        h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, shift))
        h = _mul30(h, a)
    return tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 15))


def _hash_bits(shape: list[int], draw: int, step: Any, bits: int) -> Any:
    """The top ``bits`` bits of the hash of (draw, step, element index), as int32 of the given static shape."""
    key = _mix(tf.constant((draw * 0x9E37 + 1) % _MASK, tf.int32))
    key = _mix(tf.math.floormod(key + tf.math.floormod(step, _MASK), _MASK))
    index = tf.reshape(tf.range(math.prod(shape), dtype=tf.int32), shape)
    # Two rounds: one leaves consecutive indices a little too evenly spread (histogram chi-square ~0.94 per degree
    # of freedom over 4096 draws); two give ~0.99 and step-to-step correlations at the 1/sqrt(n) of chance.
    hashed = _mix(tf.bitwise.bitwise_xor(_mix(tf.math.floormod(index + key, _MASK)), key))
    return tf.bitwise.right_shift(hashed, _BITS - bits)


def hashed_uniform(shape: list[int], draw: int, step: Any, dtype: Any = "float32") -> Any:
    """Uniform numbers in [0, 1) with 24 bits, a function of (draw, step, element index) only.

    Args:
        shape: Static shape of the result.
        draw: Which draw of the train step (distinct per random layer).
        step: int32 scalar tensor, the train step counter.
        dtype: float32 or float64; the values are the same (exact) in both.
    """
    return tf.cast(_hash_bits(shape, draw, step, 24), dtype) * tf.constant(2.0**-24, dtype)


def hashed_normal(shape: list[int], draw: int, step: Any, dtype: Any = "float32") -> Any:
    """Approximately standard-normal numbers: the sum of 12 uniforms minus 6 (Irwin-Hall).

    The uniforms have 20 bits and are summed as integers (below 2**24), so the sum is exact and converts to float32
    and float64 exactly: no runtime's order of additions can change a bit.
    """
    total = _hash_bits(shape, draw * _IRWIN_HALL, step, 20)
    for k in range(1, _IRWIN_HALL):
        total = total + _hash_bits(shape, draw * _IRWIN_HALL + k, step, 20)
    return tf.cast(total, dtype) * tf.constant(2.0**-20, dtype) - tf.constant(6.0, dtype)


@dataclasses.dataclass
class _Draws:
    """Numbers the draws of one traced train step in call order: both twins trace the same layers in the same
    order, so the k-th draw is the same layer's in each."""

    step: Any
    count: int = 0

    def next(self) -> int:
        self.count += 1
        return self.count


def _static_shape(shape: Any, like: Any = None) -> list[int]:
    """``shape`` (a list, tuple or 1-D tensor, None entries taken from ``like``) as Python ints."""
    if shape is None:
        dims = like.shape.as_list()
    else:
        static = tf.get_static_value(shape) if tf.is_tensor(shape) else None
        dims = list(static) if static is not None else list(shape)
    values = [d if d is None or isinstance(d, int) else tf.get_static_value(d) for d in dims]
    if like is not None:
        # A noise-shape entry is 1 (shared mask) or the input's size; an entry computed from tf.shape(inputs)
        # (tf_keras's SpatialDropout) is the input's size, known statically in the fixed-batch train step.
        values = [like.shape[i] if v is None else v for i, v in enumerate(values)]
    if any(v is None for v in values):
        raise UnsupportedModelError(
            f"A random layer draws a tensor of shape {dims} that is not static in the train step.",
            hint="Give keras.Input a full shape; litetrain's train signature has a fixed batch size.",
        )
    return [int(v) for v in values]


def _dropout(draws: _Draws, inputs: Any, rate: float, noise_shape: Any = None) -> Any:
    if rate <= 0.0:
        return inputs
    if rate >= 1.0:
        return tf.zeros_like(inputs)
    keep = hashed_uniform(_static_shape(noise_shape, inputs), draws.next(), draws.step, inputs.dtype) >= rate
    return tf.where(keep, inputs * tf.cast(1.0 / (1.0 - rate), inputs.dtype), tf.zeros([], inputs.dtype))


def _normal(draws: _Draws, shape: Any, mean: float = 0.0, stddev: float = 1.0, dtype: Any = None) -> Any:
    dtype = tf.as_dtype(dtype or "float32")
    noise = hashed_normal(_static_shape(shape), draws.next(), draws.step, dtype)
    return noise * tf.cast(stddev, dtype) + tf.cast(mean, dtype)


def _uniform(draws: _Draws, shape: Any, minval: float = 0.0, maxval: float | None = 1.0, dtype: Any = None) -> Any:
    dtype = tf.as_dtype(dtype or "float32")
    maxval = 1.0 if maxval is None else maxval
    u = hashed_uniform(_static_shape(shape), draws.next(), draws.step, dtype)
    return u * tf.cast(maxval - minval, dtype) + tf.cast(minval, dtype)


@contextlib.contextmanager
def counter_randomness(step: Any, keras3: bool = True) -> Iterator[_Draws]:
    """While tracing a train step, the Keras flavour's dropout, normal and uniform draws use the hash.

    Args:
        step: int32 scalar tensor, the optimizer's step counter before this step's update.
        keras3: Patch Keras 3's TensorFlow backend (True) or tf_keras's RandomGenerator (False).

    Yields:
        The draws so far (``.count``: how many random tensors the traced step draws).
    """
    draws = _Draws(tf.math.floormod(tf.cast(step, tf.int32), _MASK))
    patches = _keras3_patches(draws) if keras3 else _tf_keras_patches(draws)
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    try:
        for owner, name, replacement in patches:
            setattr(owner, name, replacement)
        yield draws
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def _keras3_patches(draws: _Draws) -> list[tuple[Any, str, Any]]:
    # Layers call backend.random.<fn> at run time, and keras.ops.random goes through it too.
    random = import_module("keras.src.backend.tensorflow.random")
    return [
        (random, "dropout", lambda inputs, rate, noise_shape=None, seed=None: _dropout(draws, inputs, rate, noise_shape)),
        (random, "normal", lambda shape, mean=0.0, stddev=1.0, dtype=None, seed=None:
            _normal(draws, shape, mean, stddev, dtype)),
        (random, "uniform", lambda shape, minval=0.0, maxval=1.0, dtype=None, seed=None:
            _uniform(draws, shape, minval, maxval, dtype)),
    ]


def _tf_keras_patches(draws: _Draws) -> list[tuple[Any, str, Any]]:
    # tf_keras layers draw through their RandomGenerator (BaseRandomLayer._random_generator).
    generator = import_module("tf_keras.src.backend").RandomGenerator
    return [
        (generator, "dropout", lambda self, inputs, rate, noise_shape=None: _dropout(draws, inputs, rate, noise_shape)),
        (generator, "random_normal", lambda self, shape, mean=0.0, stddev=1.0, dtype=None, nonce=None:
            _normal(draws, shape, mean, stddev, dtype)),
        (generator, "random_uniform", lambda self, shape, minval=0.0, maxval=None, dtype=None, nonce=None:
            _uniform(draws, shape, minval, maxval, dtype)),
    ]
