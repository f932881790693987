"""The built-in named grids, registered through the same hook as any plugin's grids.

- smoke: 24 small cases touching every feature once (ranks 1-3, stride, asymmetric padding,
  dilation, groups, depthwise, bias off), for a quick check of a backend.
- default: 224 distinct cases: kernel (1, odd, even, non-square) x stride x padding (none, symmetric,
  asymmetric, same) x dilation, per rank, with groups (1, 2, depthwise) and bias cycling through them.
- edge: the corners: kernel equal to the input, stride larger than the kernel, padding larger than
  the kernel, 1x1 outputs, one channel, many groups, batch 1.
- resnet50, mobilenet_v2: every distinct conv layer of the networks at 224x224, batch 2.
- transposed: transposed convolutions in the spirit of `default` (kernel x stride x padding x
  dilation per rank, output_padding 0 or the largest PyTorch allows, groups and bias cycling), then
  the corners: negative pads, output_padding under dilation, stride larger than the kernel, ...
- decoders: the transposed layers of real decoders: DCGAN's generator, pix2pix's U-Net, U-Net, WaveGAN
  and 3-D U-Net.
- epilogues: every post-op kind fused after a convolution on three shapes (1-D, 2-D padded, 2-D grouped and
  strided), then the chains compilers fuse (bias + relu, + sum + relu, batchnorm + relu, ...).
- fused-resnet: ResNet-50's layers with the epilogues its inference graph fuses: conv + batchnorm + relu,
  and conv + batchnorm + residual add + relu at the end of each block.
- int8: quantized convolutions (uint8 and int8 sources, int8 weights per tensor and per output channel,
  zero points, an int32 bias, uint8 / int8 / int32 destinations) over the features of `smoke`, with
  power-of-two scales whose exact ties show a backend's rounding and scales that put values near ties,
  fused relu and relu6, saturation, and a dilated window that reads only padding.
- int8-saturation: quantized convolutions whose integer sources are drawn near the top of their types
  (`saturating` inputs: uint8 224-255, int8 +-112 to +-127), where kernels that sum products in narrow
  intermediates overflow (pytorch#44939: two uint8 x int8 products in a saturating int16): int32
  accumulators and requantized uint8 / int8 outputs, 1x1, 3x3 and depthwise kernels, channel counts odd and
  even, a zero point of 128, per-channel weight scales, a fused relu, ranks 1 to 3.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

from convparity.harness.backends.hookspecs import hookimpl
from convparity.harness.cases.attributes import PER_CHANNEL, Quantization, parse_post_ops
from convparity.harness.cases.dedupe import dedupe
from convparity.harness.cases.descriptor import Case
from convparity.harness.cases.inputs import SATURATING
from convparity.harness.cases.spec import ConvSpec


def _case(name: str, **fields: Any) -> Case:
    return Case(ConvSpec(**{"batch": 2, **fields}), name)


def smoke() -> list[Case]:
    return [
        _case("1d plain", in_channels=3, out_channels=4, input_size=(9,), kernel_size=(3,)),
        _case("1d stride pad", in_channels=2, out_channels=3, input_size=(10,), kernel_size=(4,), stride=2, padding=1),
        _case("1d dilated asym", in_channels=2, out_channels=2, input_size=(11,), kernel_size=(3,), dilation=2,
              padding=((2, 1),)),
        _case("1d depthwise", in_channels=4, out_channels=4, input_size=(8,), kernel_size=(3,), groups=4, bias=False),
        _case("blog post", in_channels=3, out_channels=4, input_size=(5, 7), kernel_size=(3, 3), stride=2),
        _case("2d 1x1", in_channels=8, out_channels=4, input_size=(6, 6), kernel_size=(1, 1)),
        _case("2d same", in_channels=3, out_channels=5, input_size=(7, 8), kernel_size=(3, 3), padding="same"),
        _case("2d same even", in_channels=3, out_channels=2, input_size=(6, 7), kernel_size=(2, 4), padding="same"),
        _case("2d stride 2 same", in_channels=4, out_channels=4, input_size=(9, 9), kernel_size=(3, 3), stride=2,
              padding="same"),
        _case("2d asym pad", in_channels=2, out_channels=3, input_size=(5, 6), kernel_size=(3, 2),
              padding=((0, 2), (1, 0))),
        _case("2d dilation", in_channels=3, out_channels=3, input_size=(9, 9), kernel_size=(3, 3), dilation=(2, 3),
              padding=2),
        _case("2d stride dilation", in_channels=2, out_channels=2, input_size=(11, 10), kernel_size=(3, 3), stride=2,
              dilation=2),
        _case("2d groups", in_channels=4, out_channels=6, input_size=(6, 6), kernel_size=(3, 3), groups=2, padding=1),
        _case("2d depthwise", in_channels=6, out_channels=6, input_size=(8, 8), kernel_size=(3, 3), groups=6,
              padding=1),
        _case("2d depthwise x2", in_channels=3, out_channels=6, input_size=(7, 7), kernel_size=(3, 3), groups=3,
              stride=2),
        _case("2d no bias", in_channels=3, out_channels=4, input_size=(6, 5), kernel_size=(2, 2), bias=False),
        _case("2d non-square stride", in_channels=2, out_channels=3, input_size=(8, 9), kernel_size=(3, 1),
              stride=(2, 1)),
        _case("2d batch 1", in_channels=5, out_channels=2, input_size=(4, 4), kernel_size=(3, 3), padding=1),
        _case("2d wide", in_channels=16, out_channels=16, input_size=(12, 12), kernel_size=(3, 3), padding=1),
        _case("3d plain", in_channels=2, out_channels=3, input_size=(5, 6, 4), kernel_size=(3, 3, 2)),
        _case("3d stride pad", in_channels=2, out_channels=2, input_size=(6, 6, 6), kernel_size=(3, 3, 3),
              stride=2, padding=1),
        _case("3d dilation", in_channels=1, out_channels=2, input_size=(7, 7, 5), kernel_size=(2, 2, 2),
              dilation=2),
        _case("3d groups", in_channels=4, out_channels=4, input_size=(4, 5, 4), kernel_size=(2, 3, 2), groups=2,
              bias=False),
        _case("3d asym", in_channels=2, out_channels=2, input_size=(4, 4, 5), kernel_size=(3, 2, 3),
              padding=((1, 0), (0, 1), (2, 1))),
    ]


_DEFAULT_AXES: dict[int, dict[str, Any]] = {
    1: {"input_size": (13,), "kernels": [(1,), (3,), (4,), (5,)], "strides": [1, 2, 3]},
    2: {"input_size": (9, 11), "kernels": [(1, 1), (3, 3), (2, 2), (3, 2)], "strides": [1, 2, (2, 1)]},
    3: {"input_size": (6, 7, 5), "kernels": [(1, 1, 1), (3, 3, 3), (2, 3, 1)], "strides": [1, 2]},
}


def default() -> list[Case]:
    cases = []
    for rank, axes in _DEFAULT_AXES.items():
        paddings = [0, 1, tuple((i % 2, (i + 1) % 2 + 1) for i in range(rank)), "same"]
        combos = itertools.product(axes["kernels"], axes["strides"], paddings, [1, 2])
        for index, (kernel, stride, padding, dilation) in enumerate(combos):
            groups_kind = index % 3
            bias = (index // 3) % 2 == 0
            channels = (4, 6, 2) if groups_kind < 2 else (6, 6, 6)
            groups = (1, 2, 6)[groups_kind]
            cases.append(
                _case(
                    f"{rank}d-{index}",
                    in_channels=channels[0],
                    out_channels=channels[1],
                    groups=groups,
                    input_size=axes["input_size"],
                    kernel_size=kernel,
                    stride=stride,
                    padding=padding,
                    dilation=dilation,
                    bias=bias,
                )
            )
    return list(dedupe(cases))


def edge() -> list[Case]:
    return [
        _case("kernel = input 1d", in_channels=3, out_channels=2, input_size=(5,), kernel_size=(5,)),
        _case("kernel = input 2d", in_channels=3, out_channels=4, input_size=(4, 6), kernel_size=(4, 6)),
        _case("kernel = input 3d", in_channels=2, out_channels=2, input_size=(3, 3, 3), kernel_size=(3, 3, 3)),
        _case("dilated kernel = input", in_channels=2, out_channels=2, input_size=(5, 5), kernel_size=(3, 3),
              dilation=2),
        _case("stride > kernel", in_channels=2, out_channels=3, input_size=(11, 11), kernel_size=(2, 2), stride=4),
        _case("stride > kernel 1d", in_channels=2, out_channels=2, input_size=(17,), kernel_size=(1,), stride=5),
        _case("stride > input", in_channels=2, out_channels=2, input_size=(4, 4), kernel_size=(2, 2), stride=6),
        _case("pad > kernel", in_channels=2, out_channels=2, input_size=(5, 5), kernel_size=(2, 2), padding=3),
        _case("pad > kernel asym", in_channels=1, out_channels=2, input_size=(4, 6), kernel_size=(1, 3),
              padding=((4, 0), (0, 5))),
        _case("1x1 output", in_channels=4, out_channels=3, input_size=(3, 3), kernel_size=(3, 3)),
        _case("1x1 output strided", in_channels=2, out_channels=2, input_size=(5, 5), kernel_size=(3, 3), stride=3),
        _case("1x1 input", in_channels=5, out_channels=5, input_size=(1, 1), kernel_size=(1, 1)),
        _case("1x1 input padded", in_channels=2, out_channels=3, input_size=(1, 1), kernel_size=(3, 3), padding=1),
        _case("single channel", in_channels=1, out_channels=1, input_size=(8, 8), kernel_size=(3, 3)),
        _case("single channel 1d", in_channels=1, out_channels=1, input_size=(1,), kernel_size=(1,)),
        _case("many groups", in_channels=64, out_channels=64, input_size=(5, 5), kernel_size=(3, 3), groups=32,
              padding=1),
        _case("depthwise 128", in_channels=128, out_channels=128, input_size=(4, 4), kernel_size=(3, 3),
              groups=128, padding=1, bias=False),
        _case("depthwise multiplier 3", in_channels=4, out_channels=12, input_size=(6, 6), kernel_size=(3, 3),
              groups=4),
        _case("batch 1", batch=1, in_channels=3, out_channels=3, input_size=(6, 6), kernel_size=(3, 3)),
        _case("batch 7", batch=7, in_channels=2, out_channels=2, input_size=(3, 5), kernel_size=(2, 2)),
        _case("long 1d", in_channels=2, out_channels=2, input_size=(1024,), kernel_size=(7,), stride=3, padding=3),
        _case("thin 2d", in_channels=2, out_channels=3, input_size=(1, 40), kernel_size=(1, 5), dilation=(1, 3)),
        _case("odd same stride 3", in_channels=3, out_channels=3, input_size=(10, 10), kernel_size=(4, 4), stride=3,
              padding="same"),
        _case("large dilation", in_channels=2, out_channels=2, input_size=(20, 20), kernel_size=(3, 3), dilation=9),
    ]


def resnet50() -> list[Case]:
    """Torchvision's ResNet-50 (v1.5: stride 2 in the 3x3) at 224x224, batch 2, distinct layers only."""
    cases = [_case("conv1", in_channels=3, out_channels=64, input_size=(224, 224), kernel_size=(7, 7), stride=2,
                   padding=3)]
    inplanes, size = 64, 56
    for stage, (planes, blocks, stride) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], start=1):
        for block in range(blocks):
            s = stride if block == 0 else 1
            out_size = size // s
            prefix = f"layer{stage}.{block}"
            cases.append(_case(f"{prefix}.conv1", in_channels=inplanes, out_channels=planes,
                               input_size=(size, size), kernel_size=(1, 1), bias=False))
            cases.append(_case(f"{prefix}.conv2", in_channels=planes, out_channels=planes, input_size=(size, size),
                               kernel_size=(3, 3), stride=s, padding=1, bias=False))
            cases.append(_case(f"{prefix}.conv3", in_channels=planes, out_channels=planes * 4,
                               input_size=(out_size, out_size), kernel_size=(1, 1), bias=False))
            if block == 0:
                cases.append(_case(f"{prefix}.downsample", in_channels=inplanes, out_channels=planes * 4,
                                   input_size=(size, size), kernel_size=(1, 1), stride=s, bias=False))
            inplanes, size = planes * 4, out_size
    return list(dedupe(cases))


