"""Convolution test cases with their data, and a hypothesis strategy that draws them.

A case is one convolution (1 to 3 spatial dims, per-dim stride, dilation and asymmetric padding,
groups, bias on or off) with seeded float64 data: x (N, C, *in), w (O, C/groups, *kernel),
b (O,) or None, dy (N, O, *out).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from tests.reference_impl.direct import Ints, Pairs, output_length


@dataclass(frozen=True)
class ConvCase:
    """x (N, C, *in), w (O, C/groups, *kernel), b (O,) or None, dy (N, O, *out) and the conv arguments."""

    x: np.ndarray
    w: np.ndarray
    b: np.ndarray | None
    dy: np.ndarray
    stride: Ints
    padding: Pairs
    dilation: Ints
    groups: int

    @property
    def options(self) -> dict[str, Any]:
        """The keyword arguments shared by the reference and the direct method."""
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)


def make_case(
    *,
    batch: int,
    groups: int,
    group_in: int,
    group_out: int,
    input_size: Ints,
    kernel_size: Ints,
    stride: Ints,
    padding: Pairs,
    dilation: Ints,
    bias: bool,
    seed: int,
) -> ConvCase:
    """A case with standard-normal data drawn from `seed`."""
    rng = np.random.default_rng(seed)
    output_size = tuple(
        output_length(*dims, before, after)
        for *dims, (before, after) in zip(input_size, kernel_size, stride, dilation, padding, strict=True)
    )
    channels, out_channels = groups * group_in, groups * group_out
    return ConvCase(
        x=rng.standard_normal((batch, channels) + input_size),
        w=rng.standard_normal((out_channels, group_in) + kernel_size),
        b=rng.standard_normal(out_channels) if bias else None,
        dy=rng.standard_normal((batch, out_channels) + output_size),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
    )


@st.composite
def _dim(draw: st.DrawFn, *, rank: int, min_pad: int, max_pad: int) -> tuple[int, int, int, int, tuple[int, int]]:
    """(input size, kernel, stride, dilation, (before, after)) of one spatial dim that gives >= 1 output."""
    small = rank == 3  # keep 3-D volumes small
    kernel = draw(st.integers(1, 2 if small else 3))
    dilation = draw(st.integers(1, 2 if small else 3))
    stride = draw(st.integers(1, 3))
    before, after = draw(st.integers(min_pad, max_pad)), draw(st.integers(min_pad, max_pad))
    span = (kernel - 1) * dilation + 1
    smallest = max(1, span - before - after, 1 - min(before, 0) - min(after, 0))
    size = draw(st.integers(smallest, smallest + (3 if small else 5)))
    return size, kernel, stride, dilation, (before, after)


@st.composite
def conv_cases(
    draw: st.DrawFn,
    *,
    ranks: tuple[int, ...] = (1, 2, 3),
    min_pad: int = -1,
    max_pad: int = 2,
    max_groups: int = 3,
    bias: bool | None = None,
) -> ConvCase:
    """Cases over `ranks`, pads in [min_pad, max_pad] (negative crops), bias drawn unless fixed."""
    rank = draw(st.sampled_from(ranks))
    dims = [draw(_dim(rank=rank, min_pad=min_pad, max_pad=max_pad)) for _ in range(rank)]
    input_size, kernel_size, stride, dilation, padding = (tuple(column) for column in zip(*dims, strict=True))
    return make_case(
        batch=draw(st.integers(1, 2)),
        groups=draw(st.integers(1, max_groups)),
        group_in=draw(st.integers(1, 2)),
        group_out=draw(st.integers(1, 2)),
        input_size=input_size,
        kernel_size=kernel_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        bias=draw(st.booleans()) if bias is None else bias,
        seed=draw(st.integers(0, 2**32 - 1)),
    )
