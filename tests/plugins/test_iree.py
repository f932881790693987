"""The iree backend: contract suite, padding, transposed convolutions, float64 kept float64, float16 and bfloat16
accumulating in themselves, a focused epilogue subset (and a planted epilogue bug that fails), the chain fused
into the convolution's dispatch, probed limits, a smoke sweep; its thread variable, compile seconds and cost."""

from __future__ import annotations

import inspect
import re

import ml_dtypes
import numpy as np
import pytest

from convparity.harness.backends.contract import environment_of, optional_members
from convparity.harness.backends.manager import get_manager
from convparity.harness.cases.attributes import parse_post_ops
from convparity.harness.cases.builtin_grids import smoke
from convparity.harness.cases.descriptor import Case
from convparity.harness.cases.inputs import make_inputs
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.evaluation.verdict import evaluate_case
from convparity.harness.testing.contract_suite import BackendContract
from convparity.plugin import program_arguments
from convparity.plugins.iree_backend import COMPILE_FLAGS, IreeBackend, iree_conv, tiny_half_epsilon
from tests.plugins.backend_checks import (
    EXTRA_SPECS,
    TRANSPOSED_SPECS,
    check_usable_in_own_tox_env,
    disagreements,
    smoke_sweep,
)
from tests.plugins.compiler_checks import (
    epilogue_cases,
    narrow_accumulation_evidence,
    problems,
    statuses,
    with_post_ops_changed,
    workers_import_the_installed_package,
)

pytestmark = pytest.mark.framework("iree")


class TestIree(BackendContract):
    backend_name = "iree"


@pytest.fixture(scope="module")
def iree_backend():
    backend = get_manager().backends()["iree"]
    reason = backend.availability()
    if reason:
        pytest.skip(reason)
    return backend


def test_usable_in_its_tox_env():
    check_usable_in_own_tox_env(get_manager().backends()["iree"], "iree")


def test_agrees_on_negative_and_one_sided_padding_groups_and_dilation(iree_backend):
    assert disagreements(iree_backend, EXTRA_SPECS, "float32") == []


def test_transposed_agrees(iree_backend):
    """Every rank, groups, dilation, negative pads, output_padding at and above the stride, in float64."""
    assert disagreements(iree_backend, TRANSPOSED_SPECS, "float64") == []


def test_float64_is_computed_in_float64_only_with_the_demote_flag_off(iree_backend):
    """IREE's input pipeline demotes f64 to f32 unless told not to: with the flag the result is float64 to the last
    bits; without it the compiled function takes float32 and the runtime refuses float64 inputs."""
    spec = ConvSpec(batch=2, in_channels=8, out_channels=4, input_size=(10, 10), kernel_size=(3, 3), dtype="float64")
    inputs = make_inputs(spec, 0)
    y = iree_backend.run(spec, inputs.x, inputs.w, inputs.b, inputs.dy)[0]
    assert y.dtype == np.float64
    exact = np.einsum("nchw,ochw->no", inputs.x[:, :, :3, :3], inputs.w) + inputs.b
    np.testing.assert_allclose(y[:, :, 0, 0], exact, rtol=1e-14, atol=1e-14)
    assert "--iree-input-demote-f64-to-f32=false" in COMPILE_FLAGS
    assert inspect.signature(iree_conv).parameters["flags"].default == COMPILE_FLAGS
    demoted = iree_conv(**program_arguments(spec, x_shape=spec.x_shape, w_shape=spec.w_shape),
                        flags=("--iree-llvmcpu-target-cpu=host",))
    with pytest.raises(ValueError, match="element type mismatch"):
        demoted(inputs.x, inputs.w, inputs.b, inputs.dy)


def _sum_of_one_and_small_terms(dtype: str, small: float, count: int) -> float:
    """y of a 1-wide kernel of ones over 1 + count channels holding 1 and then `small` each."""
    cast = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
    x = np.full((1, count + 1, 1), small).astype(cast)
    x[0, 0, 0] = 1
    w = np.ones((1, count + 1, 1), cast)
    step = iree_conv(stride=(1,), padding=((0, 0),), dilation=(1,), groups=1, dtype=dtype, bias=False,
                     x_shape=x.shape, w_shape=w.shape)
    return float(np.asarray(step(x, w, None, np.zeros((1, 1, 1), cast))[0], np.float64).item())


