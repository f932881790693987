"""Transposed dx, dw, db are the gradients of its forward pass, and its forward pass is the adjoint of conv_forward.

Finite differences: with loss L = <y, dy>, y = conv_transpose(x, w) + b, dL/dx = dx, dL/dw = dw,
dL/db = db. L is linear in each of x, w and b, so a central difference is exact up to rounding.

Adjoint identity: for z (N, C_out, *out), <conv_transpose(x, w), z> == <x, conv(z, w)> with the same
w, stride, dilation and groups, the convolution padding z by (before, after - output_padding). When
output_padding < stride that is also conv with the very same padding, as PyTorch defines it: the
extra output_padding positions lie past the last window of a stride-s convolution.
"""

import numpy as np
import pytest
from hypothesis import given, settings

from convparity.reference_impl import conv_forward, conv_transpose_backward, conv_transpose_forward
from tests.reference_impl.differences import central_difference
from tests.reference_impl.direct_transposed import scatter_forward
from tests.reference_impl.transposed_cases import TransposedCase, make_transposed_case, transposed_cases

SMALL_CASES = {
    "1d stride 2, pad (1, 2), output_padding 1, dilation 2": dict(
        batch=2, groups=1, group_in=2, group_out=3, input_size=(4,), kernel_size=(3,),
        stride=(2,), padding=((1, 2),), output_padding=(1,), dilation=(2,),
    ),
    "2d groups 2, stride (2, 3), output_padding (1, 2)": dict(
        batch=1, groups=2, group_in=2, group_out=1, input_size=(3, 2), kernel_size=(2, 3),
        stride=(2, 3), padding=((0, 1), (2, 0)), output_padding=(1, 2), dilation=(1, 1),
    ),
    "2d negative pads, output_padding 2 >= stride 1 (allowed by dilation 3)": dict(
        batch=1, groups=1, group_in=2, group_out=2, input_size=(3, 3), kernel_size=(2, 2),
        stride=(1, 2), padding=((-1, 1), (1, -1)), output_padding=(2, 0), dilation=(3, 1),
    ),
    "3d depthwise, stride 2, pad 1": dict(
        batch=1, groups=2, group_in=1, group_out=1, input_size=(2, 3, 2), kernel_size=(2, 2, 2),
        stride=(2, 2, 1), padding=((1, 1), (1, 0), (0, 1)), output_padding=(1, 0, 0), dilation=(1, 1, 1),
    ),
}  # fmt: skip


@pytest.mark.parametrize("dims", SMALL_CASES.values(), ids=SMALL_CASES.keys())
def test_gradients_match_central_differences(dims: dict) -> None:
    case = make_transposed_case(**dims, bias=True, seed=7)
    x, w, b = case.x.copy(), case.w.copy(), case.b.copy()

    def loss() -> float:
        return float(np.vdot(conv_transpose_forward(x, w, b, **case.options), case.dy))

    dx, dw, db = conv_transpose_backward(case.dy, x, w, bias=True, **case.options)
    np.testing.assert_allclose(dx, central_difference(loss, x), rtol=0, atol=1e-9)
    np.testing.assert_allclose(dw, central_difference(loss, w), rtol=0, atol=1e-9)
    np.testing.assert_allclose(db, central_difference(loss, b), rtol=0, atol=1e-9)


def magnitude(case: TransposedCase) -> float:
    """sum |x| |w| |z| over the products of <conv_transpose(x, w), z>: the size of the terms, which bounds rounding."""
    options = case.options
    return float(np.vdot(scatter_forward(abs(case.x), abs(case.w), None, **options), abs(case.dy)))


def conv_options(case: TransposedCase, *, same_padding: bool) -> dict:
    """The convolution z -> x: the same arguments, after pads less output_padding unless `same_padding`."""
    padding = case.padding if same_padding else tuple(
        (before, after - extra) for (before, after), extra in zip(case.padding, case.output_padding)
    )
    return dict(stride=case.stride, padding=padding, dilation=case.dilation, groups=case.groups)


@settings(max_examples=200, deadline=None)
@given(transposed_cases(bias=False))
def test_adjoint_of_conv_forward(case: TransposedCase) -> None:
    """<conv_transpose(x, w), z> == <x, conv(z, w)>, z = case.dy, the convolution cropping output_padding off."""
    z = case.dy
    left = np.vdot(conv_transpose_forward(case.x, case.w, **case.options), z)
    right = np.vdot(case.x, conv_forward(z, case.w, **conv_options(case, same_padding=False)))
    assert abs(left - right) <= 1e-12 * magnitude(case)


@settings(max_examples=200, deadline=None)
@given(transposed_cases(bias=False, output_padding_below_stride=True))
def test_adjoint_of_conv_forward_with_the_same_padding(case: TransposedCase) -> None:
    """With output_padding < stride (PyTorch's definition) the convolution takes the very same arguments."""
    z = case.dy
    left = np.vdot(conv_transpose_forward(case.x, case.w, **case.options), z)
    right = np.vdot(case.x, conv_forward(z, case.w, **conv_options(case, same_padding=True)))
    assert abs(left - right) <= 1e-12 * magnitude(case)


@settings(max_examples=200, deadline=None)
@given(transposed_cases(bias=False))
def test_adjoint_identity_of_the_gradients(case: TransposedCase) -> None:
    """<conv_transpose(x, w), dy> == <x, dx> == <w, dw>: three orders of the same sum of products x * w * dy."""
    output_side = np.vdot(conv_transpose_forward(case.x, case.w, **case.options), case.dy)
    dx, dw, _ = conv_transpose_backward(case.dy, case.x, case.w, bias=False, **case.options)
    assert abs(np.vdot(case.x, dx) - output_side) <= 1e-12 * magnitude(case)
    assert abs(np.vdot(case.w, dw) - output_side) <= 1e-12 * magnitude(case)
