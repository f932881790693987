"""Assertion shared by the reference tests: results agree with the direct-summation method."""

from __future__ import annotations

import numpy as np

from tests.reference.cases import ConvCase
from tests.reference.direct import direct_backward, direct_forward

TOLERANCE = 1e-12


def assert_matches_direct_summation(
    case: ConvCase, y: np.ndarray, dx: np.ndarray, dw: np.ndarray, db: np.ndarray | None
) -> None:
    """y, dx, dw, db equal the direct method's to TOLERANCE (relative and absolute); db None iff no bias."""
    expected_dx, expected_dw, expected_db = direct_backward(case.dy, case.x, case.w, **case.options)
    expected = {
        "y": direct_forward(case.x, case.w, case.b, **case.options),
        "dx": expected_dx,
        "dw": expected_dw,
        "db": None if case.b is None else expected_db,
    }
    for (name, want), got in zip(expected.items(), (y, dx, dw, db), strict=True):
        if want is None:
            assert got is None, f"{name} should be None without a bias"
            continue
        assert got.dtype == np.float64, f"{name} is {got.dtype}, not float64"
        np.testing.assert_allclose(got, want, rtol=TOLERANCE, atol=TOLERANCE, err_msg=name)
