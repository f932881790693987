"""Assertions shared by the reference tests: results agree with the tests' own direct methods."""

from __future__ import annotations

import numpy as np

from tests.reference_impl.cases import ConvCase
from tests.reference_impl.direct import direct_backward, direct_forward
from tests.reference_impl.direct_transposed import scatter_backward, scatter_forward
from tests.reference_impl.transposed_cases import TransposedCase

TOLERANCE = 1e-12


def assert_matches_direct_summation(
    case: ConvCase, y: np.ndarray, dx: np.ndarray, dw: np.ndarray, db: np.ndarray | None
) -> None:
    """y, dx, dw, db equal the direct method's to TOLERANCE (relative and absolute); db None iff no bias."""
    expected_dx, expected_dw, expected_db = direct_backward(case.dy, case.x, case.w, **case.options)
    expected_y = direct_forward(case.x, case.w, case.b, **case.options)
    _assert_results((expected_y, expected_dx, expected_dw, expected_db), (y, dx, dw, db), bias=case.b is not None)


def assert_matches_scatter(
    case: TransposedCase, y: np.ndarray, dx: np.ndarray, dw: np.ndarray, db: np.ndarray | None
) -> None:
    """Transposed y, dx, dw, db equal the scatter loops' to TOLERANCE; db None iff no bias."""
    expected_dx, expected_dw, expected_db = scatter_backward(case.dy, case.x, case.w, **case.options)
    expected_y = scatter_forward(case.x, case.w, case.b, **case.options)
    _assert_results((expected_y, expected_dx, expected_dw, expected_db), (y, dx, dw, db), bias=case.b is not None)


def _assert_results(expected: tuple, actual: tuple, *, bias: bool) -> None:
    """(y, dx, dw, db) pairs equal to TOLERANCE and float64; the actual db must be None without a bias."""
    for name, want, got in zip(("y", "dx", "dw", "db"), expected, actual, strict=True):
        if name == "db" and not bias:
            assert got is None, "db should be None without a bias"
            continue
        assert got.dtype == np.float64, f"{name} is {got.dtype}, not float64"
        assert got.shape == want.shape, f"{name} has shape {got.shape}, expected {want.shape}"
        np.testing.assert_allclose(got, want, rtol=TOLERANCE, atol=TOLERANCE, err_msg=name)
