"""The tvm backend: contract suite, padding, transposed convolutions, gradients where relax.transform.Gradient derives
them (and TVM's words where it refuses), the dilated conv2d gradient bug, float16 and bfloat16 accumulating in
themselves, a focused epilogue subset (and a planted epilogue bug that fails), the chain fused into the
convolution's kernel, probed limits, a smoke sweep; its thread variable, compile seconds and cost."""

from __future__ import annotations

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
from convparity.plugins.tvm_backend import DILATED_CONV2D_GRADIENT, TvmBackend, built_step, tvm_conv
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
from tests.plugins.conftest import framework_module

pytestmark = pytest.mark.framework("tvm")


class TestTvm(BackendContract):
    backend_name = "tvm"


@pytest.fixture(scope="module")
def tvm_backend():
    backend = get_manager().backends()["tvm"]
    reason = backend.availability()
    if reason:
        pytest.skip(reason)
    return backend


def test_usable_in_its_tox_env():
    check_usable_in_own_tox_env(get_manager().backends()["tvm"], "tvm")


def test_agrees_on_negative_and_one_sided_padding_groups_and_dilation(tvm_backend):
    """y everywhere; dx, dw, db of the 2-D specs (conv1d and conv3d have no gradient in Relax); the dilated 2-D
    spec's dx is the declared deviation."""
    assert [line for line in problems(tvm_backend, [Case(s.replace(dtype="float32"), s.descriptor)
                                                    for s in EXTRA_SPECS])
            if "xfail" not in line] == []


def test_transposed_agrees(tvm_backend):
    """y of every rank, groups, dilation, negative pads in float64; output_padding at or above the stride is a limit."""
    assert disagreements(tvm_backend, TRANSPOSED_SPECS, "float64") == []
    refused = [spec for spec in TRANSPOSED_SPECS if tvm_backend.supports(spec)]
    assert len(refused) == 2 and all(any(p >= s for p, s in zip(spec.output_padding, spec.stride))
                                     for spec in refused)


@pytest.mark.parametrize(("spec", "refusal"), [
    (EXTRA_SPECS[0], "FPrimalGradient has not been registered for relax.nn.conv1d"),
    (EXTRA_SPECS[2], "FPrimalGradient has not been registered for relax.nn.conv3d"),
    (TRANSPOSED_SPECS[0], "FPrimalGradient has not been registered for relax.nn.conv2d_transpose"),
    (smoke()[4].spec.replace(post_ops=parse_post_ops("relu:0.1", 2)),
     "FPrimalGradient has not been registered for relax.nn.leakyrelu"),
    (smoke()[4].spec.replace(post_ops=parse_post_ops("gelu_erf", 2)),
     "FPrimalGradient has not been registered for relax.nn.gelu"),
    (smoke()[4].spec.replace(dtype="bfloat16"), "Only Tensors of floating point dtype"),
], ids=["conv1d", "conv3d", "conv2d_transpose", "leakyrelu", "gelu", "bfloat16"])
def test_where_gradient_refuses_y_alone_is_computed_and_tvm_says_why(tvm_backend, spec, refusal):
    spec = spec if spec.dtype == "bfloat16" else spec.replace(dtype="float32")
    assert refusal in built_step(spec).gradient_refusal
    _, rows = evaluate_case(tvm_backend, spec, seed=0)
    found = statuses(rows)
    assert found.pop("y") == "pass" and set(found.values()) == {"unsupported"}, found


def test_gradient_runs_for_conv2d_and_differentiable_chains(tvm_backend):
    spec = smoke()[4].spec.replace(dtype="float32", post_ops=parse_post_ops("sum+relu", 2))
    assert built_step(spec).gradient_refusal is None
    _, rows = evaluate_case(tvm_backend, spec, seed=0)
    assert statuses(rows) == {"y": "pass", "dx": "pass", "dw": "pass", "db": "pass", "dpost0": "pass"}


@pytest.mark.parametrize(("stride", "padding", "dilation", "refused"), [(2, 0, 2, False), (3, 1, 2, False),
                                                                       (1, 0, 2, True)])