@pytest.mark.parametrize(("dtype", "small", "count"), [("float16", 2.0**-11, 512), ("bfloat16", 2.0**-8, 16)])
def test_narrow_dtypes_accumulate_in_themselves(iree_backend, dtype, small, count):
    """Evidence for `accumulation`: 1 plus small terms of half an ulp of 1 each stays 1 (every addition is a tie
    rounded to even), where float32 accumulation gives the exact sum; and smoke cases miss the float32-accumulation
    bound by 20-500x while meeting the bound for accumulation in the dtype itself."""
    assert _sum_of_one_and_small_terms(dtype, small, count) == 1.0 != 1 + small * count
    assert iree_backend.accumulation[dtype] == dtype
    for name in ("2d same", "2d groups"):
        (case,) = [Case(c.spec.replace(dtype=dtype), c.name) for c in smoke() if c.name == name]
        float32_bound, own_bound = narrow_accumulation_evidence(iree_backend, case)
        assert float32_bound > 10 and own_bound < 1, (name, float32_bound, own_bound)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_narrow_dtypes_agree_with_their_declared_accumulation(iree_backend, dtype):
    cases = [case.spec for case in smoke() if case.name in ("1d dilated asym", "2d wide", "3d asym")]
    assert disagreements(iree_backend, tuple(cases), dtype) == []


def test_epilogues_agree(iree_backend):
    """A focused subset of the epilogues grid: every operand kind, parameters, kinks and jumps, chains; y, the
    gradients written by hand in StableHLO and the operands' gradients."""
    assert problems(iree_backend, epilogue_cases()) == []


class SumScaleDropped(IreeBackend):
    """Planted bug: a sum post-op adds its residual at scale 1, whatever its scale."""

    def program(self, spec):
        return with_post_ops_changed(super().program(spec), lambda step: {**step, "scale": 1.0})

    def run(self, spec, x, w, b, dy, extras=None):
        return self.program(spec).build()(x, w, b, dy, operands=extras.operands)


def test_a_planted_epilogue_bug_fails(iree_backend):
    """The subset's sum:0.5 chain, computed with the scale dropped: y (and the residual's gradient) fail."""
    (case,) = epilogue_cases(("sum:0.5+gelu_erf 1d-0",))
    _, rows = evaluate_case(iree_backend, case.spec, seed=7)
    assert set(statuses(rows).values()) == {"pass"}
    _, rows = evaluate_case(SumScaleDropped(), case.spec, seed=7)
    found = statuses(rows)
    assert found["y"] == "fail" and found["dpost0"] == "fail", found


def _dispatches(text: str, function: str) -> list[str]:
    """The dispatch regions IREE forms for `function` of the program (compiled up to its flow phase)."""
    import iree.compiler

    flow = iree.compiler.compile_str(text, target_backends=["llvm-cpu"], input_type="stablehlo",
                                     extra_args=[*COMPILE_FLAGS, "--compile-to=flow"])
    flow = flow.decode() if isinstance(flow, bytes) else flow
    return re.findall(rf"flow\.executable\.export public @({function}_dispatch_\w+)", flow)


@pytest.mark.parametrize("chain", ["relu", "batchnorm+relu", "batchnorm+sum+relu", "add:f32:per_oc+gelu_erf"])
def test_the_chain_is_fused_into_the_convolutions_dispatch(iree_backend, chain):
    """The forward function of conv + bias + chain has the dispatches of conv + bias alone: the input's relayout and
    one convolution dispatch, which computes the bias and the whole chain."""
    spec = ConvSpec(batch=2, in_channels=4, out_channels=6, input_size=(8, 8), kernel_size=(3, 3), padding=1)
    plain = _dispatches(iree_backend.program(spec).build().text, "forward")
    fused = _dispatches(iree_backend.program(spec.replace(post_ops=parse_post_ops(chain, 2))).build().text, "forward")
    assert len(plain) == len(fused) == 2 and "conv" in fused[1], (plain, fused)


