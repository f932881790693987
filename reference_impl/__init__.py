"""Reference N-d convolution in NumPy (im2col/col2im, float64 accumulation), forward and backward.

Layouts: x (N, C, *spatial), w (O, C/groups, *kernel), b (O,), y and dy (N, O, *out), with 1 to 3
spatial dims. `stride`/`dilation`: an int or one per dim (dilation 1 = dense kernel). `padding`: an
int, one int per dim (symmetric) or one (before, after) pair per dim; negative values crop.
Inputs of any floating dtype (bfloat16 included) are read as float64; results are float64.

Output size per dim: floor((i + before + after - ((k - 1) * d + 1)) / s) + 1.

Transposed convolution (convparity.reference_impl.transposed): x (N, C_in, *in), w (C_in, C_out/groups, *kernel),
y (N, C_out, *out), out = (i - 1) * s - before - after + (k - 1) * d + output_padding + 1; computed as
the convolution's data gradient by the same col2im pass.
"""

from __future__ import annotations

import numpy as np

from convparity.reference_impl.geometry import (
    ConvGeometry,
    IntOrInts,
    Padding,
    TransposedGeometry,
    check_shape,
    conv_geometry,
    conv_transpose_geometry,
)
from convparity.reference_impl.im2col import DEFAULT_MEMORY_BUDGET, add_bias, bias_gradient, convolve
from convparity.reference_impl.post_ops import ChainGradients, ChainTrace, PostOp, chain_backward, chain_forward
from convparity.reference_impl.quantized import ROUNDING_MODES, quantized_conv_forward, round_codes, saturate
from convparity.reference_impl.transposed import (
    conv_transpose_backward,
    conv_transpose_forward,
    conv_transpose_forward_backward,
)

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "ROUNDING_MODES",
    "ChainGradients",
    "ChainTrace",
    "PostOp",
    "chain_backward",
    "chain_forward",
    "quantized_conv_forward",
    "round_codes",
    "saturate",
    "ConvGeometry",
    "TransposedGeometry",
    "conv_backward",
    "conv_forward",
    "conv_forward_backward",
    "conv_geometry",
    "conv_transpose_backward",
    "conv_transpose_forward",
    "conv_transpose_forward_backward",
    "conv_transpose_geometry",
]


def conv_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    *,
    stride: IntOrInts = 1,
    padding: Padding = 0,
    dilation: IntOrInts = 1,
    groups: int = 1,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> np.ndarray:
    """y (N, O, *out) = conv(x (N, C, *in), w (O, C/groups, *kernel)) + b (O,)."""
    geometry = conv_geometry(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    if b is not None:
        check_shape("b", b, (geometry.out_channels,))
    y, _, _ = convolve(geometry, x, w, None, outputs={"y"}, memory_budget=memory_budget)
    assert y is not None
    return add_bias(y, b)


def conv_backward(
    dy: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    *,
    stride: IntOrInts = 1,
    padding: Padding = 0,
    dilation: IntOrInts = 1,
    groups: int = 1,
    bias: bool = True,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradients (dx (N, C, *in), dw (O, C/groups, *kernel), db (O,) or None if not `bias`) for dy (N, O, *out)."""
    geometry = conv_geometry(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    check_shape("dy", dy, (geometry.batch, geometry.out_channels) + geometry.output_size)
    _, dx, dw = convolve(geometry, x, w, dy, outputs={"dx", "dw"}, memory_budget=memory_budget)
    assert dx is not None and dw is not None
    return dx, dw, bias_gradient(dy) if bias else None


def conv_forward_backward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    dy: np.ndarray,
    *,
    stride: IntOrInts = 1,
    padding: Padding = 0,
    dilation: IntOrInts = 1,
    groups: int = 1,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """y, dx, dw, db in one pass over the column buffer (db is None when b is None).

    Faster than conv_forward + conv_backward: the columns are gathered once per tile.
    """
    geometry = conv_geometry(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    if b is not None:
        check_shape("b", b, (geometry.out_channels,))
    check_shape("dy", dy, (geometry.batch, geometry.out_channels) + geometry.output_size)
    y, dx, dw = convolve(geometry, x, w, dy, outputs={"y", "dx", "dw"}, memory_budget=memory_budget)
    assert y is not None and dx is not None and dw is not None
    return add_bias(y, b), dx, dw, None if b is None else bias_gradient(dy)
