"""Bad input to the transposed convolution raises ValueError with a sentence that names the argument.

The valid starting point: x (2, 4, 3, 3), w (4, 3, 3, 3) with groups 2 (C_out = 6), b (6,), stride 2,
dilation 1, output_padding 1 -> y and dy (2, 6, 8, 8).
"""

import numpy as np
import pytest

from convparity.reference_impl import conv_transpose_backward, conv_transpose_forward, conv_transpose_forward_backward

rng = np.random.default_rng(0)
VALID = dict(
    x=rng.standard_normal((2, 4, 3, 3)),
    w=rng.standard_normal((4, 3, 3, 3)),
    b=rng.standard_normal(6),
    dy=rng.standard_normal((2, 6, 8, 8)),
    groups=2,
    stride=2,
    output_padding=1,
)


def forward(x, w, b, dy, **options):
    return conv_transpose_forward(x, w, b, **options)


def backward(x, w, b, dy, **options):
    return conv_transpose_backward(dy, x, w, **options)


def forward_backward(x, w, b, dy, **options):
    return conv_transpose_forward_backward(x, w, b, dy, **options)


GEOMETRY_ERRORS = {
    "output_padding equal to stride and dilation": (
        dict(output_padding=(2, 1)),
        r"^output_padding must be smaller than stride or dilation in every dim, got 2 with stride 2 and dilation 1 "
        r"in dim 0",
    ),
    "output_padding equal to dilation with stride 1": (
        dict(stride=1, dilation=(1, 2), output_padding=(0, 2)),
        r"^output_padding must be smaller than stride or dilation .* got 2 with stride 1 and dilation 2 in dim 1",
    ),
    "negative output_padding": (dict(output_padding=-1), r"^output_padding must be >= 0"),
    "output_padding for the wrong number of dims": (
        dict(output_padding=(1, 1, 1)), r"^output_padding must be an int or 2 ints",
    ),
    "fractional output_padding": (dict(output_padding=0.5), r"^output_padding must be an int or 2 ints"),
    "zero stride": (dict(stride=0), r"^stride must be >= 1"),
    "zero dilation": (dict(dilation=(1, 0)), r"^dilation must be >= 1"),
    "padding triple": (dict(padding=[(1, 1, 1), 0]), r"^padding entries must be ints or \("),
    "groups not dividing the input channels": (dict(groups=3), r"^groups=3 must divide the input channels \(4\)"),
    "zero groups": (dict(groups=0), r"^groups must be a positive int"),
    "w laid out like a convolution's (C_out, C_in/groups)": (
        dict(w=np.ones((6, 2, 3, 3))),
        r"^w must have shape \(C_in, C_out/groups, \*kernel\) with C_in = 4 like x, got \(6, 2, 3, 3\)",
    ),
    "w with fewer spatial dims than x": (
        dict(w=np.ones((4, 3, 3))), r"^w must have shape \(C_in, C_out/groups, \*kernel\) with 2 spatial dims",
    ),
    "x with 4 spatial dims": (dict(x=np.ones((2, 4, 3, 3, 3, 3))), r"^x must have shape \(N, C, \*spatial\)"),
    "empty x": (dict(x=np.ones((2, 4, 0, 3))), r"^x \(2, 4, 0, 3\) and w .* must have no empty dims"),
    "integer x": (dict(x=np.ones((2, 4, 3, 3), dtype=np.int64)), r"^x must be a floating-point array"),
    "complex w": (dict(w=np.ones((4, 3, 3, 3), dtype=complex)), r"^w must be a floating-point array"),
    "padding that leaves no output": (
        dict(padding=[(4, 5), 0]), r"^padding \(4, 5\) leaves no output in dim 0: 7 positions - 4 - 5 \+ "
        r"output_padding 1 = -1",
    ),
    "zero memory budget": (dict(memory_budget=0), r"^memory_budget must be a positive number of bytes"),
}  # fmt: skip
BIAS_ERRORS = {
    "bias of C_in entries": (dict(b=np.ones(4)), r"^b must have shape \(6,\), got \(4,\)"),
    "integer bias": (dict(b=np.ones(6, dtype=np.int64)), r"^b must be a floating-point array"),
}
GRADIENT_ERRORS = {
    "dy without the output_padding row and column": (
        dict(dy=np.ones((2, 6, 7, 7))), r"^dy must have shape \(2, 6, 8, 8\), got \(2, 6, 7, 7\)",
    ),
    "dy with the input's channel count": (dict(dy=np.ones((2, 4, 8, 8))), r"^dy must have shape"),
    "integer dy": (dict(dy=np.ones((2, 6, 8, 8), dtype=np.int64)), r"^dy must be a floating-point array"),
}  # fmt: skip


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


