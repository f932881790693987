"""Results do not depend on the memory budget: row tiling, batch tiling and the default agree to 1e-12.

Case: x (5, 3, 7, 9), w (4, 3, 3, 2), stride (1, 2), padding ((1, 1), (0, 1)) -> y (5, 4, 7, 5).
One output row's columns take 8 bytes * (3 * 6) rows * 5 positions = 720 bytes; a tile of whole images
also stages their y or dy, 8 * 4 channels * 5 positions = 160 bytes a row, so an image takes 7 * 880.
Tiles split runs as evenly as they can.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convparity.reference_impl import DEFAULT_MEMORY_BUDGET, conv_forward_backward, conv_geometry
from convparity.reference_impl.im2col import Tile, tiles
from tests.reference_impl.cases import ConvCase, conv_cases, make_case
from tests.reference_impl.checks import assert_matches_direct_summation

CASE = make_case(
    batch=5, groups=1, group_in=3, group_out=4, input_size=(7, 9), kernel_size=(3, 2),
    stride=(1, 2), padding=((1, 1), (0, 1)), dilation=(1, 1), bias=True, seed=3,
)  # fmt: skip
ROW_BYTES = 720
IMAGE_BYTES = 7 * (ROW_BYTES + 160)

REGIMES = {
    "default: one tile": (
        DEFAULT_MEMORY_BUDGET,
        [Tile(0, 5, 0, 7)],
    ),
    "batch tiling: at most two images per tile": (
        2 * IMAGE_BYTES,
        [Tile(0, 1, 0, 7), Tile(1, 3, 0, 7), Tile(3, 5, 0, 7)],
    ),
    "row tiling: at most three rows per tile": (
        3 * ROW_BYTES + 100,
        [Tile(n, n + 1, r0, r1) for n in range(5) for r0, r1 in ((0, 2), (2, 4), (4, 7))],
    ),
    "row tiling: budget below one row": (
        1,
        [Tile(n, n + 1, r, r + 1) for n in range(5) for r in range(7)],
    ),
}


@pytest.mark.parametrize("budget, expected_tiles", REGIMES.values(), ids=REGIMES.keys())
def test_every_tiling_gives_the_same_results(budget: int, expected_tiles: list[Tile]) -> None:
    geometry = conv_geometry(CASE.x, CASE.w, **CASE.options)
    assert list(tiles(geometry, budget)) == expected_tiles  # the budget forces the tiling under test
    actual = conv_forward_backward(CASE.x, CASE.w, CASE.b, CASE.dy, memory_budget=budget, **CASE.options)
    assert_matches_direct_summation(CASE, *actual)


@settings(max_examples=60, deadline=None)
@given(conv_cases(), st.sampled_from([1, 200, 2000]))
def test_tiny_budgets_agree_with_direct_summation(case: ConvCase, budget: int) -> None:
    actual = conv_forward_backward(case.x, case.w, case.b, case.dy, memory_budget=budget, **case.options)
    assert_matches_direct_summation(case, *actual)
