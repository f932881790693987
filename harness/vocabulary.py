"""The words every layer of convparity shares: row statuses, tensors and dtypes, each checked in one place.

This module imports nothing of convparity, so everything may import it.

- `Status`: one per results row (README, "How a tensor passes"). Members are strings ("pass"), so they
  compare, print and travel in CSV files as their values.
- `Tensor`: y, dx, dw, db, in that order (a Literal of plain strings).
- dtypes: the names a spec's `dtype` may take (`DTYPES`, typed `DType`), their unit roundoffs, the NumPy
  dtype of each (`numpy_dtype`; bfloat16 from ml_dtypes), and `check_dtype`, the one check of a dtype name.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, TypeGuard, cast

import numpy as np


class Status(StrEnum):
    """What one row says: a verdict, or what kept a tensor from being compared."""

    PASS = "pass"
    FAIL = "fail"
    XFAIL = "xfail"  # fails as the backend declares (a known deviation)
    XPASS = "xpass"  # a declared deviation that did not happen: the declaration is stale
    UNSUPPORTED = "unsupported"
    ERROR = "error"  # the backend raised
    CRASH = "crash"  # the backend's worker died
    TIMEOUT = "timeout"
    REFERENCE_ERROR = "reference-error"  # the reference side failed: never the backend's fault
    HARNESS_ERROR = "harness-error"  # the harness failed before the backend's run (drawing the inputs): not its fault


STATUSES: tuple[Status, ...] = tuple(Status)
BAD_STATUSES = (Status.FAIL, Status.ERROR, Status.CRASH, Status.TIMEOUT)  # the backend's failures: exit 1
STALE_STATUSES = (Status.XPASS,)  # exit 1 under --strict
# The harness's own failures, never charged to a backend: exit 3 when nothing else failed.
HARNESS_STATUSES = (Status.REFERENCE_ERROR, Status.HARNESS_ERROR)


# The tensors a case compares: the forward output and the three gradients (plain strings: they are written into
# files and generated code as they are).
Tensor = Literal["y", "dx", "dw", "db"]
TENSORS: tuple[Tensor, ...] = ("y", "dx", "dw", "db")

DType = Literal["float64", "float32", "float16", "bfloat16"]
DTYPES: tuple[DType, ...] = ("float64", "float32", "float16", "bfloat16")
UNIT_ROUNDOFF: dict[str, float] = {"float64": 2.0**-53, "float32": 2.0**-24, "float16": 2.0**-11,
                                   "bfloat16": 2.0**-8}


def is_dtype(value: object) -> TypeGuard[DType]:
    return isinstance(value, str) and value in DTYPES


def check_dtype(value: object, field: str = "dtype") -> DType:
    """`value` as a dtype name, or ValueError naming `field` and the known names."""
    if not is_dtype(value):
        raise ValueError(f"{field} must be one of {', '.join(DTYPES)}, got {value!r}")
    return value


def check_dtypes(values: object, field: str = "dtypes") -> tuple[DType, ...]:
    """A non-empty sequence of dtype names without repeats (order kept), or ValueError naming `field`."""
    if isinstance(values, str) or not isinstance(values, (tuple, list)) or not values:
        raise ValueError(f"{field} must be a non-empty list of dtype names, got {values!r}")
    return tuple(dict.fromkeys(check_dtype(value, field) for value in values))


def numpy_dtype(name: str) -> np.dtype:
    """The NumPy dtype of a dtype name (bfloat16 from ml_dtypes)."""
    if check_dtype(name) == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(cast(str, name))
