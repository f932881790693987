"""Seeded inputs: deterministic, the same draw for every dtype, cast only at the end."""

from __future__ import annotations

import numpy as np
import pytest

from convparity.harness.cases.inputs import SATURATING, UNIFORM, InputStyle, case_seed, make_inputs
from convparity.harness.cases.spec import ConvSpec

SPEC = ConvSpec(batch=2, in_channels=4, out_channels=6, input_size=(5, 6), kernel_size=(3, 2), groups=2,
                dtype="float64")


def test_same_seed_same_values_and_shapes():
    first, second = make_inputs(SPEC, 3), make_inputs(SPEC, 3)
    for a, b in zip((first.x, first.w, first.b, first.dy), (second.x, second.w, second.b, second.dy)):
        np.testing.assert_array_equal(a, b)
    assert first.x.shape == (2, 4, 5, 6) and first.w.shape == (6, 2, 3, 2)
    assert first.b.shape == (6,) and first.dy.shape == (2, 6, 3, 5)
    assert not np.array_equal(first.x, make_inputs(SPEC, 4).x)


def test_every_dtype_rounds_the_same_float64_draw():
    wide = make_inputs(SPEC, 0)
    for dtype in ("float32", "float16", "bfloat16"):
        narrow = make_inputs(SPEC.replace(dtype=dtype), 0)
        assert narrow.x.dtype.name == dtype
        np.testing.assert_array_equal(narrow.x, wide.x.astype(narrow.x.dtype))
        np.testing.assert_array_equal(narrow.dy, wide.dy.astype(narrow.dy.dtype))


def test_seed_depends_on_case_and_bias_not_dtype():
    assert case_seed(SPEC, 0) == case_seed(SPEC.replace(dtype="float16"), 0)
    assert case_seed(SPEC, 0) != case_seed(SPEC.replace(bias=False), 0)
    assert case_seed(SPEC, 0) != case_seed(SPEC.replace(stride=2), 0)
    assert make_inputs(SPEC.replace(bias=False), 0).b is None


def test_values_are_bounded_and_weights_scaled_by_fan_in():
    inputs = make_inputs(SPEC.replace(in_channels=64, out_channels=64, groups=1), 1)
    assert np.abs(inputs.x).max() <= 1 and np.abs(inputs.dy).max() <= 1
    fan_in = 64 * 3 * 2
    assert np.abs(inputs.w).max() <= 1 / np.sqrt(fan_in)
    assert np.abs(inputs.w).max() > 0.9 / np.sqrt(fan_in)


def test_transposed_weights_have_the_transposed_shape_and_fan_in():
    # w (C_in, C_out/groups, *k); fan-in: C_in/groups = 8 inputs, each reaching an output position through
    # ceil(4 / 2) * ceil(3 / 1) = 6 taps of the kernel (stride 2, 1): 48 products per output element.
    spec = ConvSpec(batch=2, in_channels=16, out_channels=6, input_size=(5, 6), kernel_size=(4, 3), stride=(2, 1),
                    groups=2, transposed=True, dtype="float64")
    inputs = make_inputs(spec, 1)
    assert inputs.x.shape == (2, 16, 5, 6) and inputs.w.shape == (16, 3, 4, 3)
    assert inputs.dy.shape == (2, 6, 12, 8) and inputs.b.shape == (6,)
    assert np.abs(inputs.w).max() <= 1 / np.sqrt(48) and np.abs(inputs.w).max() > 0.9 / np.sqrt(48)
    assert case_seed(spec, 0) != case_seed(spec.replace(transposed=False, stride=1), 0)


def test_integer_inputs_are_small_whole_numbers_exact_in_every_dtype():
    style = InputStyle.parse("integers:2")
    assert (style.kind, style.scale, style.text) == ("integers", 2, "integers:2")
    wide = make_inputs(SPEC, 0, style)
    for array in (wide.x, wide.w, wide.b, wide.dy):
        assert np.array_equal(array, np.round(array)) and np.abs(array).max() <= 2
        assert set(np.unique(array)) <= {-2.0, -1.0, 1.0, 2.0} and len(np.unique(array)) >= 3  # no zeros
    for dtype in ("float32", "float16", "bfloat16"):
        narrow = make_inputs(SPEC.replace(dtype=dtype), 0, style)
        np.testing.assert_array_equal(narrow.w.astype(np.float64), wide.w)  # no rounding at all
    np.testing.assert_array_equal(make_inputs(SPEC, 0, style).x, wide.x)  # deterministic
    assert not np.array_equal(make_inputs(SPEC, 0, InputStyle("integers", 1)).x, wide.x)


def test_the_default_style_draws_what_every_earlier_version_drew():
    """Adding styles changed no uniform draw: the seed key of the default style is the old one."""
    import hashlib

    key = f"3|{SPEC.descriptor}|bias={SPEC.bias}".encode()
    assert case_seed(SPEC, 3) == int.from_bytes(hashlib.sha256(key).digest()[:8], "little")
    assert case_seed(SPEC, 3) == case_seed(SPEC, 3, UNIFORM) != case_seed(SPEC, 3, InputStyle("integers", 1))
    np.testing.assert_array_equal(make_inputs(SPEC, 3).x, make_inputs(SPEC, 3, UNIFORM).x)


@pytest.mark.parametrize("text", ["integers", "integers:0", "integers:-1", "integers:257", "gauss", "integers:1:2"])
def test_a_style_that_is_none_is_refused_saying_what_is(text):
    with pytest.raises(ValueError, match="expected 'uniform', 'saturating', 'integers:K'"):
        InputStyle.parse(text)
    assert InputStyle.parse("") == InputStyle.parse("uniform") == UNIFORM
    assert InputStyle.parse("saturating") == SATURATING and SATURATING.text == "saturating"
    with pytest.raises(ValueError, match="saturating values take no scale"):
        InputStyle("saturating", 3)
