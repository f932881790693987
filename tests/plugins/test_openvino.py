"""The openvino backends: contract suites, the model, precision really f32, the float64 limit, forward-only rows;
post-op chains (the epilogues grid, what the CPU plugin fuses); openvino-int8 (the int8 grid, its int8 kernels, the
rounding, the padding-window deviation and crashes); planted wrong programs."""

from __future__ import annotations

import dataclasses

import ml_dtypes
import numpy as np
import pytest

from convparity import parse_case
from convparity.harness import cli
from convparity.harness.backends.manager import get_manager
from convparity.harness.backends.program import Program
from convparity.harness.cases.builtin_grids import int8
from convparity.harness.cases.inputs import make_inputs
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.evaluation.verdict import evaluate_case
from convparity.harness.results import read_results
from convparity.harness.testing.contract_suite import BackendContract
from convparity.plugins.openvino_backend import convolution_kernel, convolution_precision, crashes, padding_columns
from tests.plugins.backend_checks import (
    EXTRA_SPECS,
    check_usable_in_own_tox_env,
    disagreements,
    smoke_sweep,
)
from tests.plugins.conftest import framework_module

pytestmark = pytest.mark.framework("openvino")


class TestOpenVino(BackendContract):
    backend_name = "openvino"
    # float64 is a limit (the CPU plugin computes it in f32); float16 runs in f32 and agrees.
    dtypes = ("float32", "float16")


@pytest.fixture(scope="module")
def ov_backend():
    return get_manager().backends()["openvino"]


@pytest.fixture
def built_model(ov_backend, monkeypatch):
    """built_model(spec): the ov.Model the backend's program hands to Core.compile_model."""
    core = framework_module("openvino").Core
    compile_model = core.compile_model
    models = []

    def recording(self, model, *args, **kwargs):
        models.append(model)
        return compile_model(self, model, *args, **kwargs)

    monkeypatch.setattr(core, "compile_model", recording)

    def build(spec):
        ov_backend.program(spec).build()
        (model,) = models[-1:]
        return model

    return build


def test_usable_in_its_tox_env(ov_backend):
    check_usable_in_own_tox_env(ov_backend, "openvino")


def test_model_is_one_group_convolution_with_the_specs_geometry(built_model):
    spec = ConvSpec(batch=2, in_channels=4, out_channels=6, input_size=(9, 10), kernel_size=(3, 2), stride=(2, 1),
                    dilation=(1, 2), padding=((1, 0), (-2, 1)), groups=2, dtype="float32")
    model = built_model(spec)
    ops = {op.get_type_name(): op for op in model.get_ops()}
    assert "Convolution" not in ops and "Slice" in ops and "Add" in ops
    conv = ops["GroupConvolution"]
    assert list(conv.get_strides()) == [2, 1] and list(conv.get_dilations()) == [1, 2]
    assert list(conv.get_pads_begin()) == [1, 0] and list(conv.get_pads_end()) == [0, 1]
    assert [p.get_friendly_name() for p in model.get_parameters()] == ["x", "w", "b"]
    assert tuple(model.output(0).get_shape()) == spec.y_shape


def test_float32_runs_in_f32_not_the_cpu_plugins_default(ov_backend):
    spec = ConvSpec(batch=1, in_channels=8, out_channels=8, input_size=(6, 6), kernel_size=(3, 3), dtype="float32")
    assert convolution_precision(ov_backend.program(spec).build().compiled_model) == "f32"
    assert "float32 in f32" in ov_backend.version()


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_forward_agrees_on_crops_one_sided_padding_groups_and_dilation(ov_backend, dtype):
    assert disagreements(ov_backend, EXTRA_SPECS, dtype) == []


def test_bfloat16_without_bias_agrees(ov_backend):
    assert disagreements(ov_backend, tuple(s.replace(bias=False) for s in EXTRA_SPECS), "bfloat16") == []


def test_float64_limit_says_what_the_plugin_runs(ov_backend):
    spec = EXTRA_SPECS[1].replace(dtype="float64")
    reason = ov_backend.supports(spec)
    assert reason.startswith("dtype float64: OpenVINO ") and "runtimePrecision=f32" in reason
    assert [limit.condition for limit in ov_backend.limits] == ["transposed convolution", "dtype float64"]


