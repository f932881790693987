"""Tiny transposed convolutions worked on paper, checked against the reference and the scatter loops.

Each case lists its arithmetic. Along a dim, input element j with tap t lands on full position
q = j * s + t * d; the full result is (i - 1) * s + (k - 1) * d + 1 long; output element m is full
position m + before (positions outside the full result hold only the bias).
"""

import numpy as np
import pytest

from convparity.reference_impl import conv_transpose_backward, conv_transpose_forward, conv_transpose_forward_backward
from tests.reference_impl.direct_transposed import scatter_backward, scatter_forward
from tests.reference_impl.test_hand_computed import HandCase

HAND_CASES = {
    # x = [1 2], w = [1 2 3], stride 2: full (2-1)*2 + 3 = 5 long:
    #   j=0 -> q 0,1,2: [1 2 3];  j=1 -> q 2,3,4: [2 4 6];  full = [1 2 5 4 6]
    # padding (1, 0), output_padding 1: out = 5 - 1 - 0 + 1 = 5, m = q - 1: [2 5 4 6 | q=5 outside: 0] + 0.5
    # dy = [1 0 -1 2 1] at q = 1..5:  dx[j] = sum_t w[t] dy(q = 2j + t):
    #   dx0 = 1*dy(q0: none) + 2*dy(q1)=2*1 + 3*dy(q2)=3*0 = 2;  dx1 = 1*dy(q2)=0 + 2*dy(q3)=-2 + 3*dy(q4)=6 -> 4
    #   dw[t] = sum_j x[j] dy(q = 2j + t): dw0 = 1*(none) + 2*dy(q2)=0 -> 0;  dw1 = 1*dy(q1) + 2*dy(q3) = 1 - 2 = -1;
    #   dw2 = 1*dy(q2) + 2*dy(q4) = 0 + 4 = 4;  db = 1 + 0 - 1 + 2 + 1 = 3 (dy at q=5 reaches nothing else)
    "1d stride 2, pad (1, 0), output_padding 1, bias": HandCase(
        x=[[[1, 2]]], w=[[[1, 2, 3]]], b=[0.5], dy=[[[1, 0, -1, 2, 1]]],
        options=dict(stride=2, padding=[(1, 0)], output_padding=1),
        y=[[[2.5, 5.5, 4.5, 6.5, 0.5]]], dx=[[[2, 4]]], dw=[[[0, -1, 4]]], db=[3],
    ),
    # groups 2, stride 1, dilation 2 (taps at q = j + 2t), output_padding 1 (allowed: 1 < dilation 2):
    #   full (2-1) + (2-1)*2 + 1 = 4 long, out = 5 (q = 4 outside: 0)
    #   group 0: x = [1 2], w = [1 -1]:  j=0 -> q0 += 1, q2 += -1;  j=1 -> q1 += 2, q3 += -2:  y0 = [1 2 -1 -2 0]
    #   group 1: x = [3 -1], w = [2 1]:  j=0 -> q0 += 6, q2 += 3;  j=1 -> q1 += -2, q3 += -1:  y1 = [6 -2 3 -1 0]
    # dy0 = [1 2 3 4 5]:  dx0 = [1*1 - 1*3, 1*2 - 1*4] = [-2 -2];  dw0 = [1*1 + 2*2, 1*3 + 2*4] = [5 11]
    # dy1 = [0 1 0 2 7]:  dx1 = [2*0 + 1*0, 2*1 + 1*2] = [0 4];  dw1 = [3*0 - 1*1, 3*0 - 1*2] = [-1 -2]
    # db = [1+2+3+4+5, 0+1+0+2+7]
    "1d groups 2, dilation 2, output_padding 1 >= stride 1": HandCase(
        x=[[[1, 2], [3, -1]]], w=[[[1, -1]], [[2, 1]]], b=None, dy=[[[1, 2, 3, 4, 5], [0, 1, 0, 2, 7]]],
        options=dict(dilation=2, groups=2, output_padding=1),
        y=[[[1, 2, -1, -2, 0], [6, -2, 3, -1, 0]]], dx=[[[-2, -2], [0, 4]]], dw=[[[5, 11]], [[-1, -2]]], db=[15, 10],
    ),
    # x = [[1 2], [3 4]], w = [[1 0], [0 -1]], stride 1: full 3x3 = x at (0,0) minus x shifted by (1,1):
    #   [[1 2 0], [3 4-1 -2], [0 -3 -4]]
    # padding ((-1, 0), (0, 1)): one zero row before (output row m is full row m - 1), last column cropped:
    #   y = [[0 0], [1 2], [3 3], [0 -3]]
    # dy = [[9 9], [1 2], [3 4], [5 6]]: dx[a, b] = dy[a+1, b] - dy[a+2, b+1] (column b+1 < 2 only):
    #   dx = [[1-4, 2], [3-6, 4]];  dw[0,0] = sum x[a,b] dy[a+1, b] = 1*1 + 2*2 + 3*3 + 4*4 = 30,
    #   dw[0,1] = sum x[a,0] dy[a+1, 1] = 1*2 + 3*4 = 14,  dw[1,0] = sum x[a,b] dy[a+2, b] = 1*3 + 2*4 + 3*5 + 4*6 = 50,
    #   dw[1,1] = sum x[a,0] dy[a+2, 1] = 1*4 + 3*6 = 22;  db = 18 + 3 + 7 + 11 = 39 (row 0 of dy enters db only)
    "2d negative pad (-1, 0) extends, pad (0, 1) crops": HandCase(
        x=[[[[1, 2], [3, 4]]]], w=[[[[1, 0], [0, -1]]]], b=None, dy=[[[[9, 9], [1, 2], [3, 4], [5, 6]]]],
        options=dict(padding=[(-1, 0), (0, 1)]),
        y=[[[[0, 0], [1, 2], [3, 3], [0, -3]]]], dx=[[[[-3, 2], [-3, 4]]]], dw=[[[[30, 14], [50, 22]]]], db=[39],
    ),
    # 2x2 kernel, stride 2 (a U-Net up-convolution): every input pixel becomes its own 2x2 block x * w
    # dy = ones: dx = sum(w) = 1111 per pixel, dw = sum(x) = 10 per tap, db = 16
    "2d 2x2 stride 2: non-overlapping blocks": HandCase(
        x=[[[[1, 2], [3, 4]]]], w=[[[[1, 10], [100, 1000]]]], b=[-1], dy=[[[[1] * 4] * 4]],
        options=dict(stride=2),
        y=[[[[0, 9, 1, 19], [99, 999, 199, 1999], [2, 29, 3, 39], [299, 2999, 399, 3999]]]],
        dx=[[[[1111, 1111], [1111, 1111]]]], dw=[[[[10, 10], [10, 10]]]], db=[16],
    ),
}  # fmt: skip


