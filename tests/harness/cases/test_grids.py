"""Grid sources: named grids, TOML files, random samples (batch files: tests/harness/cases/test_batch_file.py)."""

from __future__ import annotations

import pytest

from convparity.harness.cases.builtin_grids import decoders, default, edge, mobilenet_v2, resnet50, smoke, transposed
from convparity.harness.cases.descriptor import parse_descriptor
from convparity.harness.cases.grids import GridError, random_cases, read_toml_grid
from convparity.harness.cases.spec import ConvSpec


def test_smoke_is_small_and_covers_every_feature():
    specs = [c.spec for c in smoke()]
    assert len(specs) <= 30
    assert {s.rank for s in specs} == {1, 2, 3}
    assert any(s.groups == s.in_channels > 1 for s in specs)  # depthwise
    assert any(1 < s.groups < s.in_channels for s in specs)
    assert any(max(s.dilation) > 1 for s in specs) and any(max(s.stride) > 1 for s in specs)
    assert any(lo != hi for s in specs for lo, hi in s.padding)
    assert {s.bias for s in specs} == {True, False}


def test_default_grid_crosses_the_axes():
    specs = [c.spec for c in default()]
    assert 200 <= len(specs) <= 400 and len(set(specs)) == len(specs)
    for rank in (1, 2, 3):
        ranked = [s for s in specs if s.rank == rank]
        assert {s.stride[0] for s in ranked} >= {1, 2}
        assert {s.dilation[0] for s in ranked} == {1, 2}
        assert {s.groups == s.in_channels for s in ranked} == {True, False}
        assert {s.bias for s in ranked} == {True, False}
        assert any(k % 2 == 0 for s in ranked for k in s.kernel_size)
    assert any(len(set(s.kernel_size)) > 1 for s in specs)  # non-square kernels


def test_edge_grid_has_its_corners():
    specs = [c.spec for c in edge()]
    assert any(s.kernel_size == s.input_size for s in specs)
    assert any(min(s.stride) > max(s.kernel_size) for s in specs)
    assert any(max(max(p) for p in s.padding) > max(s.kernel_size) for s in specs)
    assert any(all(o == 1 for o in s.output_size) for s in specs)
    assert any(s.in_channels == 1 for s in specs) and any(s.groups >= 32 for s in specs)


def test_resnet50_layers():
    cases = resnet50()
    specs = [c.spec for c in cases]
    # 1 stem + 4 distinct in layer1 (its downsample equals conv3) + 6 distinct in each of layers 2-4.
    assert len(specs) == 23 and len(set(specs)) == 23
    stem = specs[0]
    assert (stem.in_channels, stem.out_channels, stem.kernel_size, stem.stride, stem.output_size) == (
        3, 64, (7, 7), (2, 2), (112, 112))
    assert {s.output_size for s in specs} == {(112, 112), (56, 56), (28, 28), (14, 14), (7, 7)}
    assert max(s.out_channels for s in specs) == 2048


def test_mobilenet_v2_layers():
    specs = [c.spec for c in mobilenet_v2()]
    depthwise = [s for s in specs if s.groups > 1]
    assert all(s.groups == s.in_channels == s.out_channels for s in depthwise)
    assert {s.in_channels for s in depthwise} >= {32, 96, 144, 192, 384, 576, 960}
    assert specs[-1].out_channels == 1280 and specs[-1].input_size == (7, 7)


