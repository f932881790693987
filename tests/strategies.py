"""Hypothesis strategies for convolution specs, shared by the harness tests."""

from __future__ import annotations

from hypothesis import strategies as st

from convparity.harness.cases.spec import ConvSpec
from convparity.harness.vocabulary import DTYPES


@st.composite
def conv_specs(draw, max_rank: int = 3, allow_crop: bool = True) -> ConvSpec:
    """Valid ConvSpecs of rank 1 to `max_rank`: groups, depthwise, asymmetric (and cropping) pads, dilation."""
    rank = draw(st.integers(1, max_rank))
    groups = draw(st.integers(1, 3))
    in_channels = groups * draw(st.integers(1, 3))
    out_channels = groups * draw(st.integers(1, 3))
    size = tuple(draw(st.integers(1, 9)) for _ in range(rank))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(rank))
    dilation = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    low = -2 if allow_crop else 0
    padding = []
    for i, k, d in zip(size, kernel, dilation):
        effective = (k - 1) * d + 1
        before = draw(st.integers(max(low, 1 - i), 3))
        after_min = max(low, effective - i - before, 1 - i - min(before, 0))
        padding.append((before, draw(st.integers(after_min, max(after_min, 3)))))
    return ConvSpec(
        batch=draw(st.integers(1, 3)),
        in_channels=in_channels,
        out_channels=out_channels,
        input_size=size,
        kernel_size=kernel,
        stride=stride,
        padding=tuple(padding),
        dilation=dilation,
        groups=groups,
        bias=draw(st.booleans()),
        dtype=draw(st.sampled_from(DTYPES)),
    )


@st.composite
def conv_transpose_specs(draw, max_rank: int = 3) -> ConvSpec:
    """Valid transposed ConvSpecs of rank 1 to `max_rank`: groups, output_padding up to PyTorch's limit, pads of
    either sign (crops and bias-only positions), asymmetric, with stride and dilation."""
    rank = draw(st.integers(1, max_rank))
    groups = draw(st.integers(1, 3))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    dilation = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    size = tuple(draw(st.integers(1, 6)) for _ in range(rank))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(rank))
    extra, padding = [], []
    for i, k, s, d in zip(size, kernel, stride, dilation):
        full = (i - 1) * s + (k - 1) * d + 1
        e = draw(st.integers(0, max(s, d) - 1))
        before = draw(st.integers(-2, min(3, full - 1)))
        # some output, and some output the input reaches: full - before - after + e >= 1 + max(0, -before)
        # + max(0, e - after), which holds when after <= full - 1 - max(before, 0) and after >= -2.
        after = draw(st.integers(-2, max(-2, min(3, full - 1 - max(before, 0)))))
        extra.append(e)
        padding.append((before, after))
    return ConvSpec(
        batch=draw(st.integers(1, 3)),
        in_channels=groups * draw(st.integers(1, 3)),
        out_channels=groups * draw(st.integers(1, 3)),
        input_size=size,
        kernel_size=kernel,
        stride=stride,
        padding=tuple(padding),
        output_padding=tuple(extra),
        dilation=dilation,
        groups=groups,
        bias=draw(st.booleans()),
        dtype=draw(st.sampled_from(DTYPES)),
        transposed=True,
    )
