"""Builtin-only gradients for TFLite training graphs.

Several of TensorFlow's registered gradient functions emit ops that TFLite has only as select-TF (Flex) ops
(``ReluGrad``, ``Conv2DBackpropFilter``, ``MaxPoolGrad``, ``FusedBatchNormGradV3``, ...). Desktop LiteRT
interpreters cannot run Flex ops at all, so a training signature that contains one is useless there.

:func:`builtin_gradients` swaps entries of TensorFlow's gradient registry while a train step is traced, so the
gradient tape of *any* layer (Keras 3 or ``tf_keras``) that uses these ops emits gradients made of ops the
converter lowers to TFLite builtins. The replacements compute the same values as TensorFlow's kernels (same
tie-breaking and padding rules), up to float rounding. Where a replacement does not cover a case (unknown static
shapes, NCHW layouts, training-mode batch norm, ...) it defers to TensorFlow's own gradient, so semantics never
change; the converter then names the remaining Flex op.

Every tensor built here has at most 5 dimensions: a 6-D broadcast op aborted the whole TFLite process.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from litetrain._lazy import import_module

tf = import_module("tensorflow")  # quietly, and with the package to install if missing
from tensorflow.python.framework import ops  # noqa: E402

# A rewrite takes (op, *output_grads) like a registered TF gradient function and returns one gradient per op
# input, or None when it does not apply to this op instance (then TensorFlow's own gradient is used).
_Rewrite = Callable[..., Sequence[tf.Tensor | None] | tf.Tensor | None]


# --- small helpers ---------------------------------------------------------------------------------------


def _static_dims(t: tf.Tensor, first: int = 1) -> list[int] | None:
    """Returns the static sizes of dims ``first..`` of ``t``, or None when one is unknown."""
    dims = t.shape.as_list() if t.shape.rank is not None else None
    if dims is None or any(d is None for d in dims[first:]):
        return None
    return dims[first:]


def _nhwc_2d(op: Any, name: str) -> tuple[int, int] | None:
    """Returns the (height, width) entries of the 4-element NHWC attribute ``name`` (ksize, strides, ...)."""
    if op.get_attr("data_format") != b"NHWC":
        return None
    values = list(op.get_attr(name))
    if len(values) != 4 or values[0] != 1 or values[3] != 1:
        return None
    return values[1], values[2]


def _pads(
    op: Any, in_hw: Sequence[int], out_hw: Sequence[int], strides: Sequence[int], window: Sequence[int]
) -> list[tuple[int, int]]:
    """Returns the (before, after) padding of the two spatial dims exactly as TensorFlow's kernels apply it.

    ``window`` is the effective window extent ((k - 1) * dilation + 1). For VALID padding, rows a window never
    reaches are left out of the padding (the "after" amount can be negative); callers crop instead.
    """
    padding = op.get_attr("padding")
    if padding == b"EXPLICIT":
        explicit = list(op.get_attr("explicit_paddings"))
        return [(explicit[2], explicit[3]), (explicit[4], explicit[5])]
    result = []
    for size, out, stride, extent in zip(in_hw, out_hw, strides, window, strict=True):
        needed = (out - 1) * stride + extent
        if padding == b"SAME":
            total = max(needed - size, 0)
            result.append((total // 2, total - total // 2))
        else:
            result.append((0, needed - size))
    return result


def _pad_hw(x: tf.Tensor, pads: Sequence[tuple[int, int]], value: float = 0.0) -> tf.Tensor:
    """Pads the spatial dims of an NHWC tensor (negative "after" amounts are ignored: those rows are unused)."""
    if not any(before or max(after, 0) for before, after in pads):
        return x
    paddings = [[0, 0], *([before, max(after, 0)] for before, after in pads), [0, 0]]
    return tf.pad(x, paddings, constant_values=value)


def _window_taker(
    x_padded: tf.Tensor, strides: Sequence[int], out_hw: Sequence[int], extent: Sequence[int]
) -> Callable[[Sequence[int]], tf.Tensor]:
    """Returns ``take(offset)`` = x_padded[:, oh + i*sh, ow + j*sw, :] for all output positions (i, j).

    A strided STRIDED_SLICE runs on TFLite's reference kernel, which copies element by element (XNNPACK takes
    unit steps only): the strides are folded into dimensions of their own once, [N, Hb, sh, Wb, sw*C], so that
    every offset is one unit-step SLICE of that 5-D tensor. ``extent`` bounds the offsets (the window's size).
    """
    (sh, sw), (ho, wo) = strides, out_hw
    n, hp, wp, c = x_padded.shape.as_list()
    n = -1 if n is None else n  # XNNPACK takes a SLICE only when its sizes are all given
    if (sh, sw) == (1, 1):
        return lambda offset: tf.slice(x_padded, [0, offset[0], offset[1], 0], [n, ho, wo, c])
    rows, cols = ((extent[0] - 1) // sh + ho) * sh, ((extent[1] - 1) // sw + wo) * sw
    fitted = _pad_hw(x_padded, [(0, rows - hp), (0, cols - wp)])
    if rows < hp or cols < wp:
        fitted = tf.slice(fitted, [0, 0, 0, 0], [n, rows, cols, c])
    folded = tf.reshape(fitted, [n, rows // sh, sh, cols // sw, sw * c])

    def take(offset: Sequence[int]) -> tf.Tensor:
        (oh, ow) = offset
        begin = [0, oh // sh, oh % sh, ow // sw, (ow % sw) * c]
        return tf.reshape(tf.slice(folded, begin, [n, ho, 1, wo, c]), [n, ho, wo, c])

    return take


def _scatter_windows(
    parts: Mapping[tuple[int, int], tf.Tensor],
    strides: Sequence[int],
    region: Sequence[tuple[int, int]],
) -> tf.Tensor:
    """Adds window-element tensors back into the padded input grid (the adjoint of :func:`_windows`).

    ``parts[(oh, ow)]`` has shape [N, Ho, Wo, C] and its element (i, j) belongs at padded position
    (oh + i*sh, ow + j*sw). Instead of a scatter (TFLite's SCATTER_ND cannot accumulate duplicates), offsets
    are grouped by (oh // sh, ow // sw); within a group the residues (oh % sh, ow % sw) are distinct, so the
    group interleaves into one dense grid with PACK + RESHAPE (5-D at most), which is then shifted into place
    with PAD, and the groups are summed. Returns the ``region`` [(start, size) per spatial dim] of the grid,
    zeros where no window reached.
    """
    sh, sw = strides
    first = next(iter(parts.values()))
    ho, wo, channels = _static_dims(first)  # type: ignore[misc]
    groups: dict[tuple[int, int], dict[tuple[int, int], tf.Tensor]] = {}
    for (oh, ow), part in parts.items():
        groups.setdefault((oh // sh, ow // sw), {})[(oh % sh, ow % sw)] = part
    rows = (max(ah for ah, _ in groups) + ho) * sh
    cols = (max(aw for _, aw in groups) + wo) * sw
    zeros = tf.zeros_like(first) if sh * sw > 1 else None
    grids = []
    for (ah, aw), residues in groups.items():
        if zeros is None:
            grid = residues[(0, 0)]
        else:
            # [N, Ho, Wo, sw, C] -> [N, Ho, Wo*sw, C] interleaves columns; then the same for rows.
            row_parts = [
                tf.reshape(
                    tf.stack([residues.get((rh, rw), zeros) for rw in range(sw)], axis=3),
                    [-1, ho, wo * sw, channels],
                )
                for rh in range(sh)
            ]
            grid = tf.reshape(tf.stack(row_parts, axis=2), [-1, ho * sh, wo * sw, channels])
        top, left = ah * sh, aw * sw
        grids.append(_pad_hw(grid, [(top, rows - top - ho * sh), (left, cols - left - wo * sw)]))
    # Pairwise ADDs rather than ADD_N, which XNNPACK does not take.
    total = functools.reduce(tf.add, grids)
    (row0, height), (col0, width) = region
    total = _pad_hw(total, [(0, row0 + height - rows), (0, col0 + width - cols)])
    if (row0, col0, height, width) == (0, 0, *total.shape[1:3]):
        return total
    return total[:, row0 : row0 + height, col0 : col0 + width, :]


def _zero_insert(kernel: tf.Tensor, dilations: Sequence[int]) -> tf.Tensor:
    """Spreads a [kh, kw, C, O] kernel out to its dilated extent with zeros between the taps."""
    kh, kw, c, o = kernel.shape.as_list()
    dh, dw = dilations
    flat = tf.reshape(kernel, [1, kh, kw, c * o])
    spread = _scatter_windows({(0, 0): flat}, (dh, dw), [(0, (kh - 1) * dh + 1), (0, (kw - 1) * dw + 1)])
    return tf.reshape(spread, [(kh - 1) * dh + 1, (kw - 1) * dw + 1, c, o])


# --- activations -----------------------------------------------------------------------------------------


def _relu_grad(op: Any, dy: tf.Tensor) -> tf.Tensor:
    # Like TF's ReluGrad kernel: the gradient passes where the activation is positive. A select rather than a
    # multiply by a 0/1 mask, so an inf/NaN gradient is dropped where the unit is off, as in TF.
    return tf.where(op.outputs[0] > 0, dy, tf.zeros([], dy.dtype))


def _relu6_grad(op: Any, dy: tf.Tensor) -> tf.Tensor:
    y = op.outputs[0]
    # 0 < y < 6 as one comparison: y * (6 - y) > 0 for y in [0, 6] (NaN stays unselected). LOGICAL_AND has only a
    # reference kernel in TFLite; SUB and MUL run on XNNPACK.
    return tf.where(y * (6.0 - y) > 0, dy, tf.zeros([], dy.dtype))


def _leaky_relu_grad(op: Any, dy: tf.Tensor) -> tf.Tensor:
    alpha = tf.cast(op.get_attr("alpha"), dy.dtype)
    return tf.where(op.inputs[0] > 0, dy, dy * alpha)


def _elu_grad(op: Any, dy: tf.Tensor) -> tf.Tensor:
    # TF's EluGrad: (y + 1) * dy where the output is negative, dy elsewhere.
    y = op.outputs[0]
    return tf.where(y < 0, (y + 1) * dy, dy)


def _softsign_grad(op: Any, dy: tf.Tensor) -> tf.Tensor:
    # TF's SoftsignGrad kernel: dy / (1 + |x|)^2.
    return dy / tf.square(1.0 + tf.abs(op.inputs[0]))


_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
# Below this |x|, Phi(x) = 0.5 + x / sqrt(2 pi) to within 1e-10 (the cubic term), and y / x would divide tiny
# (possibly flushed-to-zero) numbers.
_GELU_SMALL_X = 1e-3


def _gelu_mul_grad(op: Any, dy: tf.Tensor) -> list[tf.Tensor | None] | None:
    """Gradient of the final product of exact GELU, ``(0.5 * x) * erfc(-x * sqrt(1/2))`` (``tf.nn.gelu``).

    TFLite has no ERF/ERFC builtin: the converter only handles erfc by fusing the whole forward expression
    into the GELU builtin, which it does only while every intermediate has a single use. TF's gradient reuses
    the erfc output and ``0.5 * x``, which blocks the fusion. Here the whole derivative
    ``Phi(x) + x * phi(x)`` is computed from ``x`` and the GELU output ``y`` alone (``Phi(x) = y / x``) and sent
    through the ``0.5 * x`` branch; the erfc branch gets no gradient.
    """
    half_x, erfc_out = op.inputs
    # Eager tensors have no producing op; the rewrite only matters for traced graphs anyway.
    if not (hasattr(half_x, "op") and hasattr(erfc_out, "op")):
        return None
    if half_x.op.type != "Mul" or erfc_out.op.type != "Erfc":
        return None
    half, x = half_x.op.inputs
    scaled = erfc_out.op.inputs[0]
    if scaled.op.type != "Mul" or scaled.op.inputs[0].op.type != "Neg":
        return None
    if scaled.op.inputs[0].op.inputs[0].name != x.name:
        return None
    half_value = tf.get_static_value(half)
    scale_value = tf.get_static_value(scaled.op.inputs[1])
    if half_value is None or scale_value is None:
        return None
    if np.ndim(half_value) or np.ndim(scale_value) or half_value != 0.5:
        return None
    if not np.isclose(scale_value, _SQRT_HALF, rtol=1e-6, atol=0.0):
        return None
    # The tape does not keep Mul outputs (its gradient never needs them); the GELU output is the graph's product
    # of these two tensors.
    inputs = [half_x.name, erfc_out.name]
    products = [c for c in erfc_out.consumers() if c.type == "Mul" and [t.name for t in c.inputs] == inputs]
    if not products:
        return None
    y = products[0].outputs[0]
    small = tf.abs(x) < _GELU_SMALL_X
    safe_x = tf.where(small, tf.ones([], x.dtype), x)
    pdf = tf.exp(tf.square(x) * -0.5) * _INV_SQRT_2PI
    cdf = tf.where(small, x * _INV_SQRT_2PI + 0.5, y / safe_x)
    # The product's first input is 0.5 * x, whose own gradient halves this again.
    return [dy * (cdf + x * pdf) * 2.0, None]


# --- convolutions ----------------------------------------------------------------------------------------


def _conv_geometry(op: Any, dy: tf.Tensor) -> tuple[Any, ...] | None:
    """(x, kernel, strides, dilations, input HWC, output HWC, dilated kernel extent, pads) of a 2-D convolution,
    or None when a size is not static (then TensorFlow's own gradient is used)."""
    x, kernel = op.inputs
    strides, dilations = _nhwc_2d(op, "strides"), _nhwc_2d(op, "dilations")
    in_dims, out_dims = _static_dims(x), _static_dims(dy)
    if strides is None or dilations is None or in_dims is None or out_dims is None:
        return None
    if not kernel.shape.is_fully_defined():
        return None
    kh, kw = kernel.shape.as_list()[:2]
    (h, w, _), (ho, wo, _) = in_dims, out_dims
    extent = [(kh - 1) * dilations[0] + 1, (kw - 1) * dilations[1] + 1]
    pads = _pads(op, (h, w), (ho, wo), strides, extent)
    return x, kernel, strides, dilations, in_dims, out_dims, extent, pads


def _filter_grad(
    x: tf.Tensor, dy: tf.Tensor, strides: Sequence[int], dilations: Sequence[int],
    pads: Sequence[tuple[int, int]], covered: Sequence[int],
) -> tf.Tensor:
    """The filter gradient of a 2-D convolution of ``x`` (NHWC) that produced ``dy``, as a builtin CONV_2D.

    dW[p, q, c, o] = sum_{n,i,j} xpad[n, i*s + p*d, j*s + q*d, c] * dy[n, i, j, o], i.e. a VALID convolution of
    xpad with channels and batch swapped, by dy used as the filter, where the forward dilation becomes the stride
    and the forward stride the dilation (TF's own is Conv2DBackpropFilter, a Flex op).
    """
    x_padded = _pad_hw(x, pads)[:, : covered[0], : covered[1], :]
    dw_t = tf.nn.conv2d(
        tf.transpose(x_padded, [3, 1, 2, 0]),
        tf.transpose(dy, [1, 2, 0, 3]),
        strides=list(dilations),
        padding="VALID",
        dilations=list(strides),
    )
    return tf.transpose(dw_t, [1, 2, 0, 3])


def _covered(out_hw: Sequence[int], strides: Sequence[int], extent: Sequence[int]) -> list[int]:
    """The rows and columns of the padded input that the windows of a convolution reach."""
    return [(o - 1) * s + e for o, s, e in zip(out_hw, strides, extent, strict=True)]


def _conv2d_grad(op: Any, dy: tf.Tensor) -> list[tf.Tensor] | None:
    """Conv2D gradients: input as a TRANSPOSE_CONV, filter as a CONV_2D; a 1x1 stride-1 convolution's both as
    BATCH_MATMULs.

    TF's filter gradient is Conv2DBackpropFilter (Flex). Its input gradient lowers to TRANSPOSE_CONV only for
    SAME/VALID padding without dilation, so both are computed here for every case.
    """
    geometry = _conv_geometry(op, dy)
    if geometry is None:
        return None
    x, kernel, strides, dilations, (h, w, c), (ho, wo, _), extent, pads = geometry
    if kernel.shape[2] != c:  # grouped convolution
        return None
    if kernel.shape.as_list()[:2] == [1, 1] and tuple(strides) == (1, 1) and pads == [(0, 0), (0, 0)]:
        return _pointwise_conv_grad(x, kernel, dy)
    covered = _covered((ho, wo), strides, extent)
    region = [(pads[0][0], h), (pads[1][0], w)]
    # An im2col input gradient (SLICEs, CONCATENATION, one BATCH_MATMUL on XNNPACK) was faster as an op alone
    # but made resnet_small's whole step ~5% slower than this TRANSPOSE_CONV (interleaved A/B of whole steps).

    # Input gradient: a VALID transposed convolution yields the gradient of every padded position a window
    # covers; TFLite's TRANSPOSE_CONV has no dilation, so the kernel is spread out with zeros first.
    spread = kernel if dilations == (1, 1) else _zero_insert(kernel, dilations)
    # A static output shape keeps TRANSPOSE_CONV's output tensor static (no reallocation at every step).
    batch = dy.shape[0] if dy.shape[0] is not None else tf.shape(dy)[0]
    dx_covered = tf.nn.conv2d_transpose(
        dy, spread, tf.stack([batch, covered[0], covered[1], c]), [1, *strides, 1], "VALID"
    )
    dx = _scatter_windows({(0, 0): dx_covered}, (1, 1), region)
    return [dx, _filter_grad(x, dy, strides, dilations, pads, covered)]


def _pointwise_conv_grad(x: tf.Tensor, kernel: tf.Tensor, dy: tf.Tensor) -> list[tf.Tensor]:
    """Gradients of a 1x1, stride-1 convolution, which is a matrix product over the flattened positions.

    dx = dy W^T and dW = x^T dy as BATCH_MATMULs, which XNNPACK runs with both operands computed at run time; it
    takes neither TRANSPOSE_CONV nor CONV_2D with a filter that is not a constant (a variable, or dy).
    """
    c, o = kernel.shape.as_list()[2:]
    x2 = tf.reshape(x, [-1, c])
    dy2 = tf.reshape(dy, [-1, o])
    # A 3-D product with adj_y: the converter turns a 2-D one into FULLY_CONNECTED, whose run-time weights
    # XNNPACK does not take.
    dx = tf.matmul(tf.reshape(dy2, [1, -1, o]), tf.reshape(kernel, [1, c, o]), transpose_b=True)
    dw = tf.matmul(x2, dy2, transpose_a=True)
    return [tf.reshape(dx, tf.shape(x) if x.shape[0] is None else x.shape), tf.reshape(dw, [1, 1, c, o])]


def _conv2d_transpose_grad(op: Any, dy: tf.Tensor) -> list[tf.Tensor | None] | None:
    """Gradients of Conv2DBackpropInput, the forward op of Conv2DTranspose, without Conv2DBackpropFilter.

    The op computes y = conv_transpose(x, W): x plays the part of a convolution's output gradient and y that of
    its input. So dx is the convolution of dy by W (builtin CONV_2D, done on the explicitly padded dy so every
    padding mode works), and dW is the filter gradient of a convolution of dy that produced x.
    """
    _, kernel, x = op.inputs
    strides, dilations = _nhwc_2d(op, "strides"), _nhwc_2d(op, "dilations")
    y_dims, x_dims = _static_dims(dy), _static_dims(x)  # the tape keeps no outputs of this op
    if strides is None or dilations is None or y_dims is None or x_dims is None:
        return None
    if not kernel.shape.is_fully_defined() or kernel.shape[2] != y_dims[2]:
        return None
    kh, kw = kernel.shape.as_list()[:2]
    extent = [(kh - 1) * dilations[0] + 1, (kw - 1) * dilations[1] + 1]
    pads = _pads(op, y_dims[:2], x_dims[:2], strides, extent)
    covered = _covered(x_dims[:2], strides, extent)
    dy_padded = _pad_hw(dy, pads)[:, : covered[0], : covered[1], :]
    dx = tf.nn.conv2d(dy_padded, kernel, strides=list(strides), padding="VALID", dilations=list(dilations))
    return [None, _filter_grad(dy, x, strides, dilations, pads, covered), dx]


def _depthwise_grad(op: Any, dy: tf.Tensor) -> list[tf.Tensor] | None:
    """DepthwiseConv2dNative gradients (both TF backprop ops are Flex).

    For every kernel tap (p, q), the input elements it touches are one window of the padded input (a unit-step
    SLICE, see :func:`_window_taker`). Filter gradient: that window times dy, summed over batch and positions.
    Input gradient: without dilation, one DEPTHWISE_CONV_2D of the zero-inserted, padded dy by the flipped kernel
    (a transposed depthwise convolution); with dilation, dy times each tap's weights added back per tap.
    """
    geometry = _conv_geometry(op, dy)
    if geometry is None:
        return None
    x, kernel, strides, dilations, (h, w, _), (ho, wo, _), extent, pads = geometry
    kh, kw, c, mult = kernel.shape.as_list()
    take = _window_taker(_pad_hw(x, pads), strides, (ho, wo), extent)
    # Output channel k = c * mult + m; splitting it gives a 5-D tensor, the most TFLite broadcasts handle.
    dy_split = dy if mult == 1 else tf.reshape(dy, [-1, ho, wo, c, mult])
    dw_taps = []
    for p in range(kh):
        for q in range(kw):
            window = take((p * dilations[0], q * dilations[1]))
            if mult == 1:
                dw_taps.append(tf.reduce_sum(window * dy, axis=[0, 1, 2])[:, None])
            else:
                dw_taps.append(tf.reduce_sum(window[..., None] * dy_split, axis=[0, 1, 2]))
    dw = tf.reshape(tf.stack(dw_taps), [kh, kw, c, mult])
    region = [(pads[0][0], h), (pads[1][0], w)]
    if tuple(dilations) != (1, 1):
        parts = {}
        for p in range(kh):
            for q in range(kw):
                tap = kernel[p, q]  # [C, mult]
                parts[(p * dilations[0], q * dilations[1])] = (
                    dy * tap[:, 0] if mult == 1 else tf.reduce_sum(dy_split * tap, axis=-1))
        return [_scatter_windows(parts, strides, region), dw]
    covered = _covered((ho, wo), strides, extent)
    # dx[r] = sum_p z[r - p] k[p] over the zero-inserted dy z: a VALID correlation of z, padded by k - 1 on both
    # sides, with the flipped kernel; it yields the gradient of every padded position the windows cover.
    z = _zero_insert_hw(dy, strides)
    z = _pad_hw(z, [(kh - 1, kh - 1), (kw - 1, kw - 1)])  # VALID output: (ho - 1) * s + k = covered rows
    flipped = tf.reshape(tf.reverse(kernel, [0, 1]), [kh, kw, c * mult, 1])
    dx_covered = tf.nn.depthwise_conv2d(z, flipped, [1, 1, 1, 1], "VALID")
    if mult != 1:
        dx_covered = tf.reduce_sum(tf.reshape(dx_covered, [-1, *covered, c, mult]), axis=-1)
    return [_scatter_windows({(0, 0): dx_covered}, (1, 1), region), dw]


def _zero_insert_hw(t: tf.Tensor, strides: Sequence[int]) -> tf.Tensor:
    """[N, H, W, C] -> [N, (H-1)*sh+1, (W-1)*sw+1, C] with t[:, i, j] at (i*sh, j*sw) and zeros between: RESHAPE
    and PAD only (both run on XNNPACK; an interleave by PACK does not)."""
    sh, sw = strides
    n, h, w, c = t.shape.as_list()
    n = -1 if n is None else n
    if sh > 1:
        t = tf.pad(tf.reshape(t, [n, h, 1, w * c]), [[0, 0], [0, 0], [0, sh - 1], [0, 0]])
        t = tf.slice(tf.reshape(t, [n, h * sh, w, c]), [0, 0, 0, 0], [n, (h - 1) * sh + 1, w, c])
        h = (h - 1) * sh + 1
    if sw > 1:
        rows = -1 if n == -1 else n * h
        t = tf.pad(tf.reshape(t, [rows, w, 1, c]), [[0, 0], [0, 0], [0, sw - 1], [0, 0]])
        t = tf.slice(tf.reshape(t, [n, h, w * sw, c]), [0, 0, 0, 0], [n, h, (w - 1) * sw + 1, c])
    return t


# --- slicing ---------------------------------------------------------------------------------------------

_SLICE_MASKS = ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")


def _slice_positions(op: Any, shape: Sequence[int]) -> np.ndarray | None:
    """Flat input positions of the elements a StridedSlice op selects, in output order (None if not static).

    The op itself is evaluated eagerly on ``arange``: TensorFlow's own mask and clamping rules, nothing re-derived.
    """
    begin, end, strides = (tf.get_static_value(t) for t in op.inputs[1:4])
    if begin is None or end is None or strides is None:
        return None
    masks = {name: op.get_attr(name) for name in _SLICE_MASKS}
    with tf.init_scope():
        positions = tf.raw_ops.StridedSlice(
            input=np.arange(math.prod(shape), dtype=np.int32).reshape(shape),
            begin=begin, end=end, strides=strides, **masks,
        )
        return np.asarray(positions).reshape(-1)


def _strided_slice_grad(op: Any, dy: tf.Tensor) -> list[tf.Tensor | None] | None:
    """StridedSlice gradient (StridedSliceGrad is Flex): dy put back where the slice took it, zeros elsewhere.

    A slice that is a box with unit steps (cropping, a GRU's kernel split into its gates, the time steps of an
    unrolled RNN) becomes RESHAPE + PAD; any other (strided, reversed) becomes one SCATTER_ND, which is exact
    because a slice never takes one element twice.
    """
    shape = _static_dims(op.inputs[0], first=0)
    if shape is None or not 0 < len(shape) <= 5 or dy.dtype.is_complex:
        return None
    positions = _slice_positions(op, shape)
    if positions is None:
        return None
    none = [None, None, None]
    if positions.size == 0:
        return [tf.zeros(shape, dy.dtype), *none]
    coords = np.stack(np.unravel_index(positions, shape), axis=-1)
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    box = hi - lo + 1
    if int(np.prod(box)) == positions.size and np.array_equal(positions, np.sort(positions)):
        inner = tf.reshape(dy, [int(b) for b in box])
        return [tf.pad(inner, [[int(a), int(n - b - a)] for a, b, n in zip(lo, box, shape, strict=True)]), *none]
    flat = tf.scatter_nd(positions[:, None], tf.reshape(dy, [-1]), [math.prod(shape)])
    return [tf.reshape(flat, shape), *none]


def _tile_grad(op: Any, dy: tf.Tensor) -> list[tf.Tensor | None] | None:
    """Tile gradient with at most one extra dimension per tiled axis.

    TF's gradient reshapes dy to [m0, d0, m1, d1, ...] (twice the rank): UpSampling's repeat tiles a 5-D tensor,
    so that is a 10-D SUM, which XNNPACK refuses to prepare. Axes that are not tiled are merged with their
    neighbours here, so repeating one axis of a 4-D tensor sums a 3-D or 4-D tensor.
    """
    shape, tiled = _static_dims(op.inputs[0], first=0), _static_dims(dy, first=0)
    if shape is None or tiled is None or 0 in shape:
        return None
    # tf.repeat packs its multiples at run time; with static shapes they are the ratio of output to input.
    multiples = [out // size for out, size in zip(tiled, shape, strict=True)]
    grouped: list[int] = []
    tiled_axes: list[int] = []
    for size, multiple in zip(shape, multiples, strict=True):
        if multiple != 1:
            tiled_axes.append(len(grouped))
            grouped += [multiple, size]
        elif grouped:
            grouped[-1] *= size  # contiguous with the entry before, which is never a multiple
        else:
            grouped.append(size)
    if not tiled_axes or len(grouped) > 5:
        return None
    summed = tf.reduce_sum(tf.reshape(dy, grouped), axis=tiled_axes)
    return [tf.reshape(summed, shape), None]


# --- resizing --------------------------------------------------------------------------------------------


def _interpolation_matrix(op: Any, size: int, out: int, axis: int) -> np.ndarray:
    """The [out, size] matrix by which the op's resize acts along one spatial axis (the resize is separable).

    Found by resizing the ``size`` unit vectors with the op itself (its own corner and centre rules) while the other
    spatial axis keeps size 1, which every resize leaves unchanged.
    """
    basis = np.eye(size, dtype=np.float32).reshape((size, size, 1, 1) if axis == 0 else (size, 1, size, 1))
    attrs = {name: op.get_attr(name) for name in ("align_corners", "half_pixel_centers")}
    with tf.init_scope():
        resized = getattr(tf.raw_ops, op.type)(images=basis, size=[out, 1] if axis == 0 else [1, out], **attrs)
        return np.asarray(resized, dtype=np.float64).reshape(size, out).T


def _resize_grad(op: Any, dy: tf.Tensor) -> list[tf.Tensor | None] | None:
    """ResizeBilinear / ResizeNearestNeighbor gradients (their Grad ops are Flex) as two small matrix products.

    With static sizes the resize is y = A_h x A_w^T per image and channel, so dx = A_h^T dy A_w: two EINSUMs that
    lower to BATCH_MATMUL. Exact for nearest neighbour too (A is then 0/1, several outputs summed per input).
    """
    in_dims, out_dims = _static_dims(op.inputs[0]), _static_dims(dy)
    if in_dims is None or out_dims is None or not dy.dtype.is_floating:
        return None
    (h, w, _), (ho, wo, _) = in_dims, out_dims
    a_h = tf.constant(_interpolation_matrix(op, h, ho, 0), dy.dtype)
    a_w = tf.constant(_interpolation_matrix(op, w, wo, 1), dy.dtype)
    rows = tf.einsum("nopc,oi->nipc", dy, a_h)
    return [tf.cast(tf.einsum("nipc,pj->nijc", rows, a_w), op.inputs[0].dtype), None]


# --- pooling ---------------------------------------------------------------------------------------------


def _pool_geometry(
    op: Any, dy: tf.Tensor
) -> tuple[tuple[int, int], tuple[int, int], list[int], list[int], list[tuple[int, int]]] | None:
    """Returns (ksize, strides, input dims, output dims, pads) of an NHWC 2-D pooling op, or None."""
    ksize, strides = _nhwc_2d(op, "ksize"), _nhwc_2d(op, "strides")
    in_dims, out_dims = _static_dims(op.inputs[0]), _static_dims(dy)
    if ksize is None or strides is None or in_dims is None or out_dims is None:
        return None
    pads = _pads(op, in_dims[:2], out_dims[:2], strides, ksize)
    return ksize, strides, in_dims, out_dims, pads


def _max_pool_grad(op: Any, dy: tf.Tensor) -> tf.Tensor | None:
    """MaxPool gradient (MaxPoolGrad is Flex): each window's gradient goes to its first maximum.

    TF's CPU kernel scans a window row-major and keeps the first element that is strictly larger, so ties go
    to the earliest position; the running ``taken`` mask reproduces that. Padding uses -inf, which never wins,
    like TF's SAME padding.
    """
    geometry = _pool_geometry(op, dy)
    if geometry is None:
        return None
    (kh, kw), strides, (h, w, _), (ho, wo, _), pads = geometry
    x_padded = _pad_hw(op.inputs[0], pads, value=-math.inf)
    y = op.outputs[0]
    zero = tf.zeros([], dy.dtype)
    parts: dict[tuple[int, int], tf.Tensor] = {}
    taken = None
    take = _window_taker(x_padded, strides, (ho, wo), (kh, kw))
    for p in range(kh):
        for q in range(kw):
            hit = tf.equal(take((p, q)), y)
            if taken is None:
                taken = hit
            else:
                hit = tf.logical_and(hit, tf.logical_not(taken))
                taken = tf.logical_or(taken, hit)
            parts[(p, q)] = tf.where(hit, dy, zero)
    return _scatter_windows(parts, strides, [(pads[0][0], h), (pads[1][0], w)])


def _avg_pool_grad(op: Any, dy: tf.Tensor) -> tf.Tensor | None:
    """AvgPool gradient (AvgPoolGrad is Flex): dy / window size, spread over the window.

    As in TF (and TFLite's AVERAGE_POOL_2D), the window size counts only elements inside the input, so SAME
    windows at the border divide by fewer elements.
    """
    geometry = _pool_geometry(op, dy)
    if geometry is None:
        return None
    (kh, kw), strides, (h, w, _), (ho, wo, _), pads = geometry
    counts = []
    for size, out, stride, k, (before, _) in zip((h, w), (ho, wo), strides, (kh, kw), pads, strict=True):
        start = np.arange(out) * stride - before
        counts.append(np.minimum(start + k, size) - np.maximum(start, 0))
    window_sizes = np.outer(counts[0], counts[1]).astype(dy.dtype.as_numpy_dtype)
    share = dy / tf.constant(window_sizes[None, :, :, None])
    parts = {(p, q): share for p in range(kh) for q in range(kw)}
    return _scatter_windows(parts, strides, [(pads[0][0], h), (pads[1][0], w)])


# --- batch normalization ---------------------------------------------------------------------------------


def _fused_batch_norm_grad(op: Any, dy: tf.Tensor, *_: tf.Tensor) -> list[tf.Tensor | None] | None:
    """Frozen (``is_training=False``) FusedBatchNorm gradient, the formulas of TF's freeze-mode kernel.

    FusedBatchNormGradV3 is Flex, and TF's gradient also reads the forward op's reserve-space output, which
    keeps the converter from decomposing the forward FusedBatchNormV3 into builtin MUL/ADD.
    """
    if op.get_attr("is_training") or op.get_attr("data_format") not in (b"NHWC", b"NDHWC"):
        return None
    x, scale, _, mean, variance = op.inputs[:5]
    if x.dtype != scale.dtype or x.shape.rank is None:
        return None
    axes = list(range(x.shape.rank - 1))
    inv_std = tf.math.rsqrt(variance + op.get_attr("epsilon"))
    dx = dy * (scale * inv_std)
    dscale = tf.reduce_sum(dy * (x - mean), axis=axes) * inv_std
    doffset = tf.reduce_sum(dy, axis=axes)
    return [dx, dscale, doffset, None, None]


# --- registry swapping -----------------------------------------------------------------------------------

# Registry key -> builtin-only replacement. "Mul" is there for exact GELU only; every other product keeps
# TensorFlow's gradient.
_REWRITE_FNS: dict[str, _Rewrite] = {
    "Relu": _relu_grad,
    "Relu6": _relu6_grad,
    "LeakyRelu": _leaky_relu_grad,
    "Elu": _elu_grad,
    "Softsign": _softsign_grad,
    "Mul": _gelu_mul_grad,
    "Conv2D": _conv2d_grad,
    "Conv2DBackpropInput": _conv2d_transpose_grad,
    "StridedSlice": _strided_slice_grad,
    "Tile": _tile_grad,
    "ResizeBilinear": _resize_grad,
    "ResizeNearestNeighbor": _resize_grad,
    "DepthwiseConv2dNative": _depthwise_grad,
    "MaxPool": _max_pool_grad,
    "AvgPool": _avg_pool_grad,
    "FusedBatchNorm": _fused_batch_norm_grad,
    "FusedBatchNormV2": _fused_batch_norm_grad,
    "FusedBatchNormV3": _fused_batch_norm_grad,
}

_FUSED_BN = (
    "frozen (training=False) batch norm: dx = dy*scale*rsqrt(var+eps), dscale and doffset by REDUCE_SUM "
    "(FusedBatchNormGrad* is Flex and pins the forward op)"
)

REWRITES: Mapping[str, str] = {
    "Relu": "ReluGrad -> where(y > 0, dy, 0) (GREATER, SELECT)",
    "Relu6": "Relu6Grad -> where(y * (6 - y) > 0, dy, 0) (SUB, MUL, GREATER, SELECT)",
    "LeakyRelu": "LeakyReluGrad -> where(x > 0, dy, alpha*dy) (GREATER, MUL, SELECT)",
    "Elu": "EluGrad -> where(y < 0, (y+1)*dy, dy) (LESS, ADD, MUL, SELECT)",
    "Softsign": "SoftsignGrad -> dy / (1 + |x|)^2 (ABS, ADD, SQUARE, DIV)",
    # Keyed by the forward op that needs the rewrite; the registry entry swapped is that of the Mul after it.
    "Erfc": "exact GELU: derivative Phi(x) + x*phi(x) from x and the GELU output, so the forward still fuses "
    "to the GELU builtin (TFLite has no ERF/ERFC)",
    "Conv2D": "Conv2DBackpropFilter -> CONV_2D of the transposed padded input by the transposed dy; input "
    "gradient as a VALID TRANSPOSE_CONV (dilated kernel spread with zeros) plus crop; a 1x1 stride-1 "
    "convolution's two gradients as BATCH_MATMULs (XNNPACK)",
    "Conv2DBackpropInput": "Conv2DTranspose: dx as a VALID CONV_2D of the padded dy, dW as the filter gradient "
    "above with the roles of input and output gradient swapped (no Conv2DBackpropFilter)",
    "StridedSlice": "StridedSliceGrad -> RESHAPE + PAD for a unit-step box (cropping, gate splits, unrolled time "
    "steps), else one SCATTER_ND of dy to the positions the slice took",
    "Tile": "TileGrad's 2x-rank RESHAPE + SUM (10-D for UpSampling's repeat; XNNPACK refuses it) -> untiled "
    "axes merged, at most 5-D",
    "ResizeBilinear": "ResizeBilinearGrad -> dx = A_h^T dy A_w with the resize's own interpolation matrices "
    "(EINSUM -> BATCH_MATMUL)",
    "ResizeNearestNeighbor": "ResizeNearestNeighborGrad -> dx = A_h^T dy A_w with 0/1 selection matrices "
    "(EINSUM -> BATCH_MATMUL)",
    "DepthwiseConv2dNative": "depthwise backprop: filter gradient per tap as a unit-step SLICE (strides folded "
    "into a 5-D RESHAPE), MUL, SUM; input gradient as one DEPTHWISE_CONV_2D of the zero-inserted padded dy by "
    "the flipped kernel (dilated: per tap, interleave/PAD to add back)",
    "MaxPool": "MaxPoolGrad -> per-tap unit-step slices, EQUAL to the output with first-max masks, "
    "interleave/PAD to add back",
    "AvgPool": "AvgPoolGrad -> dy / non-padded window size, interleave/PAD to add back",
    "FusedBatchNorm": _FUSED_BN,
    "FusedBatchNormV2": _FUSED_BN,
    "FusedBatchNormV3": _FUSED_BN,
}

_lock = threading.Lock()
_depth = 0
_saved: dict[str, dict[str, Any]] = {}
# Rewrites are keyed by the op whose gradient they replace; exact GELU's is the Mul after its Erfc.
_REPORTED_AS = {"Mul": "Erfc"}


class RewriteLog:
    """The rewritten gradients built while :func:`builtin_gradients` was active, by forward op type."""

    def __init__(self) -> None:
        self._tensors: dict[str, list[Any]] = {}

    def record(self, op_type: str, result: Any) -> None:
        flat = [t for t in tf.nest.flatten(result) if t is not None and hasattr(t, "op")]
        self._tensors.setdefault(_REPORTED_AS.get(op_type, op_type), []).extend(flat)

    def live_in(self, graph: Any) -> tuple[str, ...]:
        """Op types whose rewritten gradient feeds ``graph``'s outputs or its variable updates.

        The tape also differentiates frozen layers whose variables it watches; the converter drops that dead code,
        so such rewrites are not part of the model and are not listed.
        """
        live = _live_ops(graph)
        return tuple(sorted(k for k, ts in self._tensors.items() if any(t.op.name in live for t in ts)))


_logs: list[RewriteLog] = []


def _live_ops(graph: Any) -> set[str]:
    stack = [t.op for t in graph.outputs] + list(getattr(graph, "control_outputs", ()))
    seen: set[str] = set()
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return seen


def _dispatching(op_type: str, rewrite: _Rewrite, original: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps ``rewrite`` so that op instances it does not handle get TensorFlow's gradient; logs its use."""

    def gradient(op: Any, *grads: tf.Tensor) -> Any:
        result = rewrite(op, *grads)
        if result is None:
            return original(op, *grads)
        for log in list(_logs):
            log.record(op_type, result)
        return result

    gradient.__name__ = f"builtin_{getattr(original, '__name__', 'gradient')}"
    return gradient


@contextlib.contextmanager
def builtin_gradients() -> Iterator[RewriteLog]:
    """While active, ops whose standard TF gradient needs Flex ops get builtin-only gradients.

    Functions must be traced (``get_concrete_function`` or first call) inside the context; an already traced
    function keeps the gradients it was traced with. The registry is process-global: nested or concurrent
    uses share one installation, which is undone when the last one exits, also on exceptions.

    Yields:
        A :class:`RewriteLog` of the gradients rewritten while the context was active.
    """
    global _depth
    registry = ops._gradient_registry._registry
    with _lock:
        if _depth == 0:
            for op_type, rewrite in _REWRITE_FNS.items():
                entry = registry[op_type]
                _saved[op_type] = entry
                registry[op_type] = {**entry, "type": _dispatching(op_type, rewrite, entry["type"])}
        _depth += 1
        log = RewriteLog()
        _logs.append(log)
    try:
        yield log
    finally:
        with _lock:
            _logs.remove(log)
            _depth -= 1
            if _depth == 0:
                registry.update(_saved)
                _saved.clear()