def test_run_returns_y_only(ov_backend):
    spec = ConvSpec(batch=1, in_channels=2, out_channels=3, input_size=(5,), kernel_size=(2,), bias=False)
    inputs = make_inputs(spec, 0)
    y, dx, dw, db = ov_backend.run(spec, inputs.x, inputs.w, inputs.b, inputs.dy)
    assert dx is None and dw is None and db is None
    windows = np.stack([inputs.x[0, :, i:i + 2] for i in range(4)]).astype(np.float64)  # (4, C, 2)
    np.testing.assert_allclose(y[0].T, np.einsum("tck,ock->to", windows, inputs.w), rtol=1e-6)


def test_smoke_sweep_through_the_cli(tmp_path):
    code, results = smoke_sweep("openvino", tmp_path / "run")
    assert code == 0
    float32 = results[results["dtype"] == "float32"]
    assert set(float32.loc[float32["tensor"] == "y", "status"]) == {"pass"}
    assert set(float32.loc[float32["tensor"] != "y", "status"]) == {"unsupported"}
    float64 = results[results["dtype"] == "float64"]
    assert set(float64["status"]) == {"unsupported"}
    assert float64["message"].str.contains("runtimePrecision=f32").all()


@pytest.mark.parametrize(("size", "expected"), [((4, 4), 256.0), ((1, 1), 258.0)])
def test_bfloat16_bias_is_rounded_twice_where_the_add_is_not_fused(ov_backend, size, expected):
    """conv = 256 + 1 rounds to 256 in bf16, and + 1 again to 256; one rounding of 258 is exact.

    The CPU plugin fuses the Add into the Convolution for a 1x1 output (258), not for 4x4 (256)."""
    spec = ConvSpec(batch=1, in_channels=2, out_channels=1, input_size=size, kernel_size=(1, 1), dtype="bfloat16")
    x = np.ones(spec.x_shape, ml_dtypes.bfloat16)
    w = np.array([256.0, 1.0], ml_dtypes.bfloat16).reshape(spec.w_shape)
    b = np.array([1.0], ml_dtypes.bfloat16)
    y, *_ = ov_backend.run(spec, x, w, b, np.zeros(spec.y_shape, ml_dtypes.bfloat16))
    assert set(y.astype(np.float32).ravel()) == {expected}


# -- post-op chains ---------------------------------------------------------------------------------------------

def _chain(text, dtype="float32", geometry="g2mb2ic4ih9iw9oc6oh5ow5kh3kw3sh2sw2ph1pw0"):
    """A spec of the epilogues grid's third shape (grouped, strided, one-sided padding) with the chain `text`."""
    return parse_case(f"--attr-post-ops={text} {geometry}", dtype=dtype).spec


def test_epilogues_grid_through_the_cli(tmp_path):
    """Every post-op and chain of the epilogues grid agrees in float32; float64 runs in f32 (a limit)."""
    code = cli.main(["run", "-b", "openvino", "-g", "epilogues", "--dtype", "float32", "--dtype", "float64", "-o",
                     str(tmp_path / "run")])
    assert code == 0
    results = read_results(tmp_path / "run")
    y = results[results["tensor"] == "y"]
    assert y.groupby(["dtype", "status"]).size().to_dict() == {("float32", "pass"): 114,
                                                                ("float64", "unsupported"): 114}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("chain", ["gelu_tanh", "hardswish:0.16666667:0.5", "mish", "soft_relu:2", "pow:0.5:2",
                                   "sum:0.5:3+relu", "batchnorm+swish:2", "prelu:per_oc", "div:f32:per_oc+round"])
def test_narrow_dtype_chains_agree(ov_backend, chain, dtype):
    assert disagreements(ov_backend, (_chain(chain),), dtype) == []


def _fused_layers(ov_backend, spec):
    """{layer type: original layer names} of the compiled model's runtime graph (Input, Output, Const, Reorder and
    Reshape left out)."""
    layers = {}
    for op in ov_backend.program(spec).build().compiled_model.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        kind = info["layerType"].astype(str)
        if kind not in ("Input", "Output", "Const", "Reorder", "Reshape"):
            layers.setdefault(kind, []).append(info["originalLayersNames"].astype(str))
    return layers


