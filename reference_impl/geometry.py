"""Argument normalisation and validation for the reference convolution.

Everything the kernels need to know about a convolution's shapes lives in one
`ConvGeometry`, built (and validated) from the array shapes and the keyword
arguments the public functions accept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeGuard

import numpy as np

IntOrInts = int | Sequence[int]
Padding = int | Sequence[int] | Sequence[Sequence[int]]

# ml_dtypes' bfloat16 (and the float8 family) are NumPy "void"-kind dtypes, yet floating point.
_EXTRA_FLOAT_NAMES = ("bfloat16", "float8")


@dataclass(frozen=True)
class ConvGeometry:
    """Shapes of one N-d convolution (rank = number of spatial dims, 1 to 3).

    x (N, C, *input_size), w (O, C/groups, *kernel_size), y (N, O, *output_size).
    `padding` holds one (before, after) pair per spatial dim; negative values crop.
    """

    batch: int
    in_channels: int
    out_channels: int
    groups: int
    input_size: tuple[int, ...]
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]

    @property
    def rank(self) -> int:
        return len(self.input_size)

    @property
    def effective_kernel(self) -> tuple[int, ...]:
        """(k - 1) * d + 1 per dim: the extent one window covers."""
        return tuple((k - 1) * d + 1 for k, d in zip(self.kernel_size, self.dilation))

    @property
    def padded_size(self) -> tuple[int, ...]:
        return tuple(i + lo + hi for i, (lo, hi) in zip(self.input_size, self.padding))

    @property
    def output_size(self) -> tuple[int, ...]:
        """floor((i + lo + hi - effective_kernel) / s) + 1 per dim."""
        return tuple(
            (p - e) // s + 1 for p, e, s in zip(self.padded_size, self.effective_kernel, self.stride)
        )

    @property
    def kernel_volume(self) -> int:
        return math.prod(self.kernel_size)


def is_floating(dtype: np.dtype) -> bool:
    """True for NumPy floating dtypes and ml_dtypes' bfloat16/float8 types."""
    return dtype.kind == "f" or dtype.name.startswith(_EXTRA_FLOAT_NAMES)


def check_floating(name: str, array: np.ndarray) -> None:
    if not is_floating(array.dtype):
        raise ValueError(f"{name} must be a floating-point array, got dtype {array.dtype}")


def _is_int(value: object) -> TypeGuard[int | np.integer]:
    """An int or NumPy integer, not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _as_tuple(name: str, value: object, expected: str) -> tuple:
    """`value` as a tuple; a ValueError naming `name` if it is not iterable (a float, None, ...)."""
    try:
        return tuple(value)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"{name} must be {expected}, got {value!r}") from None


def per_dim(name: str, value: IntOrInts, rank: int, *, minimum: int) -> tuple[int, ...]:
    """An int or one int per spatial dim, as a tuple of `rank` ints, each >= minimum."""
    expected = f"an int or {rank} ints (one per spatial dim)"
    values = (value,) * rank if _is_int(value) else _as_tuple(name, value, expected)
    if len(values) != rank:
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    for v in values:
        if not _is_int(v):
            raise ValueError(f"{name} must contain ints, got {value!r}")
        if v < minimum:
            raise ValueError(f"{name} must be >= {minimum} in every dim, got {value!r}")
    return tuple(int(v) for v in values)


def per_dim_pairs(value: Padding, rank: int) -> tuple[tuple[int, int], ...]:
    """padding as an int, one int per dim (symmetric) or one (before, after) pair per dim."""
    if _is_int(value):
        return ((int(value), int(value)),) * rank
    expected = f"an int, {rank} ints or {rank} (before, after) pairs"
    items = _as_tuple("padding", value, expected)
    if len(items) != rank:
        raise ValueError(f"padding must be {expected}, got {value!r}")
    pairs = []
    for item in items:
        if _is_int(item):
            pairs.append((int(item), int(item)))
            continue
        pair = tuple(item) if isinstance(item, (Sequence, np.ndarray)) else ()
        if len(pair) != 2 or not all(_is_int(v) for v in pair):
            raise ValueError(f"padding entries must be ints or (before, after) int pairs, got {value!r}")
        pairs.append((int(pair[0]), int(pair[1])))
    return tuple(pairs)


def conv_geometry(
    x: np.ndarray,
    w: np.ndarray,
    *,
    stride: IntOrInts,
    padding: Padding,
    dilation: IntOrInts,
    groups: int,
) -> ConvGeometry:
    """Validate x (N, C, *spatial) and w (O, C/groups, *kernel) against the keyword arguments."""
    check_floating("x", x)
    check_floating("w", w)
    if x.ndim not in (3, 4, 5):
        raise ValueError(f"x must have shape (N, C, *spatial) with 1 to 3 spatial dims, got {x.shape}")
    if w.ndim != x.ndim:
        raise ValueError(
            f"w must have shape (O, C/groups, *kernel) with {x.ndim - 2} spatial dims like x, got {w.shape}"
        )
    rank = x.ndim - 2
    batch, in_channels, *input_size = x.shape
    out_channels, group_channels, *kernel_size = w.shape
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"groups={groups} must divide both input channels ({in_channels}) and output channels "
            f"({out_channels})"
        )
    if group_channels * groups != in_channels:
        raise ValueError(
            f"w has {group_channels} input channels per group, but x has {in_channels} channels "
            f"and groups={groups} (expected {in_channels // groups})"
        )
    if min(x.shape) < 1 or min(w.shape) < 1:
        raise ValueError(f"x {x.shape} and w {w.shape} must have no empty dims")
    geometry = ConvGeometry(
        batch=batch,
        in_channels=in_channels,
        out_channels=out_channels,
        groups=int(groups),
        input_size=tuple(input_size),
        kernel_size=tuple(kernel_size),
        stride=per_dim("stride", stride, rank, minimum=1),
        dilation=per_dim("dilation", dilation, rank, minimum=1),
        padding=per_dim_pairs(padding, rank),
    )
    for dim, ((lo, hi), size) in enumerate(zip(geometry.padding, geometry.input_size)):
        if size + min(lo, 0) + min(hi, 0) < 1:
            raise ValueError(f"padding {geometry.padding[dim]} crops all {size} input elements in dim {dim}")
    for dim, (padded, effective) in enumerate(zip(geometry.padded_size, geometry.effective_kernel)):
        if effective > padded:
            raise ValueError(
                f"effective kernel {effective} (kernel {geometry.kernel_size[dim]}, dilation "
                f"{geometry.dilation[dim]}) is larger than the padded input {padded} in dim {dim}"
            )
    return geometry


def check_shape(name: str, array: np.ndarray, expected: tuple[int, ...]) -> None:
    check_floating(name, array)
    if array.shape != expected:
        raise ValueError(f"{name} must have shape {expected}, got {array.shape}")
