"""Hypothesis strategies for convolution specs, shared by the harness tests."""

from __future__ import annotations

from hypothesis import strategies as st

from harness.cases.spec import DTYPES, ConvSpec


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