@pytest.mark.parametrize(("chain", "fused"), [
    ("relu", "Relu"), ("clip:0:6", "Clamp"), ("gelu_erf", "Gelu"), ("swish:1", "Swish"), ("mish", "Mish"),
    ("hardswish:0.16666667:0.5", "HSwish"), ("sum+relu", "Add,Relu"), ("elu:1", "Elu"), ("round", "Round"),
])
def test_cpu_plugin_fuses_activations_and_the_sum_into_the_convolution(ov_backend, chain, fused):
    """Without a bias the CPU plugin folds these into the Convolution node (its originalLayersNames list them)."""
    layers = _fused_layers(ov_backend, _chain(chain).replace(bias=False))
    (convolution,) = layers.pop("Convolution")
    names = [name.rsplit("_", 1)[0] for name in convolution.split(",")]
    assert names == ["GroupConvolution", *fused.split(",")] and not layers


def test_operands_that_are_parameters_are_not_folded(ov_backend):
    """A per-channel Multiply by a Parameter and batchnorm's Parameter statistics stay nodes of their own, as does the
    bias Add (a Parameter), which takes the activation after it."""
    assert set(_fused_layers(ov_backend, _chain("mul:f32:per_oc").replace(bias=False))) == {"Convolution", "Subgraph"}
    layers = _fused_layers(ov_backend, _chain("relu"))
    assert layers["Convolution"] == ["GroupConvolution_" + layers["Convolution"][0].split("_")[1]]
    assert [name.rsplit("_", 1)[0] for name in layers["Eltwise"][0].split(",")] == ["Add", "Relu"]


# -- openvino-int8: FakeQuantize around the convolution -----------------------------------------------------------

class TestOpenVinoInt8(BackendContract):
    backend_name = "openvino-int8"
    grid = "int8"
    dtypes = ("float32",)  # the int8 grid's cases keep their own data types


@pytest.fixture(scope="module")
def int8_backend():
    return get_manager().backends()["openvino-int8"]


def test_int8_grid_every_non_pass_is_explained(tmp_path):
    assert cli.main(["run", "-b", "openvino-int8", "-g", "int8", "-o", str(tmp_path / "run")]) == 0
    y = read_results(tmp_path / "run")
    assert y.groupby("status").size().to_dict() == {"pass": 27, "unsupported": 2, "xfail": 1}
    (known,) = y[y["status"] == "xfail"].itertuples()
    assert known.name == "window in padding" and "padding" in known.message  # the declared window-in-padding deviation
    refused = y[y["status"] == "unsupported"]
    assert set(refused["dtype"]) == {"uint8:int8:int32", "int8:int8:int32"}
    assert refused["message"].str.contains("openvino-int8 computes float64").all()
    assert (y.loc[y["status"] == "pass", "max_steps"] == 0).all()  # every code exact


def test_int8_kernels_run_the_grid(int8_backend):
    """The FakeQuantize models compile to int8 Convolutions (8-bit activations, an int8 primitive), not f32 ones."""
    for case in int8():
        if case.spec.dtype in int8_backend.data_types:
            precision, primitive = convolution_kernel(case.spec)
            assert precision in ("u8", "i8") and primitive.lower().endswith("_i8"), (case.name, precision, primitive)


@pytest.mark.parametrize(("spec", "kernel"), [
    (parse_case("--attr-zero-points=wei:common:1 g1mb1ic4ih5iw5oc4oh5ow5kh3kw3ph1pw1", dtype="uint8:int8:uint8").spec,
     "f32"),  # weights with a zero point
    (parse_case("--attr-zero-points=src:common:3 g4mb2ic4id6ih6iw6oc4od6oh6ow6kd3kh3kw3pd1ph1pw1",
                dtype="uint8:int8:uint8").spec, "f32"),  # 3-D depthwise with an x zero point
])
def test_specs_the_cpu_plugin_runs_in_float_are_a_limit(int8_backend, spec, kernel):
    assert convolution_kernel(spec)[0] == kernel
    assert int8_backend.supports(spec).startswith("a FakeQuantize model the CPU plugin does not run as an int8")


