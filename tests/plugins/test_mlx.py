"""The mlx backend: contract suite, layouts, probed limits, the float64 deviation, a smoke sweep; post-op chains
(the `epilogues` grid and the kinds it leaves out), the float64 chains computed exactly from MLX's float32
convolution, the 3-D batchnorm limit, and a planted epilogue bug the suite must catch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from convparity.harness.backends.manager import get_manager
from convparity.harness.cases.attributes import parse_post_ops
from convparity.harness.cases.descriptor import Case
from convparity.harness.cases.inputs import make_inputs
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.evaluation.verdict import evaluate_case
from convparity.harness.testing.checks import check_case, grid_cases, judge_case
from convparity.harness.testing.contract_suite import BackendContract
from convparity.plugin import Program, program_arguments
from convparity.plugins.mlx_backend import DEVIATIONS, EXP_KINDS, MlxBackend, mlx_conv
from convparity.reference_impl import conv_backward
from convparity.reference_impl.post_ops import chain_backward, chain_forward
from tests.plugins.backend_checks import (
    EXTRA_SPECS,
    check_usable_in_own_tox_env,
    disagreements,
    smoke_sweep,
)
from tests.plugins.conftest import framework_module
from tests.plugins.epilogue_chains import ALL_KINDS, EVERY_KIND, EXTRA_CHAINS, chain_case, kinds

pytestmark = pytest.mark.framework("mlx")


class TestMlx(BackendContract):
    backend_name = "mlx"
    # float64 is left out: MLX refuses most float64 specs (limits) and computes the rest in float32
    # (a declared deviation, checked below).
    dtypes = ("float32",)


@pytest.fixture(scope="module")
def mlx_backend():
    return get_manager().backends()["mlx"]


def test_usable_in_its_tox_env(mlx_backend):
    check_usable_in_own_tox_env(mlx_backend, "mlx")


def test_layouts_go_channels_last_and_back(mlx_backend):
    """A 1x1 convolution whose w picks input channel 1 for output 0 and channel 0 for output 1, on x whose every
    element differs: y, dx and dw in the canonical layouts say which channel, batch and position went where."""
    spec = ConvSpec(batch=2, in_channels=3, out_channels=2, input_size=(3, 4), kernel_size=(1, 1), bias=False,
                    dtype="float32")
    x = np.arange(2 * 3 * 3 * 4, dtype=np.float32).reshape(spec.x_shape)
    w = np.zeros(spec.w_shape, np.float32)
    w[0, 1], w[1, 0] = 1, 1
    dy = np.arange(2 * 2 * 3 * 4, dtype=np.float32).reshape(spec.y_shape)
    y, dx, dw, _ = mlx_backend.run(spec, x, w, None, dy)
    np.testing.assert_array_equal(y, x[:, [1, 0]])
    np.testing.assert_array_equal(dx, np.stack([dy[:, 1], dy[:, 0], np.zeros_like(dy[:, 0])], axis=1))
    np.testing.assert_array_equal(dw[:, :, 0, 0], np.einsum("nchw,ndhw->dc", x, dy))


def test_agrees_in_float32_on_negative_and_one_sided_padding_groups_and_dilation(mlx_backend):
    runnable = tuple(s for s in EXTRA_SPECS if mlx_backend.supports(s.replace(dtype="float32")) is None)
    assert len(runnable) == 4  # the grouped 3-D spec is a limit
    assert disagreements(mlx_backend, runnable, "float32") == []


def test_limits_carry_mlxs_own_messages(mlx_backend):
    reasons = {limit.condition: limit.reason for limit in mlx_backend.limits[1:]}
    assert mlx_backend.limits[0].condition == "transposed convolution"
    assert list(reasons) == ["rank 3 with groups > 1", "float64 with stride > 1", "float64 with dilation > 1",
                             "float64 with groups > 1", "rank 3 with batchnorm"]
    assert "Can only handle groups != 1 in 1D or 2D convolutions" in reasons["rank 3 with groups > 1"]
    assert all("[Convolution::eval] got unsupported data type." in reasons[c] for c in list(reasons)[1:4])


def test_float64_that_runs_is_computed_in_float32_as_declared(mlx_backend):
    """The deviation's predicate picks exactly the float64 specs MLX runs, and y, dx there are float32-accurate."""
    deviation = DEVIATIONS[0]
    spec = ConvSpec(batch=2, in_channels=3, out_channels=4, input_size=(8, 7), kernel_size=(3, 2),
                    padding=((0, 1), (-1, 2)), dtype="float64")
    assert mlx_backend.supports(spec) is None and deviation.applies(spec)
    inputs = make_inputs(spec, 0)
    y, dx, dw, db = mlx_backend.run(spec, inputs.x, inputs.w, inputs.b, inputs.dy)
    assert y.dtype == np.float64
    direct = np.einsum("nchw,ochw->no", inputs.x[:, :, :3, 1:3], inputs.w) + inputs.b  # window (0, 0)
    error = np.abs(y[:, :, 0, 0] - direct).max() / np.abs(direct).max()
    assert 1e-10 < error < 1e-6  # float32 rounding, not float64's ~1e-16
    for other in (spec.replace(stride=(2, 1)), spec.replace(dilation=(1, 2)), spec.replace(in_channels=4, groups=2)):
        assert not deviation.applies(other) and mlx_backend.supports(other)


