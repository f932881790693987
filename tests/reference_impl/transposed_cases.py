"""Transposed convolution test cases with their data, and a hypothesis strategy that draws them.

A case is one transposed convolution (1 to 3 spatial dims, per-dim stride, dilation, output_padding
and asymmetric, also negative, padding; groups; bias on or off) with seeded float64 data:
x (N, C_in, *in), w (C_in, C_out/groups, *kernel), b (C_out,) or None, dy (N, C_out, *out).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from tests.reference_impl.direct import Ints, Pairs
from tests.reference_impl.direct_transposed import transposed_output_length


@dataclass(frozen=True)
class TransposedCase:
    """x (N, C_in, *in), w (C_in, C_out/groups, *kernel), b (C_out,) or None, dy (N, C_out, *out), arguments."""

    x: np.ndarray
    w: np.ndarray
    b: np.ndarray | None
    dy: np.ndarray
    stride: Ints
    padding: Pairs
    output_padding: Ints
    dilation: Ints
    groups: int

    @property
    def options(self) -> dict[str, Any]:
        """The keyword arguments shared by the reference and the scatter method."""
        return dict(
            stride=self.stride, padding=self.padding, output_padding=self.output_padding, dilation=self.dilation,
            groups=self.groups,
        )  # fmt: skip

    @property
    def crops(self) -> bool:
        """True if a positive pad cuts the full result: before > 0 or after > output_padding in some dim."""
        return any(before > 0 or after > extra for (before, after), extra in zip(self.padding, self.output_padding))


def make_transposed_case(
    *,
    batch: int,
    groups: int,
    group_in: int,
    group_out: int,
    input_size: Ints,
    kernel_size: Ints,
    stride: Ints,
    padding: Pairs,
    output_padding: Ints,
    dilation: Ints,
    bias: bool,
    seed: int,
) -> TransposedCase:
    """A case with standard-normal data drawn from `seed`."""
    rng = np.random.default_rng(seed)
    output_size = tuple(
        transposed_output_length(*dims, before, after, extra)
        for *dims, (before, after), extra in zip(
            input_size, kernel_size, stride, dilation, padding, output_padding, strict=True
        )
    )
    return TransposedCase(
        x=rng.standard_normal((batch, groups * group_in) + input_size),
        w=rng.standard_normal((groups * group_in, group_out) + kernel_size),
        b=rng.standard_normal(groups * group_out) if bias else None,
        dy=rng.standard_normal((batch, groups * group_out) + output_size),
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        dilation=dilation,
        groups=groups,
    )


@st.composite
def _dim(
    draw: st.DrawFn, *, rank: int, min_pad: int, max_pad: int, below_stride: bool
) -> tuple[int, int, int, int, tuple[int, int], int]:
    """(input size, kernel, stride, dilation, (before, after), output_padding) of one valid spatial dim.

    output_padding < stride if `below_stride`, else < stride or < dilation. The input is long enough
    that some output element is one the input reaches:
    (i - 1) * s + (k - 1) * d + 1 - max(before, 0) - max(after - output_padding, 0) >= 1.
    """
    small = rank == 3  # keep 3-D volumes small
    kernel = draw(st.integers(1, 2 if small else 3))
    dilation = draw(st.integers(1, 2 if small else 3))
    stride = draw(st.integers(1, 3))
    extra = draw(st.integers(0, (stride if below_stride else max(stride, dilation)) - 1))
    before, after = draw(st.integers(min_pad, max_pad)), draw(st.integers(min_pad, max_pad))
    span = (kernel - 1) * dilation + 1
    cut = max(before, 0) + max(after - extra, 0)
    smallest = 1 + max(0, -(-(cut + 1 - span) // stride))  # 1 + ceil((cut + 1 - span) / stride)
    size = draw(st.integers(smallest, smallest + (2 if small else 4)))
    return size, kernel, stride, dilation, (before, after), extra


@st.composite
def transposed_cases(
    draw: st.DrawFn,
    *,
    ranks: tuple[int, ...] = (1, 2, 3),
    min_pad: int = -1,
    max_pad: int = 2,
    max_groups: int = 3,
    bias: bool | None = None,
    output_padding_below_stride: bool = False,
) -> TransposedCase:
    """Cases over `ranks`, pads in [min_pad, max_pad] (negative ones extend the output), bias drawn unless fixed.

    output_padding < stride or < dilation (PyTorch's rule), or < stride if `output_padding_below_stride`.
    """
    rank = draw(st.sampled_from(ranks))
    below_stride = output_padding_below_stride
    dims = [draw(_dim(rank=rank, min_pad=min_pad, max_pad=max_pad, below_stride=below_stride)) for _ in range(rank)]
    input_size, kernel_size, stride, dilation, padding, extra = (tuple(column) for column in zip(*dims, strict=True))
    return make_transposed_case(
        batch=draw(st.integers(1, 2)),
        groups=draw(st.integers(1, max_groups)),
        group_in=draw(st.integers(1, 2)),
        group_out=draw(st.integers(1, 2)),
        input_size=input_size,
        kernel_size=kernel_size,
        stride=stride,
        padding=padding,
        output_padding=extra,
        dilation=dilation,
        bias=draw(st.booleans()) if bias is None else bias,
        seed=draw(st.integers(0, 2**32 - 1)),
    )
