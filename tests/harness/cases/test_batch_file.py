"""benchdnn batch files read as benchdnn reads them (tests/benchdnn/common.cpp: batch;
conv/bench_conv.cpp: bench; utils/parser.cpp). File structures below are taken from oneDNN's
tests/benchdnn/inputs/conv/ files named in the comments; expected cases are worked from benchdnn's rules."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from convparity.harness.cases.batch_file import BatchFile, BatchFileError, Ignored, Skipped, iter_batch, read_tokens
from convparity.harness.cases.descriptor import Case
from convparity.harness.cases.spec import ConvSpec


def write(tmp_path: Path, text: str, name: str = "batch") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def read_batch(path: Path) -> SimpleNamespace:
    """Every problem (case or skipped) and ignored option of a batch file, in order, and its summary."""
    items = list(iter_batch(path))
    return SimpleNamespace(cases=[i for i in items if isinstance(i, Case)],
                           skipped=[i for i in items if isinstance(i, Skipped)],
                           ignored=[i for i in items if isinstance(i, Ignored)], summary=BatchFile(path).summary)


def cases(tmp_path: Path, text: str) -> list[tuple[str, str, bool, tuple[str, ...]]]:
    """(name, dtype, bias, tensors) of every case of `text`."""
    return [(c.name, c.spec.dtype, c.spec.bias, c.tensors) for c in read_batch(write(tmp_path, text)).cases]


# -- tokens --------------------------------------------------------------------------------------------


def test_tokens_split_at_whitespace_and_comments_drop_the_rest_of_their_line(tmp_path):
    # harness_conv_f32: `--mb=2                      # for fwd and bwd_d reduce mb`
    path = write(tmp_path, "--mb=2   # for fwd and bwd_d # reduce mb\n\tic3iw5oc3kw3 ic4iw5oc4kw3#not-a-comment\n"
                           "#ic9iw5oc9kw3\n\x0bic5iw5oc5kw3\r\n")
    assert list(read_tokens(path)) == [("--mb=2", 1), ("ic3iw5oc3kw3", 2), ("ic4iw5oc4kw3#not-a-comment", 2),
                                       ("ic5iw5oc5kw3", 4)]


def test_continuations_join_tokens(tmp_path):
    # harness_conv_fused_depthwise: a value continued with a lone backslash on the next lines.
    path = write(tmp_path, "--attr-post-ops=relu+dw:k3s1p1:u8, \\\n    add:f32:per_oc+dw:k3s1p1:s8, \\\n"
                           "    dw:k3s1p1:s32+relu\nmb2ic3\\\nih5oc3kh3 a\\ # comment\nb\n")
    assert list(read_tokens(path)) == [
        ("--attr-post-ops=relu+dw:k3s1p1:u8,add:f32:per_oc+dw:k3s1p1:s8,dw:k3s1p1:s32+relu", 1),
        ("mb2ic3ih5oc3kh3", 4), ("ab", 5)]


def test_a_continuation_with_nothing_before_it_is_an_error(tmp_path):
    with pytest.raises(BatchFileError, match=r"batch:2: a line continuation"):
        list(read_tokens(write(tmp_path, "# only a comment\n\\ ic3iw5oc3kw3\n")))


# -- options -------------------------------------------------------------------------------------------

# harness_conv_regression_general, DNNL-611 (shapes as data).
DNNL_611 = """\
--reset --dt=f32
--dir=FWD_D mb1ic64ih15iw20oc256oh15ow20kh1kw1ph0pw0sh1sw1n"rfcn-resnet50-res2a_branch1"
--dir=FWD_B --attr-post-ops=relu mb1ic64ih15iw20oc256oh15ow20kh1kw1ph0pw0sh1sw1n"rfcn-resnet50-res2a_branch1"
--dir=BWD_W --attr-post-ops=     mb1ic256ih15iw20oc64oh15ow20kh1kw1ph0pw0sh1sw1n"rfcn-resnet50-res2a_branch1"
"""


def test_options_apply_in_order_and_an_empty_value_restores_the_default(tmp_path):
    batch = read_batch(write(tmp_path, DNNL_611))
    # FWD_D: y, no bias; FWD_B + relu: y with a fused relu; BWD_W after `--attr-post-ops=` (back to none): dw.
    assert [(c.spec.in_channels, c.spec.bias, c.tensors, [op.kind for op in c.spec.post_ops])
            for c in batch.cases] == [(64, False, ("y",), []), (64, True, ("y",), ["relu"]),
                                      (256, False, ("dw",), [])]
    assert not batch.skipped


@pytest.mark.parametrize(
    ("options", "dtype", "bias", "tensors"),
    [
        ("", "float32", True, ("y",)),  # benchdnn's defaults: --dir=FWD_B --dt=f32
        ("--dir=FWD_D", "float32", False, ("y",)),
        ("--dir=FWD_I", "float32", False, ("y",)),
        ("--dir=fwd_d --bia-dt=f32", "float32", True, ("y",)),  # str2dir ignores case
        ("--dir=bwd_d", "float32", False, ("dx",)),  # harness_conv_regression_general: `--reset --dir=bwd_d`
        ("--dir=BWD_D --bia-dt=f32", "float32", False, ("dx",)),
        ("--dir=BWD_W", "float32", False, ("dw",)),
        ("--dir=BWD_W --bia-dt=f32", "float32", True, ("dw", "db")),
        ("--dir=BWD_WB", "float32", True, ("dw", "db")),
        ("--dir=BWD_WB --dt=bf16", "bfloat16", True, ("dw", "db")),
        ("--dt=f16", "float16", True, ("y",)),
        ("--dt=f64", "float64", True, ("y",)),
        ("--dt=f32:f32:f32", "float32", True, ("y",)),
        ("--dt=dnnl_bf16", "bfloat16", True, ("y",)),
        ("--cfg=bf16bf16bf16", "bfloat16", True, ("y",)),  # legacy cfg (oneDNN before 3.4)
        ("--cfg=F32_wino --dir=BWD_D", "float32", False, ("dx",)),
        ("--mb=0 --stag=axb --alg=wino --attr-fpmath=strict --attr-acc-mode=strict", "float32", True, ("y",)),
    ],
)
def test_direction_and_data_type_decide_the_case(tmp_path, options, dtype, bias, tensors):
    (case,) = cases(tmp_path, f"{options} mb2ic4ih6oc4kh3ph1n\"x\"\n")
    assert case == ("x", dtype, bias, tensors)


@pytest.mark.parametrize(
    ("options", "dtype", "bias", "tensors", "attributes"),
    [
        ("--dt=u8:s8:u8", "uint8:int8:uint8", True, ("y",), "--bia-dt=f32"),  # FWD_B: benchdnn's f32 bias
        ("--dt=s8:s8:s32 --dir=FWD_D --bia-dt=s32", "int8:int8:int32", True, ("y",), "--bia-dt=s32"),
        ("--dt=s8 --dir=FWD_D", "int8", False, ("y",), ""),
        ("--cfg=u8s8u8", "uint8:int8:uint8", True, ("y",), "--bia-dt=f32"),
        ("--dt=bf16:bf16:f32", "bfloat16:bfloat16:float32", True, ("y",), ""),
        ("--dt=bf16:f32:bf16 --dir=BWD_D", "bfloat16:float32:bfloat16", False, ("dx",), ""),
        ("--dt=f8_e5m2", "float8_e5m2", True, ("y",), ""),
        ("--dt=f16:f8_e5m2:f8_e5m2", "float16:float8_e5m2:float8_e5m2", True, ("y",), ""),
        ("--attr-scales=wei:common:0.25", "float32", True, ("y",), "--attr-scales=wei:common:0.25"),
        ("--dt=u8:s8:s8 --attr-scales=src:common:0.25+wei:per_oc+dst:common:2 --attr-zero-points=src:common:1",
         "uint8:int8:int8", True, ("y",),
         "--attr-scales=src:common:0.25+wei:per_oc+dst:common:2 --attr-zero-points=src:common:1 --bia-dt=f32"),
        ("--attr-post-ops=sum:0.5+relu:0.1", "float32", True, ("y",), "--attr-post-ops=sum:0.5+relu:0.1"),
        ("--attr-post-ops=eltwise_linear:0.5:1.5:2.0", "float32", True, ("y",), "--attr-post-ops=linear:0.5:1.5"),
        ("--attr-post-ops=add:f32:per_oc+binary_mul:bf16:14:acdb", "float32", True, ("y",),
         "--attr-post-ops=add:f32:per_oc+mul:bf16:14"),
        ("--attr-post-ops=prelu:per_oc", "float32", True, ("y",), "--attr-post-ops=prelu:per_oc"),
        ("--dir=BWD_D --attr-post-ops=relu", "float32", False, ("dx",), "--attr-post-ops=relu"),
    ],
)
def test_data_types_scales_zero_points_and_post_ops_are_the_spec_s(tmp_path, options, dtype, bias, tensors,
                                                                   attributes):
    (case,) = read_batch(write(tmp_path, f"{options} ic4ih6oc4kh3ph1\n")).cases
    assert (case.spec.dtype, case.spec.bias, case.tensors, case.spec.attribute_options) == (
        dtype, bias, tensors, attributes)
    assert case.fixed_dtype


def test_an_integer_convolution_s_fwd_b_bias_is_benchdnn_s_f32_in_real_units(tmp_path):
    (case,) = read_batch(write(tmp_path, "--dt=u8:s8:u8 ic4ih6oc4kh3\n")).cases
    assert case.spec.bias_dtype == "float32" and case.spec.quantization.bias_dtype == "float32"


@pytest.mark.parametrize(
    ("options", "note"),
    [
        ("--dt=s4", "--dt=s4: a data type convparity has no type for (s4)"),
        ("--dt=f4_e2m1:f4_e2m1:bf16", "--dt=f4_e2m1:f4_e2m1:bf16: a data type convparity has no type for (f4_e2m1)"),
        ("--dt=s32", "--dt=s32: data types convparity cannot combine"),
        ("--dt=f32:s8:f32", "--dt=f32:s8:f32: data types convparity cannot combine"),
        ("--dir=FWD_D --bia-dt=s32", "--bia-dt=s32: not a convolution convparity can build (quantization bias_dtype "
                                     "int32 needs 8-bit integer sources"),
        ("--dir=FWD_D --bia-dt=u8", "--bia-dt=u8: a bias data type convparity has no type for"),
        ("--dir=BWD_DW", "--dir=BWD_DW: benchdnn's conv driver cannot create a BWD_DW primitive"),
        ("--dt=u8:s8:u8 --dir=BWD_D", "--dir=BWD_D: convparity compares no gradients of an integer or scaled"),
        ("--attr-post-ops=relu+dw:k3s1p1", "--attr-post-ops=relu+dw:k3s1p1: the fused depthwise post-op (dw)"),
        ("--attr-post-ops=ge:f32", "--attr-post-ops=ge:f32: comparison and select post-ops give 0 or 1"),
        ("--attr-post-ops=relu+frobnicate", "--attr-post-ops=relu+frobnicate: unknown post-op kind 'frobnicate'"),
        ("--attr-scales=attr_post_op_dw_wei:common:2", "--attr-scales=attr_post_op_dw_wei:common:2: "
                                                       "'attr_post_op_dw_wei' is not an argument convparity scales"),
        ("--attr-scales=wei:per_dim_2", "--attr-scales=wei:per_dim_2: policy 'per_dim_2' is not one convparity"),
        ("--attr-zero-points=wei:per_oc", "--attr-zero-points=wei:per_oc: weights take one zero point"),
        ("--attr-zero-points=src:common:1.5", "--attr-zero-points=src:common:1.5: '1.5' is not an integer"),
        ("--attr-fpmath=bf16", "--attr-fpmath=bf16: lets oneDNN compute below the data type's precision"),
        ("--attr-acc-mode=relaxed", "--attr-acc-mode=relaxed: lets oneDNN accumulate below strict precision"),
        ("--attr-rounding-mode=dst:stochastic", "--attr-rounding-mode=dst:stochastic: stochastic rounding draws"),
        ("--attr-dropout=0.5", "--attr-dropout=0.5: dropout changes the result"),
    ],
)
def test_what_cannot_be_honoured_is_skipped_with_one_note_per_option(tmp_path, options, note):
    batch = read_batch(write(tmp_path, f"{options} ic4ih6oc4kh3\n"))
    assert not batch.cases
    (skipped,) = batch.skipped
    assert skipped.descriptor == "ic4ih6oc4kh3" and len(skipped.notes) == 1
    assert str(skipped.notes[0]).startswith(note), str(skipped.notes[0])


def test_values_multiply_problems_in_benchdnn_order(tmp_path):
    # harness_conv_regression_general, "3d problem dispatching" (dir x dt) and "github #174" (dir x post-ops).
    batch = read_batch(write(tmp_path, """\
