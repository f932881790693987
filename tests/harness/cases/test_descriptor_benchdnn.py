"""Descriptors mean what benchdnn's conv driver means: real oneDNN lines worked by hand, and a property
against a transcription of benchdnn's rules written here, apart from the descriptor module.

The benchdnn rules (tests/benchdnn/conv/conv_aux.cpp: str2desc; common.cpp: sanitize_desc;
conv/conv.hpp: desc_t::init_pad_r):
  o = (i - ((k - 1)(d + 1) + 1) + 2p) / s + 1   when o is absent or 0 (p then defaults to 0)
  p = ((o - 1)s - i + ((k - 1)(d + 1) + 1)) / 2 when o is given and p is not
  end pad = (o - 1)s - i + ((k - 1)(d + 1) + 1) - p
with C's integer division (truncation toward zero).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from convparity.harness.cases.descriptor import (
    Case,
    DescriptorError,
    check_name,
    format_descriptor,
    parse_case,
    parse_desc,
)

# (descriptor, rank, input, output, kernel, stride, begin pad, benchdnn end pad, name), each worked from the
# rules above by hand; dims in d, h, w order.
ONEDNN_LINES = [
    # shapes_regression_small_spatial: p = ((16 - 1) * 2 - 33 + 2) / 2 = (-1) / 2 = 0 in C (floor: -1);
    # end = 30 - 33 + 2 - 0 = -1.
    ("mb2ic16ih33oc16oh16kh2sh2", 2, (33, 33), (16, 16), (2, 2), (2, 2), (0, 0), (-1, -1), ""),
    # harness_conv_regression_general, DS2: h end = 15 * 2 - 41 + 10 - 0 = -1; w end = 74 - 79 + 5 - 0 = 0.
    ('mb2_ic32oc32_ih41oh16kh10sh2ph0_iw79ow75kw5sw1pw0n"ds2"', 2, (41, 79), (16, 75), (10, 5), (2, 1), (0, 0),
     (-1, 0), "ds2"),
    ('mb2_ic32oc32_iw79ow75kw5sw1pw0_ih41oh16kh10sh2ph0n"ds2-swap"', 2, (41, 79), (16, 75), (10, 5), (2, 1),
     (0, 0), (-1, 0), "ds2-swap"),
    # harness_conv_regression_general, DNNL-671: h p = (0 - 1 + 1) / 2 = 0; w p = (3 * 2 - 9 + 3) / 2 = 0.
    ("ic2ih1iw9oc3oh1ow4kh1kw3sh1sw2", 2, (1, 9), (1, 4), (1, 3), (1, 2), (0, 0), (0, 0), ""),
    # harness_conv_regression_general, DNNL-796: w copies h; end = 10 - 7 + 3 - 2 = 4.
    ("mb2_g1ic32oc32_ih7oh11kh3ph2", 2, (7, 7), (11, 11), (3, 3), (1, 1), (2, 2), (4, 4), ""),
    # harness_conv_regression_general, DNNL-930: p = (298 - 300 + 3) / 2 = 0; end = 298 - 300 + 3 - 0 = 1.
    ("mb2ic3ih300oc32oh150kh3sh2", 2, (300, 300), (150, 150), (3, 3), (2, 2), (0, 0), (1, 1), ""),
    # harness_conv_regression_general, MFDNN-1995: h end = 0 * 3 - 2 + 1 - 0 = -1.
    ('mb1_g1_ic16oc16_kd1kh1kw1_id1ih2iw1_od1oh1ow1_sd1sh3sw1_pd0ph0pw0_dd0dh0dw0n"neg-padding(-1)"', 3,
     (1, 2, 1), (1, 1, 1), (1, 1, 1), (1, 3, 1), (0, 0, 0), (0, -1, 0), "neg-padding(-1)"),
    # harness_conv_regression_general: d end = 0 * 3 - 3 + 2 - 0 = -1.
    ('mb1_g1_ic16oc16_kd2kh1kw1_id3ih1iw1_od1oh1ow1_sd3sh1sw1_pd0ph0pw0_dd0dh0dw0n"3D_Neg-Padding"', 3,
     (3, 1, 1), (1, 1, 1), (2, 1, 1), (3, 1, 1), (0, 0, 0), (-1, 0, 0), "3D_Neg-Padding"),
    # harness_conv_regression_general, MFDNN-2027: a bare `n` is an empty name; h end = 0 - 7 + 11 - 5 = -1.
    ("g1ic16ih7iw1oc16oh1ow1kh11kw1sh2sw1ph5pw0n", 2, (7, 1), (1, 1), (11, 1), (2, 1), (5, 0), (-1, 0), ""),
    # harness_conv_regression_general: 1-D (w keys only); effective kernel 13 * 2 + 1 = 27;
    # end = 28 - 1 + 27 - 28 = 26; the name follows `_n`.
    ('mb1_ic1oc16_iw1_ow29_kw14_pw28_dw1_n"dilated_kernel_size_lt_padding"', 1, (1,), (29,), (14,), (1,), (28,),
     (26,), "dilated_kernel_size_lt_padding"),
    # harness_conv_regression_general: a name without quotes; d copied to h and w; end = 2 - 5 + 3 - 0 = 0.
    ("g2ic32id5oc6od3kd3pd0noc%simd_width_!=0_with_im2col", 3, (5, 5, 5), (3, 3, 3), (3, 3, 3), (1, 1, 1),
     (0, 0, 0), (0, 0, 0), "oc%simd_width_!=0_with_im2col"),
    # harness_conv_regression_general: o derived, h dilated: effective kernel 2 * 3 + 1 = 7, o = (10 - 7) + 1 = 4.
    ('mb1_ic16oc16_id2ih10iw1_kd2kh3kw1_dd0dh2dw0n"3d_dilated_check"', 3, (2, 10, 1), (1, 4, 1), (2, 3, 1),
     (1, 1, 1), (0, 0, 0), (0, 0, 0), "3d_dilated_check"),
    # harness_conv_regression_general: w effective kernel 5 * 31 + 1 = 156, o = (1000 - 156 + 256) + 1 = 1101,
    # end = 1100 - 1000 + 156 - 128 = 128; h: o = (2 - 2) + 1 = 1 given, end 0.
    ('mb1_ic16oc1_ih2oh1kh2sh1dh0ph0_iw1000kw6sw1dw30pw128n"1d_conv_large_dilated_padding_1"', 2, (2, 1000),
     (1, 1101), (2, 6), (1, 1), (0, 128), (0, 128), "1d_conv_large_dilated_padding_1"),
    # harness_conv_regression_general: oc and o keys before ic; end = 55 * 2 - 28 + 1 - 0 = 83.
    ("g1_oc16oh56ow56_ic16ih28iw28_kh1kw1sh2sw2ph0pw0", 2, (28, 28), (56, 56), (1, 1), (2, 2), (0, 0), (83, 83), ""),
    # shapes_1d: end = 111 * 2 - 224 + 7 - 3 = 2.
    ('g1mb50ic3iw224oc64ow112kw7sw2pw3n"conv1d:2"', 1, (224,), (112,), (7,), (2,), (3,), (2,), "conv1d:2"),
    # shapes_1d: o = (18 - 2) / 2 + 1 = 9.
    ('g100_ic400oc400_iw18kw2sw2_n"1d_gconv_channel-block-4-strided"', 1, (18,), (9,), (2,), (2,), (0,), (0,),
     "1d_gconv_channel-block-4-strided"),
    # shapes_3d_unet: keys in h, w, d order; o = i - 2.
    ('mb1ic3ih132iw132id116oc32kh3kw3kd3ph0pw0pd0sh1sw1sd1n"3d_unet:conv_1"', 3, (116, 132, 132),
     (114, 130, 130), (3, 3, 3), (1, 1, 1), (0, 0, 0), (0, 0, 0), "3d_unet:conv_1"),
]


@pytest.mark.parametrize(("text", "rank", "size", "out", "kernel", "stride", "begin", "end", "name"), ONEDNN_LINES)
def test_onednn_lines_mean_what_benchdnn_means(text, rank, size, out, kernel, stride, begin, end, name):
    desc = parse_desc(text)
    assert (desc.rank, desc.input_size, desc.output_size, desc.kernel_size, desc.stride) == (
        rank, size, out, kernel, stride)
    assert (desc.pad_begin, desc.pad_end, desc.name) == (begin, end, name)
    case = parse_case(text)
    assert case.name == name and case.spec.output_size == out
    assert tuple(lo for lo, _ in case.spec.padding) == begin


def test_end_pads_normalised_only_where_no_window_changes():
    # mb2ic16ih33oc16oh16kh2sh2: windows cover rows [0, 15 * 2 + 2) = [0, 32) of 33: the -1 crop only drops
    # row 32, which no window reads, so the spec's end pad is 0. DNNL-930's +1 pad is read by the last window.
    assert parse_case("mb2ic16ih33oc16oh16kh2sh2").spec.padding == ((0, 0), (0, 0))
    assert parse_case("mb2ic3ih300oc32oh150kh3sh2").spec.padding == ((0, 1), (0, 1))
    assert parse_case("mb2_g1ic32oc32_ih7oh11kh3ph2").spec.padding == ((2, 4), (2, 4))


def test_c_division_derives_the_output_too():
    # i2 k3 s2 p0: o = (2 - 3 + 0) / 2 + 1 = 0 + 1 = 1 in C (floor would give 0, an error); end = 0 - 2 + 3 = 1.
    desc = parse_desc("ic16ih2oc16kh3sh2")
    assert desc.output_size == (1, 1) and desc.pad_end == (1, 1)
    # i1 k3 s2: (1 - 3) / 2 + 1 = -1 + 1 = 0 -> benchdnn refuses it.
    with pytest.raises(DescriptorError, match="oh derived as 0"):
        parse_desc("ic16ih1oc16kh3sh2")


@pytest.mark.parametrize(
    ("text", "rank", "size"),
    [
        ("ic3ih5oc3kh3pd0", 2, (5, 5)),  # pd0 does not make d present (pd < 1)
        ("ic3ih5oc3kh3dd0od0sd1", 2, (5, 5)),  # nor do dd0, od0 (absent) and sd1
        ("ic3iw5oc3kw3", 1, (5,)),  # a 1-D problem is written with w keys
        ("ic3ih5oc3kh3", 2, (5, 5)),  # h keys alone: a square 2-D problem
        ("ic3ih5iw7oc3kh3kw1", 2, (5, 7)),
        ("ic3id4oc3kd2", 3, (4, 4, 4)),  # d alone: cubic
        ("ic3ih5oc3kh3ih7", 2, (7, 7)),  # a key given twice keeps the last value
        ("ic3ih5oc3kh3pw0", 2, (5, 5)),  # pw0 alone leaves w absent: w copies h
    ],
)
def test_rank_and_copies_follow_benchdnn(text, rank, size):
    desc = parse_desc(text)
    assert (desc.rank, desc.input_size) == (rank, size)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("mb2ic3ih5oc3kh3pd1", "id must be positive when the d dim is present (given: pd)"),
        ("mb2ic3ih5oc3kh3sd2", "id must be positive when the d dim is present (given: sd)"),
        ("mb2ic3ih5oc3kh3kd2", "id must be positive when the d dim is present (given: kd)"),
        ("mb2ic3oc3kh3", "ih must be positive when the h dim is present (given: kh)"),
        ("ic3id4iw5oc3kd2kw3", "needs both h and w keys or neither"),
        ("ic3oc3", "no spatial dim"),
        ("ic3ih5oc3kh3g0", "g must be positive"),
        ("ih5oc3kh3", "ic is required"),
        ("_ic3ih5oc3kh3", "stray '_'"),
        ("ic3__ih5oc3kh3", "stray '_' at position 4"),
        ("ic3ih5oc3kh3sw", "no value for 'sw'"),
        ("ic3ih5oc3kh3dh-1", "dh must be a non-negative int"),
        ("ic3ih99999999999999999999oc3kh3", "beyond int64"),
        ("mb0ic3ih5oc3kh3", "batch must be a positive int, got 0"),  # benchdnn parses mb0; no ConvSpec holds it
        ("g2ic3ih5oc3kh3", "groups=2 must divide in_channels=3"),
    ],
)
def test_malformed_descriptors_raise_descriptor_error(text, fragment):
    with pytest.raises(DescriptorError) as error:
        parse_case(text)
    assert fragment in str(error.value)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ('ic3iw5oc3kw3n"a name: with spaces"', "a name: with spaces"),
        ("ic3iw5oc3kw3nplain", "plain"),
        ("ic3iw5oc3kw3_nafter_underscore", "after_underscore"),
        ('ic3iw5oc3kw3 n"after a space"', "after a space"),
        ('ic3iw5oc3kw3n"unclosed', '"unclosed'),
        ("ic3iw5oc3kw3n", ""),
        ('nfirst"ic3iw5oc3kw3', None),  # a name first swallows the rest: no keys are read
    ],
)
def test_name_forms(text, name):
    if name is None:
        with pytest.raises(DescriptorError, match="has no keys"):
            parse_desc(text)
    else:
        assert parse_desc(text).name == name


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_printed_names_read_back_identically(name):
    """Any name a Case accepts reads back identically; any other is refused, naming the character."""
    spec = parse_case("ic3iw5oc3kw3").spec
    try:
        check_name(name)
    except ValueError as refused:
        assert "control or bidirectional character" in str(refused)
        with pytest.raises(ValueError, match="control or bidirectional character"):
            Case(spec, name)
        return
    case = Case(spec, name)
    assert parse_case(format_descriptor(case.spec, name)) == case


# -- a transcription of benchdnn's rules, independent of convparity.harness.cases.descriptor -------------------------

ORDER = ("g", "mb", "ic", "id", "ih", "iw", "oc", "od", "oh", "ow", "kd", "kh", "kw", "sd", "sh", "sw",
         "pd", "ph", "pw", "dd", "dh", "dw")


def benchdnn_desc(given: dict[str, int]) -> dict | None:
    """str2desc + sanitize_desc + init_pad_r on already-tokenised values; None where benchdnn refuses."""
    d = dict.fromkeys(ORDER, 0) | {"g": -1, "mb": 2, "sd": 1, "sh": 1, "sw": 1, "pd": -1, "ph": -1, "pw": -1}
    d.update(given)
    if d["g"] == 0 or any(d[k] <= 0 for k in ("ic", "oc", "sd", "sh", "sw")):
        return None
    for x in "dhw":
        absent = (d["i" + x] | d["k" + x] | d["o" + x] | d["d" + x]) == 0 and d["s" + x] == 1 and d["p" + x] < 1
        if absent:
            continue
        if d["i" + x] <= 0 or d["k" + x] <= 0:
            return None
        ek = (d["k" + x] - 1) * (d["d" + x] + 1) + 1
        if not d["o" + x]:
            d["p" + x] = max(d["p" + x], 0)
            d["o" + x] = int((d["i" + x] - ek + 2 * d["p" + x]) / d["s" + x]) + 1
            if d["o" + x] <= 0:
                return None
        elif d["p" + x] < 0:
            d["p" + x] = int(((d["o" + x] - 1) * d["s" + x] - d["i" + x] + ek) / 2)
    no_d, no_h, no_w = (d["o" + x] == 0 for x in "dhw")
    ndims = 5 - no_d - (no_d and no_h) - (no_d and no_h and no_w)
    if ndims <= 2:
        return None
    if ndims == 5:
        if no_h and no_w:
            for p in "iokspd":
                d[p + "h"] = d[p + "w"] = d[p + "d"]
        elif no_h or no_w:
            return None
    elif ndims == 4 and no_w:
        for p in "iokspd":
            d[p + "w"] = d[p + "h"]
    dims = "dhw"[5 - ndims :]
    ends = tuple((d["o" + x] - 1) * d["s" + x] - d["i" + x] + (d["k" + x] - 1) * (d["d" + x] + 1) + 1 - d["p" + x]
                 for x in dims)
    return {"rank": ndims - 2, "ends": ends, **{p: tuple(d[p + x] for x in dims) for p in "iokspd"}}


@st.composite
def benchdnn_style(draw):
    """Mostly well-formed key sets (some values zero, some keys stray or missing), in random order, with
    random single underscores."""
    given = {}
    percent = lambda: draw(st.integers(0, 99))  # noqa: E731 (hypothesis' floats are far from uniform)
    present = draw(st.sets(st.sampled_from("dhw"), min_size=1))
    if "d" in present and percent() < 90:  # 3-D: h and w both or neither, mostly
        present = {"d", "h", "w"} if draw(st.booleans()) else {"d"}
    for key in ORDER:
        dim = key[1] if key[0] in "ioskpd" and key[1:] in ("d", "h", "w") else ""
        if key in ("ic", "oc"):
            chance = 97
        elif dim in present:
            chance = 97 if key[0] in "ik" else 50
        else:
            chance = 3 if dim else 50
        if percent() < chance:
            high = {"g": 3, "mb": 3, "ic": 6, "oc": 6}.get(key, 12 if key[0] in "io" else 4)
            zero_is_error = key in ("g", "ic", "oc") or key[0] in "iks"
            low = 0 if not zero_is_error or percent() < 3 else 1
            given[key] = draw(st.integers(low, high))
    keys = draw(st.permutations(list(given)))
    parts = [f"{k}{given[k]}" + ("_" if draw(st.booleans()) else "") for k in keys]
    return given, "".join(parts)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(benchdnn_style())
def test_descriptors_agree_with_benchdnn_transcription(drawn):
    given, text = drawn
    assume(text)
    expected = benchdnn_desc(given)
    if expected is None:
        with pytest.raises(DescriptorError):
            parse_desc(text)
        return
    desc = parse_desc(text)
    assert desc.rank == expected["rank"]
    assert (desc.input_size, desc.kernel_size, desc.stride, desc.dilation) == (
        expected["i"], expected["k"], expected["s"], expected["d"])
    assert (desc.pad_begin, desc.output_size, desc.pad_end) == (expected["p"], expected["o"], expected["ends"])
    try:
        spec = desc.spec()
    except DescriptorError:
        return  # mb0, groups not dividing the channels, or a crop of every input row: benchdnn-only problems
    assert spec.output_size == expected["o"] and spec.rank == expected["rank"]
    pads = zip(spec.padding, expected["p"], expected["ends"], expected["s"])
    for (begin, end), begin_expected, exact, stride in pads:
        assert begin == begin_expected
        assert exact <= end < exact + stride  # the spec's end pad gives the same windows as benchdnn's


TOKEN_SOUP = st.lists(st.sampled_from([*ORDER, "n", '"', "_", "-", "+", " ", "x", "0", "1", "7", "12", "n\"a b\""]),
                      max_size=30).map("".join)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(), TOKEN_SOUP))
def test_any_text_is_a_case_or_a_descriptor_error(text):
    try:
        case = parse_case(text)
    except DescriptorError:
        return
    assert isinstance(case, Case)
