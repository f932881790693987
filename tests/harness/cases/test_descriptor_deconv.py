"""Deconv descriptors: benchdnn's deconv driver rules on real oneDNN lines worked by hand, a property against a
transcription of those rules written here, the `deconv:` prefix and the round trip.

The rules (tests/benchdnn/deconv/deconv_aux.cpp: str2desc; deconv/deconv.hpp: desc_t::opp_pad), effk =
(k - 1)(d + 1) + 1:
  o = (i - 1)s + effk - 2p                when o is absent or 0 (p then defaults to 0)
  p = ((i - 1)s - o + effk) / 2           when o is given and p is not (C division: truncation toward zero)
  end pad = (i - 1)s - o + effk - p
A ConvSpec holds the end pad as (after, output_padding) with after - output_padding = end pad, in canonical form.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convparity.harness.cases.descriptor import DescriptorError, format_desc, parse_case, parse_desc, parse_descriptor
from convparity.harness.cases.spec import ConvSpec
from tests.strategies import conv_transpose_specs

# (descriptor, input, output, kernel, stride, padding pairs, output_padding), worked by hand.
ONEDNN_LINES = [
    # inputs/deconv/shapes_1d: effk = 2 * 3 + 1 = 7; end = 4 - 2 + 7 - 3 = 6: the output crops 9 of 11 positions.
    ('ic8iw5oc8ow2kw3pw3dw2n"deconv1d:1"', (5,), (2,), (3,), (1,), ((3, 6),), (0,)),
    # shapes_2d alexnet:deconv1: end = 54 * 4 - 227 + 11 - 0 = 0.
    ('g1mb256oc3oh227ow227ic96ih55iw55kh11kw11sh4sw4ph0pw0n"alexnet:deconv1"', (55, 55), (227, 227), (11, 11),
     (4, 4), ((0, 0), (0, 0)), (0, 0)),
    # shapes_2d googlenet conv1: end = 111 * 2 - 224 + 7 - 3 = 2 = after 3 - output_padding 1 (symmetric pads,
    # PyTorch's ConvTranspose2d(64, 3, 7, 2, padding=3, output_padding=1)).
    ('g1mb96ic64ih112iw112oc3oh224ow224kh7kw7sh2sw2ph3pw3n"googlenet_v1:conv1/7x7_s2"', (112, 112), (224, 224),
     (7, 7), (2, 2), ((3, 3), (3, 3)), (1, 1)),
    # shapes_1d masknet: end = 511 * 2 - 1030 + 7 - 0 = -1: output_padding 1.
    ('mb1_g1oc3ic64_ow1030iw512kw7sw2dw0pw0_n"masknet_p1:deconv1"', (512,), (1030,), (7,), (2,), ((0, 0),), (1,)),
    # shapes_1d resnet_50: a 1x1 kernel, stride 2: end = 27 * 2 - 56 + 1 - 0 = -1.
    ('g1mb50ic256iw28oc512ow56kw1sw2pw0n"resnet_50:res3a_branch1"', (28,), (56,), (1,), (2,), ((0, 0),), (1,)),
    # shapes_3d unet_3d:deconv8: d end = 7 - 10 + 3 - 0 = 0, h and w end = 8 - 11 + 3 - 0 = 0.
    ('g1mb1ic512ih9iw9id8oc256oh11ow11od10kh3kw3kd3sh1sw1sd1ph0pw0dh0dw0n"unet_3d:deconv8"', (8, 9, 9),
     (10, 11, 11), (3, 3, 3), (1, 1, 1), ((0, 0),) * 3, (0, 0, 0)),
    # o absent: o = 4 * 2 + 3 - 2 * 1 = 9, end = 8 - 9 + 3 - 1 = 1.
    ("ic4ih5oc2kh3sh2ph1", (5, 5), (9, 9), (3, 3), (2, 2), ((1, 1), (1, 1)), (0, 0)),
    # p absent: p = (8 - 10 + 3) / 2 = 0, end = 1 (TensorFlow's "same": the odd pad at the end).
    ("ic4iw5oc2ow10kw3sw2", (5,), (10,), (3,), (2,), ((0, 1),), (0,)),
    # p absent, negative numerator: p = (8 - 12 + 3) / 2 = (-1) / 2 = 0 in C (floor: -1); end = -1.
    ("ic4iw5oc2ow12kw3sw2", (5,), (12,), (3,), (2,), ((0, 0),), (1,)),
]


@pytest.mark.parametrize(("text", "size", "out", "kernel", "stride", "padding", "extra"), ONEDNN_LINES)
def test_onednn_deconv_lines(text, size, out, kernel, stride, padding, extra):
    case = parse_case(text, transposed=True)
    spec = case.spec
    assert spec.transposed and spec.input_size == size and spec.output_size == out
    assert (spec.kernel_size, spec.stride, spec.padding, spec.output_padding) == (kernel, stride, padding, extra)
    assert parse_case("deconv:" + text) == case
    assert case.descriptor.startswith("deconv:g") and parse_case(case.descriptor) == case


def test_the_same_text_is_a_conv_without_the_prefix():
    conv, deconv = parse_descriptor("ic4ih5oc2kh3sh2ph1"), parse_descriptor("deconv:ic4ih5oc2kh3sh2ph1")
    assert not conv.transposed and conv.output_size == (3, 3) and conv.w_shape == (2, 4, 3, 3)
    assert deconv.transposed and deconv.output_size == (9, 9) and deconv.w_shape == (4, 2, 3, 3)
    assert conv.descriptor != deconv.descriptor == "deconv:" + deconv.descriptor.removeprefix("deconv:")
    assert parse_desc("  deconv:ic4ih5oc2kh3sh2ph1").transposed
    assert format_desc(parse_desc("ic4ih5oc2kh3sh2ph1", transposed=True)).startswith("deconv:g1mb2ic4ih5iw5oc2oh9")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("deconv:ic8ih2oc4kh1ph1", "deconv descriptor 'ic8ih2oc4kh1ph1': oh derived as 0"),
        ("deconv:ic8ih2oc4kh1sh0", "deconv descriptor 'ic8ih2oc4kh1sh0': sh must be positive"),
        ("deconv:ic8ih2kh3", "deconv descriptor 'ic8ih2kh3': oc is required"),
        ("deconv:g3ic8ih2oc6kh3", "groups=3 must divide"),
        ("deconv:deconv:ic8ih2oc4kh3", "unknown key 'deconv'"),
    ],
)
def test_deconv_errors_say_deconv(text, fragment):
    with pytest.raises(DescriptorError) as error:
        parse_case(text)
    assert fragment in str(error.value)


def c_div(a: int, b: int) -> int:
    """C's integer division of small ints: truncation toward zero."""
    return math.trunc(a / b)