def test_dilated_conv2d_dx_has_the_wrong_shape(tvm_backend, stride, padding, dilation, refused):
    """Evidence for the deviation: Relax's conv2d gradient sizes dx without the dilation. Where its output_padding
    stays below the stride dx comes back (k - 1)(d - 1) too large per dim (xfail, declared), dw and db right;
    otherwise Gradient refuses (the gradient rows read unsupported)."""
    spec = ConvSpec(batch=1, in_channels=2, out_channels=2, input_size=(7, 7), kernel_size=(2, 2), stride=stride,
                    padding=padding, dilation=dilation, dtype="float64")
    _, rows = evaluate_case(tvm_backend, spec, seed=0)
    by_tensor = {row.tensor: row for row in rows}
    if refused:
        assert "Conv2dTranspose expects the output padding less than the strides" in built_step(spec).gradient_refusal
        assert by_tensor["dx"].status == "unsupported"
        return
    extra = (2 - 1) * (dilation - 1)
    assert by_tensor["dx"].status == "xfail" and DILATED_CONV2D_GRADIENT in by_tensor["dx"].deviation
    assert f"dx has shape (1, 2, {7 + extra}, {7 + extra}), expected (1, 2, 7, 7)" in by_tensor["dx"].message
    assert {by_tensor[t].status for t in ("y", "dw", "db")} == {"pass"}


def _sum_of_one_and_small_terms(dtype: str, small: float, count: int) -> float:
    cast = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
    x = np.full((1, count + 1, 1), small).astype(cast)
    x[0, 0, 0] = 1
    w = np.ones((1, count + 1, 1), cast)
    step = tvm_conv(stride=(1,), padding=((0, 0),), dilation=(1,), groups=1, dtype=dtype, bias=False,
                    x_shape=x.shape, w_shape=w.shape)
    return float(np.asarray(step(x, w, None, np.zeros((1, 1, 1), cast))[0], np.float64).item())


@pytest.mark.parametrize(("dtype", "small", "count"), [("float16", 2.0**-11, 512), ("bfloat16", 2.0**-8, 16)])
def test_narrow_dtypes_accumulate_in_themselves(tvm_backend, dtype, small, count):
    """Evidence for `accumulation`: 1 plus small terms of half an ulp of 1 each stays 1 (every addition a tie
    rounded to even; float32 accumulation gives the exact sum); smoke cases miss the float32-accumulation bound by
    20-400x while meeting the bound for accumulation in the dtype itself."""
    assert _sum_of_one_and_small_terms(dtype, small, count) == 1.0 != 1 + small * count
    assert tvm_backend.accumulation[dtype] == dtype
    for name in ("2d same", "2d groups"):
        (case,) = [Case(c.spec.replace(dtype=dtype), c.name) for c in smoke() if c.name == name]
        float32_bound, own_bound = narrow_accumulation_evidence(tvm_backend, case)
        assert float32_bound > 10 and own_bound < 1, (name, float32_bound, own_bound)


def test_epilogues_agree(tvm_backend):
    """A focused subset of the epilogues grid: y for every case, the gradients where Relax derives them."""
    assert problems(tvm_backend, epilogue_cases()) == []


class LeakySlopeDropped(TvmBackend):
    """Planted bug: a relu post-op's negative slope (alpha) is dropped: a leaky relu computes a plain relu."""

    def program(self, spec):
        return with_post_ops_changed(super().program(spec), lambda step: {**step, "alpha": 0.0}
                                     if step["kind"] == "relu" else step)

    def run(self, spec, x, w, b, dy, extras=None):
        return self.program(spec).build()(x, w, b, dy, operands=extras.operands)


def test_a_planted_epilogue_bug_fails(tvm_backend):
    (case,) = epilogue_cases(("relu:0.1 2d-1",))
    _, rows = evaluate_case(tvm_backend, case.spec, seed=7)
    assert statuses(rows)["y"] == "pass"
    _, rows = evaluate_case(LeakySlopeDropped(), case.spec, seed=7)
    assert statuses(rows)["y"] == "fail"