--dir=FWD_D,BWD_D,BWD_W
--dt=f32,bf16 g1ic16id1ih7iw8oc16od1oh7ow8kd3kh3kw3sd2sh1sw1pd1ph1pw1
--reset --dt=f32
--skip-impl=ref # initial bug was for gemm-based convolution
--dir=FWD_B,FWD_D --attr-post-ops=sum,sum+relu mb1_ic4oc4_ih13oh13kh3ph1_n"gemm_acc"
"""))
    assert [(c.spec.dtype, c.tensors) for c in batch.cases[:6]] == [
        ("float32", ("y",)), ("bfloat16", ("y",)), ("float32", ("dx",)), ("bfloat16", ("dx",)),
        ("float32", ("dw",)), ("bfloat16", ("dw",))]
    # d: o1 k3 s2 p1 i1 -> end pad 0 * 2 - 1 + 3 - 1 = 1; h and w: end (o - 1) - i + 3 - 1 = 1.
    assert batch.cases[0].spec.padding == ((1, 1), (1, 1), (1, 1))
    # dir x post-ops: FWD_B sum, FWD_B sum+relu, FWD_D sum, FWD_D sum+relu
    assert [(c.spec.bias, c.spec.attribute_options) for c in batch.cases[6:]] == [
        (True, "--attr-post-ops=sum"), (True, "--attr-post-ops=sum+relu"), (False, "--attr-post-ops=sum"),
        (False, "--attr-post-ops=sum+relu")]
    assert not batch.skipped
    assert [i.option for i in batch.ignored] == ["--skip-impl=ref"]


def test_mb_overrides_and_mb0_keeps_the_descriptors_batch(tmp_path):
    # harness_conv_f32: `--mb=2` for fwd and bwd_d, then `--mb=0` "for bwd_w use the actual mb".
    batch = read_batch(write(tmp_path, "--mb=2 mb16ic4ih6oc4kh3\n--mb=0 mb16ic4ih6oc4kh3\n--mb=1,3 ic4ih6oc4kh3\n"
                                       "--mb=0 mb0ic4ih6oc4kh3\n--mb=5 mb0ic4ih6oc4kh3\n"))
    assert [c.spec.batch for c in batch.cases] == [2, 16, 1, 3, 5]
    assert [str(n) for s in batch.skipped for n in s.notes] == ["mb0: a zero batch (benchdnn runs an empty problem)"]


def test_a_problem_no_convspec_holds_is_skipped_not_fatal(tmp_path):
    batch = read_batch(write(tmp_path, "g3ic4ih6oc6kh3\nic4ih6oc4kh3\n"))
    assert len(batch.cases) == 1
    (note,) = batch.skipped[0].notes
    assert note.why == "not a convolution convparity can build" and "groups=3 must divide" in note.detail


def test_ignored_options_are_recorded_with_their_reason(tmp_path):
    # harness_conv_regression_general / harness_conv_tags style options.
    batch = read_batch(write(tmp_path, "--skip-impl=ref,x64:gemm --stag=axb --dtag=axb --wtag=any --alg=wino "
                                       "--impl=brg --strides=::  --engine=gpu --ctx-init=2 --mode=P "
                                       "-v5 --allow-enum-tags-only=false --attr-scratchpad=user ic4ih6oc4kh3\n"))
    assert len(batch.cases) == 1
    summary = batch.summary["ignored_options"]
    assert summary["--skip-impl"]["why"] == "chooses oneDNN's implementation"
    assert summary["--stag"]["why"] == "chooses a memory layout"
    assert summary["--engine"]["why"] == "chooses the engine, threading or memory kind"
    assert summary["-v5"]["why"] == "sets benchdnn's run mode or output"
    assert len(batch.ignored) == 13


# -- scoping and includes ------------------------------------------------------------------------------


def test_includes_share_the_settings_and_only_reset_restores_them(tmp_path):
    # test_conv_regression: `--dir=FWD_B,BWD_D,BWD_WB --batch=shapes_regression_small_spatial ...`;
    # benchdnn keeps one settings object, so an include's options outlive it.
    write(tmp_path, "mb1ic16oc16_ih1oh1kh3ph1\n--dir=BWD_D\n", "shapes")
    top = write(tmp_path, "--dt=bf16 --batch=shapes\nmb1ic16oc16_ih3oh3kh3ph1\n--reset mb1ic16oc16_ih5oh5kh3ph1\n")
    assert [(c.spec.input_size, c.spec.dtype, c.tensors) for c in read_batch(top).cases] == [
        ((1, 1), "bfloat16", ("y",)), ((3, 3), "bfloat16", ("dx",)), ((5, 5), "float32", ("y",))]


def test_includes_resolve_against_the_including_file(tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path, "ic2iw5oc2kw3\n", "sub/shapes")
    write(tmp_path, "--batch=shapes\n", "sub/set")
    top = write(tmp_path, "--batch=sub/set\n")
    assert [c.spec.in_channels for c in read_batch(top).cases] == [2]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"batch": "--batch=a\n", "a": "--batch=b\n", "b": "--batch=a\n"}, "include each other in a cycle: .*a -> .*b"),
        ({"batch": "ic2iw5oc2kw3\n--batch=missing\n"}, r"batch:2: --batch=missing: no file"),
        ({"batch": "--frobnicate=1 ic2iw5oc2kw3\n"}, r"batch:1: unknown option '--frobnicate=1'"),
        ({"batch": "-dir=FWD_D\n"}, r"unknown option '-dir=FWD_D' \(options start with '--'\)"),
        ({"batch": "--dir\n"}, r"a value option is --NAME=VALUE"),
        ({"batch": "--dir=SIDEWAYS\n"}, r"--dir=SIDEWAYS: unknown value 'SIDEWAYS'"),
        ({"batch": "--dt=f32:f32\n"}, "a data type entry is DT or SRC:WEI:DST, got 2 parts"),
        ({"batch": "--dt=F32\n"}, "unknown value 'F32'"),  # str2dt is case-sensitive
        ({"batch": "--mb=-1\n"}, "--mb takes non-negative ints"),
        ({"batch": "--dt=bf16 --cfg=f32 ic2iw5oc2kw3\n"}, "--dt and the legacy --cfg cannot both be set"),
        ({"batch": "\n\nic2iw5oc2kw3 ic2ih5oc2kh3sd2\n"}, r"batch:3: descriptor 'ic2ih5oc2kh3sd2': id must be"),
    ],
)
def test_what_benchdnn_stops_on_is_an_error_naming_file_and_line(tmp_path, files, message):
    for name, text in files.items():
        write(tmp_path, text, name)
    with pytest.raises(BatchFileError, match=message):
        read_batch(tmp_path / "batch")


# -- a oneDNN file's structure, worked by hand ---------------------------------------------------------

# harness_conv_regression_general: sections DNNL-623, DNNL-671, DNNL-796, "1x1 Conv with spatial padding" and
# "test primitive cache correctly dispatching proper CPU ISA" (options and shapes as they are there; the long
# DNNL-623 lines continued with a backslash to fit 120 columns).
REGRESSION_EXCERPT = """\
# DNNL-623
--reset --dt=u8:s8:u8 --dir=FWD_D --skip-impl=ref,x64:gemm mb2ic672ih29iw29oc192kh1kw1sh1sw1ph0pw0\\
    n"DENSENET_161:conv3_11/x1"