@pytest.mark.parametrize("y_zero_point", [100, 101])
def test_int8_ties_go_to_the_even_code(int8_backend, y_zero_point):
    """acc = x - 106 for x = 100..111, y_scale 2: v = acc / 2 + zp has six exact ties; the FakeQuantize rounds v (zp
    added first) half to even: the declared `half_even`."""
    spec = parse_case(f"--attr-scales=dst:common:2 --attr-zero-points=src:common:106+dst:common:{y_zero_point} "
                      "g1mb1ic1iw12oc1ow12kw1", dtype="uint8:int8:uint8").spec.replace(bias=False)
    x = np.arange(100, 112, dtype=np.uint8).reshape(spec.x_shape)
    q = {"x_scale": 1.0, "w_scale": 1.0, "y_scale": 2.0, "x_zero_point": 106, "w_zero_point": 0,
         "y_zero_point": y_zero_point}
    extras = dataclasses.replace(make_inputs(spec, 0).extras, quantization=q)
    y, *_ = int8_backend.run(spec, x, np.ones(spec.w_shape, np.int8), None, None, extras=extras)
    codes = y.ravel().astype(int)
    expected = np.where(np.arange(-6, 6) % 2 == 0, np.arange(-6, 6) // 2 + y_zero_point,
                        np.round(np.arange(-6, 6) / 2 + y_zero_point))  # np.round: half to even
    assert codes.tolist() == expected.astype(int).tolist()
    _, rows = evaluate_case(int8_backend, spec, seed=0)
    assert [row.status for row in rows] == ["pass"]


# The research repro (openvino 2026.4.1): a dilated window entirely in W's padding, x zero point 196.
PADDING_COLUMN = parse_case("--attr-scales=src:common:0.0186+wei:common:0.003+dst:common:0.0058 "
                            "--attr-zero-points=src:common:196+dst:common:159 g1mb1ic1ih1iw1oc1oh1ow1kh2sh1ph0kw2sw1pw1"
                            "dh0dw1", dtype="uint8:int8:uint8").spec.replace(bias=False)


def test_window_in_the_padding_returns_saturated_codes(int8_backend, ov_backend):
    assert PADDING_COLUMN.padding == ((0, 1), (1, 1)) and PADDING_COLUMN.dilation == (1, 2)
    assert padding_columns(PADDING_COLUMN) and int8_backend.supports(PADDING_COLUMN) is None
    extras = make_inputs(PADDING_COLUMN, 0).extras
    x, w = np.full((1, 1, 1, 1), 200, np.uint8), np.full((1, 1, 2, 2), 100, np.int8)
    # every tap reads padding, so acc = 0 and y = y's zero point, 159
    assert int8_backend.run(PADDING_COLUMN, x, w, None, None, extras=extras)[0].ravel().tolist() == [255]
    without = dataclasses.replace(extras, quantization={**extras.quantization, "x_zero_point": 0})
    assert int8_backend.run(PADDING_COLUMN, x + 0, w, None, None, extras=without)[0].ravel().tolist() == [159]
    real = ((x.astype(np.float32) - 196) * np.float32(0.0186))
    y, *_ = ov_backend.run(PADDING_COLUMN.replace(dtype="float32", quantization=dataclasses.replace(
        PADDING_COLUMN.quantization, x_scale=1.0, w_scale=1.0, y_scale=1.0, x_zero_point=0, y_zero_point=0)),
        real, (w * np.float32(0.003)).astype(np.float32), None, None)
    assert y.ravel().tolist() == [0.0]  # the f32 Convolution of the same geometry


def test_window_in_the_padding_is_a_declared_deviation(int8_backend):
    spec = parse_case("--attr-scales=src:common:0.5+wei:common:0.25+dst:common:0.25 --attr-zero-points=src:common:100"
                      "+dst:common:128 g1mb1ic1ih5iw2oc4oh9ow1kh1sh1ph2kw2sw1pw1dh1dw2", dtype="uint8:int8:uint8").spec
    _, rows = evaluate_case(int8_backend, spec, seed=0)
    assert rows[0].status == "xfail" and rows[0].max_steps > 1 and "saturated codes" in rows[0].deviation
    clean = spec.replace(quantization=dataclasses.replace(spec.quantization, x_zero_point=0))
    _, rows = evaluate_case(int8_backend, clean, seed=0)
    assert rows[0].status == "pass"


def test_geometries_that_crash_the_int8_kernel_are_a_limit(int8_backend):
    """x (1, 1, 1), w (1, 1, 1), pads (0, 1): the int8 convolution dies with SIGSEGV (in the child `crashes` runs);
    the same with pads (1, 1) runs (and agrees)."""
    crashing = parse_case("g1mb1ic1iw1oc1ow2kw1pw0", dtype="uint8:int8:uint8").spec
    assert crashing.padding == ((0, 1),) and crashes(crashing)
    assert int8_backend.supports(crashing).startswith("an output position whose window lies in the last spatial")
    running = parse_case("g1mb1ic1iw1oc1ow3kw1pw1", dtype="uint8:int8:uint8").spec
    assert padding_columns(running) and not crashes(running)
    _, rows = evaluate_case(int8_backend, running, seed=0)
    assert rows[0].status == "pass"