def test_smoke_sweep_through_the_cli(tmp_path):
    code, results = smoke_sweep("mlx", tmp_path / "run", dtypes=("float32",))
    assert set(results["status"]) == {"pass", "unsupported"}, results[~results["status"].isin(["pass", "unsupported"])]
    unsupported = results[results["status"] == "unsupported"]
    assert ((unsupported["rank"] == 3) & (unsupported["groups"] > 1)).all()
    assert code == 0


def test_float64_rows_that_run_read_xfail_for_y_and_dx_only(mlx_backend):
    spec = EXTRA_SPECS[0].replace(dtype="float64")  # stride 1, dilation 1, one group, a crop on both sides
    _, rows = evaluate_case(mlx_backend, spec, seed=0)
    assert {row.tensor: row.status for row in rows} == {"y": "xfail", "dx": "xfail", "dw": "pass", "db": "pass"}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_narrow_bias_is_rounded_twice_as_declared(mlx_backend, dtype):
    """With a bias, y is exactly round(round(conv) + b), conv being MLX's own result without the bias."""
    for spec in (s.replace(dtype=dtype, bias=True) for s in EXTRA_SPECS):
        if mlx_backend.supports(spec):
            continue
        inputs = make_inputs(spec, 0)
        y = mlx_backend.run(spec, inputs.x, inputs.w, inputs.b, inputs.dy)[0]
        conv = mlx_backend.run(spec.replace(bias=False), inputs.x, inputs.w, None, inputs.dy)[0]
        narrow = inputs.b.dtype.type
        rounded_twice = conv.astype(narrow) + inputs.b.reshape((1, -1) + (1,) * spec.rank)
        np.testing.assert_array_equal(y, rounded_twice.astype(np.float32))


# -- post-op chains ----------------------------------------------------------------------------------------


class TestMlxEpilogues(BackendContract):
    """Every post-op kind and the grid's chains on three shapes in float32, float16 and bfloat16 (where the bias
    rounded twice reaches the chain's gradients: declared, and checked below); in float64 the shapes MLX runs
    (stride 1, one group), whose convolution MLX computes in float32 (declared, and checked exactly below)."""

    backend_name = "mlx"
    grid = "epilogues"
    dtypes = ("float32", "float64", "float16", "bfloat16")


def test_declares_every_post_op_kind_and_the_chains_reach_them(mlx_backend):
    assert set(mlx_backend.post_ops) == ALL_KINDS == kinds(EXTRA_CHAINS + EVERY_KIND)


