"""ConvSpec: validation naming the field, "same"/"valid", canonical end pads, derived shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_impl
from harness.cases.spec import ConvSpec, numpy_dtype


def spec(**changes):
    fields = dict(batch=2, in_channels=4, out_channels=6, input_size=(7, 8), kernel_size=(3, 3))
    return ConvSpec(**{**fields, **changes})


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"batch": 0}, "batch"),
        ({"in_channels": -1}, "in_channels"),
        ({"out_channels": 2.5}, "out_channels"),
        ({"groups": 3}, "groups=3 must divide"),
        ({"input_size": ()}, "input_size"),
        ({"input_size": (4, 4, 4, 4), "kernel_size": (1, 1, 1, 1)}, "input_size"),
        ({"kernel_size": (3,)}, "kernel_size"),
        ({"kernel_size": (0, 3)}, "kernel_size"),
        ({"stride": 0}, "stride"),
        ({"dilation": (1, 0)}, "dilation"),
        ({"padding": "full"}, "padding"),
        ({"padding": ((1, 2, 3), 0)}, "padding"),
        ({"kernel_size": (9, 3)}, "kernel_size: effective kernel 9"),
        ({"kernel_size": (3, 3), "dilation": 4}, "kernel_size: effective kernel 9"),
        ({"padding": ((-7, 0), 0), "kernel_size": (1, 1)}, "padding (-7, 0) crops all 7"),
        ({"bias": "yes"}, "bias"),
        ({"dtype": "float8"}, "dtype must be one of"),
    ],
)
def test_invalid_specs_name_the_field(changes, field):
    with pytest.raises(ValueError, match=field.replace("(", r"\(").replace(")", r"\)")):
        spec(**changes)


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 20), kernel=st.integers(1, 5), stride=st.integers(1, 4), dilation=st.integers(1, 3))
def test_same_padding_follows_tensorflow(size, kernel, stride, dilation):
    # TensorFlow's SAME: output ceil(i / s); total pad max((o - 1) s + effk - i, 0), the odd one at the end.
    s = ConvSpec(batch=1, in_channels=1, out_channels=1, input_size=(size,), kernel_size=(kernel,),
                 stride=stride, dilation=dilation, padding="same")
    effective = (kernel - 1) * dilation + 1
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + effective - size, 0)
    assert s.output_size == (out,)
    assert s.padding[0][0] == total // 2
    assert s.padding[0][1] in (total - total // 2, 0)  # the end pad is canonical: 0 when no window reaches it


def test_valid_is_no_padding():
    assert spec(padding="valid").padding == ((0, 0), (0, 0))


def test_padding_forms():
    assert spec(padding=1).padding == ((1, 1), (1, 1))
    assert spec(padding=(1, 2)).padding == ((1, 1), (2, 2))
    assert spec(padding=((0, 2), (1, 1))).padding == ((0, 2), (1, 1))


def test_unreached_end_pad_is_normalised_and_reaching_crop_is_kept():
    # i = 7, k = 2, s = 2, pads (1, 1): windows cover 8 of the 9 padded positions, so the end pad is unused.
    one = ConvSpec(batch=1, in_channels=1, out_channels=1, input_size=(7,), kernel_size=(2,), stride=2, padding=1)
    assert one.padding == ((1, 0),) and one.output_size == (4,)
    # a crop of the last input row that no window reaches is normalised away ...
    unreached = ConvSpec(batch=1, in_channels=1, out_channels=1, input_size=(8,), kernel_size=(3,), stride=2,
                         padding=((0, -1),))
    assert unreached.padding == ((0, 0),)
    # ... and a crop that removes a window is kept.
    reaching = ConvSpec(batch=1, in_channels=1, out_channels=1, input_size=(8,), kernel_size=(3,),
                        padding=((0, -2),))
    assert reaching.padding == ((0, -2),) and reaching.output_size == (4,)


@settings(max_examples=150, deadline=None)
@given(size=st.integers(2, 12), kernel=st.integers(1, 4), stride=st.integers(1, 3), before=st.integers(-1, 3),
       after=st.integers(-3, 4), seed=st.integers(0, 2**16))
def test_canonical_padding_computes_the_same_convolution(size, kernel, stride, before, after, seed):
    try:
        s = ConvSpec(batch=1, in_channels=2, out_channels=3, input_size=(size,), kernel_size=(kernel,),
                     stride=stride, padding=((before, after),))
    except ValueError:
        return
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(s.x_shape), rng.standard_normal(s.w_shape)
    try:
        raw = reference_impl.conv_forward(x, w, stride=stride, padding=((before, after),))
    except ValueError:  # the raw pads crop every input: the reference refuses, the spec normalises
        return
    canonical = reference_impl.conv_forward(x, w, stride=stride, padding=s.padding)
    np.testing.assert_array_equal(raw, canonical)


def test_derived_shapes_and_reductions():
    s = spec(groups=2, stride=2, padding=1, bias=True)
    assert s.output_size == (4, 4)  # floor((7 + 2 - 3) / 2) + 1 = 4, floor((8 + 2 - 3) / 2) + 1 = 4
    assert s.x_shape == (2, 4, 7, 8) and s.w_shape == (6, 2, 3, 3) and s.y_shape == (2, 6, 4, 4)
    assert s.reductions == {"y": 2 * 9 + 1, "dx": 3 * 9, "dw": 2 * 16, "db": 2 * 16}


def test_numpy_dtypes():
    assert numpy_dtype("float16") == np.float16
    assert numpy_dtype("bfloat16").name == "bfloat16"
    with pytest.raises(ValueError, match="dtype"):
        numpy_dtype("int8")
