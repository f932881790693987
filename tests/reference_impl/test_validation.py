"""Bad input raises ValueError with a sentence that names the argument, from every public function.

The valid starting point: x (2, 4, 6, 6), w (6, 2, 3, 3) with groups 2, b (6,), dy (2, 6, 4, 4).
"""

import numpy as np
import pytest

from convparity.reference_impl import conv_backward, conv_forward, conv_forward_backward

rng = np.random.default_rng(0)
VALID = dict(
    x=rng.standard_normal((2, 4, 6, 6)),
    w=rng.standard_normal((6, 2, 3, 3)),
    b=rng.standard_normal(6),
    dy=rng.standard_normal((2, 6, 4, 4)),
    groups=2,
)


def forward(x, w, b, dy, **options):
    return conv_forward(x, w, b, **options)


def backward(x, w, b, dy, **options):
    return conv_backward(dy, x, w, **options)


def forward_backward(x, w, b, dy, **options):
    return conv_forward_backward(x, w, b, dy, **options)


GEOMETRY_ERRORS = {
    "zero stride": (dict(stride=0), r"^stride must be >= 1"),
    "negative stride in one dim": (dict(stride=(1, -2)), r"^stride must be >= 1"),
    "stride for the wrong number of dims": (dict(stride=(1, 1, 1)), r"^stride must be an int or 2 ints"),
    "fractional stride": (dict(stride=1.5), r"^stride must be an int or 2 ints"),
    "zero dilation": (dict(dilation=0), r"^dilation must be >= 1"),
    "negative dilation in one dim": (dict(dilation=(-1, 1)), r"^dilation must be >= 1"),
    "dilation None": (dict(dilation=None), r"^dilation must be an int or 2 ints"),
    "fractional padding": (dict(padding=0.5), r"^padding must be an int, 2 ints or 2 \(before, after\)"),
    "boolean padding": (dict(padding=True), r"^padding must be an int, 2 ints or 2 \(before, after\)"),
    "fractional padding entry": (dict(padding=[1, 0.5]), r"^padding entries must be ints or \("),
    "padding triple": (dict(padding=[(1, 1, 1), 0]), r"^padding entries must be ints or \("),
    "groups not dividing the channels": (dict(groups=3), r"^groups=3 must divide"),
    "zero groups": (dict(groups=0), r"^groups must be a positive int"),
    "weight/input channel mismatch": (
        dict(w=np.ones((6, 3, 3, 3))),
        r"^w has 3 input channels per group, but x has 4 channels and groups=2",
    ),
    "dilated kernel larger than the padded input": (
        dict(dilation=3),
        r"^effective kernel 7 \(kernel 3, dilation 3\) is larger than the padded input 6 in dim 0",
    ),
    "kernel larger than the cropped input": (
        dict(padding=[(0, 0), (-2, -2)]),
        r"^effective kernel 3 \(kernel 3, dilation 1\) is larger than the padded input 2 in dim 1",
    ),
    "padding that crops everything": (dict(padding=[(-3, -3), (0, 0)]), r"^padding .* crops all 6 input"),
    "x without spatial dims": (dict(x=np.ones((2, 4))), r"^x must have shape \(N, C, \*spatial\)"),
    "x with 4 spatial dims": (dict(x=np.ones((2, 4, 3, 3, 3, 3))), r"^x must have shape \(N, C, \*spatial\)"),
    "w with fewer spatial dims than x": (dict(w=np.ones((6, 2, 3))), r"^w must have shape \(O, C/groups"),
    "integer x": (dict(x=np.ones((2, 4, 6, 6), dtype=np.int64)), r"^x must be a floating-point array"),
    "boolean x": (dict(x=np.ones((2, 4, 6, 6), dtype=bool)), r"^x must be a floating-point array"),
    "complex x": (dict(x=np.ones((2, 4, 6, 6), dtype=complex)), r"^x must be a floating-point array"),
    "integer w": (dict(w=np.ones((6, 2, 3, 3), dtype=np.int32)), r"^w must be a floating-point array"),
    "zero memory budget": (dict(memory_budget=0), r"^memory_budget must be a positive number of bytes"),
}
BIAS_ERRORS = {
    "bias of the wrong length": (dict(b=np.ones(4)), r"^b must have shape \(6,\), got \(4,\)"),
    "integer bias": (dict(b=np.ones(6, dtype=np.int64)), r"^b must be a floating-point array"),
}
GRADIENT_ERRORS = {
    "dy of the wrong spatial size": (
        dict(dy=np.ones((2, 6, 3, 4))),
        r"^dy must have shape \(2, 6, 4, 4\), got \(2, 6, 3, 4\)",
    ),
    "dy with the input's channel count": (dict(dy=np.ones((2, 4, 4, 4))), r"^dy must have shape"),
    "integer dy": (dict(dy=np.ones((2, 6, 4, 4), dtype=np.int64)), r"^dy must be a floating-point array"),
}


def cases(errors: dict, functions: tuple) -> list:
    return [
        pytest.param(function, changes, pattern, id=f"{function.__name__}: {name}")
        for name, (changes, pattern) in errors.items()
        for function in functions
    ]


@pytest.mark.parametrize(
    "function, changes, pattern",
    cases(GEOMETRY_ERRORS, (forward, backward, forward_backward))
    + cases(BIAS_ERRORS, (forward, forward_backward))
    + cases(GRADIENT_ERRORS, (backward, forward_backward)),
)
def test_bad_input_raises_a_value_error_naming_the_argument(function, changes: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        function(**(VALID | changes))


@pytest.mark.parametrize("function", (forward, backward, forward_backward))
def test_the_valid_starting_point_is_accepted(function) -> None:
    function(**VALID)