@pytest.mark.parametrize("chain", EXTRA_CHAINS + EVERY_KIND)
def test_chains_beyond_the_grid(mlx_backend, chain):
    """pow, binary_div, clip with other bounds, other alphas, whole-tensor operands, in float32."""
    check_case(mlx_backend, chain_case(chain, "float32"))


GRID_CHAINS = tuple(dict.fromkeys(case.name.rsplit(" ", 1)[0] for case in grid_cases(["epilogues"], ["float32"])))


@pytest.mark.parametrize("chain", GRID_CHAINS + EXTRA_CHAINS + EVERY_KIND)
def test_float64_chains_are_exact_but_for_the_float32_convolution(mlx_backend, chain):
    """The evidence of the float64 chain deviations: given MLX's own convolution output c (the same spec without the
    chain: the float32-accurate sum of the first deviation, plus b), y, dw, db and every operand gradient are the
    float64 chain and its backward applied to c, to within a few float64 roundings; to float32's only where the
    chain uses MLX's exp, erf or sigmoid (the float32 approximations of mlx#3047). dx keeps the float32 rounding of
    MLX's own backward convolution."""
    spec = chain_case(chain, "float64").spec
    inputs = make_inputs(spec, 0)
    y, dx, dw, db, *operands = mlx_backend.run(spec, inputs.x, inputs.w, inputs.b, inputs.dy, extras=inputs.extras)
    c = mlx_backend.run(spec.replace(post_ops=()), inputs.x, inputs.w, inputs.b, inputs.dy)[0]
    trace = chain_forward(c, spec.post_ops, inputs.operands)
    gradients = chain_backward(trace, spec.post_ops, inputs.operands, inputs.dy)
    exact_dx, exact_dw, exact_db = conv_backward(gradients.conv_output, inputs.x, inputs.w, padding=spec.padding)
    expected = {"y": trace.output, "dw": exact_dw, "db": exact_db}
    expected.update({f"dpost{k}": g for k, g in gradients.operands.items()})
    got = {"y": y, "dw": dw, "db": db, **(operands[0] if operands else {})}
    assert set(got) == set(expected)
    float32_functions = bool(kinds((chain,)) & set(EXP_KINDS))
    for tensor, value in expected.items():
        scale = max(np.abs(value).max(), 1.0)
        np.testing.assert_allclose(got[tensor], value, rtol=0, atol=(1e-6 if float32_functions else 1e-13) * scale,
                                   err_msg=tensor)
    np.testing.assert_allclose(dx, exact_dx, rtol=0, atol=1e-6 * max(np.abs(exact_dx).max(), 1.0))


def test_float64_exp_erf_and_sigmoid_are_float32_approximations_outside_convparity():
    """The evidence of mlx#3047 in MLX alone: exp, erf, sigmoid and logaddexp err by ~1e-7 relative in float64;
    tanh, log, sqrt and power (the other functions mlx_conv uses) are float64-accurate."""
    mx = framework_module("mlx.core")
    x = np.linspace(-3, 3, 61)
    references = {"exp": np.exp, "erf": np.vectorize(math.erf), "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
                  "logaddexp": lambda v: np.logaddexp(v, 0), "tanh": np.tanh, "log": lambda v: np.log(np.abs(v) + 1),
                  "sqrt": lambda v: np.sqrt(np.abs(v)), "power": lambda v: np.abs(v) ** 0.3}
    functions = {"exp": mx.exp, "erf": mx.erf, "sigmoid": mx.sigmoid, "logaddexp": lambda t: mx.logaddexp(t, 0),
                 "tanh": mx.tanh, "log": lambda t: mx.log(mx.abs(t) + 1), "sqrt": lambda t: mx.sqrt(mx.abs(t)),
                 "power": lambda t: mx.power(mx.abs(t), 0.3)}
    errors = {}
    with mx.stream(mx.cpu):
        for name, function in functions.items():
            got = np.array(function(mx.array(x, dtype=mx.float64)))
            errors[name] = np.max(np.abs(got - references[name](x)) / np.maximum(np.abs(references[name](x)), 1e-3))
    assert all(1e-9 < errors[name] < 1e-5 for name in ("exp", "erf", "sigmoid", "logaddexp")), errors
    assert all(errors[name] < 1e-15 for name in ("tanh", "log", "sqrt", "power")), errors


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_narrow_chains_disagree_only_through_the_bias_rounded_twice(mlx_backend, dtype):
    """The evidence of the narrow chain deviation: without a bias (one rounding of the convolution) every case of
    the grid passes in float16 and bfloat16; with it some gradients fail, as declared."""
    outcomes = {"pass": 0, "xfail": 0}
    for case in grid_cases(["epilogues"], [dtype]):
        assert judge_case(mlx_backend, Case(case.spec.replace(bias=False), case.name)).outcome == "pass", case.name
        outcomes[judge_case(mlx_backend, case).outcome] += 1
    assert outcomes["xfail"] > 0 and sum(outcomes.values()) == 114