--reset --dt=f32 --skip-impl=ref,x64:gemm mb2ic672ih29iw29oc192kh1kw1sh1sw1ph0pw0\\
    n"DENSENET_161:conv3_11/x1"
--reset --dt=f32 --dir=BWD_WB --skip-impl=ref,x64:gemm mb2ic672ih29iw29oc192kh1kw1sh1sw1ph0pw0\\
    n"DENSENET_161:conv3_11/x1"

# DNNL-671
--reset --dir=BWD_D ic2ih1iw9oc3oh1ow4kh1kw3sh1sw2

# DNNL-796: large asymmetric padding
--reset --dt=f32 mb2_g1ic32oc32_ih7oh11kh3ph2
--reset --dt=u8:s8:u8 mb2_g1ic32oc32_ih7oh11kh3ph2

# 1x1 Conv with spatial padding
--reset --dir=FWD_B
--dt=f32 g1ic64ih31iw1oc64oh32ow1kh1kw1ph0pw0
--dt=bf16:bf16:f32,u8:s8:u8 g1ic64ih31iw1oc64oh32ow1kh1kw1ph0pw0

# test primitive cache correctly dispatching proper CPU ISA
--reset
--dir=fwd_d --dt=f16 --stag=axb --dtag=axb --mb=1
ic256ih56oc64oh56kh1ph0n"primitive-cache_dispatch_shape-1"
--dir=bwd_d
ic64ih56oc256oh56kh1ph0n"primitive-cache_dispatch_shape-2"
"""


def test_a_regression_file_excerpt(tmp_path):
    batch = read_batch(write(tmp_path, REGRESSION_EXCERPT))
    got = [(c.name, c.spec.dtype, c.spec.bias, c.tensors, c.spec.batch) for c in batch.cases]
    assert got == [
        ("DENSENET_161:conv3_11/x1", "uint8:int8:uint8", False, ("y",), 2),  # DNNL-623: FWD_D, no bias
        ("DENSENET_161:conv3_11/x1", "float32", True, ("y",), 2),  # --reset: FWD_B
        ("DENSENET_161:conv3_11/x1", "float32", True, ("dw", "db"), 2),
        ("", "float32", False, ("dx",), 2),  # DNNL-671
        ("", "float32", True, ("y",), 2),  # DNNL-796
        ("", "uint8:int8:uint8", True, ("y",), 2),
        ("", "float32", True, ("y",), 2),  # 1x1 with padding
        ("", "bfloat16:bfloat16:float32", True, ("y",), 2),
        ("", "uint8:int8:uint8", True, ("y",), 2),
        ("primitive-cache_dispatch_shape-1", "float16", False, ("y",), 1),
        ("primitive-cache_dispatch_shape-2", "float16", False, ("dx",), 1),
    ]
    # DNNL-671: h p = (0 - 1 + 1) / 2 = 0; w p = (3 * 2 - 9 + 3) / 2 = 0; DNNL-796: end = 10 - 7 + 3 - 2 = 4;
    # 1x1: h end = 31 - 31 + 1 - 0 = 1 (the 32nd output row reads only padding).
    assert batch.cases[3].spec == ConvSpec(batch=2, in_channels=2, out_channels=3, input_size=(1, 9),
                                           kernel_size=(1, 3), stride=(1, 2), padding=0, bias=False)
    assert batch.cases[4].spec.padding == ((2, 4), (2, 4))
    assert batch.cases[6].spec.padding == ((0, 1), (0, 0)) and batch.cases[6].spec.output_size == (32, 1)
    summary = batch.summary
    # FWD_B and BWD_WB of DENSENET_161:conv3_11/x1 in f32 are one spec: one case comparing y, dw and db.
    assert (summary["problems"], summary["computed"], summary["cases"], summary["skipped"]) == (11, 11, 10, 0)
    merged = list(BatchFile(tmp_path / "batch"))
    assert len(merged) == 10 and merged[1].tensors == ("y", "dw", "db") and merged[1].fixed_dtype
    assert summary["skipped_by_reason"] == {}
    assert {name: entry["tokens"] for name, entry in summary["ignored_options"].items()} == {
        "--skip-impl": 3, "--stag": 1, "--dtag": 1}
    assert all(isinstance(item, (Case, Skipped)) for item in (*batch.cases, *batch.skipped))


# -- --match, --start, the deconv driver, large sizes, one reading ------------------------------------------------


@pytest.mark.parametrize(
    ("descriptor", "printed"),
    [
        # conv_aux.cpp: g only when given, mb unless 2, h alone for a square 2-D problem, s unless all 1,
        # p always, d unless all 0 (counted from 0), w alone for 1-D, d alone for a cubic 3-D problem.
        ("mb2ic3ih5oc4kh3ph1", "ic3ih5oc4oh5kh3ph1"),
        ("g1mb1ic3ih5iw7oc4kh3kw3sh2sw2ph1pw1", "g1mb1ic3ih5iw7oc4oh3ow4kh3kw3sh2sw2ph1pw1"),
        ("ic2iw9oc2kw3dw1n\"conv_basic_2d\"", "ic2iw9oc2ow5kw3pw0dw1nconv_basic_2d"),
        ("mb4ic2id4oc2kd3pd1", "mb4ic2id4oc2od4kd3pd1"),
        ("mb4ic2id4ih4iw5oc2kd3kh3kw3pd1ph1pw1", "mb4ic2id4ih4iw5oc2od4oh4ow5kd3kh3kw3pd1ph1pw1"),
    ],
)
def test_problems_print_as_benchdnn_prints_them(descriptor, printed):
    from convparity.harness.cases.batch_file import benchdnn_descriptor
    from convparity.harness.cases.descriptor import parse_desc

    assert benchdnn_descriptor(parse_desc(descriptor)) == printed


def test_match_runs_only_the_problems_benchdnn_runs(tmp_path):
    # test_conv_smoke's patterns are POSIX basic expressions searched in the problem as benchdnn prints it.
    batch = read_batch(write(tmp_path, """\
