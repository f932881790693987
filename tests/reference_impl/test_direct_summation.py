"""The im2col reference agrees with the independent direct summation over kernel offsets.

Property-based: ranks 1-3, asymmetric (also negative) padding, dilation, stride, groups, bias on/off.
"""

import numpy as np
from hypothesis import given, settings

from convparity.reference_impl import conv_backward, conv_forward, conv_forward_backward
from tests.reference_impl.cases import ConvCase, conv_cases
from tests.reference_impl.checks import assert_matches_direct_summation


@settings(max_examples=300, deadline=None)
@given(conv_cases())
def test_forward_backward_matches_direct_summation(case: ConvCase) -> None:
    results = conv_forward_backward(case.x, case.w, case.b, case.dy, **case.options)
    assert_matches_direct_summation(case, *results)


@settings(max_examples=100, deadline=None)
@given(conv_cases())
def test_separate_forward_and_backward_match_direct_summation(case: ConvCase) -> None:
    y = conv_forward(case.x, case.w, case.b, **case.options)
    dx, dw, db = conv_backward(case.dy, case.x, case.w, bias=case.b is not None, **case.options)
    assert_matches_direct_summation(case, y, dx, dw, db)


@settings(max_examples=20, deadline=None)
@given(conv_cases(bias=True))
def test_inputs_are_left_unchanged(case: ConvCase) -> None:
    arrays = (case.x, case.w, case.b, case.dy)
    copies = [a.copy() for a in arrays]
    conv_forward_backward(*arrays, **case.options)
    for array, copy in zip(arrays, copies, strict=True):
        np.testing.assert_array_equal(array, copy)


def strided_twin(array: np.ndarray) -> np.ndarray:
    """The same values as a non-contiguous view: every other element of a doubled array."""
    return np.repeat(array, 2, axis=-1)[..., ::2]


@settings(max_examples=30, deadline=None)
@given(conv_cases(bias=True))
def test_non_contiguous_inputs(case: ConvCase) -> None:
    """Fortran-ordered and strided arrays give the same results as C-ordered ones."""
    x, w, dy = strided_twin(case.x), np.asfortranarray(case.w), np.asfortranarray(case.dy)
    results = conv_forward_backward(x, w, strided_twin(case.b), dy, **case.options)
    assert_matches_direct_summation(case, *results)
