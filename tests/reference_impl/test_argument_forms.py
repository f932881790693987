"""Every accepted spelling of stride, dilation and padding means the same per-dim convolution.

stride/dilation: an int or one per dim; padding: an int, one int per dim (symmetric), or one
(before, after) pair per dim, as tuples, lists or NumPy integers.
"""

import numpy as np
import pytest

from convparity.reference_impl import conv_forward_backward
from tests.reference_impl.cases import ConvCase, make_case
from tests.reference_impl.checks import assert_matches_direct_summation

FORMS = {
    "all ints": (dict(stride=2, dilation=2, padding=1), dict(stride=(2, 2), dilation=(2, 2), padding=((1, 1), (1, 1)))),
    "one int per dim": (
        dict(stride=[1, 2], dilation=(2, 1), padding=(2, 0)),
        dict(stride=(1, 2), dilation=(2, 1), padding=((2, 2), (0, 0))),
    ),
    "pairs and ints mixed": (
        dict(stride=(2, 1), dilation=1, padding=[(0, 2), 1]),
        dict(stride=(2, 1), dilation=(1, 1), padding=((0, 2), (1, 1))),
    ),
    "numpy integers": (
        dict(stride=np.int64(2), dilation=np.array([1, 2]), padding=np.array([[1, 0], [0, 1]])),
        dict(stride=(2, 2), dilation=(1, 2), padding=((1, 0), (0, 1))),
    ),
}


@pytest.mark.parametrize("given_options, per_dim", FORMS.values(), ids=FORMS.keys())
def test_argument_forms_mean_their_per_dim_values(given_options: dict, per_dim: dict) -> None:
    base = make_case(
        batch=2, groups=1, group_in=2, group_out=3, input_size=(7, 6), kernel_size=(3, 2),
        stride=per_dim["stride"], padding=per_dim["padding"], dilation=per_dim["dilation"], bias=True, seed=5,
    )  # fmt: skip
    case = ConvCase(base.x, base.w, base.b, base.dy, groups=1, **per_dim)
    results = conv_forward_backward(case.x, case.w, case.b, case.dy, groups=1, **given_options)
    assert_matches_direct_summation(case, *results)