@settings(max_examples=300, deadline=None)
@given(i=st.integers(1, 9), k=st.integers(1, 5), s=st.integers(1, 4), d=st.integers(0, 2),
       o=st.one_of(st.none(), st.integers(1, 40)), p=st.one_of(st.none(), st.integers(-2, 4)))
def test_derivations_follow_benchdnns_deconv_rules(i, k, s, d, o, p):
    text = f"ic2iw{i}oc3kw{k}sw{s}dw{d}" + ("" if o is None else f"ow{o}") + ("" if p is None else f"pw{p}")
    effk = (k - 1) * (d + 1) + 1
    if o is None:
        p_expected = 0 if p is None else p
        o_expected = (i - 1) * s + effk - 2 * p_expected
    else:
        o_expected, p_expected = o, p if p is not None else c_div((i - 1) * s - o + effk, 2)
    end = (i - 1) * s - o_expected + effk - p_expected
    try:
        spec = parse_descriptor("deconv:" + text)
    except DescriptorError:
        # benchdnn's own refusal (o <= 0), or a problem no ConvSpec holds: no output the input reaches, or an
        # end pad that needs output_padding beyond PyTorch's limit ... which a negative end pad then takes.
        full = (i - 1) * s + effk
        assert o_expected <= 0 or o_expected - max(0, -p_expected) - max(0, -end) < 1 or p_expected >= full
        return
    assert spec.output_size == (o_expected,) and spec.padding[0][0] == p_expected
    (_, after), (extra,) = spec.padding[0], spec.output_padding
    assert after - extra == end and 0 <= extra < max(s, d + 1)


@settings(max_examples=300, deadline=None)
@given(conv_transpose_specs())
def test_parse_of_print_is_identity(spec: ConvSpec):
    assert spec.descriptor.startswith("deconv:")
    assert parse_descriptor(spec.descriptor, dtype=spec.dtype, bias=spec.bias) == spec
