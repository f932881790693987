"""The paddle backend: contract suite, crops by slicing, probed dtype limits, a smoke sweep; post-op chains (the
`epilogues` grid and the kinds it leaves out), the float32 attributes behind the float64 deviations, and a planted
epilogue bug the suite must catch."""

from __future__ import annotations

import numpy as np
import pytest

from convparity.harness.backends.manager import get_manager
from convparity.harness.cases.inputs import make_inputs
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.testing.checks import check_case, grid_cases, judge_case
from convparity.harness.testing.contract_suite import BackendContract
from convparity.plugin import Program, program_arguments
from convparity.plugins.paddle_backend import PaddleBackend, paddle_conv
from tests.plugins.backend_checks import (
    EXTRA_SPECS,
    check_usable_in_own_tox_env,
    disagreements,
    smoke_sweep,
)
from tests.plugins.conftest import framework_module
from tests.plugins.epilogue_chains import ALL_KINDS, EVERY_KIND, EXTRA_CHAINS, chain_case, kinds

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


# -- post-op chains ----------------------------------------------------------------------------------------


class TestPaddleEpilogues(BackendContract):
    """Every post-op kind and the grid's chains on three shapes, in float64 and float32 (Paddle's CPU kernels)."""

    backend_name = "paddle"
    grid = "epilogues"


def test_declares_every_post_op_kind_and_the_chains_reach_them(paddle_backend):
    assert set(paddle_backend.post_ops) == ALL_KINDS == kinds(EXTRA_CHAINS + EVERY_KIND)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("chain", EXTRA_CHAINS + EVERY_KIND)
def test_chains_beyond_the_grid(paddle_backend, chain, dtype):
    """pow, binary_div, clip with other bounds, other alphas, whole-tensor operands: pass, or xfail as declared."""
    check_case(paddle_backend, chain_case(chain, dtype))


def test_float64_parameters_are_rounded_to_float32_outside_convparity():
    """The evidence of the float64 deviations, in Paddle alone: each kernel's result is the formula with its
    parameter rounded to float32, not with the parameter itself."""
    paddle = framework_module("paddle")
    functional = paddle.nn.functional
    x = np.linspace(-3.0, 3.0, 25)
    t = paddle.to_tensor(x, dtype="float64")
    zeros, ones = (paddle.to_tensor(np.full(25, v), dtype="float64") for v in (0.0, 1.0))

    def f32(value):
        return float(np.float32(value))

    checks = {
        "hardsigmoid slope": (functional.hardsigmoid(t, slope=0.16666667, offset=0.5),
                              lambda p: np.clip(p * x + 0.5, 0, 1), 0.16666667),
        "elu alpha": (functional.elu(t, alpha=0.3), lambda p: np.where(x > 0, x, p * np.expm1(x)), 0.3),
        "batch_norm epsilon": (functional.batch_norm(t.reshape([1, 25]), zeros, ones, training=False, epsilon=1e-5,
                                                     data_format="NC").reshape([25]),
                               lambda p: x / np.sqrt(1 + p), 1e-5),
        "pow exponent": (paddle.pow(paddle.abs(t), 0.1), lambda p: np.abs(x) ** p, 0.1),
    }
    for name, (got, formula, parameter) in checks.items():
        got = got.numpy()
        np.testing.assert_allclose(got, formula(f32(parameter)), rtol=1e-15, atol=1e-16, err_msg=name)
        assert np.abs(got - formula(parameter)).max() > 100 * np.finfo(np.float64).eps * np.abs(got).max(), name


@pytest.mark.parametrize(("rounded", "exact"), [("elu:0.3", "elu:0.25"), ("abs+pow:1:0.1", "abs+pow:1:0.125"),
                                                ("hardsigmoid:0.16666667:0.5", "hardsigmoid:0.125:0.5"),
                                                ("batchnorm:0.001", "batchnorm:0.0009765625")])
def test_float64_deviations_cover_exactly_the_parameters_float32_cannot_hold(paddle_backend, rounded, exact):
    assert judge_case(paddle_backend, chain_case(rounded, "float64")).outcome == "xfail"
    assert judge_case(paddle_backend, chain_case(exact, "float64")).outcome == "pass"


class BatchnormWithoutEps(PaddleBackend):
    """A planted epilogue bug: F.batch_norm with epsilon 0, i.e. (v - mean) / sqrt(var) * gamma + beta."""

    deviations = ()

    def program(self, spec):
        arguments = program_arguments(spec)
        arguments["post_ops"] = tuple(tuple((key, 0.0 if key == "alpha" and dict(step)["kind"] == "batchnorm" else
                                             value) for key, value in step) for step in arguments["post_ops"])
        return Program(paddle_conv, arguments)

    def run(self, spec, x, w, b, dy, extras=None):
        return self.program(spec).build()(x, w, b, dy, operands=extras.operands)


def test_a_planted_batchnorm_without_eps_fails_where_paddle_passes(paddle_backend):
    """Dropping eps = 1e-5 against variances from 0.5 to 2 moves y by 2.5e-6 to 1e-5 relative: every batchnorm case
    of the grid fails (err_ratio 1.1 to 7 in its worst tensor, y in 11 of 12), and Paddle passes them all."""
    cases = [case for case in grid_cases(["epilogues"], ["float32"]) if "batchnorm" in kinds((case.name.split()[0],))]
    assert len(cases) == 12
    for case in cases:
        assert judge_case(paddle_backend, case).outcome == "pass", case.name
        assert judge_case(BatchnormWithoutEps(), case).outcome == "fail", case.name