def per_dim_options(options: dict, rank: int) -> dict:
    """The scatter loops' arguments: stride/dilation/output_padding per dim, padding as (before, after) pairs."""
    return dict(
        stride=(options.get("stride", 1),) * rank,
        dilation=(options.get("dilation", 1),) * rank,
        output_padding=(options.get("output_padding", 0),) * rank,
        padding=tuple(tuple(pair) for pair in options.get("padding", [(0, 0)] * rank)),
        groups=options.get("groups", 1),
    )


def arrays(case: HandCase) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    x, w, dy = (np.array(a, dtype=np.float64) for a in (case.x, case.w, case.dy))
    return x, w, None if case.b is None else np.array(case.b, dtype=np.float64), dy


@pytest.mark.parametrize("case", HAND_CASES.values(), ids=HAND_CASES.keys())
def test_reference_gives_the_hand_computed_numbers(case: HandCase) -> None:
    x, w, b, dy = arrays(case)
    fused = conv_transpose_forward_backward(x, w, b, dy, **case.options)
    separate = (conv_transpose_forward(x, w, b, **case.options), *conv_transpose_backward(dy, x, w, **case.options))
    for y, dx, dw, db in (fused, separate):
        np.testing.assert_array_equal(y, case.y)
        np.testing.assert_array_equal(dx, case.dx)
        np.testing.assert_array_equal(dw, case.dw)
        if db is not None:  # the fused pass returns db only for a bias
            np.testing.assert_array_equal(db, case.db)


@pytest.mark.parametrize("case", HAND_CASES.values(), ids=HAND_CASES.keys())
def test_scatter_loops_give_the_hand_computed_numbers(case: HandCase) -> None:
    x, w, b, dy = arrays(case)
    options = per_dim_options(case.options, x.ndim - 2)
    np.testing.assert_array_equal(scatter_forward(x, w, b, **options), case.y)
    dx, dw, db = scatter_backward(dy, x, w, **options)
    np.testing.assert_array_equal(dx, case.dx)
    np.testing.assert_array_equal(dw, case.dw)
    np.testing.assert_array_equal(db, case.db)
