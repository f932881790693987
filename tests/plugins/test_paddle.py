"""The paddle backend: contract suite, crops by slicing, probed dtype limits, a smoke sweep."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("paddle")

from convparity.harness.backends.manager import get_manager  # noqa: E402
from convparity.harness.cases.inputs import make_inputs  # noqa: E402
from convparity.harness.cases.spec import ConvSpec  # noqa: E402
from convparity.harness.testing.contract_suite import BackendContract  # noqa: E402
from convparity.plugins.paddle_backend import crop_slices  # noqa: E402
from tests.plugins.backend_checks import (  # noqa: E402
    EXTRA_SPECS,
    check_usable_in_own_tox_env,
    disagreements,
    smoke_sweep,
)


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


def test_crop_slices_take_the_negative_part_of_each_pad():
    x = np.arange(2 * 3 * 9 * 8).reshape(2, 3, 9, 8)
    cropped = x[crop_slices(((-2, 1), (0, -3)))]
    np.testing.assert_array_equal(cropped, x[:, :, 2:, :5])


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
