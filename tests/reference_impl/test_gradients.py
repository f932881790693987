"""dx, dw, db are the gradients of the forward pass: central finite differences and the adjoint identity.

With loss L = <y, dy>, y = conv(x, w) + b, the gradients are dL/dx = dx, dL/dw = dw, dL/db = db.
L is linear in each of x, w and b, so a central difference is exact up to rounding.
"""

import numpy as np
import pytest
from hypothesis import given, settings

from convparity.reference_impl import conv_backward, conv_forward
from tests.reference_impl.cases import ConvCase, conv_cases, make_case
from tests.reference_impl.differences import central_difference
from tests.reference_impl.direct import direct_forward

SMALL_CASES = {
    "1d stride 2, pad (1, 2), dilation 2": dict(
        batch=2, groups=1, group_in=2, group_out=3, input_size=(7,), kernel_size=(3,),
        stride=(2,), padding=((1, 2),), dilation=(2,),
    ),
    "2d groups 2, pad (0, 1)/(2, 0), stride (1, 2)": dict(
        batch=1, groups=2, group_in=2, group_out=1, input_size=(4, 5), kernel_size=(2, 3),
        stride=(1, 2), padding=((0, 1), (2, 0)), dilation=(1, 1),
    ),
    "2d cropping pad (-1, 1)/(1, -1), dilation (2, 1)": dict(
        batch=1, groups=1, group_in=2, group_out=2, input_size=(6, 5), kernel_size=(2, 2),
        stride=(1, 1), padding=((-1, 1), (1, -1)), dilation=(2, 1),
    ),
    "3d depthwise, stride 2, pad 1": dict(
        batch=1, groups=2, group_in=1, group_out=1, input_size=(3, 4, 3), kernel_size=(2, 2, 2),
        stride=(2, 2, 1), padding=((1, 1), (1, 0), (0, 1)), dilation=(1, 1, 1),
    ),
}  # fmt: skip


@pytest.mark.parametrize("dims", SMALL_CASES.values(), ids=SMALL_CASES.keys())
def test_gradients_match_central_differences(dims: dict) -> None:
    case = make_case(**dims, bias=True, seed=7)
    x, w, b = case.x.copy(), case.w.copy(), case.b.copy()

    def loss() -> float:
        return float(np.vdot(conv_forward(x, w, b, **case.options), case.dy))

    dx, dw, db = conv_backward(case.dy, x, w, bias=True, **case.options)
    np.testing.assert_allclose(dx, central_difference(loss, x), rtol=0, atol=1e-9)
    np.testing.assert_allclose(dw, central_difference(loss, w), rtol=0, atol=1e-9)
    np.testing.assert_allclose(db, central_difference(loss, b), rtol=0, atol=1e-9)


@settings(max_examples=200, deadline=None)
@given(conv_cases(bias=False))
def test_adjoint_identity(case: ConvCase) -> None:
    """<conv(x, w), dy> == <x, dx> == <w, dw>: three orders of the same sum of products x * w * dy."""
    y = conv_forward(case.x, case.w, **case.options)
    dx, dw, _ = conv_backward(case.dy, case.x, case.w, bias=False, **case.options)
    output_side = np.vdot(y, case.dy)
    # the same sum over |x| |w| |dy|: the size of the terms, which bounds the rounding error
    magnitude = np.vdot(direct_forward(abs(case.x), abs(case.w), None, **case.options), abs(case.dy))
    assert abs(np.vdot(case.x, dx) - output_side) <= 1e-12 * magnitude
    assert abs(np.vdot(case.w, dw) - output_side) <= 1e-12 * magnitude
