"""Comparison of a backend's tensor with the float64 reference under a rounding-error bound.

For every element i of a tensor T (y, dx, dw or db) with reference value ref_i, the backend's
out_i and magnitude mag_i (the same operation on |x|, |w|, |b|, |dy|: the sum of |products|):

    bound_i = factor * (gamma(K_T, u_acc) * mag_i + u_out * |ref_i| + eta_out)
    gamma(K, u) = K u / (1 - K u)

K_T is the reduction length, u_acc the unit roundoff of the accumulation precision, u_out that of
the output dtype and eta_out half its smallest subnormal: rounding a result into the subnormal range
(|ref| < 6.1e-5 in float16) errs by up to eta_out absolutely, not u_out relatively.
err_ratio = max_i |out_i - ref_i| / bound_i; <= 1 passes. NaN or Inf where the reference is finite
fails with ratio inf; a shape mismatch fails naming both shapes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from convparity.harness.vocabulary import UNIT_ROUNDOFF

# Half the smallest subnormal: the absolute rounding error of a result that lands below the normal range.
UNDERFLOW = {"float64": 2.0**-1075, "float32": 2.0**-150, "float16": 2.0**-25, "bfloat16": 2.0**-134,
             "float8_e4m3": 2.0**-10, "float8_e5m2": 2.0**-17}

# torch.testing.assert_close defaults, for readers used to allclose verdicts.
ALLCLOSE_TOLERANCES = {
    "float64": (1e-7, 1e-7),
    "float32": (1.3e-6, 1e-5),
    "float16": (1e-3, 1e-5),
    "bfloat16": (1.6e-2, 1e-5),
    "float8_e4m3": (1.25e-1, 1e-5),
    "float8_e5m2": (2.5e-1, 1e-5),
}


def gamma(k: int, u: float) -> float:
    """Higham's gamma_k = k u / (1 - k u): the relative error bound of a k-term sum; inf if k u >= 1."""
    return k * u / (1 - k * u) if k * u < 1 else math.inf


def roundoff(accumulation: str) -> float:
    """The unit roundoff of an accumulation: 0 for an exact integer one ("int32")."""
    return 0.0 if accumulation == "int32" else UNIT_ROUNDOFF[accumulation]


def element_bound(ref: np.ndarray, mag: np.ndarray, *, reduction: int, dtype: str, accumulation: str,
                  tolerance_factor: float = 1.0) -> np.ndarray:
    """bound_i = factor * (gamma(K, u_acc) * mag_i + u_out * |ref_i| + eta_out), per element (module docstring)."""
    u_acc = roundoff(accumulation)
    return tolerance_factor * (gamma(reduction, u_acc) * mag + UNIT_ROUNDOFF[dtype] * np.abs(ref) + UNDERFLOW[dtype])


@dataclass(frozen=True)
class TensorComparison:
    """How one tensor of one case compares with the reference."""

    tensor: str
    passed: bool
    err_ratio: float
    max_abs_err: float
    max_rel_err: float
    worst_index: tuple[int, ...] | None
    worst_value: float
    worst_reference: float
    allclose: bool
    message: str


def compare_tensor(
    tensor: str,
    out: np.ndarray,
    ref: np.ndarray,
    mag: np.ndarray,
    *,
    reduction: int,
    dtype: str,
    accumulation: str,
    tolerance_factor: float = 1.0,
) -> TensorComparison:
    """Compare `out` with `ref` (both canonical layout); `mag` has ref's shape; `accumulation` names the
    precision the sums are bounded in (convparity.harness.backends.contract.declared_accumulation)."""
    if out.shape != ref.shape:
        return shape_mismatch(tensor, out, ref)
    bound = element_bound(ref, mag, reduction=reduction, dtype=dtype, accumulation=accumulation,
                          tolerance_factor=tolerance_factor)
    return compare_with_bound(tensor, out, ref, bound, dtype=dtype)


def shape_mismatch(tensor: str, out: np.ndarray, ref: np.ndarray) -> TensorComparison:
    return TensorComparison(tensor, False, math.inf, math.nan, math.nan, None, math.nan, math.nan, False,
                            f"{tensor} has shape {tuple(out.shape)}, expected {tuple(ref.shape)}")


def compare_with_bound(tensor: str, out: np.ndarray, ref: np.ndarray, bound: np.ndarray, *, dtype: str,
                       ) -> TensorComparison:
    """Compare `out` with `ref` under a per-element `bound` (of ref's shape). A NaN where the reference is NaN
    matches it (log or sqrt of a negative value); an infinite bound accepts anything (the reference sits at the
    edge of a function's domain, where no result can be told wrong)."""
    if out.shape != ref.shape:
        return shape_mismatch(tensor, out, ref)
    out64 = np.asarray(out, dtype=np.float64)
    bound = np.where(np.isnan(bound), np.inf, bound)  # an error carried through inf * 0: nothing is bounded there
    both_nan = np.isnan(out64) & np.isnan(ref)
    with np.errstate(invalid="ignore"):
        err = np.where(both_nan, 0.0, np.abs(out64 - ref))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(err == 0, 0.0, err / bound)
        rel = np.where(err == 0, 0.0, err / np.abs(ref))
    ratio = np.where(np.isinf(bound), 0.0, ratio)
    wrong = (~np.isfinite(out64) & np.isfinite(ref)) | (np.isnan(ref) & ~np.isnan(out64))
    wrong &= ~np.isinf(bound)
    ratio[wrong] = math.inf
    rel[wrong] = math.inf
    err[wrong] = math.inf
    if ratio.size == 0:
        return TensorComparison(tensor, True, 0.0, 0.0, 0.0, None, math.nan, math.nan, True, "empty tensor")
    worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    err_ratio = float(ratio[worst])
    rtol, atol = ALLCLOSE_TOLERANCES.get(dtype, ALLCLOSE_TOLERANCES["bfloat16"])
    passed = err_ratio <= 1.0
    count = int(np.count_nonzero(wrong))
    if count:
        message = f"{count} non-finite values where the reference is finite, or finite where it is NaN"
    elif passed:
        message = ""
    else:
        message = (
            f"{int(np.count_nonzero(ratio > 1))} of {ratio.size} elements exceed the bound; worst at "
            f"{tuple(int(i) for i in worst)}: {float(out64[worst])!r} vs reference {float(ref[worst])!r}"
        )
    return TensorComparison(
        tensor=tensor,
        passed=passed,
        err_ratio=err_ratio,
        max_abs_err=float(err.max()),
        max_rel_err=float(rel.max()),
        worst_index=tuple(int(i) for i in worst),
        worst_value=float(out64[worst]),
        worst_reference=float(ref[worst]),
        allclose=bool(np.allclose(out64, ref, rtol=rtol, atol=atol, equal_nan=True)),
        message=message,
    )