# -- planted bugs: the program's arguments or values made wrong, each fails where the honest ones pass ----------

class Planted:
    """`backend`'s program built from arguments `alter(arguments)` and run on values `values(quantization)`."""

    def __init__(self, backend, alter=lambda arguments: arguments, values=lambda quantization: quantization):
        self.backend, self.alter, self.values = backend, alter, values
        self.name = f"{backend.name}-planted"
        for member in ("post_ops", "data_types", "rounding", "accumulation", "deviations"):
            if hasattr(backend, member):
                setattr(self, member, getattr(backend, member))

    def version(self):
        return self.backend.version()

    def availability(self):
        return None

    def supports(self, spec):
        return self.backend.supports(spec)

    def run(self, spec, x, w, b, dy, extras=None):
        program = self.backend.program(spec)
        step = Program(program.function, self.alter(dict(program.arguments))).build()
        return step(x, w, b, dy, operands=extras.operands, quantization=self.values(dict(extras.quantization)))


def _post_op(index, **changes):
    def alter(arguments):
        steps = [dict(step) for step in arguments["post_ops"]]
        steps[index].update({key: value(steps[index]) if callable(value) else value for key, value in changes.items()})
        return {**arguments, "post_ops": tuple(tuple(step.items()) for step in steps)}
    return alter


PLANTED = {  # bug: (chain, alter); relu6 needs linear:8 first: the grid's outputs stay within +-2
    "relu6 as Clamp(0, 5)": ("linear:8+clip:0:6", _post_op(1, beta=5.0)),
    "sum scale ignored": ("sum:0.5", _post_op(0, scale=1.0)),
    "Gelu tanh where erf is declared": ("gelu_erf", _post_op(0, kind="gelu_tanh")),
    "sum zero point on the wrong side": ("sum:0.5:3+relu", _post_op(0, zero_point=lambda step: -step["zero_point"])),
}


@pytest.mark.parametrize("bug", PLANTED)
def test_planted_chain_bug_fails_where_the_honest_program_passes(ov_backend, bug):
    chain, alter = PLANTED[bug]
    for geometry in ("g1mb2ic3iw10oc4ow10kw3pw1", "g2mb2ic4ih9iw9oc6oh5ow5kh3kw3sh2sw2ph1pw0"):
        spec = _chain(chain, geometry=geometry)
        _, honest = evaluate_case(ov_backend, spec, seed=0)
        _, planted = evaluate_case(Planted(ov_backend, alter=alter), spec, seed=0)
        assert honest[0].status == "pass"
        assert planted[0].status == "fail" and planted[0].err_ratio > 10, (bug, geometry, planted[0].err_ratio)


def _per_tensor_weight_scale(quantization):
    scale = np.asarray(quantization["w_scale"])
    return {**quantization, "w_scale": np.full_like(scale, scale.ravel()[0])}


def _x_zero_point_on_the_wrong_side(quantization):
    return {**quantization, "x_zero_point": -np.asarray(quantization["x_zero_point"])}


@pytest.mark.parametrize(("bug", "values", "picks"), [
    ("per-channel w scales applied per tensor", _per_tensor_weight_scale,
     lambda spec, q: "w_scale" in spec.quantization.per_channel and len(set(q["w_scale"])) > 1),
    ("x zero point on the wrong side", _x_zero_point_on_the_wrong_side,
     lambda spec, q: spec.quantization.x_zero_point != 0),
])
def test_planted_int8_bug_fails_where_the_honest_program_passes(int8_backend, bug, values, picks):
    cases = [case.spec for case in int8() if case.spec.dtype in int8_backend.data_types
             and picks(case.spec, make_inputs(case.spec, 0).quantization)
             and case.name != "window in padding"]  # its deviation aside, it sees x - zp = 0 whichever side
    assert len(cases) >= 2
    for spec in cases:
        _, honest = evaluate_case(int8_backend, spec, seed=0)
        _, planted = evaluate_case(Planted(int8_backend, values=values), spec, seed=0)
        assert honest[0].status == "pass"
        assert planted[0].status == "fail" and planted[0].max_steps > 1, (bug, spec.descriptor, planted[0].steps)
