"""The quantized ONNX Runtime backends: QLinearConv, ConvInteger, the QDQ graph fused (ORT_ENABLE_ALL) and unfused
(ORT_DISABLE_ALL): the int8 grid with every non-pass explained, the rounding they declare measured at exact ties,
agreement with onnx.reference where both compute a case, which QDQ graphs ORT fuses, and planted wrong graphs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from convparity import parse_case
from convparity.harness import cli
from convparity.harness.backends.manager import get_manager
from convparity.harness.cases.builtin_grids import int8
from convparity.harness.cases.inputs import make_inputs
from convparity.harness.evaluation.verdict import evaluate_case
from convparity.harness.results import read_results
from convparity.harness.testing.contract_suite import BackendContract
from convparity.reference_impl.quantized import quantized_accumulator
from tests.plugins.conftest import framework_module
from tests.plugins.test_onnxruntime import Planted, _set_constant

pytestmark = pytest.mark.framework("onnxruntime")

QUANTIZED = ("onnxruntime-qlinearconv", "onnxruntime-convinteger", "onnxruntime-qdq", "onnxruntime-qdq-unfused")


class TestQLinearConv(BackendContract):
    backend_name = "onnxruntime-qlinearconv"
    grid = "int8"
    dtypes = ("float32",)  # the int8 grid's cases keep their own data types


class TestConvInteger(TestQLinearConv):
    backend_name = "onnxruntime-convinteger"


class TestQdq(TestQLinearConv):
    backend_name = "onnxruntime-qdq"


class TestQdqUnfused(TestQLinearConv):
    backend_name = "onnxruntime-qdq-unfused"


def backend(name):
    return get_manager().backends()[name]


# Why each backend leaves an int8 case unsupported (a part of the reason every such row must hold).
EXPLAINED = {
    "onnxruntime-qlinearconv": ("NOT_IMPLEMENTED : Could not find an implementation for QLinearConv(10)",
                                "declares the fused post-ops it computes (none)", "computes float64"),
    "onnxruntime-convinteger": ("computes float64, float32, float16, bfloat16, int8:int8:int32",
                                "declares the fused post-ops it computes (none)"),
    "onnxruntime-qdq": ("computes float64, float32, float16, bfloat16, int8, uint8, uint8:int8:uint8",
                        "does not fuse into QLinearConv"),
    "onnxruntime-qdq-unfused": ("computes float64",),
}


def test_int8_grid_every_non_pass_is_explained(tmp_path):
    arguments = ["run", "-g", "int8", "-o", str(tmp_path / "run")]
    assert cli.main(arguments + [word for name in QUANTIZED for word in ("-b", name)]) == 0
    y = read_results(tmp_path / "run")
    counts = y.groupby(["backend", "status"]).size().to_dict()
    # the grid's last case (a dilated window reading only padding, uint8:int8:uint8) passes wherever uint8 runs
    assert counts == {("onnxruntime-qlinearconv", "pass"): 20, ("onnxruntime-qlinearconv", "unsupported"): 10,
                      ("onnxruntime-convinteger", "pass"): 2, ("onnxruntime-convinteger", "unsupported"): 28,
                      ("onnxruntime-qdq", "pass"): 21, ("onnxruntime-qdq", "unsupported"): 9,
                      ("onnxruntime-qdq-unfused", "pass"): 28, ("onnxruntime-qdq-unfused", "unsupported"): 2}
    for row in y[y["status"] == "unsupported"].itertuples():
        assert any(reason in row.message for reason in EXPLAINED[row.backend]), (row.backend, row.message)
    # ties (power-of-two multipliers with odd zero points) pass only as the declared rounding rounds them
    ties = y[y["steps"].str.contains(r"tie [1-9]", regex=True, na=False)]
    assert set(ties["backend"]) == {"onnxruntime-qlinearconv", "onnxruntime-qdq", "onnxruntime-qdq-unfused"}


# -- rounding: real / y_scale rounded half to even, then y's zero point added (ONNX QuantizeLinear's definition) ----

def _tie_spec(dtype, y_zero_point):
    """acc = x - 106 for x = 100..111 (w = 1, 1x1), y_scale 2: v = acc / 2 = -3, -2.5, ..., 2.5 (six exact ties)."""
    spec = parse_case(f"--attr-scales=dst:common:2 --attr-zero-points=src:common:106+dst:common:{y_zero_point} "
                      "g1mb1ic1iw12oc1ow12kw1", dtype=dtype).spec
    return spec.replace(bias=False)


@pytest.mark.parametrize("name", ["onnxruntime-qlinearconv", "onnxruntime-qdq", "onnxruntime-qdq-unfused"])
@pytest.mark.parametrize("y_zero_point", [100, 101])
def test_ties_round_before_the_zero_point_is_added(name, y_zero_point):
    spec = _tie_spec("uint8:int8:uint8", y_zero_point)
    x = np.arange(100, 112, dtype=np.uint8).reshape(spec.x_shape)
    w = np.ones(spec.w_shape, np.int8)
    q = {"x_scale": 1.0, "w_scale": 1.0, "y_scale": 2.0, "x_zero_point": 106, "w_zero_point": 0,
         "y_zero_point": y_zero_point}
    extras = make_inputs(spec, 0).extras
    y, *_ = backend(name).run(spec, x, w, None, None, extras=dataclasses.replace(extras, quantization=q))
    # v = -3 -2.5 -2 -1.5 -1 -0.5 0 0.5 1 1.5 2 2.5: half to even on v, whatever the zero point's parity
    assert (y.ravel().astype(int) - y_zero_point).tolist() == [-3, -2, -2, -2, -1, 0, 0, 0, 1, 2, 2, 2]


@pytest.mark.parametrize("name", ["onnxruntime-qlinearconv", "onnxruntime-qdq"])
def test_declaring_half_even_would_fail_at_the_ties(name):
    """The declaration matters: with an odd zero point, half_even on the code (zp added first) is the other code."""
    spec = _tie_spec("uint8:int8:uint8", 101)
    honest = backend(name)
    _, rows = evaluate_case(honest, spec, seed=0)
    assert [row.status for row in rows] == ["pass"] and rows[0].steps.endswith("tie 6, off-tie 0, more 0")
    claimed = Planted(honest, lambda model: None)
    claimed.rounding = {}
    _, rows = evaluate_case(claimed, spec, seed=0)
    assert rows[0].status == "fail" and "off by steps the declared rounding half_even" in rows[0].message


# -- onnx.reference computes the same models --------------------------------------------------------------------

@pytest.fixture
def captured_models(monkeypatch):
    """The ONNX models (ModelProto) the backends hand to onnxruntime.InferenceSession, in order."""
    ort, onnx = framework_module("onnxruntime"), framework_module("onnx")
    honest = ort.InferenceSession
    models = []

    def recording(model, *args, **kwargs):
        models.append(onnx.load_from_string(model))
        return honest(model, *args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", recording)
    return models


def _onnx_reference(model, x):
    return framework_module("onnx.reference").ReferenceEvaluator(model).run(None, {"x": x})[0]


def _exact_ties(spec, inputs):
    """Where real / y_scale is exactly k + 1/2 (the accumulator exact, the scales as binary fractions)."""
    q = inputs.quantization
    acc = quantized_accumulator(inputs.x, inputs.w, stride=spec.stride, padding=spec.padding,
                                dilation=spec.dilation, groups=spec.groups, x_zero_point=q["x_zero_point"],
                                w_zero_point=q["w_zero_point"])
    total = acc + (0 if inputs.b is None else inputs.b.reshape((1, -1) + (1,) * spec.rank))
    scale = np.asarray(q["x_scale"], np.float64) * np.asarray(q["w_scale"], np.float64).reshape(
        (1, -1) + (1,) * spec.rank) / q["y_scale"]
    v = total * scale  # exact for the grid's power-of-two scales (no tie elsewhere)
    return v - np.floor(v) == 0.5


@pytest.mark.parametrize("name", ["onnxruntime-qlinearconv", "onnxruntime-convinteger"])
def test_agrees_with_onnx_reference_where_both_compute(name, captured_models):
    """ConvInteger: identical. QLinearConv: identical but at exact ties with an odd y zero point, where onnx.reference
    adds the zero point before np.round (half to even on the code) and ONNX Runtime after (QuantizeLinear's order).
    Left out: per-channel w_scale on ranks 1 and 3, which onnx.reference reshapes for rank 2 only."""
    compared = ties = 0
    for case in int8():
        spec = case.spec
        if spec.dtype not in backend(name).data_types or backend(name).supports(spec) or spec.post_ops or (
                "w_scale" in spec.quantization.per_channel and spec.rank != 2):
            continue
        inputs = make_inputs(spec, 0)
        y, *_ = backend(name).run(spec, inputs.x, inputs.w, inputs.b, inputs.dy, extras=inputs.extras)
        expected = _onnx_reference(captured_models[-1], inputs.x)
        differ = y != expected
        if name == "onnxruntime-convinteger" or inputs.quantization["y_zero_point"] % 2 == 0:
            assert not differ.any(), case.name
        else:
            odd_ties = _exact_ties(spec, inputs)
            assert np.array_equal(differ, odd_ties), case.name
            assert np.all(np.abs(y.astype(int) - expected.astype(int))[differ] == 1)
            ties += int(odd_ties.sum())
        compared += 1
    assert compared == (2 if name == "onnxruntime-convinteger" else 18)
    assert ties == (0 if name == "onnxruntime-convinteger" else 171)


# -- which QDQ graphs ORT_ENABLE_ALL fuses into QLinearConv ---------------------------------------------------------

def _qdq(chain="", dtype="uint8:int8:uint8", y_scale="0.03125", zero_points="dst:common:0"):
    options = f"--attr-post-ops={chain} " if chain else ""
    return parse_case(f"{options}--attr-scales=src:common:0.5+wei:common:0.25+dst:common:{y_scale} "
                      f"--attr-zero-points={zero_points} g1mb2ic16ih6iw6oc8oh6ow6kh3kw3ph1pw1", dtype=dtype).spec


@pytest.mark.parametrize(("spec", "fused", "refusal"), [
    (_qdq(), True, None),
    (_qdq(dtype="int8", zero_points="dst:common:-128"), True, None),  # int8 activations: session.qdqisint8allowed=1
    (_qdq("relu"), True, None),  # y's zero point is its lowest code: the Relu is y's saturation, removed
    (_qdq("relu", zero_points="dst:common:5"), False, "does not fuse into QLinearConv"),
    (_qdq("relu:0.1"), False, "does not fuse into QLinearConv"),
    (_qdq("clip:0:6"), False, "does not fuse into QLinearConv"),  # y reaches 255 / 32 = 7.97: the Clip clips inside
    (_qdq("clip:0:7.96875"), True, None),  # exactly y's range
    (_qdq("clip:-1:100"), True, None),
    (_qdq(dtype="uint8:int8:int8", zero_points="dst:common:-128"), False, "onnxruntime-qdq computes"),
    (_qdq(dtype="int8", zero_points="src:per_dim_1+dst:common:-128"), False, "does not fuse into QLinearConv"),
    (_qdq(y_scale="1+dst:per_oc"), True, "fuses the QDQ graph into a QLinearConv that refuses it when run"),
], ids=lambda value: value.attribute_options if hasattr(value, "attribute_options") else str(value))
def test_qdq_fusion_is_read_from_the_optimized_graph(spec, fused, refusal):
    from convparity.plugins.onnxruntime_quantized import optimized_graph

    ops = optimized_graph(spec)
    assert ("QLinearConv" in ops) == fused, ops
    _, rows = evaluate_case(backend("onnxruntime-qdq"), spec, seed=0)
    if refusal is None:
        assert ops == ("Transpose", "QLinearConv", "Transpose")
        assert [row.status for row in rows] == ["pass"]
    else:
        assert [row.status for row in rows] == ["unsupported"] and refusal in rows[0].message
    _, rows = evaluate_case(backend("onnxruntime-qdq-unfused"), spec, seed=0)
    assert [row.status for row in rows] == ["pass"]


def test_per_channel_y_is_fused_then_refused_only_at_enable_all():
    """ORT 1.32's QDQ Conv selector fuses a per-output-channel QuantizeLinear (axis 1) into QLinearConv, whose kernel
    then refuses y's scale: the same valid model runs at ORT_DISABLE_ALL (y = 2 / [0.5, 0.25] = [4, 8])."""
    ort, onnx = framework_module("onnxruntime"), framework_module("onnx")
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    values = {"sx": np.float32(0.5), "zx": np.uint8(0), "w": np.ones((2, 1, 1, 1), np.int8), "sw": np.float32(1),
              "zw": np.int8(0), "sy": np.array([0.5, 0.25], np.float32), "zy": np.zeros(2, np.uint8)}
    nodes = [helper.make_node("DequantizeLinear", ["x", "sx", "zx"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "sw", "zw"], ["wd"]),
             helper.make_node("Conv", ["xd", "wd"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("QuantizeLinear", ["c", "sy", "zy"], ["y"], axis=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.UINT8, [1, 1, 1, 1])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.UINT8, [1, 2, 1, 1])],
                              initializer=[numpy_helper.from_array(v, k) for k, v in values.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    onnx.checker.check_model(model, full_check=True)
    x = np.full((1, 1, 1, 1), 4, np.uint8)

    def run(level):
        options = ort.SessionOptions()
        options.graph_optimization_level = level
        options.log_severity_level = 4
        return ort.InferenceSession(model.SerializeToString(), options).run(None, {"x": x})[0].ravel().tolist()

    assert run(ort.GraphOptimizationLevel.ORT_DISABLE_ALL) == [4, 8]
    with pytest.raises(Exception, match="QLinearConv : result zero point must be a scalar"):
        run(ort.GraphOptimizationLevel.ORT_ENABLE_ALL)


@pytest.mark.parametrize("chain", ["sum:0.5:3+relu", "batchnorm+relu", "add:f32:per_oc+clip:0:6", "gelu_erf",
                                   "linear:2:-1+tanh+mul:f32:per_tensor", "prelu:per_oc", "round"])
@pytest.mark.parametrize("dtype", ["uint8:int8:uint8", "int8:int8:int8", "uint8:int8:int8"])
def test_unfused_qdq_computes_chains_in_float32(chain, dtype):
    zero_points = "src:common:3+dst:common:5" if dtype.startswith("uint8") else "dst:common:-3"
    spec = parse_case(f"--attr-post-ops={chain} --attr-scales=src:common:0.1+wei:per_oc+dst:common:0.0123 "
                      f"--attr-zero-points={zero_points} g2mb2ic4ih9iw9oc6oh5ow5kh3kw3sh2sw2ph1pw0", dtype=dtype).spec
    _, rows = evaluate_case(backend("onnxruntime-qdq-unfused"), spec, seed=0)
    assert [row.status for row in rows] == ["pass"], rows[0].message


# -- planted bugs ----------------------------------------------------------------------------------------------

def _per_tensor_weight_scale(model):
    """The per-channel w_scale replaced by its first value for every channel (the scales applied per tensor)."""
    numpy_helper = framework_module("onnx").numpy_helper
    (scale,) = [t for t in model.graph.initializer if t.name == "w_scale"]
    values = numpy_helper.to_array(scale)
    _set_constant("w_scale", np.full_like(values, values.ravel()[0]))(model)


def _x_zero_point_on_the_wrong_side(model):
    """DequantizeLinear(x, s, zp) replaced by (zp - x) * s: the zero point subtracted on the wrong side."""
    helper, onnx = framework_module("onnx").helper, framework_module("onnx")
    (node,) = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == "x"]
    x, scale, zero_point = node.input
    output = node.output[0]
    replacement = [helper.make_node("Cast", [x], ["x_float"], to=onnx.TensorProto.FLOAT),
                   helper.make_node("Cast", [zero_point], ["zp_float"], to=onnx.TensorProto.FLOAT),
                   helper.make_node("Sub", ["zp_float", "x_float"], ["x_flipped"]),
                   helper.make_node("Mul", ["x_flipped", scale], [output])]
    index = list(model.graph.node).index(node)
    model.graph.node.remove(node)
    for offset, new in enumerate(replacement):
        model.graph.node.insert(index + offset, new)


PLANTED = {
    "per-channel w scales applied per tensor": (_per_tensor_weight_scale,
                                                lambda spec: "w_scale" in spec.quantization.per_channel),
    "x zero point subtracted on the wrong side": (_x_zero_point_on_the_wrong_side,
                                                  lambda spec: spec.quantization.x_zero_point != 0),
}


@pytest.mark.parametrize(("name", "bug"), [
    ("onnxruntime-qlinearconv", "per-channel w scales applied per tensor"),
    ("onnxruntime-qdq", "per-channel w scales applied per tensor"),
    ("onnxruntime-qdq-unfused", "per-channel w scales applied per tensor"),
    ("onnxruntime-qdq", "x zero point subtracted on the wrong side"),  # a QLinearConv node has no such node
    ("onnxruntime-qdq-unfused", "x zero point subtracted on the wrong side"),
])
def test_planted_bug_fails_where_the_honest_graph_passes(name, bug):
    plant, picks = PLANTED[bug]
    honest = backend(name)
    # a window that reads only padding sees x - zp = 0 whichever side zp is taken on: no case for these bugs
    cases = [case.spec for case in int8() if picks(case.spec) and case.spec.dtype in honest.data_types
             and honest.supports(case.spec) is None and case.name != "window in padding"]
    if bug.startswith("per-channel"):  # where the drawn scales differ from channel to channel
        cases = [spec for spec in cases if len(set(make_inputs(spec, 0).quantization["w_scale"])) > 1]
    assert len(cases) >= 2
    for spec in cases:
        _, rows = evaluate_case(honest, spec, seed=0)
        assert [row.status for row in rows] == ["pass"]
        _, rows = evaluate_case(Planted(honest, plant), spec, seed=0)
        assert rows[0].status == "fail" and rows[0].max_steps > 1, (bug, spec.descriptor, rows[0].steps)
