"""1x1, stride-1, unpadded convolutions take the column-free path (x is the column matrix, dcols is dx):
dense, grouped, depthwise, every rank, whole-image and row tiles all agree with direct summation."""

import pytest

from convparity.reference_impl import conv_forward_backward
from tests.reference_impl.cases import make_case
from tests.reference_impl.checks import assert_matches_direct_summation

SIZES = {1: (11,), 2: (5, 7), 3: (3, 4, 5)}


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize(("groups", "group_in", "group_out"), [(1, 4, 3), (2, 2, 3), (4, 1, 1), (3, 1, 2)])
@pytest.mark.parametrize("budget", [16 * 2**20, 200])  # one tile of whole images; tiles of single rows
def test_pointwise_agrees_with_direct_summation(rank, groups, group_in, group_out, budget):
    case = make_case(
        batch=3, groups=groups, group_in=group_in, group_out=group_out, input_size=SIZES[rank],
        kernel_size=(1,) * rank, stride=(1,) * rank, padding=((0, 0),) * rank, dilation=(1,) * rank,
        bias=True, seed=rank * 10 + groups,
    )  # fmt: skip
    actual = conv_forward_backward(case.x, case.w, case.b, case.dy, **case.options, memory_budget=budget)
    assert_matches_direct_summation(case, *actual)