def test_limits_are_iree_compiles_own_refusals(iree_backend):
    """float16 batchnorm with eps 1e-5 (an inexact float16 subnormal): iree-compile fails to legalize
    stablehlo.batch_norm_inference; float64 tanh: its linker has no tanh. An eps float16 holds runs, and so do the
    other dtypes."""
    half_eps, double_tanh = iree_backend.limits
    assert "batch_norm_inference" in half_eps.reason and "opStatus" in half_eps.reason
    assert "undefined symbol: tanh" in double_tanh.reason
    refused = ConvSpec(batch=1, in_channels=2, out_channels=3, input_size=(5,), kernel_size=(2,), dtype="float16",
                       post_ops=parse_post_ops("batchnorm", 1))
    assert refused.post_ops[0].alpha == 1e-5 and tiny_half_epsilon(refused)
    assert iree_backend.supports(refused).endswith(half_eps.reason)
    held = refused.replace(post_ops=parse_post_ops("batchnorm:0.001", 1))
    assert not tiny_half_epsilon(held) and iree_backend.supports(held) is None
    assert problems(iree_backend, [Case(held, "batchnorm eps 1e-3")]) == []
    assert iree_backend.supports(refused.replace(dtype="bfloat16")) is None
    for chain in ("tanh", "gelu_tanh", "mish", "linear:2:-1+tanh+mul:f32:per_tensor"):
        spec = refused.replace(dtype="float64", post_ops=parse_post_ops(chain, 1))
        assert iree_backend.supports(spec).endswith(double_tanh.reason)
        assert iree_backend.supports(spec.replace(dtype="float32")) is None


def test_float64_batchnorm_adds_a_float32_eps(iree_backend):
    """Evidence for the deviation: IREE's float64 batchnorm equals the reference computed with eps rounded to
    float32 to the last bit or so, and misses the exact eps's by far more than float64 rounding."""
    spec = ConvSpec(batch=1, in_channels=3, out_channels=4, input_size=(6,), kernel_size=(1,), bias=False,
                    dtype="float64", post_ops=parse_post_ops("batchnorm", 1))
    inputs = make_inputs(spec, 0)
    y = iree_backend.run(spec, inputs.x, inputs.w, None, inputs.dy, extras=inputs.extras)[0]
    v = np.einsum("ncw,oc->now", inputs.x, inputs.w[:, :, 0])
    mean, var, gamma, beta = (row.reshape(1, -1, 1) for row in inputs.operands[0])
    errors = [np.abs(y - ((v - mean) / np.sqrt(var + eps) * gamma + beta)).max()
              for eps in (1e-5, float(np.float32(1e-5)))]
    assert errors[0] > 1e-14 > 1e-15 > errors[1], errors
    _, rows = evaluate_case(iree_backend, spec, seed=0)
    assert statuses(rows)["y"] == "xfail"


def test_smoke_sweep_through_the_cli(tmp_path, monkeypatch):
    workers_import_the_installed_package(monkeypatch, tmp_path)
    code, results = smoke_sweep("iree", tmp_path / "run", dtypes=("float32",))
    assert set(results["status"]) == {"pass"}, results[results["status"] != "pass"]
    assert code == 0


def test_program_thread_variable_compile_seconds_and_cost(iree_backend):
    """Its program is iree_conv on the spec's own arguments and shapes; workers get the runtime's thread count; the
    compile clock counts the compiler's time; no compile cache; a compiling backend's cost."""
    spec = EXTRA_SPECS[0].replace(dtype="float32", batch=3)
    program = iree_backend.program(spec)
    assert program.function is iree_conv
    assert program.arguments == program_arguments(spec, x_shape=spec.x_shape, w_shape=spec.w_shape)
    assert environment_of(iree_backend, "thread_environment", 1) == {
        "IREE_PY_RUNTIME_FLAGS": "--task_topology_group_count=1"}
    assert not hasattr(iree_backend, "cache_environment")
    before = iree_backend.compile_seconds()
    inputs = make_inputs(spec, 0)
    iree_backend.run(spec, inputs.x, inputs.w, inputs.b, inputs.dy)
    assert iree_backend.compile_seconds() > before
    cost = optional_members(iree_backend).cost
    assert cost is not None and cost.fixed >= 0.5


def test_runtime_thread_flag_is_one_the_runtime_reads(monkeypatch):
    """The variable thread_environment sets is parsed by iree.runtime.flags (an unknown flag would raise there)."""
    from iree.runtime import flags

    monkeypatch.setenv("IREE_PY_RUNTIME_FLAGS", IreeBackend().thread_environment(1)["IREE_PY_RUNTIME_FLAGS"])
    flags._load_default_flags_from_env()
    monkeypatch.setenv("IREE_PY_RUNTIME_FLAGS", "--no_such_flag=1")
    with pytest.raises(RuntimeError, match="no_such_flag"):
        flags._load_default_flags_from_env()