def _forward_kernels(module) -> list[str]:
    """The kernels (call_tir targets) of the forward function after the default CPU pipeline's FuseOps/FuseTIR."""
    tvm = framework_module("tvm")
    relax = tvm.relax
    target = tvm.target.Target("llvm")
    with target:
        fused = tvm.transform.Sequential(relax.backend.cpu_generic.legalize_passes(target))(module)
    kernels: list[str] = []
    call_tir = tvm.ir.Op.get("relax.call_tir")

    def visit(expression):
        if isinstance(expression, relax.Call) and expression.op == call_tir:
            kernels.append(expression.args[0].name_hint)

    relax.analysis.post_order_visit(fused["forward"].body, visit)
    return kernels


@pytest.mark.parametrize(("chain", "kernel"), [("relu", "fused_conv2d_add_relu"), ("gelu_erf", "fused_conv2d_add_gelu"),
                                               ("sum+relu", "fused_conv2d_add_add1_relu"),
                                               ("mul:f32:per_oc+prelu:per_oc",
                                                "fused_conv2d_add_multiply_broadcast_to_prelu")])
def test_the_chain_is_fused_into_the_convolutions_kernel(tvm_backend, chain, kernel):
    """FuseOps/FuseTIR make conv + bias + chain one kernel (besides the bias's reshape)."""
    spec = ConvSpec(batch=2, in_channels=4, out_channels=6, input_size=(8, 8), kernel_size=(3, 3), padding=1,
                    dtype="float32", post_ops=parse_post_ops(chain, 2))
    kernels = _forward_kernels(tvm_backend.program(spec).build().module)
    assert kernel in kernels and len([k for k in kernels if "conv2d" in k]) == 1, kernels


def test_batchnorm_is_decomposed_and_fused(tvm_backend):
    """nn.batch_norm, decomposed for inference, joins the convolution's kernel (relax keeps a following relu apart)."""
    spec = ConvSpec(batch=2, in_channels=4, out_channels=6, input_size=(8, 8), kernel_size=(3, 3), padding=1,
                    dtype="float32", post_ops=parse_post_ops("batchnorm", 2))
    (conv,) = [k for k in _forward_kernels(tvm_backend.program(spec).build().module) if "conv2d" in k]
    assert "subtract" in conv and "sqrt" in conv and "multiply" in conv, conv


def test_limits_are_relax_own_refusals(tvm_backend):
    output_padding, prelu = tvm_backend.limits
    assert output_padding.reason.startswith("Conv1dTranspose expects the output padding less than the strides")
    assert tvm_backend.supports(TRANSPOSED_SPECS[3]).endswith(output_padding.reason)
    assert tvm_backend.supports(TRANSPOSED_SPECS[0]) is None
    assert prelu.reason.startswith("Prelu requires the input tensor to have float dtype")
    spec = smoke()[4].spec.replace(dtype="bfloat16", post_ops=parse_post_ops("prelu:per_oc", 2))
    assert tvm_backend.supports(spec).endswith(prelu.reason)
    assert tvm_backend.supports(spec.replace(dtype="float16")) is None


def test_smoke_sweep_through_the_cli(tmp_path, monkeypatch):
    workers_import_the_installed_package(monkeypatch, tmp_path)
    code, results = smoke_sweep("tvm", tmp_path / "run", dtypes=("float32",))
    assert set(results["status"]) <= {"pass", "unsupported"}, results[~results["status"].isin(["pass",
                                                                                               "unsupported"])]
    assert set(results[results["tensor"] == "y"]["status"]) == {"pass"}
    assert code == 0


def test_program_thread_variable_compile_seconds_and_cost(tvm_backend):
    spec = EXTRA_SPECS[1].replace(dtype="float32", batch=3)
    program = tvm_backend.program(spec)
    assert program.function is tvm_conv
    assert program.arguments == program_arguments(spec, x_shape=spec.x_shape, w_shape=spec.w_shape)
    assert environment_of(tvm_backend, "thread_environment", 1) == {"TVM_NUM_THREADS": "1"}
    assert not hasattr(tvm_backend, "cache_environment")
    before = tvm_backend.compile_seconds()
    inputs = make_inputs(spec, 0)
    tvm_backend.run(spec, inputs.x, inputs.w, inputs.b, inputs.dy)
    assert tvm_backend.compile_seconds() > before
    cost = optional_members(tvm_backend).cost
    assert cost is not None and cost.fixed >= 0.5
