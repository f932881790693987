"""TransposedGeometry.reduction_lengths: K per tensor, checked by counting products one at a time.

A plain loop (tests/reference_impl/direct_transposed.products) lists every product x[ix] * w[iw] landing
on y[iy]; the same triple is one product of dx[ix] (w * dy) and of dw[iw] (x * dy), and every dy
element is one term of db. The most any element collects must not exceed K, and must equal it
when no positive pad crops the full result (K is then the maximum, not only a bound).
"""

import numpy as np
import pytest
from hypothesis import given, settings

from convparity.reference_impl import conv_transpose_geometry
from tests.reference_impl.direct_transposed import products
from tests.reference_impl.transposed_cases import TransposedCase, make_transposed_case, transposed_cases


def counted(case: TransposedCase) -> dict[str, int]:
    """The largest number of products (terms, for db) any element of y, dx, dw, db sums, by enumeration."""
    counts = {"y": np.zeros(case.dy.shape, int), "dx": np.zeros(case.x.shape, int), "dw": np.zeros(case.w.shape, int)}
    for ix, iw, iy in products(case.x.shape, case.w.shape, **case.options):
        counts["y"][iy] += 1
        counts["dx"][ix] += 1
        counts["dw"][iw] += 1
    db = np.zeros(case.dy.shape[1], int)
    for _, o, *_ in np.ndindex(*case.dy.shape):  # every dy element is one term of db[o]
        db[o] += 1
    return {name: int(count.max()) for name, count in counts.items()} | {"db": int(db.max())}


def stated(case: TransposedCase, *, bias: bool = False) -> dict[str, int]:
    return conv_transpose_geometry(case.x, case.w, **case.options).reduction_lengths(bias=bias)


@settings(max_examples=150, deadline=None)
@given(transposed_cases(min_pad=-2, max_pad=3, max_groups=2))
def test_no_element_sums_more_than_k(case: TransposedCase) -> None:
    actual, bound = counted(case), stated(case)
    for name in bound:
        assert actual[name] <= bound[name], f"{name}: an element sums {actual[name]} products, K = {bound[name]}"
        if not case.crops:
            assert actual[name] == bound[name], f"{name}: at most {actual[name]} products, K = {bound[name]}"


def test_bias_adds_one_term_to_y_only() -> None:
    case = make_transposed_case(
        batch=2, groups=1, group_in=3, group_out=2, input_size=(4,), kernel_size=(3,), stride=(2,),
        padding=((1, 1),), output_padding=(1,), dilation=(1,), bias=True, seed=0,
    )  # fmt: skip
    without, with_bias = stated(case), stated(case, bias=True)
    assert with_bias == without | {"y": without["y"] + 1}


# (input size, kernel, stride, dilation) per dim, channels in / out per group, batch -> K of y, dx, dw, db
# y per dim: min(ceil(k / s'), (i - 1) // d' + 1) with s' = s / gcd(s, d), d' = d / gcd(s, d)
WORKED = {
    # DCGAN generator layer: 4x4, stride 2 on 8x8, pad 1 -> 16x16: y taps per dim min(ceil(4/2), 8) = 2
    "4x4 stride 2, pad 1": (
        dict(input_size=(8, 8), kernel_size=(4, 4), stride=(2, 2), dilation=(1, 1), padding=((1, 1), (1, 1))),
        (3, 2, 2), dict(y=3 * 2 * 2, dx=2 * 16, dw=2 * 64, db=2 * 16 * 16),
    ),
    # U-Net up-convolution: 2x2, stride 2: every output element gets exactly one tap per channel
    "2x2 stride 2": (
        dict(input_size=(5, 6), kernel_size=(2, 2), stride=(2, 2), dilation=(1, 1), padding=((0, 0), (0, 0))),
        (4, 1, 1), dict(y=4, dx=4, dw=30, db=10 * 12),
    ),
    # stride 2, dilation 2: s' = 1, d' = 1, so all k taps meet (gcd 2); dim 1: s = 3, d = 2: s' = 3 -> ceil(5/3) = 2
    "dilation shares a factor with stride": (
        dict(input_size=(6, 7), kernel_size=(3, 5), stride=(2, 3), dilation=(2, 2), padding=((0, 0), (0, 0))),
        (1, 1, 1), dict(y=3 * 2, dx=15, dw=42, db=(5 * 2 + 4 + 1) * (6 * 3 + 8 + 1)),
    ),
    # stride 1 but a 2-element input: at most i = 2 taps meet even with k = 4 (d' = 1)
    "short input": (
        dict(input_size=(2,), kernel_size=(4,), stride=(1,), dilation=(1,), padding=((0, 0),)),
        (2, 3, 1), dict(y=2 * 2, dx=3 * 4, dw=2, db=5),
    ),
}  # fmt: skip


@pytest.mark.parametrize("dims, channels, expected", WORKED.values(), ids=WORKED.keys())
def test_worked_reduction_lengths(dims: dict, channels: tuple[int, int, int], expected: dict) -> None:
    group_in, group_out, batch = channels
    rank = len(dims["input_size"])
    case = make_transposed_case(
        batch=batch, groups=1, group_in=group_in, group_out=group_out, output_padding=(0,) * rank, bias=False, seed=0,
        **dims,
    )  # fmt: skip
    assert stated(case) == expected
    if not case.crops:
        assert counted(case) == expected
