"""benchdnn descriptors: worked examples, the round trip, and errors that point at the token."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from convparity.harness.cases.descriptor import DescriptorError, format_descriptor, parse_case, parse_descriptor
from convparity.harness.cases.spec import ConvSpec
from tests.strategies import conv_specs


def test_blog_post_layer():
    spec = parse_descriptor("mb2ic3ih5iw7oc4oh2ow3kh3kw3sh2sw2")
    assert spec == ConvSpec(batch=2, in_channels=3, out_channels=4, input_size=(5, 7), kernel_size=(3, 3), stride=2)
    assert spec.output_size == (2, 3)


def test_defaults_and_h_copied_to_w():
    # ic16 ih32 oc32 kh3 ph1: 2-D, w copies h, mb2 g1 s1 d0 by default, o = (32 - 3 + 2) / 1 + 1 = 32.
    spec = parse_descriptor("ic16ih32oc32kh3ph1")
    assert (spec.batch, spec.groups, spec.rank) == (2, 1, 2)
    assert spec.input_size == (32, 32) and spec.kernel_size == (3, 3) and spec.stride == (1, 1)
    assert spec.padding == ((1, 1), (1, 1)) and spec.output_size == (32, 32) and spec.dilation == (1, 1)


def test_dilation_counts_from_zero():
    # dh1 is PyTorch dilation 2: effective kernel (3 - 1) * 2 + 1 = 5, o = 9 - 5 + 1 = 5.
    spec = parse_descriptor("ic1ih9oc1kh3dh1")
    assert spec.dilation == (2, 2) and spec.output_size == (5, 5)
    assert "dh1dw1" in spec.descriptor


def test_rank_from_keys():
    assert parse_descriptor("ic2iw10oc2kw3").rank == 1
    assert parse_descriptor("ic2ih10oc2kh3").rank == 2
    three = parse_descriptor("ic2id4ih5iw6oc2kd2kh2kw2")
    assert three.rank == 3 and three.input_size == (4, 5, 6) and three.output_size == (3, 4, 5)
    assert parse_descriptor("ic2id4oc2kd2").input_size == (4, 4, 4)


def test_padding_derived_from_output_size():
    # o given, p absent: p = ((4 - 1) * 2 - 7 + 3) // 2 = 1; end pad = 6 - 7 + 3 - 1 = 1.
    spec = parse_descriptor("ic1ih7oc1oh4kh3sh2")
    assert spec.padding == ((1, 1), (1, 1)) and spec.output_size == (4, 4)


def test_end_pad_from_output_size_is_asymmetric():
    # o = 4, p = 0 with i = 6, k = 3, s = 1: end pad (4 - 1) - 6 + 3 - 0 = 0 ... o = 5 needs end pad 1.
    spec = parse_descriptor("ic1ih6oc1oh5kh3ph0")
    assert spec.padding == ((0, 1), (0, 1))


def test_underscores_groups_and_name():
    case = parse_case('g2_mb1_ic4ih6_oc6_kh3_ph1 n"resnet:layer1"')
    assert case.name == "resnet:layer1"
    assert (case.spec.groups, case.spec.batch, case.spec.in_channels) == (2, 1, 4)
    assert case.descriptor.endswith('n"resnet:layer1"')


def test_canonical_form_is_complete():
    text = format_descriptor(ConvSpec(batch=2, in_channels=3, out_channels=4, input_size=(5, 7),
                                      kernel_size=(3, 3), stride=2))
    assert text == "g1mb2ic3ih5iw7oc4oh2ow3kh3kw3sh2sw2ph0pw0dh0dw0"


@settings(max_examples=300, deadline=None)
@given(conv_specs())
def test_parse_of_print_is_identity(spec):
    assert parse_descriptor(spec.descriptor, dtype=spec.dtype, bias=spec.bias) == spec


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("mb2ic3ih5kx3oc4", "unknown key 'kx' at position 9 (mb2ic3ih5>>kx3oc4<<); expected one of g mb ic"),
        ("ic3ih5oc4kh3 junk", "whitespace inside a descriptor"),
        ("ic3ih5oc4", "kh must be positive when the h dim is present (given: ih)"),
        ("ic3ih5oc4kh7", "oh derived as -1: effective kernel 7"),
        ("ic3ih5oc4kh3sh-1", "sh must be a non-negative int"),
        ("ic3ih5oc4kh3sh0", "sh must be positive"),
        ("", "has no keys"),
    ],
)
def test_errors_point_at_the_token(text, fragment):
    with pytest.raises(DescriptorError) as error:
        parse_descriptor(text)
    assert fragment in str(error.value)


def test_a_dim_with_its_own_keys_copies_nothing():
    # benchdnn: w copies h only when no w key is given; sh2 with kw3 leaves sw at its default 1, pw 0, dw 0.
    spec = parse_descriptor("mb2ic3ih8iw8oc4kh3kw3sh2ph1dh1")
    assert spec.stride == (2, 1) and spec.dilation == (2, 1)
    assert spec.padding[1] == (0, 0) and spec.padding[0][0] == 1
    three = parse_descriptor("ic2id5ih6iw7oc2kd3kh2kw2sd2")
    assert three.stride == (2, 1, 1) and three.kernel_size == (3, 2, 2)