--match=.*kh3[^0-9].* ic2ih8oc2kh3ph1 ic2ih8oc2kh31ph15 ic2ih8oc2kh1
--match=.*fc6.* ic2ih8oc2kh1n"fc6" ic2ih8oc2kh1n"fc7"
--reset ic2ih8oc2kh5ph2
--match=a+b ic2ih8oc2kh1n"a+b" ic2ih8oc2kh1n"aab"
--match=.*--dir=BWD_D.* --dir=FWD_B,BWD_D ic2ih8oc2kh3
"""))
    assert [c.name or c.spec.kernel_size for c in batch.cases] == [(3, 3), "fc6", (5, 5), "a+b", (3, 3)]
    assert batch.cases[-1].tensors == ("dx",)
    # kh31 and kh1, fc7, aab and the FWD_B problem are read and left out, as benchdnn leaves them out
    assert batch.summary["not_matched"] == 5 and batch.summary["problems"] == 5


def test_start_skips_the_first_problems_and_outlives_reset(tmp_path):
    batch = read_batch(write(tmp_path, "--start=2 ic2ih8oc2kh1 ic2ih8oc2kh2\n--reset --dir=FWD_B,BWD_D ic2ih8oc2kh3\n"))
    assert [(c.spec.kernel_size, c.tensors) for c in batch.cases] == [((3, 3), ("y",)), ((3, 3), ("dx",))]
    assert batch.summary["not_matched"] == 2


def test_a_match_benchdnn_cannot_compile_is_an_error(tmp_path):
    with pytest.raises(BatchFileError, match=r"batch:1: '--match=\[oops': not a regular expression benchdnn can use"):
        read_batch(write(tmp_path, "--match=[oops ic2ih8oc2kh1\n"))


def test_the_deconv_driver_reads_transposed_convolutions(tmp_path):
    # test_deconv_smoke style: the same descriptor as benchdnn's deconv driver derives it (o = (i - 1) s + k - 2p).
    path = write(tmp_path, "--dir=FWD_D,BWD_D mb2ic8ih4oc4kh4sh2ph1n\"up\"\n")
    (case,) = BatchFile(path, driver="deconv")
    assert case.spec.transposed and case.spec.output_size == (8, 8) and case.tensors == ("y", "dx")
    assert not list(BatchFile(path))[0].spec.transposed
    with pytest.raises(BatchFileError, match="driver must be one of conv, deconv"):
        BatchFile(path, driver="matmul")


def test_sizes_beyond_int32_are_read(tmp_path):
    # shapes_large_conv lines 3, 6 and 11: a run answers them unsupported, with the memory they need.
    lines = "mb1ic1oc1iw4294967311kw3\nmb1ic4294967311oc1iw1kw1\nmb1ic1oc4294967311iw1kw1\n"
    batch = read_batch(write(tmp_path, lines))
    assert [c.spec.output_size for c in batch.cases] == [(4294967309,), (1,), (1,)]
    assert batch.cases[1].spec.in_channels == 4294967311 and not batch.skipped


def test_a_batch_file_is_read_once(tmp_path):
    path = write(tmp_path, "--dir=FWD_D ic2ih8oc2kh3\n--dir=BWD_D ic2ih8oc2kh3\n")
    batch = BatchFile(path)
    path.unlink()  # iterating needs nothing more from the file
    (case,) = batch
    assert case.tensors == ("y", "dx") and batch.size == 1
