"""The torch-inductor backend: contract suite, compile once per spec (forward and backward), compile
failures as error rows, a smoke sweep; its program, cost and compile-cache variables."""

from __future__ import annotations

import inspect
import re
import stat

import pytest

from convparity.harness import cli
from convparity.harness.backends.contract import environment_of, optional_members
from convparity.harness.backends.manager import get_manager
from convparity.harness.cases.descriptor import parse_case
from convparity.harness.cases.inputs import make_inputs
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.results import read_results
from convparity.harness.testing.contract_suite import BackendContract
from convparity.plugin import program_arguments
from convparity.plugins import torch_inductor_backend
from convparity.plugins.torch_backend import TORCH_POST_OPS, built_step, torch_conv
from convparity.plugins.torch_inductor_backend import RECOMPILE_LIMIT, TorchInductorBackend, torch_inductor_conv
from tests.plugins.backend_checks import (
    EXTRA_SPECS,
    check_usable_in_own_tox_env,
    disagreements,
    smoke_sweep,
)
from tests.plugins.conftest import framework_module
from tests.plugins.torch_checks import judged_rows, statuses

# Not module-wide: the compile-cache tests at the end need no torch (they patch installed_version), so they
# run wherever the core's tests run, as they did in the core.
needs_torch = pytest.mark.framework("torch-inductor")


@needs_torch
class TestTorchInductor(BackendContract):
    backend_name = "torch-inductor"


@pytest.fixture(scope="module")
def inductor_backend():  # only in tests marked needs_torch
    backend = get_manager().backends()["torch-inductor"]
    reason = backend.availability()
    if reason:
        pytest.skip(reason)
    return backend


@needs_torch
def test_usable_in_its_tox_env():
    check_usable_in_own_tox_env(get_manager().backends()["torch-inductor"], "torch-inductor")


@needs_torch
def test_agrees_on_negative_and_one_sided_padding_groups_and_dilation(inductor_backend):
    assert disagreements(inductor_backend, EXTRA_SPECS, "float32") == []


def _inductor_graphs() -> int:
    """Graphs Inductor has compiled or fetched from its cache in this process."""
    from torch._dynamo.utils import counters

    return sum(counters["inductor"][key] for key in ("fxgraph_cache_miss", "fxgraph_cache_hit", "fxgraph_cache_bypass"))


@needs_torch
def test_a_spec_compiles_forward_and_backward_once_and_is_reused(inductor_backend):
    spec = ConvSpec(batch=1, in_channels=2, out_channels=3, input_size=(11,), kernel_size=(4,), stride=3,
                    padding=((2, -1),), dtype="float32")
    inputs = make_inputs(spec, 1)
    before = _inductor_graphs()
    first = inductor_backend.run(spec, inputs.x, inputs.w, inputs.b, inputs.dy)
    assert _inductor_graphs() == before + 2  # the forward graph and AOTAutograd's backward graph
    assert built_step(inductor_backend, spec) is built_step(inductor_backend, spec)
    second = inductor_backend.run(spec, inputs.x, inputs.w, inputs.b, inputs.dy)
    assert _inductor_graphs() == before + 2
    for a, b in zip(first, second, strict=True):
        assert (a == b).all()


