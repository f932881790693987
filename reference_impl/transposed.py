"""Reference N-d transposed convolution (float64, memory-bounded): forward and backward.

Layouts (PyTorch's and ONNX's): x (N, C_in, *in), w (C_in, C_out/groups, *kernel), b (C_out,),
y and dy (N, C_out, *out), with 1 to 3 spatial dims. Per dim, with d the dilation (1 = dense kernel):

    out = (i - 1) * s - before - after + (k - 1) * d + output_padding + 1

Input element j scatters w's tap t onto position j * s + t * d of the full result, (i - 1) * s +
(k - 1) * d + 1 positions long; output element m is full position m + before. `padding` is an int,
one int per dim (symmetric) or one (before, after) pair per dim: positive pads crop the full result
(as in PyTorch and ONNX); negative pads extend it with positions no input reaches, which hold the
bias alone. That is the adjoint of a convolution whose negative pads crop its input. Padding that
leaves no output raises ValueError; padding that leaves no output position the input reaches gives the
bias alone (and zero dx, dw), as PyTorch computes it.

output_padding (an int or one per dim) follows PyTorch's rule: 0 <= output_padding < stride or <
dilation in every dim. Its purpose is to pick which of the input sizes that a strided convolution
maps onto the same output size this op produces, which needs no more than stride - 1; PyTorch also
accepts values below the dilation. The reference accepts exactly PyTorch's set so that it can check
every case PyTorch runs (Keras' output_padding < stride is a subset; ONNX's operator text sets no
bound). Larger values would only append positions no input reaches, which a more negative `after`
pad expresses here, so they are refused like PyTorch refuses them.

The forward pass is the data gradient of the convolution `TransposedGeometry.adjoint` (same w,
strides and dilation; z (N, C_out, *out) -> (N, C_in, *in)), computed by the convolution's own col2im
pass (convparity.reference_impl.im2col.convolve), and the gradients are that convolution's forward pass (dx)
and weight gradient (dw): the fused pass gathers dy's columns once and gives all three.
Inputs of any floating dtype (bfloat16 included) are read as float64; results are float64.
Reduction lengths K of y, dx, dw, db (for error bounds): `TransposedGeometry.reduction_lengths`.
"""

from __future__ import annotations

import numpy as np

from convparity.reference_impl.geometry import (
    IntOrInts,
    Padding,
    TransposedGeometry,
    check_shape,
    conv_transpose_geometry,
)
from convparity.reference_impl.im2col import DEFAULT_MEMORY_BUDGET, add_bias, bias_gradient, convolve


def _check_bias_and_gradient(geometry: TransposedGeometry, b: np.ndarray | None, dy: np.ndarray | None) -> None:
    """b (C_out,) and dy (N, C_out, *out) where given."""
    if b is not None:
        check_shape("b", b, (geometry.out_channels,))
    if dy is not None:
        check_shape("dy", dy, (geometry.batch, geometry.out_channels) + geometry.output_size)


def _zeros(geometry: TransposedGeometry, tensor: str) -> np.ndarray:
    """A float64 zero tensor of y's, dx's or dw's shape: what the input contributes where it reaches no output."""
    shapes = {"y": (geometry.batch, geometry.out_channels, *geometry.output_size),
              "dx": (geometry.batch, geometry.in_channels, *geometry.input_size),
              "dw": (geometry.in_channels, geometry.out_channels // geometry.groups, *geometry.kernel_size)}
    return np.zeros(shapes[tensor])


def conv_transpose_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    *,
    stride: IntOrInts = 1,
    padding: Padding = 0,
    output_padding: IntOrInts = 0,
    dilation: IntOrInts = 1,
    groups: int = 1,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> np.ndarray:
    """y (N, C_out, *out) = conv_transpose(x (N, C_in, *in), w (C_in, C_out/groups, *kernel)) + b (C_out,).

    padding and output_padding as in the module docstring (output_padding < stride or < dilation, PyTorch's rule).
    """
    geometry = conv_transpose_geometry(
        x, w, stride=stride, padding=padding, output_padding=output_padding, dilation=dilation, groups=groups
    )
    _check_bias_and_gradient(geometry, b, None)
    if not geometry.reaches_output:
        return add_bias(_zeros(geometry, "y"), b)
    _, y, _ = convolve(geometry.adjoint, None, w, x, outputs={"dx"}, memory_budget=memory_budget)
    assert y is not None
    return add_bias(y, b)


def conv_transpose_backward(
    dy: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    *,
    stride: IntOrInts = 1,
    padding: Padding = 0,
    output_padding: IntOrInts = 0,
    dilation: IntOrInts = 1,
    groups: int = 1,
    bias: bool = True,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradients dx (N, C_in, *in), dw (C_in, C_out/groups, *kernel), db (C_out,) (None if not `bias`) for dy.

    dy (N, C_out, *out). dx is the adjoint convolution of dy, dw its weight gradient against x.
    """
    geometry = conv_transpose_geometry(
        x, w, stride=stride, padding=padding, output_padding=output_padding, dilation=dilation, groups=groups
    )
    _check_bias_and_gradient(geometry, None, dy)
    if not geometry.reaches_output:
        return _zeros(geometry, "dx"), _zeros(geometry, "dw"), bias_gradient(dy) if bias else None
    dx, _, dw = convolve(geometry.adjoint, dy, w, x, outputs={"y", "dw"}, memory_budget=memory_budget)
    assert dx is not None and dw is not None
    return dx, dw, bias_gradient(dy) if bias else None


def conv_transpose_forward_backward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    dy: np.ndarray,
    *,
    stride: IntOrInts = 1,
    padding: Padding = 0,
    output_padding: IntOrInts = 0,
    dilation: IntOrInts = 1,
    groups: int = 1,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """y, dx, dw, db in one pass over dy's column buffer (db is None when b is None).

    x (N, C_in, *in), w (C_in, C_out/groups, *kernel), b (C_out,) or None, dy (N, C_out, *out).
    """
    geometry = conv_transpose_geometry(
        x, w, stride=stride, padding=padding, output_padding=output_padding, dilation=dilation, groups=groups
    )
    _check_bias_and_gradient(geometry, b, dy)
    if not geometry.reaches_output:
        return (add_bias(_zeros(geometry, "y"), b), _zeros(geometry, "dx"), _zeros(geometry, "dw"),
                None if b is None else bias_gradient(dy))
    dx, y, dw = convolve(geometry.adjoint, dy, w, x, outputs={"y", "dx", "dw"}, memory_budget=memory_budget)
    assert y is not None and dx is not None and dw is not None
    return add_bias(y, b), dx, dw, None if b is None else bias_gradient(dy)
