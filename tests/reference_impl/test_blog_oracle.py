"""The blog post's loop implementation (2-D, stride only, no padding) as an oracle for the reference.

The post prints its results for x = np.random.random((2, 3, 5, 7)) after np.random.seed(123), a
3x3 stride-2 conv with 4 filters and dy = np.random.random(y.shape); dw and db depend on x and dy
only, y and dx also on PyTorch's default initialisation of the weights under torch.manual_seed(123).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convparity.reference_impl import conv_forward_backward
from tests.reference_impl.blog import load_blog_conv
from tests.reference_impl.cases import ConvCase, make_case

blog_conv = load_blog_conv()

PUBLISHED = 5e-7  # the post prints 6 decimals
PUBLISHED_Y_00 = [[0.038209, -0.104653, -0.37583], [-0.101538, -0.192953, -0.152639]]
PUBLISHED_DX_00 = [
    [-0.040876, 0.002517, -0.160813, -0.109504, -0.154843, -0.022449, -0.304437],
    [0.093016, -0.133319, 0.289393, -0.048426, 0.246752, 0.000857, -0.040514],
    [-0.076863, -0.00029, -0.240455, 0.11569, -0.242307, 0.337566, -0.519987],
    [0.092797, -0.117967, 0.250818, -0.041134, 0.187269, -0.040959, -0.022162],
    [-0.077402, -0.066061, -0.083124, 0.102747, 0.026502, 0.250037, -0.120596],
]
PUBLISHED_DW_00 = [
    [3.759475, 4.10321, 3.357347],
    [3.621035, 3.578632, 3.329442],
    [3.183582, 4.388502, 2.181801],
]
PUBLISHED_DB = [6.804211, 5.354626, 6.683215, 5.545097]


def run_blog(x: np.ndarray, w: np.ndarray, b: np.ndarray, dy: np.ndarray, stride: int):
    """y, dx, dw, db of the blog's Conv2d."""
    conv = blog_conv.Conv2d(stride=stride, weight=w, bias=b)
    y = conv(x)
    dx = conv.backward(dy)
    return y, dx, conv.dw, conv.db


def published_inputs() -> tuple[np.ndarray, np.ndarray]:
    """x (2, 3, 5, 7) and dy (2, 4, 2, 3) as the post draws them."""
    rng = np.random.RandomState(123)
    x = rng.random_sample((2, 3, 5, 7))
    return x, rng.random_sample((2, 4, 2, 3))


def test_blog_and_reference_reproduce_the_published_dw_and_db() -> None:
    x, dy = published_inputs()
    w, b = np.ones((4, 3, 3, 3)), np.zeros(4)  # dw and db do not depend on the weights
    _, _, dw, db = run_blog(x, w, b, dy, stride=2)
    np.testing.assert_allclose(dw[0, 0], PUBLISHED_DW_00, rtol=0, atol=PUBLISHED)
    np.testing.assert_allclose(db, PUBLISHED_DB, rtol=0, atol=PUBLISHED)
    _, _, dw, db = conv_forward_backward(x, w, b, dy, stride=2)
    np.testing.assert_allclose(dw[0, 0], PUBLISHED_DW_00, rtol=0, atol=PUBLISHED)
    np.testing.assert_allclose(db, PUBLISHED_DB, rtol=0, atol=PUBLISHED)


def test_blog_and_reference_reproduce_the_published_y_and_dx() -> None:
    torch = pytest.importorskip("torch", reason="the post's weights come from PyTorch's initialisation")
    x, dy = published_inputs()
    torch.manual_seed(123)
    layer = torch.nn.Conv2d(3, 4, (3, 3), stride=2).double()
    w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    for y, dx, _, _ in (run_blog(x, w, b, dy, stride=2), conv_forward_backward(x, w, b, dy, stride=2)):
        np.testing.assert_allclose(y[0, 0], PUBLISHED_Y_00, rtol=0, atol=PUBLISHED)
        np.testing.assert_allclose(dx[0, 0], PUBLISHED_DX_00, rtol=0, atol=PUBLISHED)


@st.composite
def blog_cases(draw: st.DrawFn) -> tuple[ConvCase, int]:
    """2-D cases the post covers: one stride for both dims, no padding, no dilation, no groups, bias."""
    stride = draw(st.integers(1, 3))
    kernel_size = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    input_size = tuple(draw(st.integers(k, k + 5)) for k in kernel_size)
    case = make_case(
        batch=draw(st.integers(1, 3)),
        groups=1,
        group_in=draw(st.integers(1, 3)),
        group_out=draw(st.integers(1, 3)),
        input_size=input_size,
        kernel_size=kernel_size,
        stride=(stride, stride),
        padding=((0, 0), (0, 0)),
        dilation=(1, 1),
        bias=True,
        seed=draw(st.integers(0, 2**32 - 1)),
    )
    return case, stride


@settings(max_examples=60, deadline=None)
@given(blog_cases())
def test_reference_matches_the_blog_loops(drawn: tuple[ConvCase, int]) -> None:
    case, stride = drawn
    expected = run_blog(case.x, case.w, case.b, case.dy, stride)
    actual = conv_forward_backward(case.x, case.w, case.b, case.dy, stride=stride)
    for name, got, want in zip(("y", "dx", "dw", "db"), actual, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=name)
