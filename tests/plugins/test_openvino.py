"""The openvino backend: contract suite, the model, precision really f32, the float64 limit, forward-only rows."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from convparity.harness.backends.manager import get_manager
from convparity.harness.cases.inputs import make_inputs
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.testing.contract_suite import BackendContract
from convparity.plugins.openvino_backend import convolution_precision
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
