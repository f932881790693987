"""The onnxruntime and onnxruntime-unfused backends: contract suite, the ONNX model its program builds, probed limits,
forward-only rows; post-op chains: the epilogues grid, what ORT_ENABLE_ALL fuses, planted wrong graphs."""

from __future__ import annotations

import numpy as np
import pytest

from convparity import parse_case
from convparity.harness import cli
from convparity.harness.backends.manager import get_manager
from convparity.harness.backends.program import Program
from convparity.harness.cases.inputs import make_inputs
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.evaluation.verdict import evaluate_case
from convparity.harness.results import read_results
from convparity.harness.testing.contract_suite import BackendContract
from convparity.plugins.onnxruntime_graphs import FUSED_AT_ENABLE_ALL
from tests.plugins.backend_checks import EXTRA_SPECS, TRANSPOSED_SPECS, disagreements, smoke_sweep
from tests.plugins.conftest import framework_module

pytestmark = pytest.mark.framework("onnxruntime")


class TestOnnxRuntime(BackendContract):
    backend_name = "onnxruntime"
    # float64 and bfloat16 have no CPU Conv kernel: every case is unsupported (see the limits tests).
    dtypes = ("float32", "float16")


@pytest.fixture(scope="module")
def ort_backend():
    return get_manager().backends()["onnxruntime"]


@pytest.fixture
def onnx():
    return framework_module("onnx")


