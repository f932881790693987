"""The paddle backend: contract suite, crops by slicing, probed dtype limits, a smoke sweep."""

from __future__ import annotations

import numpy as np
import pytest

from convparity.harness.backends.manager import get_manager
from convparity.harness.cases.inputs import make_inputs
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.testing.contract_suite import BackendContract
from tests.plugins.backend_checks import (
    EXTRA_SPECS,
    check_usable_in_own_tox_env,
    disagreements,
    smoke_sweep,
)

pytestmark = pytest.mark.framework("paddle")


class TestPaddle(BackendContract):
    backend_name = "paddle"


@pytest.fixture(scope="module")
def paddle_backend():
    return get_manager().backends()["paddle"]


def test_usable_in_its_tox_env(paddle_backend):
    check_usable_in_own_tox_env(paddle_backend, "paddle")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_agrees_on_negative_and_one_sided_padding_groups_and_dilation(paddle_backend, dtype):
    assert disagreements(paddle_backend, EXTRA_SPECS, dtype) == []


def test_crops_take_the_negative_part_of_each_pad(paddle_backend):
    """An identity 1x1 convolution shows the slice: pads (-2, 1) and (0, -3) keep x[:, :, 2:, :5], then add a
    zero row at the end; dx is dy back in the kept positions and zero in the cropped ones."""
    spec = ConvSpec(batch=2, in_channels=3, out_channels=3, input_size=(9, 8), kernel_size=(1, 1),
                    padding=((-2, 1), (0, -3)), bias=False, dtype="float64")
    x = np.arange(2 * 3 * 9 * 8, dtype=np.float64).reshape(spec.x_shape)
    dy = np.arange(np.prod(spec.y_shape), dtype=np.float64).reshape(spec.y_shape)
    y, dx, _, db = paddle_backend.run(spec, x, np.eye(3).reshape(spec.w_shape), None, dy)
    np.testing.assert_array_equal(y, np.pad(x[:, :, 2:, :5], ((0, 0), (0, 0), (0, 1), (0, 0))))
    kept = np.zeros_like(x)
    kept[:, :, 2:, :5] = dy[:, :, :-1]
    np.testing.assert_array_equal(dx, kept)
    assert db is None


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_dtypes_without_a_cpu_kernel_carry_paddles_reason(paddle_backend, dtype):
    spec = ConvSpec(batch=1, in_channels=2, out_channels=2, input_size=(6,), kernel_size=(3,), dtype=dtype)
    reason = paddle_backend.supports(spec)
    assert reason.startswith(f"dtype {dtype}: Paddle ")
    assert f"Selected wrong DataType `{dtype}`" in reason and "float64, float32" in reason


def test_limits_list_only_what_paddle_refuses(paddle_backend):
    assert [limit.condition for limit in paddle_backend.limits] == ["transposed convolution", "dtype float16",
                                                                   "dtype bfloat16"]


def test_float64_is_computed_in_float64(paddle_backend):
    spec = ConvSpec(batch=2, in_channels=3, out_channels=2, input_size=(7, 6), kernel_size=(3, 3), dtype="float64")
    inputs = make_inputs(spec, 0)
    y, dx, dw, db = paddle_backend.run(spec, inputs.x, inputs.w, inputs.b, inputs.dy)
    assert {t.dtype for t in (y, dx, dw, db)} == {np.dtype(np.float64)}
    exact = np.einsum("nchw,ochw->no", inputs.x[:, :, :3, :3], inputs.w) + inputs.b
    np.testing.assert_allclose(y[:, :, 0, 0], exact, rtol=1e-14, atol=1e-14)


def test_smoke_sweep_through_the_cli(tmp_path):
    code, results = smoke_sweep("paddle", tmp_path / "run")
    assert set(results["status"]) == {"pass"}, results[results["status"] != "pass"]
    assert code == 0
