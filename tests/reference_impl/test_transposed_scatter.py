"""The transposed convolution agrees with the independent scatter loops (tests/reference_impl/direct_transposed.py).

Property-based: ranks 1-3, stride, dilation, output_padding (up to PyTorch's limit), asymmetric and
negative padding, groups, bias on/off; every tiling of the adjoint convolution's col2im pass;
non-contiguous and low-precision inputs.
"""

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convparity.reference_impl import conv_transpose_backward, conv_transpose_forward, conv_transpose_forward_backward
from tests.reference_impl.checks import assert_matches_scatter
from tests.reference_impl.transposed_cases import TransposedCase, make_transposed_case, transposed_cases


@settings(max_examples=300, deadline=None)
@given(transposed_cases())
def test_forward_backward_matches_scatter(case: TransposedCase) -> None:
    results = conv_transpose_forward_backward(case.x, case.w, case.b, case.dy, **case.options)
    assert_matches_scatter(case, *results)


@settings(max_examples=100, deadline=None)
@given(transposed_cases())
def test_separate_forward_and_backward_match_scatter(case: TransposedCase) -> None:
    y = conv_transpose_forward(case.x, case.w, case.b, **case.options)
    dx, dw, db = conv_transpose_backward(case.dy, case.x, case.w, bias=case.b is not None, **case.options)
    assert_matches_scatter(case, y, dx, dw, db)


@settings(max_examples=60, deadline=None)
@given(transposed_cases(), st.sampled_from([1, 200, 2000]))
def test_tiny_budgets_agree_with_scatter(case: TransposedCase, budget: int) -> None:
    """Budgets of one input row per tile and less: the adjoint convolution tiles over x's rows."""
    fused = conv_transpose_forward_backward(case.x, case.w, case.b, case.dy, memory_budget=budget, **case.options)
    assert_matches_scatter(case, *fused)
    y = conv_transpose_forward(case.x, case.w, case.b, memory_budget=budget, **case.options)
    backward = conv_transpose_backward(case.dy, case.x, case.w, memory_budget=budget, **case.options)
    assert_matches_scatter(case, y, *backward[:2], backward[2] if case.b is not None else None)


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize(("groups", "group_in", "group_out"), [(1, 4, 3), (2, 2, 3), (4, 1, 1), (3, 2, 1)])
@pytest.mark.parametrize("budget", [16 * 2**20, 200])
def test_pointwise_agrees_with_scatter(rank: int, groups: int, group_in: int, group_out: int, budget: int) -> None:
    """1x1 kernel, stride 1, no padding: the adjoint convolution's column-free path, whole images and rows."""
    case = make_transposed_case(
        batch=3, groups=groups, group_in=group_in, group_out=group_out, input_size=(5, 4, 3)[:rank],
        kernel_size=(1,) * rank, stride=(1,) * rank, padding=((0, 0),) * rank, output_padding=(0,) * rank,
        dilation=(1,) * rank, bias=True, seed=rank * 10 + groups,
    )  # fmt: skip
    y = conv_transpose_forward(case.x, case.w, case.b, memory_budget=budget, **case.options)
    dx, dw, db = conv_transpose_backward(case.dy, case.x, case.w, memory_budget=budget, **case.options)
    assert_matches_scatter(case, y, dx, dw, db)
    assert_matches_scatter(case, *conv_transpose_forward_backward(case.x, case.w, case.b, case.dy, **case.options))


@settings(max_examples=20, deadline=None)
@given(transposed_cases(bias=True))
def test_inputs_are_left_unchanged(case: TransposedCase) -> None:
    arrays = (case.x, case.w, case.b, case.dy)
    copies = [a.copy() for a in arrays]
    conv_transpose_forward_backward(*arrays, **case.options)
    conv_transpose_forward(*arrays[:3], **case.options)
    conv_transpose_backward(case.dy, case.x, case.w, **case.options)
    for array, copy in zip(arrays, copies, strict=True):
        np.testing.assert_array_equal(array, copy)


def strided_twin(array: np.ndarray) -> np.ndarray:
    """The same values as a non-contiguous view: every other element of a doubled array."""
    return np.repeat(array, 2, axis=-1)[..., ::2]


@settings(max_examples=30, deadline=None)
@given(transposed_cases(bias=True))
def test_non_contiguous_inputs(case: TransposedCase) -> None:
    """Fortran-ordered and strided arrays give the same results as C-ordered ones."""
    x, w, dy = strided_twin(case.x), np.asfortranarray(case.w), np.asfortranarray(case.dy)
    assert_matches_scatter(case, *conv_transpose_forward_backward(x, w, strided_twin(case.b), dy, **case.options))
    y = conv_transpose_forward(x, w, case.b, **case.options)
    assert_matches_scatter(case, y, *conv_transpose_backward(dy, x, w, **case.options))


LOW_PRECISION = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "float32": np.float32}


@pytest.mark.parametrize("dtype", LOW_PRECISION.values(), ids=LOW_PRECISION.keys())
def test_low_precision_inputs_are_read_as_float64(dtype) -> None:
    """Rounded inputs kept in their dtype give float64 results equal to the scatter loops' on the widened values."""
    case = make_transposed_case(
        batch=2, groups=2, group_in=2, group_out=3, input_size=(4, 3), kernel_size=(3, 2), stride=(2, 1),
        padding=((1, 0), (0, -1)), output_padding=(1, 0), dilation=(1, 2), bias=True, seed=11,
    )  # fmt: skip
    low = [a.astype(dtype) for a in (case.x, case.w, case.b, case.dy)]
    assert not np.array_equal(low[0].astype(np.float64), case.x)  # the rounding is real
    x, w, b, dy = (a.astype(np.float64) for a in low)
    widened = TransposedCase(x, w, b, dy, case.stride, case.padding, case.output_padding, case.dilation, case.groups)
    assert_matches_scatter(widened, *conv_transpose_forward_backward(*low, **case.options))
    y = conv_transpose_forward(*low[:3], **case.options)
    assert_matches_scatter(widened, y, *conv_transpose_backward(low[3], low[0], low[1], **case.options))
