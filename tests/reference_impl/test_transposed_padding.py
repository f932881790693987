"""Every transposed output is a window onto the full, unpadded result: padding and output_padding only move its ends.

Along a dim the full result (no padding, no output_padding) is (i - 1) * s + (k - 1) * d + 1 long; the
output is its positions before .. before + out - 1, zero (bias only) where they fall outside it. So
positive pads crop, negative pads and output_padding extend. Checked against the scatter loops run
without any padding, so they never see a pad; the gradients follow by placing dy in that window.
"""

import numpy as np
from hypothesis import given, settings

from convparity.reference_impl import conv_transpose_forward_backward
from tests.reference_impl.direct_transposed import scatter_backward, scatter_forward
from tests.reference_impl.transposed_cases import TransposedCase, transposed_cases


def full_options(case: TransposedCase) -> dict:
    rank = len(case.stride)
    return case.options | dict(padding=((0, 0),) * rank, output_padding=(0,) * rank)


def window(case: TransposedCase, full_size: tuple[int, ...]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """(output slices, full-result slices) of the output positions that lie inside the full result."""
    out_slices, full_slices = [], []
    for (before, _), out, full in zip(case.padding, case.dy.shape[2:], full_size):
        first, last = max(0, before), min(full, before + out)  # full positions in the output window
        full_slices.append(slice(first, last))
        out_slices.append(slice(first - before, last - before))
    return (slice(None), slice(None), *out_slices), (slice(None), slice(None), *full_slices)


@settings(max_examples=150, deadline=None)
@given(transposed_cases(min_pad=-3, max_pad=3))
def test_output_is_a_window_onto_the_full_result(case: TransposedCase) -> None:
    full = scatter_forward(case.x, case.w, None, **full_options(case))  # (N, C_out, *full)
    inside, source = window(case, full.shape[2:])
    y_expected = np.zeros(case.dy.shape)
    y_expected[inside] = full[source]
    if case.b is not None:
        y_expected += case.b.reshape((1, -1) + (1,) * (case.x.ndim - 2))
    dy_full = np.zeros(full.shape)
    dy_full[source] = case.dy[inside]  # dy outside the full result multiplies nothing
    dx_expected, dw_expected, _ = scatter_backward(dy_full, case.x, case.w, **full_options(case))

    y, dx, dw, db = conv_transpose_forward_backward(case.x, case.w, case.b, case.dy, **case.options)
    np.testing.assert_allclose(y, y_expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, dx_expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, dw_expected, rtol=1e-12, atol=1e-12)
    if case.b is not None:
        np.testing.assert_allclose(db, case.dy.sum(axis=(0, *range(2, case.dy.ndim))), rtol=1e-12, atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(transposed_cases(bias=True))
def test_output_padding_is_a_smaller_after_pad(case: TransposedCase) -> None:
    """(before, after) with output_padding e gives what (before, after - e) gives without: a negative after pad
    expresses output_padding beyond PyTorch's limit."""
    rank = len(case.stride)
    moved = case.options | dict(
        padding=tuple((before, after - e) for (before, after), e in zip(case.padding, case.output_padding)),
        output_padding=(0,) * rank,
    )
    with_output_padding = conv_transpose_forward_backward(case.x, case.w, case.b, case.dy, **case.options)
    with_after_pad = conv_transpose_forward_backward(case.x, case.w, case.b, case.dy, **moved)
    for got, want in zip(with_output_padding, with_after_pad, strict=True):
        np.testing.assert_array_equal(got, want)