BOUNDARY_CASES = {
    "the valid starting point": {},
    "output_padding below dilation though not below stride (PyTorch accepts it)": dict(
        stride=1, dilation=(3, 2), output_padding=(2, 1), dy=np.ones((2, 6, 11, 8))
    ),
    "negative pads extend the output": dict(padding=[(-2, -1), (0, -3)], dy=np.ones((2, 6, 11, 11))),
    "one output position the input reaches, the rest bias": dict(padding=[(6, -3), 0], dy=np.ones((2, 6, 5, 8))),
    "padding that crops every position the input reaches (the output is the bias alone)": dict(
        padding=[0, (7, -3)], dy=np.ones((2, 6, 8, 4))),
    "negative pads that leave only new positions": dict(padding=[(-1, 8), 0], dy=np.ones((2, 6, 1, 8))),
}


@pytest.mark.parametrize("function", (forward, backward, forward_backward))
@pytest.mark.parametrize("changes", BOUNDARY_CASES.values(), ids=BOUNDARY_CASES.keys())
def test_valid_input_at_the_limits_is_accepted(function, changes: dict) -> None:
    function(**(VALID | changes))


BIAS_ONLY = {
    # PyTorch: F.conv_transpose1d(x (1, 2, 1), w (2, 3, 1), stride=3, padding=1, output_padding=2, dilation=3) is b:
    # the full result is position 0 alone, and the one output position is full position 1.
    "1-D, cropped then extended by output_padding": dict(
        x=np.ones((1, 2, 1)), w=np.ones((2, 3, 1)), groups=1, stride=3, padding=1, output_padding=2, dilation=3,
        dy=np.ones((1, 3, 1))),
    "2-D, every output after the full result in dim 1": dict(padding=[0, (7, -3)], dy=np.ones((2, 6, 8, 4))),
    "2-D, negative pads that leave only new positions in dim 0": dict(padding=[(-1, 8), 0], dy=np.ones((2, 6, 1, 8))),
}


@pytest.mark.parametrize("changes", BIAS_ONLY.values(), ids=BIAS_ONLY.keys())
def test_an_output_the_input_never_reaches_is_the_bias_alone(changes: dict) -> None:
    arguments = VALID | changes
    rng = np.random.default_rng(3)
    arguments["x"] = rng.uniform(-1, 1, arguments["x"].shape)
    arguments["w"] = rng.uniform(-1, 1, arguments["w"].shape)
    channels = arguments["w"].shape[1] * arguments.get("groups", 1)
    arguments["b"] = rng.uniform(-1, 1, channels)
    arguments["dy"] = rng.uniform(-1, 1, arguments["dy"].shape)
    y, dx, dw, db = forward_backward(**arguments)
    assert y.shape == arguments["dy"].shape
    expected_y = np.broadcast_to(arguments["b"].reshape(1, -1, *([1] * (y.ndim - 2))), y.shape)
    np.testing.assert_array_equal(y, expected_y)
    np.testing.assert_array_equal(dx, np.zeros(arguments["x"].shape))
    np.testing.assert_array_equal(dw, np.zeros(arguments["w"].shape))
    np.testing.assert_allclose(db, arguments["dy"].sum(axis=tuple(i for i in range(y.ndim) if i != 1)), rtol=1e-15)
    np.testing.assert_array_equal(forward(**arguments), y)
    np.testing.assert_array_equal(backward(**arguments)[1], dw)