def mobilenet_v2() -> list[Case]:
    """Torchvision's MobileNetV2 (width 1.0) at 224x224, batch 2, distinct layers only."""
    cases = [_case("features.0", in_channels=3, out_channels=32, input_size=(224, 224), kernel_size=(3, 3),
                   stride=2, padding=1, bias=False)]
    inp, size, index = 32, 112, 1
    for expand, channels, repeats, stride in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                                              (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        for repeat in range(repeats):
            s = stride if repeat == 0 else 1
            hidden = inp * expand
            prefix = f"features.{index}"
            if expand != 1:
                cases.append(_case(f"{prefix}.expand", in_channels=inp, out_channels=hidden, input_size=(size, size),
                                   kernel_size=(1, 1), bias=False))
            cases.append(_case(f"{prefix}.depthwise", in_channels=hidden, out_channels=hidden,
                               input_size=(size, size), kernel_size=(3, 3), stride=s, padding=1, groups=hidden,
                               bias=False))
            size = (size + 2 - 3) // s + 1
            cases.append(_case(f"{prefix}.project", in_channels=hidden, out_channels=channels,
                               input_size=(size, size), kernel_size=(1, 1), bias=False))
            inp, index = channels, index + 1
    cases.append(_case("features.18", in_channels=320, out_channels=1280, input_size=(7, 7), kernel_size=(1, 1),
                       bias=False))
    return list(dedupe(cases))


def _deconv(name: str, **fields: Any) -> Case:
    return _case(name, transposed=True, **fields)


def transposed() -> list[Case]:
    cases = []
    for rank, axes in _TRANSPOSED_AXES.items():
        paddings = [0, 1, tuple((i % 2, (i + 1) % 2 + 1) for i in range(rank)), "same"]
        combos = itertools.product(axes["kernels"], axes["strides"], paddings, [1, 2])
        for index, (kernel, stride, padding, dilation) in enumerate(combos):
            groups_kind = index % 3
            channels = (4, 6) if groups_kind < 2 else (6, 6)
            strides = (stride,) * rank if isinstance(stride, int) else stride
            largest = tuple(max(s, dilation) - 1 for s in strides)  # PyTorch's limit
            extra = largest if (index // 2) % 2 and padding != "same" else 0
            try:
                cases.append(_deconv(f"{rank}d-{index}", in_channels=channels[0], out_channels=channels[1],
                                     groups=(1, 2, 6)[groups_kind], input_size=axes["input_size"], kernel_size=kernel,
                                     stride=stride, padding=padding, output_padding=extra, dilation=dilation,
                                     bias=(index // 3) % 2 == 0))
            except ValueError:  # pads that crop every output (a small kernel, stride 1, padding 1 or more)
                continue
    corners = [
        _deconv("negative pads 1d", in_channels=3, out_channels=2, input_size=(6,), kernel_size=(3,), stride=2,
                padding=((-1, -2),)),
        _deconv("negative start 2d", in_channels=2, out_channels=4, input_size=(5, 4), kernel_size=(2, 2), stride=2,
                padding=((-1, 1), (0, 0)), groups=2),
        _deconv("output_padding under dilation", in_channels=3, out_channels=3, input_size=(5, 6),
                kernel_size=(3, 3), dilation=3, output_padding=2),
        _deconv("stride > kernel 1d", in_channels=2, out_channels=3, input_size=(5,), kernel_size=(2,), stride=4),
        _deconv("stride > kernel 2d", in_channels=3, out_channels=2, input_size=(4, 3), kernel_size=(1, 1), stride=3,
                output_padding=2, bias=False),
        _deconv("overlap k5 s2", in_channels=4, out_channels=4, input_size=(6, 6), kernel_size=(5, 5), stride=2,
                padding=2, output_padding=1),
        _deconv("depthwise multiplier 2", in_channels=4, out_channels=8, input_size=(5, 5), kernel_size=(3, 3),
                stride=2, padding=1, groups=4),
        _deconv("1x1 input", in_channels=8, out_channels=4, input_size=(1, 1), kernel_size=(4, 4), bias=False),
        _deconv("crop most", in_channels=2, out_channels=2, input_size=(6,), kernel_size=(5,), padding=4),
        _deconv("3d batch 1", batch=1, in_channels=4, out_channels=2, input_size=(2, 3, 2), kernel_size=(4, 4, 4),
                stride=2, padding=1),
        _deconv("long 1d", in_channels=4, out_channels=2, input_size=(64,), kernel_size=(25,), stride=4, padding=11,
                output_padding=1),
    ]
    return list(dedupe(cases + corners))


_TRANSPOSED_AXES: dict[int, dict[str, Any]] = {
    1: {"input_size": (7,), "kernels": [(1,), (3,), (4,), (5,)], "strides": [1, 2, 3]},
    2: {"input_size": (5, 6), "kernels": [(1, 1), (3, 3), (2, 2), (3, 2)], "strides": [1, 2, (2, 1)]},
    3: {"input_size": (3, 4, 3), "kernels": [(1, 1, 1), (3, 3, 3), (2, 3, 1)], "strides": [1, 2]},
}


def decoders() -> list[Case]:
    """Transposed layers of real decoders, batch 2 (3-D U-Net: batch 1 at 32x32x32), distinct layers only.

    - DCGAN's generator (PyTorch examples, nz 100, ngf 64, 64x64 images): k4 s2 p1 after a k4 s1 p0 from 1x1.
    - pix2pix's U-Net 256 (ngf 64): k4 s2 p1 up-convolutions from 1x1 to 256x256, skip channels doubled.
    - U-Net (Ronneberger et al.; milesial's Pytorch-UNet at 256x256): 2x2 stride-2 up-convolutions.
    - WaveGAN's generator (Donahue et al., 16384 samples): 1-D k25 s4 p11 output_padding 1.
    - 3-D U-Net (Cicek et al.): 2x2x2 stride-2 up-convolutions.
    """
    cases = [_deconv("dcgan.0", in_channels=100, out_channels=512, input_size=(1, 1), kernel_size=(4, 4),
                     bias=False)]
    size = 4
    for index, (cin, cout) in enumerate([(512, 256), (256, 128), (128, 64), (64, 3)], start=1):
        cases.append(_deconv(f"dcgan.{index}", in_channels=cin, out_channels=cout, input_size=(size, size),
                             kernel_size=(4, 4), stride=2, padding=1, bias=False))
        size *= 2
    size = 1
    for index, (cin, cout) in enumerate([(512, 512), (1024, 512), (1024, 512), (1024, 512), (1024, 256),
                                         (512, 128), (256, 64), (128, 3)]):
        cases.append(_deconv(f"pix2pix.up{index}", in_channels=cin, out_channels=cout, input_size=(size, size),
                             kernel_size=(4, 4), stride=2, padding=1, bias=cout == 3))
        size *= 2
    size = 16
    for index, cin in enumerate([1024, 512, 256, 128], start=1):
        cases.append(_deconv(f"unet.up{index}", in_channels=cin, out_channels=cin // 2, input_size=(size, size),
                             kernel_size=(2, 2), stride=2))
        size *= 2
    size = 16
    for index, (cin, cout) in enumerate([(1024, 512), (512, 256), (256, 128), (128, 64), (64, 1)]):
        cases.append(_deconv(f"wavegan.{index}", in_channels=cin, out_channels=cout, input_size=(size,),
                             kernel_size=(25,), stride=4, padding=11, output_padding=1))
        size *= 4
    size = 4
    for index, channels in enumerate([512, 256, 128], start=1):
        cases.append(_deconv(f"unet3d.up{index}", batch=1, in_channels=channels, out_channels=channels,
                             input_size=(size,) * 3, kernel_size=(2, 2, 2), stride=2))
        size *= 2
    return list(dedupe(cases))


# Each kind alone (benchdnn's spelling; PyTorch's parameters where benchdnn gives none, e.g. hardswish), then chains.
EPILOGUES = (
    "relu", "relu:0.1", "clip:0:6", "elu:1", "gelu_erf", "gelu_tanh", "swish:1", "logistic", "tanh",
    "hardswish:0.16666667:0.5", "hardsigmoid:0.16666667:0.5", "mish", "soft_relu:1", "linear:0.5:0.25", "abs", "square",
    "abs+sqrt", "exp", "abs+log", "round", "sum", "sum:0.5", "add:f32:per_oc", "add:f32:per_tensor", "mul:f32:per_oc",
    "max:f32:per_oc", "min:f32", "sub:f32:per_oc", "prelu:per_oc", "prelu", "batchnorm",
)
CHAINS = ("sum+relu", "batchnorm+relu", "batchnorm+sum+relu", "add:f32:per_oc+clip:0:6", "batchnorm+swish:1",
          "sum:0.5+gelu_erf", "linear:2:-1+tanh+mul:f32:per_tensor")
_EPILOGUE_SHAPES: tuple[dict[str, Any], ...] = (
    dict(in_channels=3, out_channels=4, input_size=(10,), kernel_size=(3,), padding=1),
    dict(in_channels=4, out_channels=6, input_size=(7, 8), kernel_size=(3, 3), padding=1),
    dict(in_channels=4, out_channels=6, input_size=(9, 9), kernel_size=(3, 3), stride=2, groups=2, padding=(1, 0)),
)


def epilogues() -> list[Case]:
    cases = []
    for chain in EPILOGUES + CHAINS:
        for index, shape in enumerate(_EPILOGUE_SHAPES):
            rank = len(shape["input_size"])
            cases.append(_case(f"{chain} {rank}d-{index}", post_ops=parse_post_ops(chain, rank), **shape))
    return cases


def fused_resnet() -> list[Case]:
    """ResNet-50's layers (the resnet50 grid) with their inference epilogues: batchnorm + relu after conv1 and
    conv2 of a block and the stem, batchnorm + residual add + relu after conv3, batchnorm after a downsample."""
    cases = []
    for case in resnet50():
        last = case.name.endswith("conv3")
        chain = "batchnorm" if case.name.endswith("downsample") else "batchnorm+sum+relu" if last else \
            "batchnorm+relu"
        cases.append(Case(case.spec.replace(post_ops=parse_post_ops(chain, 2)), f"{case.name} +{chain}"))
    return cases


_INT8_SCALES = (
    # (sx, sw, sy) for inputs in benchdnn's ranges (harness.cases.inputs): a power-of-two multiplier sx sw / sy
    # (0.5; 1/4 to 1 per channel) makes many exact ties, where rounding modes differ; 0.1 * 0.0371 / 0.00413 none
    Quantization(x_scale=0.5, w_scale=0.25, y_scale=0.25, x_zero_point=3, y_zero_point=128),
    Quantization(x_scale=0.1, w_scale=0.0371, y_scale=0.00413, y_zero_point=120),
    Quantization(x_scale=0.25, w_scale=PER_CHANNEL, y_scale=0.0625, x_zero_point=1, y_zero_point=65),
)
_INT8_TYPES = ("uint8:int8:uint8", "uint8:int8:uint8", "int8:int8:int8", "uint8:int8:int8")


def int8() -> list[Case]:
    cases = []
    for index, case in enumerate(smoke()):
        quantization = _INT8_SCALES[index % len(_INT8_SCALES)]
        dtype = _INT8_TYPES[index % len(_INT8_TYPES)]
        source, _, destination = dtype.split(":")
        shift = 128 if destination == "int8" else 0  # int8 codes: the same zero point, 128 lower
        quantization = replace(quantization, y_zero_point=int(quantization.y_zero_point) - shift,
                               x_zero_point=0 if source == "int8" else quantization.x_zero_point)
        cases.append(Case(case.spec.replace(dtype=dtype, quantization=quantization), f"{case.name} {dtype}",
                          fixed_dtype=True))
    for name, dtype, quantization, chain in (
        ("accumulator uint8", "uint8:int8:int32", Quantization(), ""),
        ("accumulator int8", "int8:int8:int32", Quantization(x_zero_point=2), ""),
        ("relu", "uint8:int8:uint8", Quantization(x_scale=0.5, w_scale=0.25, y_scale=0.5), "relu"),
        ("relu6", "uint8:int8:uint8", Quantization(x_scale=0.5, w_scale=0.25, y_scale=0.03125), "clip:0:6"),
        ("saturating", "uint8:int8:uint8", Quantization(x_scale=1.0, w_scale=1.0, y_scale=0.125, y_zero_point=128),
         ""),
    ):
        spec = ConvSpec(batch=2, in_channels=16, out_channels=8, input_size=(6, 6), kernel_size=(3, 3),
                        padding=((1, 1), (1, 1)), dtype=dtype, quantization=quantization,
                        post_ops=parse_post_ops(chain, 2))
        cases.append(Case(spec, name, fixed_dtype=True))
    # a dilated window that reads only padding: its output is the bias alone, zero points subtracted
    cases.append(Case(ConvSpec(batch=2, in_channels=2, out_channels=3, input_size=(1, 1), kernel_size=(2, 2),
                               dilation=(1, 2), padding=((0, 1), (1, 1)), dtype="uint8:int8:uint8",
                               quantization=_INT8_SCALES[0]), "window in padding", fixed_dtype=True))
    return cases


def int8_saturation() -> list[Case]:
    # With x ~ 240 and |w| ~ 120 the accumulator's size is about 28,800 sqrt(taps): the requantizing scales
    # (x and w scales 1) bring it back to the middle of the destination's range, saturating its tails.
    per_channel = Quantization(w_scale=PER_CHANNEL, y_scale=256.0, y_zero_point=128)
    cases: list[tuple[str, str, Quantization, dict[str, Any]]] = [
        ("accumulator 1x1", "uint8:int8:int32", Quantization(), dict(in_channels=64, kernel_size=(1, 1))),
        ("accumulator 3x3", "uint8:int8:int32", Quantization(), {}),
        ("accumulator int8", "int8:int8:int32", Quantization(), dict(in_channels=32)),
        ("accumulator odd channels", "uint8:int8:int32", Quantization(), dict(in_channels=15)),
        ("accumulator 1-D", "uint8:int8:int32", Quantization(),
         dict(in_channels=64, input_size=(16,), kernel_size=(3,), padding=((1, 1),))),
        ("accumulator 3-D", "uint8:int8:int32", Quantization(),
         dict(in_channels=8, input_size=(4, 4, 4), kernel_size=(3, 3, 3), padding=((1, 1),) * 3)),
        ("uint8", "uint8:int8:uint8", Quantization(y_scale=2048.0, y_zero_point=128), {}),
        ("uint8 strided", "uint8:int8:uint8", Quantization(y_scale=2048.0, y_zero_point=128),
         dict(in_channels=32, input_size=(7, 7), stride=(2, 2))),
        ("uint8 zero point 128", "uint8:int8:uint8", Quantization(x_zero_point=128, y_scale=1024.0, y_zero_point=128),
         {}),
        ("uint8 per-channel weights", "uint8:int8:uint8", per_channel, {}),
        ("uint8 relu", "uint8:int8:uint8", Quantization(y_scale=1024.0), {}),
        ("int8", "int8:int8:int8", Quantization(y_scale=4096.0), dict(in_channels=32)),
        ("depthwise", "uint8:int8:uint8", Quantization(y_scale=512.0, y_zero_point=128),
         dict(in_channels=32, out_channels=32, groups=32)),
    ]
    return [Case(ConvSpec(**{"batch": 2, "in_channels": 16, "out_channels": 8, "input_size": (6, 6),
                             "kernel_size": (3, 3), "padding": ((1, 1), (1, 1)), **shape},
                          dtype=dtype, quantization=quantization,
                          post_ops=parse_post_ops("relu" if name.endswith("relu") else "", 2)),
                 name, fixed_dtype=True, inputs=SATURATING)
            for name, dtype, quantization, shape in cases]


@hookimpl
def convparity_register_grids(register):
    register("smoke", smoke, "24 small cases touching every feature once")
    register("default", default, "224 cases: kernel x stride x padding x dilation per rank, groups and bias cycling")
    register("edge", edge, "corner cases: kernel = input, stride > kernel, padding > kernel, 1x1, many groups")
    register("resnet50", resnet50, "every distinct conv layer of ResNet-50 at 224x224, batch 2")
    register("mobilenet_v2", mobilenet_v2, "every distinct conv layer of MobileNetV2 at 224x224, batch 2")
    register("transposed", transposed, "transposed convolutions: kernel x stride x padding x output_padding x "
             "dilation per rank, groups and bias cycling, and their corners")
    register("decoders", decoders, "transposed layers of DCGAN, pix2pix's U-Net, U-Net, WaveGAN and 3-D U-Net")
    register("epilogues", epilogues, f"{len(EPILOGUES)} post-ops and {len(CHAINS)} chains fused after a convolution, "
             "on three shapes")
    register("fused-resnet", fused_resnet, "ResNet-50's layers with batchnorm + relu and batchnorm + add + relu fused")
    register("int8-saturation", int8_saturation, "quantized convolutions on integer sources near the top of their "
             "types (uint8 224-255, int8 +-112 to +-127), where narrow intermediate sums overflow")
    register("int8", int8, "quantized convolutions: uint8/int8 sources, per-tensor and per-channel weight scales, zero "
             "points, int32 bias, uint8/int8/int32 outputs")