@pytest.fixture
def built_model(ort_backend, onnx, monkeypatch):
    """built_model(spec): the ONNX model the backend's program hands to onnxruntime.InferenceSession, parsed."""
    ort = framework_module("onnxruntime")
    session_of = ort.InferenceSession
    models = []

    def recording(model, *args, **kwargs):
        models.append(model)
        return session_of(model, *args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", recording)

    def build(spec):
        ort_backend.program(spec).build()
        (model,) = models[-1:]
        return onnx.load_from_string(model)

    return build


def test_model_is_one_valid_conv_node_with_onnx_pads(built_model, onnx):
    spec = ConvSpec(batch=2, in_channels=4, out_channels=6, input_size=(9, 10), kernel_size=(3, 2), stride=(2, 1),
                    dilation=(1, 2), padding=((1, 0), (2, 1)), groups=2, dtype="float16")
    model = built_model(spec)
    onnx.checker.check_model(model, full_check=True)
    (node,) = model.graph.node
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert node.op_type == "Conv" and list(node.input) == ["x", "w", "b"]
    assert attributes == {"kernel_shape": [3, 2], "strides": [2, 1], "dilations": [1, 2], "pads": [1, 2, 0, 1],
                          "group": 2}
    assert {i.type.tensor_type.elem_type for i in model.graph.input} == {onnx.TensorProto.FLOAT16}
    dims = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert dims == [2, 6, 4, 11]  # (9 + 1 - 3) // 2 + 1, 10 + 3 - 3 + 1


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_forward_agrees_on_one_sided_padding_groups_and_dilation(ort_backend, dtype):
    runnable = tuple(s for s in EXTRA_SPECS if ort_backend.supports(s.replace(dtype=dtype)) is None)
    assert len(runnable) == 2  # the three with negative pads are unsupported
    assert disagreements(ort_backend, runnable, dtype) == []


@pytest.mark.parametrize("dtype", ["float64", "bfloat16"])
def test_dtypes_without_a_conv_kernel_carry_onnxruntimes_reason(ort_backend, dtype):
    spec = ConvSpec(batch=1, in_channels=2, out_channels=2, input_size=(6, 6), kernel_size=(3, 3), dtype=dtype)
    reason = ort_backend.supports(spec)
    assert reason.startswith(f"dtype {dtype}: ONNX Runtime ")
    assert "Could not find an implementation for Conv" in reason


def test_negative_padding_carries_onnxruntimes_reason(ort_backend):
    cropped = EXTRA_SPECS[0].replace(dtype="float32")
    assert ort_backend.supports(cropped).startswith("negative padding (a crop): ONNX Runtime ")
    assert "pads must not contain negative values" in ort_backend.supports(cropped)


def test_limits_list_only_what_onnxruntime_refuses(ort_backend):
    assert [limit.condition for limit in ort_backend.limits] == [
        "dtype float64", "dtype bfloat16", "negative padding (a crop)",
        "transposed, dtype float64", "transposed, dtype bfloat16", "transposed, negative padding",
        "transposed, output_padding >= stride (below the dilation)",
    ]


def test_transposed_model_is_one_valid_conv_transpose_node(built_model, onnx):
    spec = TRANSPOSED_SPECS[0].replace(groups=2, dtype="float16")  # k3 s2 p1 output_padding 1, x (2, 4, 4, 5)
    model = built_model(spec)
    onnx.checker.check_model(model, full_check=True)
    (node,) = model.graph.node
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert node.op_type == "ConvTranspose" and list(node.input) == ["x", "w", "b"]
    assert attributes == {"kernel_shape": [3, 3], "strides": [2, 2], "dilations": [1, 1], "pads": [1, 1, 1, 1],
                          "group": 2, "output_padding": [1, 1]}
    weight = [d.dim_value for d in model.graph.input[1].type.tensor_type.shape.dim]
    assert weight == [4, 3, 3, 3]  # (C_in, C_out/groups, *k)
    dims = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert dims == [2, 6, 8, 10]  # 3 * 2 - 2 + 3 + 1, 4 * 2 - 2 + 3 + 1


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_transposed_forward_agrees(ort_backend, dtype):
    runnable = [spec for spec in TRANSPOSED_SPECS if ort_backend.supports(spec.replace(dtype=dtype)) is None]
    assert runnable == [TRANSPOSED_SPECS[i] for i in (0, 1, 4, 5)]  # not the negative pad, not op >= stride
    assert disagreements(ort_backend, tuple(runnable), dtype) == []


def test_transposed_limits_carry_onnxruntimes_reasons(ort_backend):
    reasons = [ort_backend.supports(spec.replace(dtype="float32")) for spec in TRANSPOSED_SPECS]
    assert "Attribute pads must not contain negative values" in reasons[2]
    # ONNX Runtime's own check admits output_padding < max(stride, dilation), then its shape computation refuses it.
    assert "output_padding (1) may be too large for stride (1)" in reasons[3]
    assert "Could not find an implementation for ConvTranspose" in ort_backend.supports(TRANSPOSED_SPECS[0].replace(
        dtype="float64"))


def test_run_returns_y_only(ort_backend):
    spec = ConvSpec(batch=1, in_channels=2, out_channels=3, input_size=(5,), kernel_size=(2,), bias=False)
    inputs = make_inputs(spec, 0)
    y, dx, dw, db = ort_backend.run(spec, inputs.x, inputs.w, inputs.b, inputs.dy)
    assert dx is None and dw is None and db is None
    expected = np.stack([inputs.x[0, :, i:i + 2] for i in range(4)]).astype(np.float64)  # (4, C, 2)
    np.testing.assert_allclose(y[0].T, np.einsum("tck,ock->to", expected, inputs.w), rtol=1e-6)


def test_smoke_sweep_through_the_cli(tmp_path):
    code, results = smoke_sweep("onnxruntime", tmp_path / "run")
    assert code == 0
    float32 = results[results["dtype"] == "float32"]
    assert set(float32.loc[float32["tensor"] == "y", "status"]) == {"pass"}
    gradients = float32[float32["tensor"] != "y"]
    assert set(gradients["status"]) == {"unsupported"}
    assert gradients["message"].str.contains("forward only").all()
    float64 = results[results["dtype"] == "float64"]
    assert set(float64["status"]) == {"unsupported"}
    assert float64["message"].str.contains("Could not find an implementation for Conv").all()


# -- post-op chains: onnxruntime (ORT_ENABLE_ALL) and onnxruntime-unfused (ORT_DISABLE_ALL) ---------------------

class TestOnnxRuntimeUnfused(BackendContract):
    backend_name = "onnxruntime-unfused"
    dtypes = ("float32",)


@pytest.fixture(scope="module")
def unfused_backend():
    return get_manager().backends()["onnxruntime-unfused"]


def _chain(text, dtype="float32", geometry="g2mb2ic4ih9iw9oc6oh5ow5kh3kw3sh2sw2ph1pw0"):
    """A spec of the epilogues grid's third shape (grouped, strided, one-sided padding) with the chain `text`."""
    return parse_case(f"--attr-post-ops={text} {geometry}", dtype=dtype).spec


def test_epilogues_grid_on_both_levels_through_the_cli(tmp_path):
    """Every post-op and chain of the epilogues grid agrees in float32 on both optimization levels; float64 has no
    Conv kernel; the gradients (and the operands' ones) are forward-only rows."""
    code = cli.main(["run", "-b", "onnxruntime", "-b", "onnxruntime-unfused", "-g", "epilogues", "--dtype", "float32",
                     "--dtype", "float64", "-o", str(tmp_path / "run")])
    assert code == 0
    results = read_results(tmp_path / "run")
    y = results[results["tensor"] == "y"]
    counts = y.groupby(["backend", "dtype", "status"]).size().to_dict()
    assert counts == {("onnxruntime", "float32", "pass"): 114, ("onnxruntime", "float64", "unsupported"): 114,
                      ("onnxruntime-unfused", "float32", "pass"): 114,
                      ("onnxruntime-unfused", "float64", "unsupported"): 114}
    assert y.loc[y["dtype"] == "float64", "message"].str.contains("Could not find an implementation for Conv").all()
    gradients = results[(results["tensor"] != "y") & (results["dtype"] == "float32")]
    assert set(gradients["status"]) == {"unsupported"} and gradients["message"].str.contains(" computes no d").all()


@pytest.mark.parametrize("chain", ["gelu_tanh", "hardswish:0.16666667:0.5", "mish", "soft_relu:2", "pow:0.5:2",
                                   "sum:0.5:3+relu", "batchnorm+swish:2", "prelu:per_oc", "div:f32:per_oc+round"])
def test_float16_chains_agree(ort_backend, unfused_backend, chain):
    """In float16 ONNX Runtime casts the nodes without a float16 kernel to float32: still within the float16 bound."""
    spec = _chain(chain)
    assert disagreements(ort_backend, (spec,), "float16") == []
    assert disagreements(unfused_backend, (spec,), "float16") == []


@pytest.fixture
def optimized_graph(tmp_path):
    """optimized_graph(spec, optimization): the op types ONNX Runtime runs for the backend's model of `spec`."""

    def graph(spec, optimization):
        backend = get_manager().backends()["onnxruntime" if optimization == "all" else "onnxruntime-unfused"]
        program = backend.program(spec)
        path = tmp_path / f"{optimization}.onnx"
        Program(program.function, {**program.arguments, "optimized_model": str(path)}).build()
        return [node.op_type for node in framework_module("onnx").load(str(path)).graph.node]

    return graph


@pytest.mark.parametrize(("chain", "fused", "unfused"), [
    ("relu", ["FusedConv"], ["Conv", "Relu"]),
    ("relu:0.1", ["FusedConv"], ["Conv", "LeakyRelu"]),
    ("clip:0:6", ["FusedConv"], ["Conv", "Clip"]),
    ("logistic", ["FusedConv"], ["Conv", "Sigmoid"]),
    ("tanh", ["FusedConv"], ["Conv", "Tanh"]),
    ("hardsigmoid:0.2:0.5", ["FusedConv"], ["Conv", "HardSigmoid"]),
    ("sum", ["FusedConv"], ["Conv", "Add"]),  # the residual becomes FusedConv's Z input
    ("sum+relu", ["FusedConv"], ["Conv", "Add", "Relu"]),
    ("swish:1", ["Conv", "QuickGelu"], ["Conv", "Sigmoid", "Mul"]),
    ("swish:2", ["Conv", "QuickGelu"], ["Conv", "Mul", "Sigmoid", "Mul"]),
    ("elu:1", ["Conv", "Elu"], ["Conv", "Elu"]),
    ("gelu_erf", ["Conv", "Gelu"], ["Conv", "Gelu"]),
    ("add:f32:per_oc", ["Conv", "Add"], ["Conv", "Add"]),  # a per-channel operand: no Z input
    ("batchnorm+relu", ["Conv", "BatchNormalization", "Relu"], ["Conv", "BatchNormalization", "Relu"]),
])
def test_enable_all_fuses_what_the_module_says(optimized_graph, chain, fused, unfused):
    spec = _chain(chain)
    assert optimized_graph(spec, "all") == fused
    assert optimized_graph(spec, "disable") == unfused
    kinds = {op.function for op in spec.post_ops}
    assert (fused != ["Conv"] + unfused[1:]) == kinds.issubset(FUSED_AT_ENABLE_ALL)


def test_chain_model_is_onnx_nodes_with_operands_as_graph_inputs(built_model, onnx):
    model = built_model(_chain("batchnorm+sum:0.5:3+hardswish:0.16666667:0.5+mul:f32:per_oc+relu:0.25"))
    onnx.checker.check_model(model, full_check=True)
    assert [node.op_type for node in model.graph.node] == [
        "Conv", "BatchNormalization", "Sub", "Mul", "Add", "HardSwish", "Mul", "LeakyRelu"]
    inputs = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    assert inputs == {"x": [2, 4, 9, 9], "w": [6, 2, 3, 3], "b": [6], "post0_mean": [6], "post0_var": [6],
                      "post0_gamma": [6], "post0_beta": [6], "post1": [2, 6, 5, 5], "post3": [1, 6, 1, 1]}
    constants = {t.name: onnx.numpy_helper.to_array(t).item() for t in model.graph.initializer}
    assert constants == {"post1_zero_point": 3.0, "post1_scale": 0.5}
    attributes = {node.op_type: {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
                  for node in model.graph.node[1:]}
    assert attributes["BatchNormalization"] == {"epsilon": pytest.approx(1e-5)}
    assert attributes["LeakyRelu"] == {"alpha": 0.25}
    assert model.graph.node[-1].output == ["y"]


def test_hardswish_other_than_pytorchs_is_x_times_hardsigmoid(built_model):
    model = built_model(_chain("hardswish:0.25:0.5"))
    assert [node.op_type for node in model.graph.node] == ["Conv", "HardSigmoid", "Mul"]


# -- planted bugs: each wrong graph fails; the honest graphs pass the same cases ---------------------------------

class Planted:
    """A backend that builds `backend`'s model, rewrites it with `plant(model)` (an onnx ModelProto), then runs it:
    the same declarations, a fresh session per call (no cached honest one)."""

    def __init__(self, backend, plant):
        self.backend, self.plant = backend, plant
        self.name = f"{backend.name}-planted"
        for member in ("post_ops", "data_types", "rounding", "accumulation", "limits", "deviations"):
            if hasattr(backend, member):
                setattr(self, member, getattr(backend, member))

    def version(self):
        return self.backend.version()

    def availability(self):
        return None

    def supports(self, spec):
        return self.backend.supports(spec)

    def run(self, spec, x, w, b, dy, extras=None):
        ort, onnx = framework_module("onnxruntime"), framework_module("onnx")
        honest = ort.InferenceSession

        def planted(model, *args, **kwargs):
            proto = onnx.load_from_string(model)
            self.plant(proto)
            return honest(proto.SerializeToString(), *args, **kwargs)

        ort.InferenceSession = planted
        try:
            step = self.backend.program(spec).build()
            return step(x, w, b, dy, **({} if extras is None else {"operands": extras.operands,
                                                                   "quantization": extras.quantization}))
        finally:
            ort.InferenceSession = honest


def _set_constant(name, value):
    def plant(model):
        numpy_helper = framework_module("onnx").numpy_helper
        (tensor,) = [t for t in model.graph.initializer if t.name == name]
        tensor.CopyFrom(numpy_helper.from_array(np.asarray(value, numpy_helper.to_array(tensor).dtype), name))
    return plant


def _relu6_clips_at_5(model):
    _set_constant("post1_high", 5.0)(model)


def _gelu_tanh_for_erf(model):
    helper = framework_module("onnx").helper
    (gelu,) = [node for node in model.graph.node if node.op_type == "Gelu"]
    del gelu.attribute[:]
    gelu.attribute.append(helper.make_attribute("approximate", "tanh"))


def _zero_point_on_the_wrong_side(model):
    (sub,) = [node for node in model.graph.node if node.op_type == "Sub"]
    sub.input[0], sub.input[1] = sub.input[1], sub.input[0]


# The grid's outputs stay within about +-2 (inputs in (-1, 1), weights scaled by 1/sqrt(fan_in)): relu6 alone never
# reaches 6, so a Clip(0, 5) would pass it; linear:8 first takes the values past 6.
PLANTED = {
    "relu6 as Clip(0, 5)": ("linear:8+clip:0:6", _relu6_clips_at_5),
    "sum scale ignored": ("sum:0.5", _set_constant("post0_scale", 1.0)),
    "Gelu tanh where erf is declared": ("gelu_erf", _gelu_tanh_for_erf),
    "sum zero point subtracted on the wrong side": ("sum:0.5:3+relu", _zero_point_on_the_wrong_side),
}


@pytest.mark.parametrize("bug", PLANTED)
@pytest.mark.parametrize("name", ["onnxruntime", "onnxruntime-unfused"])
def test_planted_bug_fails_where_the_honest_graph_passes(name, bug):
    chain, plant = PLANTED[bug]
    backend = get_manager().backends()[name]
    for geometry in ("g1mb2ic3iw10oc4ow10kw3pw1", "g2mb2ic4ih9iw9oc6oh5ow5kh3kw3sh2sw2ph1pw0"):
        spec = _chain(chain, geometry=geometry)
        _, honest = evaluate_case(backend, spec, seed=0)
        _, planted = evaluate_case(Planted(backend, plant), spec, seed=0)
        assert [row.status for row in honest if row.tensor == "y"] == ["pass"]
        (row,) = [row for row in planted if row.tensor == "y"]
        assert row.status == "fail" and row.err_ratio > 10, (bug, geometry, row.err_ratio, row.message)