def test_toml_grid(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text('''
description = "two axes"

[[product]]
in_channels = [2, 3]
out_channels = [2]
input_size = [[6, 6]]
kernel_size = [[3, 3]]
groups = [1, 2]
padding = [0, "same", [[0, 1], [1, 0]]]

[[case]]
descriptor = "mb2ic3ih5iw7oc4oh2ow3kh3kw3sh2sw2"
bias = false
name = "blog"

[[case]]
in_channels = 1
out_channels = 1
input_size = [9]
kernel_size = [2]
stride = 3
''')
    grid = read_toml_grid(path)
    description, cases = grid.description, list(grid)
    assert description == "two axes"
    assert grid.size == 2 * 1 * 2 * 3 + 2  # every combination, valid or not, and the explicit cases
    # 2 x 1 x 2 x 3 combinations, minus groups=2 with in_channels=3 (3 combinations): 9, plus 2 cases.
    assert len(cases) == 11
    assert cases[-2].name == "blog" and cases[-2].spec.bias is False
    assert cases[-1].spec == ConvSpec(batch=2, in_channels=1, out_channels=1, input_size=(9,), kernel_size=(2,),
                                      stride=3)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[product]\nin_channels = [1]", "invalid TOML: .*line 1"),
        ("[[product]]\nin_channel = [1]", "unknown axis 'in_channel'"),
        ("[[product]]\nin_channels = 3", "axis 'in_channels' must be a non-empty list"),
        ("[[case]]\nin_channels = 1\nout_channels = 1\ninput_size = [3]", "missing field 'kernel_size'"),
        ("[[case]]\nin_channels = 1\nout_channels = 1\ninput_size = [3]\nkernel_size = [5]",
         r"\[\[case\]\] #1: kernel_size: effective kernel 5"),
        ("[[case]]\ndescriptor = 'ic1ih5oc1kh3'\nstride = 2", "takes only name and bias"),
        ("[grid]\nx = 1", "unknown table or key 'grid'"),
    ],
)
def test_toml_errors_name_line_or_field(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(GridError, match=message):
        read_toml_grid(path)


def test_random_cases_are_valid_distinct_and_reproducible():
    first = list(random_cases(200, seed=7))
    assert [c.spec for c in first] == [c.spec for c in random_cases(200, seed=7)]
    assert [c.spec for c in first] != [c.spec for c in random_cases(200, seed=8)]
    specs = [c.spec for c in first]
    assert len(set(specs)) == 200
    assert {s.rank for s in specs} == {1, 2, 3}
    assert all(parse_descriptor(s.descriptor, bias=s.bias) == s for s in specs)
    with pytest.raises(GridError, match="positive"):
        next(random_cases(0, seed=1))


@pytest.mark.parametrize(("axis", "value"), [("in_channels", '["4"]'), ("padding", '["sme", 1]'),
                                              ("bias", "[1]"), ("kernel_size", "[[3, 3.5]]")])
def test_toml_product_value_of_wrong_type_is_an_error_not_a_skip(tmp_path, axis, value):
    fields = {"in_channels": "[4]", "out_channels": "[4]", "input_size": "[[6, 6]]", "kernel_size": "[[3, 3]]"}
    fields[axis] = value
    path = tmp_path / "typed.toml"
    path.write_text("[[product]]\n" + "".join(f"{k} = {v}\n" for k, v in fields.items()))
    with pytest.raises(GridError, match=f"axis '{axis}' has a value of the wrong type"):
        read_toml_grid(path)


def test_transposed_grid_crosses_the_axes_and_has_its_corners():
    specs = [c.spec for c in transposed()]
    assert 200 <= len(specs) <= 400 and len(set(specs)) == len(specs) and all(s.transposed for s in specs)
    for rank in (1, 2, 3):
        ranked = [s for s in specs if s.rank == rank]
        assert {s.stride[0] for s in ranked} >= {1, 2} and {s.dilation[0] for s in ranked} >= {1, 2}
        assert {s.groups == s.in_channels for s in ranked} == {True, False}
        assert {s.bias for s in ranked} == {True, False}
        assert any(any(s.output_padding) for s in ranked) and any(not any(s.output_padding) for s in ranked)
        assert any(lo != hi for s in ranked for lo, hi in s.padding)  # asymmetric (the "same" and [0, 1] pads)
        assert any(k % 2 == 0 for s in ranked for k in s.kernel_size)
    # output_padding below the dilation but not the stride (PyTorch's second rule), negative pads, gaps.
    assert any(e >= s for spec in specs for e, s in zip(spec.output_padding, spec.stride))
    assert any(lo < 0 for spec in specs for lo, _ in spec.padding)
    assert any(hi < 0 for spec in specs for _, hi in spec.padding)
    assert any(min(s.stride) > max(s.kernel_size) for s in specs)
    assert any(s.out_channels == 2 * s.in_channels == 2 * s.groups for s in specs)


def test_decoder_layers():
    cases = {c.name: c.spec for c in decoders()}
    assert len(cases) == 25 and all(s.transposed for s in cases.values())
    # DCGAN's generator: a latent 1x1 to 4x4, then doubling to 64x64 RGB; no bias (BatchNorm follows).
    assert cases["dcgan.0"].output_size == (4, 4) and cases["dcgan.4"].output_size == (64, 64)
    assert cases["dcgan.4"].out_channels == 3 and not any(cases[f"dcgan.{i}"].bias for i in range(5))
    # pix2pix's U-Net 256: 1x1 to 256x256 through k4 s2 p1; only the last layer has a bias.
    assert cases["pix2pix.up0"].input_size == (1, 1) and cases["pix2pix.up7"].output_size == (256, 256)
    assert [s.bias for n, s in cases.items() if n.startswith("pix2pix")] == [False] * 7 + [True]
    # U-Net's 2x2 stride-2 up-convolutions halve the channels; WaveGAN's k25 s4 p11 output_padding 1 quadruple.
    assert cases["unet.up1"].output_size == (32, 32) and cases["unet.up4"].out_channels == 64
    assert [cases[f"wavegan.{i}"].output_size for i in range(5)] == [(64,), (256,), (1024,), (4096,), (16384,)]
    assert cases["unet3d.up3"].output_size == (32, 32, 32)