@needs_torch
def test_a_compile_failure_is_an_error_row_with_the_compilers_message(tmp_path, monkeypatch):
    """A C++ compiler that answers --version but refuses to compile: the case errors, the worker lives.

    The case has an asymmetric pad (pw1, ow6: pads (1, 0)), so Inductor must generate a C++ kernel for
    F.pad; a symmetric one would be extern calls only, compiled to Python without any C++."""
    fake = tmp_path / "c++"
    fake.write_text('#!/bin/sh\n[ "$1" = --version ] && { echo "g++ (fake) 12.2.0"; exit 0; }\n'
                    'echo "fake-c++: refusing to compile" >&2\nexit 1\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("CXX", str(fake))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor-cache"))  # nothing compiled to reuse
    cli.main(["run", "-b", "torch-inductor", "--case", "mb1ic2iw7oc2ow6kw3pw1", "--dtype", "float32",
                     "-o", str(tmp_path / "run")])
    results = read_results(tmp_path / "run")
    assert set(results["status"]) == {"error"}, results[["tensor", "status", "message"]]
    assert results["message"].str.contains("refusing to compile").all()


@needs_torch
def test_smoke_sweep_through_the_cli(tmp_path):
    code, results = smoke_sweep("torch-inductor", tmp_path / "run", dtypes=("float32",))
    assert set(results["status"]) == {"pass"}, results[results["status"] != "pass"]
    assert code == 0


@needs_torch
def test_dynamo_compiles_every_spec_and_never_falls_back_to_eager(inductor_backend):
    """Set when the backend loads torch (availability), before anything compiles."""
    dynamo_config = framework_module("torch._dynamo.config")
    assert dynamo_config.recompile_limit == dynamo_config.accumulated_recompile_limit == RECOMPILE_LIMIT
    assert dynamo_config.fail_on_recompile_limit_hit


def test_program_and_cost():
    """Its program is torch_inductor_conv on the spec's own arguments; it declares a compiling backend's cost."""
    backend = get_manager().backends()["torch-inductor"]
    spec = EXTRA_SPECS[1]
    program = backend.program(spec)
    assert program.function is torch_inductor_conv and program.arguments == program_arguments(spec)
    cost, torch_cost = (optional_members(get_manager().backends()[name]).cost for name in ("torch-inductor", "torch"))
    assert cost.fixed > 100 * torch_cost.fixed and cost.per_gflop == torch_cost.per_gflop
    assert environment_of(backend, "thread_environment", 1) == {}


# -- compile-cache variables (formerly the core's, per framework): no torch needed ----------------------------

@pytest.fixture
def torch_installed(monkeypatch):
    asked = []

    def version(*names):
        asked.extend(names)
        return "1.2.3"

    monkeypatch.setattr(torch_inductor_backend, "installed_version", version)
    return asked


def cache_variables(folder, current):
    return environment_of(TorchInductorBackend(), "cache_environment", folder, current)


def test_a_folder_gives_inductor_a_folder_of_its_version(torch_installed, tmp_path):
    assert cache_variables(tmp_path, {}) == {"TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "torch-inductor-1.2.3")}
    assert torch_installed == ["torch"]  # the version of torch, the distribution Inductor comes with
    assert not any(tmp_path.iterdir())  # Inductor makes the folder when it stores something


def test_off_turns_inductors_caches_off(torch_installed):
    assert cache_variables(None, {}) == {"TORCHINDUCTOR_FORCE_DISABLE_CACHES": "1"}


@pytest.mark.parametrize("mine", [{"TORCHINDUCTOR_CACHE_DIR": "/mine"}, {"TORCHINDUCTOR_FORCE_DISABLE_CACHES": "1"},
                                  {"TORCH_COMPILE_FORCE_DISABLE_CACHES": "1"}])
def test_a_users_own_cache_variables_win_over_a_folder(torch_installed, tmp_path, mine):
    assert cache_variables(tmp_path, mine) == {}


def test_a_users_other_settings_do_not_stop_the_folder(torch_installed, tmp_path):
    found = cache_variables(tmp_path, {"TF_XLA_FLAGS": "--tf_xla_auto_jit=2", "CACHEDB": "/mine.db"})
    assert found == {"TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "torch-inductor-1.2.3")}


def test_off_wins_over_a_users_own_cache_variables(torch_installed):
    mine = {"TORCHINDUCTOR_CACHE_DIR": "/mine", "TORCH_COMPILE_FORCE_DISABLE_CACHES": "1"}
    assert cache_variables(None, mine) == {"TORCHINDUCTOR_FORCE_DISABLE_CACHES": "1"}


def test_nothing_without_torch(monkeypatch, tmp_path):
    monkeypatch.setattr(torch_inductor_backend, "installed_version", lambda *names: None)
    assert cache_variables(tmp_path, {}) == {} and cache_variables(None, {}) == {}


# -- post-op chains (issue 24): compiled with the convolution, fused into one kernel ---------------------------

FUSED = "--attr-post-ops=batchnorm+sum+relu mb2ic4ih7iw8oc6oh7ow8kh3kw3ph1pw1"  # ResNet's conv3 + bn + add + relu
# One compile more (seconds): differentiable operands (a scaled residual, per-channel prelu slopes and src1) and
# smooth eltwise kinds in one chain, on a grouped, strided, asymmetrically padded 2-D shape.
CHAIN = ("--attr-post-ops=sum:0.5+prelu:per_oc+mul:f32:per_oc+gelu_erf+linear:2:-1+tanh+mish+"
         "hardswish:0.16666667:0.5+max:f32:per_oc g2mb2ic4ih9iw9oc6oh4ow5kh3kw3sh2sw2ph1pw0")


@needs_torch
def test_a_chain_compiles_into_one_kernel_after_the_convolution(inductor_backend):
    """Inductor's forward: the convolution (ATen's kernel, an extern call), then batchnorm, the residual add and
    relu as ONE generated C++ kernel; the backward fuses relu's and batchnorm's gradients likewise. And it agrees."""
    from torch._inductor.utils import run_and_get_code

    spec = parse_case(FUSED, dtype="float32").spec
    inputs = make_inputs(spec, 0)
    step = inductor_backend.program(spec).build()
    outputs, (forward, backward) = run_and_get_code(step, inputs.x, inputs.w, inputs.b, inputs.dy,
                                                    operands=inputs.operands)
    called = forward.split("def call(")[1]
    assert called.count("extern_kernels.convolution(") == 1
    epilogue = [name for name in re.findall(r"\b(cpp_fused_\w+)\(", called) if "relu" in name]
    assert len(epilogue) == 1 and all(op in epilogue[0] for op in ("batch_norm", "add", "relu")), epilogue
    assert len(set(re.findall(r"\b(cpp_fused_\w+)\(", backward.split("def call(")[1]))) == 1
    assert statuses(judged_rows(inductor_backend, spec, inputs, outputs)) == dict.fromkeys(spec.tensors, "pass")


@needs_torch
def test_a_long_chain_agrees_forward_and_backward(inductor_backend):
    assert disagreements(inductor_backend, (parse_case(CHAIN, dtype="float32").spec,), "float32") == []


def test_the_chain_is_the_torch_backends():
    """The two programs are self-contained, so each holds the chain: the same lines, kept the same."""
    def chain_lines(function):
        source = inspect.getsource(function)
        return source[source.index("    def cast(value):"):source.index("        return v\n")]

    assert chain_lines(torch_inductor_conv) == chain_lines(torch_conv)
    assert TorchInductorBackend.post_ops == TORCH_POST_OPS
