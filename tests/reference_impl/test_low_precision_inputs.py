"""float16, bfloat16 (ml_dtypes) and float32 inputs are read as float64 and the results are float64.

The reference on low-precision arrays gives exactly what it gives on the same values widened to
float64 first, and agrees with the direct method on those widened values.
"""

import ml_dtypes
import numpy as np
import pytest

from convparity.reference_impl import conv_backward, conv_forward, conv_forward_backward
from tests.reference_impl.cases import ConvCase, make_case
from tests.reference_impl.checks import assert_matches_direct_summation

CASE = make_case(
    batch=2, groups=2, group_in=2, group_out=3, input_size=(6, 5), kernel_size=(3, 2),
    stride=(2, 1), padding=((1, 0), (1, 1)), dilation=(1, 2), bias=True, seed=11,
)  # fmt: skip
DTYPES = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "float32": np.float32}


def cast(case: ConvCase, x_dtype, w_dtype, b_dtype, dy_dtype) -> ConvCase:
    """The case with its arrays rounded to the given dtypes (and kept in them)."""
    return ConvCase(
        x=case.x.astype(x_dtype),
        w=case.w.astype(w_dtype),
        b=case.b.astype(b_dtype),
        dy=case.dy.astype(dy_dtype),
        stride=case.stride,
        padding=case.padding,
        dilation=case.dilation,
        groups=case.groups,
    )


def widened(case: ConvCase) -> ConvCase:
    return cast(case, np.float64, np.float64, np.float64, np.float64)


def all_results(case: ConvCase) -> list[np.ndarray]:
    """y, dx, dw, db from the fused pass, then y from conv_forward and dx, dw, db from conv_backward."""
    fused = conv_forward_backward(case.x, case.w, case.b, case.dy, **case.options)
    forward = conv_forward(case.x, case.w, case.b, **case.options)
    backward = conv_backward(case.dy, case.x, case.w, bias=True, **case.options)
    return [*fused, forward, *backward]


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_low_precision_inputs_are_read_as_float64(dtype) -> None:
    low = cast(CASE, dtype, dtype, dtype, dtype)
    assert not np.array_equal(low.x.astype(np.float64), CASE.x)  # the rounding is real
    for got, want in zip(all_results(low), all_results(widened(low))):
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, want)
    assert_matches_direct_summation(widened(low), *conv_forward_backward(low.x, low.w, low.b, low.dy, **low.options))


def test_mixed_input_dtypes() -> None:
    mixed = cast(CASE, ml_dtypes.bfloat16, np.float16, np.float32, np.float64)
    results = conv_forward_backward(mixed.x, mixed.w, mixed.b, mixed.dy, **mixed.options)
    assert_matches_direct_summation(widened(mixed), *results)
