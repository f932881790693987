"""Tiny cases worked on paper, checked against both the reference and the direct-summation oracle.

Each case lists its arithmetic so the expected numbers can be re-derived by hand.
"""

from dataclasses import dataclass

import numpy as np
import pytest

from convparity.reference_impl import conv_backward, conv_forward, conv_forward_backward
from tests.reference_impl.direct import direct_backward, direct_forward


@dataclass(frozen=True)
class HandCase:
    x: list
    w: list
    b: list | None
    dy: list
    options: dict
    y: list
    dx: list
    dw: list
    db: list


HAND_CASES = {
    # x = [1 2 3 4 5], padded (1, 0) -> [0 1 2 3 4 5]; w = [2 1 -1], stride 2 -> windows at 0 and 2:
    #   y0 = 0*2 + 1*1 + 2*(-1) + 0.5 = -0.5        y1 = 2*2 + 3*1 + 4*(-1) + 0.5 = 3.5
    # dy = [1 -2]: padded dx = 1*[2 1 -1 . . .] + (-2)*[. . 2 1 -1 .] = [2 1 -5 -2 2 0] -> drop the pad
    #   dw[k] = 1*xp[k] - 2*xp[2+k] = [0-4, 1-6, 2-8];  db = 1 - 2
    "1d stride 2, pad (1, 0), bias": HandCase(
        x=[[[1, 2, 3, 4, 5]]], w=[[[2, 1, -1]]], b=[0.5], dy=[[[1, -2]]],
        options=dict(stride=2, padding=[(1, 0)]),
        y=[[[-0.5, 3.5]]], dx=[[[1, -5, -2, 2, 0]]], dw=[[[-4, -5, -6]]], db=[-1],
    ),
    # groups 2, dilation 2 (taps k*2): output o sees only channel o.
    #   channel 0: x = [1 2 3 4],  w = [1 1]:   y = [1+3, 2+4] = [4 6]
    #   channel 1: x = [-1 0 1 2], w = [3 -1]:  y = [-3-1, 0-2] = [-4 -2]
    # dy0 = [1 1]: dx0 = [1*1, 1*1, 1*1, 1*1];  dw0 = [1*1+1*2, 1*3+1*4] = [3 7]
    # dy1 = [2 -1]: dx1 = [3*2, 3*(-1), -1*2, -1*(-1)] = [6 -3 -2 1];  dw1 = [2*(-1)-0, 2*1-2] = [-2 0]
    # db = [1+1, 2-1]
    "1d groups 2, dilation 2": HandCase(
        x=[[[1, 2, 3, 4], [-1, 0, 1, 2]]], w=[[[1, 1]], [[3, -1]]], b=None, dy=[[[1, 1], [2, -1]]],
        options=dict(dilation=2, groups=2),
        y=[[[4, 6], [-4, -2]]], dx=[[[1, 1, 1, 1], [6, -3, -2, 1]]], dw=[[[3, 7]], [[-2, 0]]], db=[2, 1],
    ),
    # padding ((-1, 0), (0, 1)) crops the first row and pads one zero column:
    #   [[4 5 6 0], [7 8 9 0]];  w = [[1 2], [3 4]] -> y = [[4+10+21+32, 5+12+24+36, 6+0+27+0]]
    # dy = [[1 0 -1]]: padded dx = [[1 2 -1 -2], [3 4 -3 -4]] -> drop the pad column, restore the row
    #   dw = 1*[[4 5], [7 8]] - 1*[[6 0], [9 0]];  db = 0
    "2d cropping pad ((-1, 0), (0, 1))": HandCase(
        x=[[[[1, 2, 3], [4, 5, 6], [7, 8, 9]]]], w=[[[[1, 2], [3, 4]]]], b=None, dy=[[[[1, 0, -1]]]],
        options=dict(padding=[(-1, 0), (0, 1)]),
        y=[[[[67, 77, 33]]]], dx=[[[[0, 0, 0], [1, 2, -1], [3, 4, -3]]]], dw=[[[[-2, 5], [-2, 8]]]], db=[0],
    ),
}  # fmt: skip


def per_dim_options(options: dict, rank: int) -> dict:
    """The direct method's arguments: stride/dilation per dim, padding as (before, after) pairs."""
    padding = options.get("padding", [(0, 0)] * rank)
    return dict(
        stride=(options.get("stride", 1),) * rank,
        dilation=(options.get("dilation", 1),) * rank,
        padding=tuple(tuple(pair) for pair in padding),
        groups=options.get("groups", 1),
    )


@pytest.mark.parametrize("case", HAND_CASES.values(), ids=HAND_CASES.keys())
def test_reference_gives_the_hand_computed_numbers(case: HandCase) -> None:
    x, w, dy = (np.array(a, dtype=np.float64) for a in (case.x, case.w, case.dy))
    b = None if case.b is None else np.array(case.b, dtype=np.float64)
    fused = conv_forward_backward(x, w, b, dy, **case.options)
    separate = (conv_forward(x, w, b, **case.options), *conv_backward(dy, x, w, bias=True, **case.options))
    for y, dx, dw, db in (fused, separate):
        np.testing.assert_array_equal(y, case.y)
        np.testing.assert_array_equal(dx, case.dx)
        np.testing.assert_array_equal(dw, case.dw)
        if db is not None:  # the fused pass returns db only for a bias
            np.testing.assert_array_equal(db, case.db)


@pytest.mark.parametrize("case", HAND_CASES.values(), ids=HAND_CASES.keys())
def test_direct_summation_gives_the_hand_computed_numbers(case: HandCase) -> None:
    x, w, dy = (np.array(a, dtype=np.float64) for a in (case.x, case.w, case.dy))
    b = None if case.b is None else np.array(case.b, dtype=np.float64)
    options = per_dim_options(case.options, x.ndim - 2)
    np.testing.assert_array_equal(direct_forward(x, w, b, **options), case.y)
    dx, dw, db = direct_backward(dy, x, w, **options)
    np.testing.assert_array_equal(dx, case.dx)
    np.testing.assert_array_equal(dw, case.dw)
    np.testing.assert_array_equal(db, case.db)
