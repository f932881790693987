"""The onnxruntime backend: contract suite, the ONNX model its program builds, probed limits, forward-only rows."""

from __future__ import annotations

import numpy as np
import pytest

from convparity.harness.backends.manager import get_manager
from convparity.harness.cases.inputs import make_inputs
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.testing.contract_suite import BackendContract
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
