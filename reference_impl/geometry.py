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


@dataclass(frozen=True)
class TransposedGeometry:
    """Shapes of one N-d transposed convolution (rank = number of spatial dims, 1 to 3).

    x (N, C_in, *input_size), w (C_in, C_out/groups, *kernel_size), y (N, C_out, *output_size).

    Along each dim, input element j with kernel tap t lands on position q = j * s + t * d of the full
    result, whose length is full_size = (i - 1) * s + (k - 1) * d + 1. Output element m is full
    position m + before, for m < output_size = full_size - before - after + output_padding: positive
    pads crop the full result, negative pads and output_padding extend it with positions no input
    reaches (zero before the bias). `padding` holds one (before, after) pair per spatial dim.
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
    output_padding: tuple[int, ...]

    @property
    def rank(self) -> int:
        return len(self.input_size)

    @property
    def full_size(self) -> tuple[int, ...]:
        """(i - 1) * s + (k - 1) * d + 1 per dim: the positions some input element reaches."""
        return tuple(
            (i - 1) * s + (k - 1) * d + 1
            for i, k, s, d in zip(self.input_size, self.kernel_size, self.stride, self.dilation)
        )

    @property
    def output_size(self) -> tuple[int, ...]:
        """(i - 1) * s - before - after + (k - 1) * d + output_padding + 1 per dim."""
        return tuple(
            full - lo - hi + extra for full, (lo, hi), extra in zip(self.full_size, self.padding, self.output_padding)
        )

    @property
    def kernel_volume(self) -> int:
        return math.prod(self.kernel_size)

    @property
    def reaches_output(self) -> bool:
        """Whether some output position is one the input reaches in every dim; False: the output is the bias alone
        (PyTorch computes such a transposed convolution: output position m is full position m + before, and the
        padding or output_padding puts every one of them outside [0, full_size) in some dim)."""
        return all(full - max(lo, 0) - max(hi - extra, 0) >= 1
                   for full, (lo, hi), extra in zip(self.full_size, self.padding, self.output_padding))

    @property
    def adjoint(self) -> ConvGeometry:
        """The convolution whose data gradient this transposed convolution is (same w, same strides).

        It maps z (N, C_out, *output_size) to (N, C_in, *input_size), padding z by (before, after -
        output_padding) per dim: the output_padding positions past the last one a window can reach are
        cropped (they get no gradient, hence zeros here), so its output size is input_size exactly.
        """
        conv = ConvGeometry(
            batch=self.batch,
            in_channels=self.out_channels,
            out_channels=self.in_channels,
            groups=self.groups,
            input_size=self.output_size,
            kernel_size=self.kernel_size,
            stride=self.stride,
            dilation=self.dilation,
            padding=tuple((lo, hi - extra) for (lo, hi), extra in zip(self.padding, self.output_padding)),
        )
        assert conv.output_size == self.input_size, (conv, self)
        return conv

    def reduction_lengths(self, *, bias: bool) -> dict[str, int]:
        """K per tensor: the most products one element of it sums (plus 1 for the bias term of y).

        With s' = s / gcd(s, d) and d' = d / gcd(s, d) per dim, and Cin_g = C_in / groups,
        Cout_g = C_out / groups:

            y   Cin_g  * prod(min(ceil(k / s'), (i - 1) // d' + 1))  (+ 1 with bias)
            dx  Cout_g * prod(k)
            dw  N * prod(input_size)
            db  N * prod(output_size)

        y: output position q receives tap t only if t * d = q (mod s), so the taps that reach it form
        one residue class mod s' (at most ceil(k / s') of them), and the input elements they come from
        are d' apart (at most (i - 1) // d' + 1 of them). dx: element j gathers every tap of every
        output channel of its group; dw: tap t pairs every input element of every image with one
        output position; db sums dy whole. Each is the maximum over the elements when no positive pad
        crops the full result (before <= 0 and after <= output_padding in every dim), else an upper
        bound. Products of exact zeros a framework may add (zero-inserted input, padding) add no
        rounding error and are not counted.
        """
        cin_g, cout_g = self.in_channels // self.groups, self.out_channels // self.groups
        y_taps = 1
        for i, k, s, d in zip(self.input_size, self.kernel_size, self.stride, self.dilation):
            common = math.gcd(s, d)
            y_taps *= min(-(-k // (s // common)), (i - 1) // (d // common) + 1)
        return {
            "y": cin_g * y_taps + (1 if bias else 0),
            "dx": cout_g * self.kernel_volume,
            "dw": self.batch * math.prod(self.input_size),
            "db": self.batch * math.prod(self.output_size),
        }


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


def _spatial_rank(x: np.ndarray, w: np.ndarray, weight_layout: str) -> int:
    """Number of spatial dims of floating x (N, C, *spatial) and w `weight_layout`, 1 to 3 and equal."""
    check_floating("x", x)
    check_floating("w", w)
    if x.ndim not in (3, 4, 5):
        raise ValueError(f"x must have shape (N, C, *spatial) with 1 to 3 spatial dims, got {x.shape}")
    if w.ndim != x.ndim:
        raise ValueError(f"w must have shape {weight_layout} with {x.ndim - 2} spatial dims like x, got {w.shape}")
    if min(x.shape) < 1 or min(w.shape) < 1:
        raise ValueError(f"x {x.shape} and w {w.shape} must have no empty dims")
    return x.ndim - 2


def _check_groups(groups: object) -> int:
    if not _is_int(groups) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    return int(groups)


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
    rank = _spatial_rank(x, w, "(O, C/groups, *kernel)")
    batch, in_channels, *input_size = x.shape
    out_channels, group_channels, *kernel_size = w.shape
    groups = _check_groups(groups)
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
    geometry = ConvGeometry(
        batch=batch,
        in_channels=in_channels,
        out_channels=out_channels,
        groups=groups,
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


def conv_transpose_geometry(
    x: np.ndarray,
    w: np.ndarray,
    *,
    stride: IntOrInts,
    padding: Padding,
    output_padding: IntOrInts,
    dilation: IntOrInts,
    groups: int,
) -> TransposedGeometry:
    """Validate x (N, C_in, *spatial) and w (C_in, C_out/groups, *kernel) against the keyword arguments.

    output_padding follows PyTorch's rule: in every dim 0 <= output_padding < stride or < dilation.
    """
    rank = _spatial_rank(x, w, "(C_in, C_out/groups, *kernel)")
    batch, in_channels, *input_size = x.shape
    weight_in, group_out, *kernel_size = w.shape
    groups = _check_groups(groups)
    if in_channels % groups:
        raise ValueError(f"groups={groups} must divide the input channels ({in_channels})")
    if weight_in != in_channels:
        raise ValueError(
            f"w must have shape (C_in, C_out/groups, *kernel) with C_in = {in_channels} like x, got {w.shape}"
        )
    stride_, dilation_ = per_dim("stride", stride, rank, minimum=1), per_dim("dilation", dilation, rank, minimum=1)
    extra = per_dim("output_padding", output_padding, rank, minimum=0)
    for dim, (e, s, d) in enumerate(zip(extra, stride_, dilation_)):
        if e >= s and e >= d:
            raise ValueError(
                f"output_padding must be smaller than stride or dilation in every dim, got {e} with stride {s} "
                f"and dilation {d} in dim {dim}"
            )
    geometry = TransposedGeometry(
        batch=batch,
        in_channels=in_channels,
        out_channels=group_out * groups,
        groups=groups,
        input_size=tuple(input_size),
        kernel_size=tuple(kernel_size),
        stride=stride_,
        dilation=dilation_,
        padding=per_dim_pairs(padding, rank),
        output_padding=extra,
    )
    for dim, (size, full, (lo, hi), e) in enumerate(
        zip(geometry.output_size, geometry.full_size, geometry.padding, geometry.output_padding)
    ):
        if size < 1:
            raise ValueError(
                f"padding {(lo, hi)} leaves no output in dim {dim}: {full} positions - {lo} - {hi} + output_padding "
                f"{e} = {size}"
            )
    return geometry


def check_shape(name: str, array: np.ndarray, expected: tuple[int, ...]) -> None:
    check_floating(name, array)
    if array.shape != expected:
        raise ValueError(f"{name} must have shape {expected}, got {array.shape}")
