"""The words every layer of convparity shares: row statuses, tensors and dtypes, each checked in one place.

This module imports nothing of convparity, so everything may import it.

- `Status`: one per results row (README, "How a tensor passes"). Members are strings ("pass"), so they
  compare, print and travel in CSV files as their values.
- `Tensor`: y, dx, dw, db, in that order (a Literal of plain strings).
- dtypes: the float dtypes every run asks about (`DTYPES`, typed `DType`), every data type a tensor may have
  (`DATA_TYPES`: those, 8-bit floats and integers), their unit roundoffs and integer ranges, the NumPy dtype of
  each (`numpy_dtype`; bfloat16 and 8-bit floats from ml_dtypes), and `check_dtype`, the one check of a spec's
  dtype (one data type, or SRC:WEI:DST).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, TypeGuard

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



def tensor_key(tensor: str) -> tuple[int, str]:
    """Sort key of tensor names: y, dx, dw, db, then the post-op operands' gradients (dpost0, dpost1, ...)."""
    return (TENSORS.index(tensor), "") if tensor in TENSORS else (len(TENSORS), tensor.zfill(12))


def in_tensor_order(tensors) -> list[str]:
    """Distinct tensor names in tensor_key's order."""
    return sorted(set(tensors), key=tensor_key)


DType = Literal["float64", "float32", "float16", "bfloat16"]
DTYPES: tuple[DType, ...] = ("float64", "float32", "float16", "bfloat16")
# Every data type a tensor of a spec may have: the four float dtypes above (those a run asks of every backend),
# OCP's 8-bit floats (benchdnn's f8_e4m3 and f8_e5m2; ml_dtypes' float8_e4m3fn and float8_e5m2) and integers.
FLOAT_TYPES = (*DTYPES, "float8_e4m3", "float8_e5m2")
INTEGER_TYPES = ("uint8", "int8", "int32")
DATA_TYPES = (*FLOAT_TYPES, *INTEGER_TYPES)
UNIT_ROUNDOFF: dict[str, float] = {"float64": 2.0**-53, "float32": 2.0**-24, "float16": 2.0**-11,
                                   "bfloat16": 2.0**-8, "float8_e4m3": 2.0**-4, "float8_e5m2": 2.0**-3}
INTEGER_RANGE: dict[str, tuple[int, int]] = {"uint8": (0, 255), "int8": (-128, 127), "int32": (-2**31, 2**31 - 1)}


def is_dtype(value: object) -> TypeGuard[DType]:
    return isinstance(value, str) and value in DTYPES


def check_dtype(value: object, field: str = "dtype") -> str:
    """`value` as a spec's dtype in canonical form, or ValueError naming `field` and the known names.

    A dtype is one data type for every tensor ("float32", "int8") or benchdnn's SRC:WEI:DST
    ("uint8:int8:uint8", "bfloat16:float32:bfloat16"), written as one name when all three are the same.
    The source and the weights are both floats or both 8-bit integers; the destination may be any type.
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field} must be a data type name, got {value!r}")
    parts = value.split(":")
    if len(parts) not in (1, 3) or any(part not in DATA_TYPES for part in parts):
        raise ValueError(f"{field} must be one of {', '.join(DATA_TYPES)} or SRC:WEI:DST of them, got {value!r}")
    src, wei, dst = parts * 3 if len(parts) == 1 else parts
    if (src in INTEGER_TYPES) != (wei in INTEGER_TYPES) or "int32" in (src, wei):
        raise ValueError(f"{field} {value!r}: the source and the weights must both be floats or both 8-bit integers "
                         f"(uint8, int8), got {src} and {wei}")
    return src if src == wei == dst else f"{src}:{wei}:{dst}"


def data_types(dtype: str) -> tuple[str, str, str]:
    """(source, weights, destination) data types of a spec's dtype (check_dtype's forms)."""
    parts = check_dtype(dtype).split(":")
    return (parts[0],) * 3 if len(parts) == 1 else (parts[0], parts[1], parts[2])


def is_integer(data_type: str) -> bool:
    """Whether a single data type name is an integer type (its tensors hold quantization steps)."""
    return data_type in INTEGER_TYPES


def check_dtypes(values: object, field: str = "dtypes") -> tuple[str, ...]:
    """A non-empty sequence of dtypes (check_dtype's forms) without repeats (order kept), or ValueError
    naming `field`."""
    if isinstance(values, str) or not isinstance(values, (tuple, list)) or not values:
        raise ValueError(f"{field} must be a non-empty list of dtype names, got {values!r}")
    return tuple(dict.fromkeys(check_dtype(value, field) for value in values))


_ML_DTYPES = {"bfloat16": "bfloat16", "float8_e4m3": "float8_e4m3fn", "float8_e5m2": "float8_e5m2"}


def numpy_dtype(name: str) -> np.dtype:
    """The NumPy dtype of one data type name (bfloat16 and the 8-bit floats from ml_dtypes)."""
    if name not in DATA_TYPES:
        raise ValueError(f"not a single data type: {name!r} (known: {', '.join(DATA_TYPES)})")
    if name in _ML_DTYPES:
        import ml_dtypes

        return np.dtype(getattr(ml_dtypes, _ML_DTYPES[name]))
    return np.dtype(name)
