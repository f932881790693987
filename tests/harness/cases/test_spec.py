"""ConvSpec: validation naming the field, "same"/"valid", canonical end pads, derived shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convparity import reference_impl
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.vocabulary import numpy_dtype


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
    assert numpy_dtype("int8") == np.int8 and numpy_dtype("uint8") == np.uint8
    assert numpy_dtype("float8_e4m3").name == "float8_e4m3fn" and numpy_dtype("float8_e5m2").name == "float8_e5m2"
    with pytest.raises(ValueError, match="not a single data type: 'uint8:int8:uint8'"):
        numpy_dtype("uint8:int8:uint8")


# -- transposed convolutions ------------------------------------------------------------------------

def deconv(**changes):
    fields = dict(batch=2, in_channels=4, out_channels=6, input_size=(4, 5), kernel_size=(3, 3), stride=2,
                  transposed=True)
    return ConvSpec(**{**fields, **changes})


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: spec(output_padding=1), "output_padding must be 0 for a convolution"),
        (lambda: deconv(output_padding=2), "output_padding must be smaller than stride or dilation"),
        (lambda: deconv(stride=1, dilation=2, output_padding=(1, 2)), "output_padding must be smaller"),
        (lambda: deconv(output_padding=-1), "output_padding must be >= 0"),
        (lambda: deconv(output_padding=(1, 1, 1)), "output_padding must be an int or 2 ints"),
        (lambda: deconv(transposed="yes"), "transposed must be True or False"),
        (lambda: deconv(padding=5), "padding (5, 5) leaves no output in spatial dim 0: 9 positions - 5 - 5"),
        (lambda: deconv(padding="same", output_padding=1), "output_padding must be 0 with padding='same'"),
        (lambda: deconv(padding="full"), "padding must be 'same', 'valid'"),
        (lambda: deconv(groups=4), "groups=4 must divide"),
    ],
)
def test_invalid_transposed_specs_name_the_field(make, field):
    with pytest.raises(ValueError, match=field.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_transposed_shapes():
    s = deconv(groups=2, padding=1, output_padding=1)
    # out = (i - 1) * 2 - 1 - 1 + (3 - 1) + 1 + 1: (4 - 1) * 2 + 2 = 8, (5 - 1) * 2 + 2 = 10
    assert s.output_size == (8, 10) and s.op == "deconv" and spec().op == "conv"
    assert s.x_shape == (2, 4, 4, 5) and s.w_shape == (4, 3, 3, 3) and s.y_shape == (2, 6, 8, 10)
    assert s.shapes["dw"] == (4, 3, 3, 3) and s.shapes["dy"] == (2, 6, 8, 10)
    assert spec().output_padding == (0, 0) and not spec().transposed


def test_canonical_output_padding_prefers_symmetric_pads_then_the_smallest_output_padding():
    # PyTorch's ConvTranspose2d(k=3, s=2, padding=1, output_padding=1) is kept as written ...
    assert deconv(padding=1, output_padding=1).padding == ((1, 1), (1, 1))
    # ... and is what the same window written with an end pad of 0 becomes.
    same_window = deconv(padding=((1, 0), (1, 0)))
    assert same_window.padding == ((1, 1), (1, 1)) and same_window.output_padding == (1, 1)
    # No symmetric form: the smallest output_padding with a non-negative end pad.
    keras_same = deconv(padding=((0, 1), (0, 1)))
    assert keras_same.padding == ((0, 1), (0, 1)) and keras_same.output_padding == (0, 0)
    assert deconv(padding=((3, -1), 0)).padding == ((3, 0), (0, 0)) and deconv(padding=((3, -1), 0)).output_padding \
        == (1, 0)
    # An end pad below -(max(s, d) - 1) stays negative, with the largest output_padding.
    extended = deconv(padding=((0, -3), 0))
    assert extended.padding == ((0, -2), (0, 0)) and extended.output_padding == (1, 0)
    # Under dilation, PyTorch allows output_padding up to the dilation - 1.
    dilated = deconv(stride=1, dilation=3, padding=((2, 0), 0))
    assert dilated.padding == ((2, 2), (0, 0)) and dilated.output_padding == (2, 0)


@settings(max_examples=150, deadline=None)
@given(size=st.integers(1, 6), kernel=st.integers(1, 4), stride=st.integers(1, 3), dilation=st.integers(1, 3),
       before=st.integers(-2, 3), after=st.integers(-3, 4), extra=st.integers(0, 2), seed=st.integers(0, 2**16))
def test_canonical_transposed_padding_computes_the_same_transposed_convolution(size, kernel, stride, dilation, before,
                                                                              after, extra, seed):
    try:
        s = ConvSpec(batch=1, in_channels=2, out_channels=3, input_size=(size,), kernel_size=(kernel,),
                     stride=stride, dilation=dilation, padding=((before, after),), output_padding=extra,
                     transposed=True)
    except ValueError:
        return
    assert s.replace(dtype="float64") == s.replace(dtype="float64").replace()  # canonical form is a fixed point
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(s.x_shape), rng.standard_normal(s.w_shape)
    options = dict(stride=stride, dilation=dilation)
    raw = reference_impl.conv_transpose_forward(x, w, padding=((before, after),), output_padding=extra, **options)
    canonical = reference_impl.conv_transpose_forward(x, w, padding=s.padding, output_padding=s.output_padding,
                                                      **options)
    np.testing.assert_array_equal(raw, canonical)


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 20), kernel=st.integers(1, 5), stride=st.integers(1, 4), dilation=st.integers(1, 3))
def test_transposed_same_padding_follows_tensorflow(size, kernel, stride, dilation):
    # TensorFlow's SAME conv_transpose is the data gradient of a SAME conv of an input of i * s: output i * s,
    # total pad max((i - 1) s + effk - i s, 0) = max(effk - s, 0), the odd one at the end; our window starts there.
    s = ConvSpec(batch=1, in_channels=1, out_channels=1, input_size=(size,), kernel_size=(kernel,), stride=stride,
                 dilation=dilation, padding="same", transposed=True)
    effective = (kernel - 1) * dilation + 1
    assert s.output_size == (size * stride,)
    assert s.padding[0][0] == max(effective - stride, 0) // 2


def test_transposed_reductions_are_the_reference_geometrys():
    s = deconv(in_channels=6, groups=3, stride=(2, 3), dilation=(1, 2), padding=((1, 1), (0, 2)), output_padding=1)
    x, w = np.zeros(s.x_shape), np.zeros(s.w_shape)
    geometry = reference_impl.conv_transpose_geometry(x, w, stride=s.stride, padding=s.padding,
                                                      output_padding=s.output_padding, dilation=s.dilation,
                                                      groups=s.groups)
    assert geometry.output_size == s.output_size
    assert s.reductions == geometry.reduction_lengths(bias=True)
    assert s.replace(bias=False).reductions == geometry.reduction_lengths(bias=False)
    # Worked: C_in/g = 2; dim 0: s = 2, d = 1, ceil(3 / 2) = 2 taps; dim 1: s = 3, d = 2 are coprime,
    # ceil(3 / 3) = 1 tap. y: 2 * 2 * 1 + 1; dx: C_out/g 2 * 9; dw: N * prod(in) = 2 * 20; db: N * prod(out).
    assert s.reductions == {"y": 5, "dx": 18, "dw": 40, "db": 2 * s.output_size[0] * s.output_size[1]}


def test_a_transposed_spec_whose_output_the_input_never_reaches_is_accepted():
    # PyTorch computes it (the output is the bias alone); issue 24 found 21 such 1-D specs refused.
    spec = ConvSpec(batch=1, in_channels=2, out_channels=3, input_size=1, kernel_size=1, stride=3, padding=1,
                    output_padding=2, dilation=3, transposed=True)
    assert spec.output_size == (1,)
    assert spec.descriptor == "deconv:g1mb1ic2iw1oc3ow1kw1sw3pw1dw2"