def test_a_bias_that_cancels_the_convolution_moves_the_kink_outside_convparity():
    """The repro of the narrow chain deviation in MLX alone: conv = 1 + 2**-8 rounds to 1 in bfloat16, + b = -1
    gives 0 instead of 2**-8, so abs's derivative there is 0 instead of 1 and dx vanishes."""
    mx = framework_module("mlx.core")
    bf16 = mx.bfloat16
    w = mx.array([[[1.0, 2.0**-8]]]).astype(bf16)

    def forward(x):
        return mx.abs(mx.conv_general(x, w, stream=mx.cpu) + mx.array([-1.0]).astype(bf16))

    (y,), (dx,) = mx.vjp(forward, [mx.ones((1, 1, 2)).astype(bf16)], [mx.ones((1, 1, 1)).astype(bf16)])
    assert y.astype(mx.float32).tolist() == [[[0.0]]]  # the exact value: 2**-8
    assert dx.astype(mx.float32).tolist() == [[[0.0, 0.0]]]  # the exact gradient: [1, 2**-8]


def test_batchnorm_after_a_3d_convolution_is_mlxs_own_refusal(mlx_backend):
    """nn.BatchNorm takes 2 to 4 dims: after a 3-D convolution (5 dims) MLX refuses, in its own words."""
    spec = ConvSpec(batch=2, in_channels=2, out_channels=3, input_size=(4, 4, 4), kernel_size=(2, 2, 2),
                    dtype="float32")
    reason = mlx_backend.supports(spec.replace(post_ops=parse_post_ops("batchnorm+relu", 3)))
    assert reason.startswith("rank 3 with batchnorm: MLX ") and "2, 3 or 4 dimensions, but got 5" in reason
    assert mlx_backend.supports(spec.replace(post_ops=parse_post_ops("sum+relu", 3))) is None
    assert mlx_backend.supports(chain_case("batchnorm", "float32").spec) is None


class GeluTanhForErf(MlxBackend):
    """A planted epilogue bug: nn.gelu_approx (the tanh fit) where the spec says gelu_erf."""

    deviations = ()

    def program(self, spec):
        arguments = program_arguments(spec)
        arguments["post_ops"] = tuple(tuple((key, "gelu_tanh" if value == "gelu_erf" else value) for key, value in step)
                                      for step in arguments["post_ops"])
        return Program(mlx_conv, arguments)

    def run(self, spec, x, w, b, dy, extras=None):
        return self.program(spec).build()(x, w, b, dy, operands=extras.operands)


def test_a_planted_gelu_tanh_for_gelu_erf_fails_where_mlx_passes(mlx_backend):
    cases = [case for case in grid_cases(["epilogues"], ["float32"]) if "gelu_erf" in case.name]
    assert len(cases) == 6
    for case in cases:
        assert judge_case(mlx_backend, case).outcome == "pass", case.name
        planted = judge_case(GeluTanhForErf(), case)
        assert planted.outcome == "fail", case.name
        assert {row.tensor: row.status for row in planted.rows}["y"] == "fail", case.name
