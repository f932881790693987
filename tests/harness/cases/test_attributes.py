"""A spec's attributes in benchdnn's option grammar: every chain and quantization prints as options before the
descriptor and reads back as the same spec; what does not parse names the option and the entry."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convparity.harness.cases.attributes import PER_CHANNEL, Quantization, parse_post_ops
from convparity.harness.cases.descriptor import DescriptorError, parse_case
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.vocabulary import check_dtype, data_types
from convparity.reference_impl.post_ops import BINARY, ELTWISE, PostOp

_numbers = st.sampled_from([0.0, 0.5, -1.0, 2.0, 6.0, 0.16666667, 1e-5, 1.25])


@st.composite
def chains(draw, rank: int):
    steps = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from((*ELTWISE, "sum", *BINARY, "prelu", "batchnorm")))
        if kind in ELTWISE:
            alpha = draw(_numbers) or (1.0 if kind == "soft_relu" else 0.0)
            steps.append(PostOp(kind, alpha=alpha, beta=draw(_numbers)))
        elif kind == "sum":
            steps.append(PostOp("sum", scale=draw(_numbers), zero_point=draw(st.integers(-3, 3))))
        elif kind == "batchnorm":
            steps.append(PostOp("batchnorm", alpha=draw(st.sampled_from([1e-5, 1e-3]))))
        else:
            mask = draw(st.integers(0, (1 << (rank + 2)) - 1))
            steps.append(PostOp(kind, mask=mask, data_type="f32" if kind != "prelu" else ""))
    return tuple(steps)


@st.composite
def quantizations(draw):
    scale = st.one_of(st.just(PER_CHANNEL), st.sampled_from([1.0, 0.25, 0.0123, 2.0]))
    zero = st.one_of(st.just(PER_CHANNEL), st.integers(-5, 130))
    return Quantization(x_scale=draw(scale), w_scale=draw(scale), y_scale=draw(scale), x_zero_point=0,
                        w_zero_point=draw(st.integers(-2, 2)), y_zero_point=draw(zero),
                        rounding=draw(st.sampled_from(["half_even", "half_away"])))


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_every_chain_and_quantization_reads_back_from_its_descriptor(data):
    rank = data.draw(st.integers(1, 3))
    dtype = data.draw(st.sampled_from(["float32", "uint8:int8:uint8", "int8:int8:int32", "float16:float16:int8"]))
    quantization = data.draw(quantizations())
    if quantization.x_scale == PER_CHANNEL and dtype.startswith(("uint8", "int8")):
        quantization = Quantization(**{**quantization.__dict__, "x_scale": 0.5})
    spec = ConvSpec(batch=2, in_channels=4, out_channels=6, input_size=(5,) * rank, kernel_size=(3,) * rank,
                    padding=1, dtype=dtype, post_ops=data.draw(chains(rank)), quantization=quantization)
    case = parse_case(spec.named_descriptor("layer 1"), dtype=dtype)
    assert case.spec == spec and case.name == "layer 1"
    assert case.spec.descriptor == spec.descriptor


def test_benchdnn_spellings_read_as_one_chain():
    chain = parse_post_ops("eltwise_relu:0.5:0:2.6+BINARY_ADD:f32:per_oc+sum:2:1:s8+clip_v2:0:6+prelu:per_tensor", 2)
    assert chain == (PostOp("relu", alpha=0.5), PostOp("binary_add", mask=2, data_type="f32"),
                     PostOp("sum", scale=2.0, zero_point=1, data_type="s8"), PostOp("clip_v2", beta=6.0),
                     PostOp("prelu", mask=15))
    assert chain[3].function == "clip"


@pytest.mark.parametrize(("options", "message"), [
    ("--attr-post-ops=relu+dw:k3s1p1", "--attr-post-ops entry 2 'dw:k3s1p1': the fused depthwise post-op (dw)"),
    ("--attr-post-ops=relu:x", "--attr-post-ops entry 1 'relu:x': 'x' is not a number"),
    ("--attr-post-ops=add", "a binary post-op needs its operand's data type, e.g. add:f32"),
    ("--attr-post-ops=add:f32:per_dim_9", "unknown policy 'per_dim_9'"),
    ("--attr-post-ops=add:f32:16", "post-op binary_add: mask 16 names a dim beyond y's 4"),
    ("--attr-post-ops=add:f32:64", "post-op binary_add: mask must be an int from 0 to 31, got 64"),
    ("--attr-post-ops=soft_relu", "soft_relu: alpha must not be 0"),
    ("--attr-scales=src:common:-1", "a scale must be positive, got -1"),
    ("--attr-scales=bias:common:2", "'bias' is not an argument convparity scales"),
    ("--attr-zero-points=src:common:0.5", "'0.5' is not an integer"),
    ("--bia-dt=u8", "--bia-dt=u8: a bias is s32 or a float type"),
    ("--rounding=nearest", "quantization rounding must be one of half_even"),
    ("--frobnicate=1", "unknown option --frobnicate"),
    ("--attr-post-ops=relu --attr-post-ops=tanh", "--attr-post-ops is given twice"),
])
def test_options_that_do_not_parse_name_the_option_and_entry(options, message):
    with pytest.raises(DescriptorError, match=re.escape(message)):
        parse_case(f"{options} ic4ih6oc4kh3")


@pytest.mark.parametrize(("fields", "message"), [
    (lambda: dict(quantization=Quantization(x_scale=0.0)), "quantization x_scale must be a positive finite number"),
    (lambda: dict(quantization=Quantization(bias_dtype="int32")), "bias_dtype int32 needs 8-bit integer sources"),
    (lambda: dict(dtype="uint8:int8:uint8", quantization=Quantization(x_scale=PER_CHANNEL)),
     "an int32 bias counts accumulator steps of one x scale"),
    (lambda: dict(dtype="uint8:int8:uint8", transposed=True), "not transposed ones"),
    (lambda: dict(dtype="float32", quantization=Quantization(rounding="double_rounding")),
     "rounding double_rounding requantizes an integer accumulator"),
    (lambda: dict(post_ops=(PostOp("binary_add", mask=16),)),
     "post_ops[0]: post-op binary_add: mask 16 names a dim beyond y's 4"),
    (lambda: dict(post_ops=("relu",)), "post_ops must be a tuple of PostOp"),
])
def test_invalid_attributes_name_the_field(fields, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ConvSpec(**{**dict(batch=2, in_channels=4, out_channels=4, input_size=(6, 6), kernel_size=(3, 3)),
                    **fields()})


@pytest.mark.parametrize(("dtype", "canonical", "types"), [
    ("float32", "float32", ("float32",) * 3),
    ("int8:int8:int8", "int8", ("int8",) * 3),
    ("uint8:int8:int32", "uint8:int8:int32", ("uint8", "int8", "int32")),
    ("bfloat16:float32:bfloat16", "bfloat16:float32:bfloat16", ("bfloat16", "float32", "bfloat16")),
    ("float8_e4m3:float8_e4m3:float32", "float8_e4m3:float8_e4m3:float32", ("float8_e4m3", "float8_e4m3", "float32")),
])
def test_dtypes_are_one_type_or_src_wei_dst(dtype, canonical, types):
    assert check_dtype(dtype) == canonical and data_types(dtype) == types


@pytest.mark.parametrize(("dtype", "message"), [
    ("float128", "dtype must be one of float64"),
    ("uint8:int8", "SRC:WEI:DST"),
    ("float32:int8:float32", "the source and the weights must both be floats or both 8-bit integers"),
    ("int32", r"both be floats or both 8-bit integers \(uint8, int8\), got int32 and int32"),
    ("", "dtype must be a data type name"),
])
def test_dtypes_that_cannot_be_name_what_is_wrong(dtype, message):
    with pytest.raises(ValueError, match=message):
        check_dtype(dtype)
