"""Negative padding crops the input: the same as slicing the input first and padding only by the rest.

Checked against the direct method run on the sliced input with the non-negative part of the padding,
so the direct method never sees a negative pad; cropped input elements get a zero gradient.
"""

import numpy as np
from hypothesis import assume, given, settings

from convparity.reference_impl import conv_forward_backward
from tests.reference_impl.cases import ConvCase, conv_cases
from tests.reference_impl.direct import direct_backward, direct_forward


def crop_slices(case: ConvCase) -> tuple[slice, ...]:
    """Index of the input elements negative pads keep: x[crop] has shape (N, C, *kept)."""
    kept = (
        slice(max(0, -before), size - max(0, -after)) for (before, after), size in zip(case.padding, case.x.shape[2:])
    )
    return (slice(None), slice(None), *kept)


@settings(max_examples=100, deadline=None)
@given(conv_cases(min_pad=-2, max_pad=2))
def test_negative_padding_equals_slicing_the_input(case: ConvCase) -> None:
    assume(any(before < 0 or after < 0 for before, after in case.padding))
    crop = crop_slices(case)
    cropped = case.x[crop]
    options = case.options | dict(padding=tuple((max(0, before), max(0, after)) for before, after in case.padding))
    dx_cropped, dw_expected, db_expected = direct_backward(case.dy, cropped, case.w, **options)
    dx_expected = np.zeros_like(case.x)
    dx_expected[crop] = dx_cropped

    y, dx, dw, db = conv_forward_backward(case.x, case.w, case.b, case.dy, **case.options)
    np.testing.assert_allclose(y, direct_forward(cropped, case.w, case.b, **options), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, dx_expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, dw_expected, rtol=1e-12, atol=1e-12)
    if case.b is not None:
        np.testing.assert_allclose(db, db_expected, rtol=1e-12, atol=1e-12)
