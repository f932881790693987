"""The tinygrad backend: its CPU device (clang) usable in its tox env, contract suite, padding, the
float16 bias rounding, probed limits, a smoke sweep; its workers' thread and kernel-cache variables; post-op
chains reaching every kind (fused into the convolution's kernel), the float64 erf deviation, and a planted
epilogue bug the suite must catch."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

from convparity.harness.backends.manager import PluginSelection, get_manager
from convparity.harness.cases.inputs import make_inputs
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.running import compile_cache
from convparity.harness.running.placement import WorkerSetup
from convparity.harness.testing.checks import check_case, check_program, judge_case
from convparity.harness.testing.contract_suite import BackendContract
from convparity.plugin import Program, program_arguments
from convparity.plugins import tinygrad_backend as plugin_module
from convparity.plugins.tinygrad_backend import DEVICE, TinygradBackend, captured_stderr, tinygrad_conv
from tests.plugins.backend_checks import (
    EXTRA_SPECS,
    check_usable_in_own_tox_env,
    disagreements,
    smoke_sweep,
)
from tests.plugins.conftest import framework_module
from tests.plugins.epilogue_chains import ALL_KINDS, EVERY_KIND, chain_case, kinds

pytestmark = pytest.mark.framework("tinygrad")


class TestTinygrad(BackendContract):
    backend_name = "tinygrad"
    # float32 only: each shape and dtype costs a clang compile of every kernel (3-D cases take tens of
    # seconds on two busy cores); float64 on the default grid is the parity job's (all pass).
    dtypes = ("float32",)


@pytest.fixture(scope="module")
def tinygrad_backend():
    backend = get_manager().backends()["tinygrad"]
    reason = backend.availability()
    if reason:
        pytest.skip(reason)
    return backend


def test_usable_in_its_tox_env():
    """The tox env installs clang first (.ci/ensure-clang.sh); without it this fails rather than skips."""
    check_usable_in_own_tox_env(get_manager().backends()["tinygrad"], "tinygrad")


def test_unavailable_without_a_compiler_says_tinygrads_error(tmp_path):
    """In a fresh process whose CC names no compiler, availability() quotes tinygrad's own exception.

    With an empty kernel cache of its own: a cache holding the device's queue programs would start it
    without calling the compiler at all."""
    script = ("from convparity.harness.backends.manager import PluginManager\n"
              "print(PluginManager({'reference', 'tinygrad'}).backends()['tinygrad'].availability())\n")
    env = {**os.environ, "CC": str(tmp_path / "no-such-clang"), "CACHEDB": str(tmp_path / "empty-cache.db")}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert "its CPU device cannot start" in result.stdout and "no-such-clang" in result.stdout


def test_agrees_on_negative_and_one_sided_padding_groups_and_dilation(tinygrad_backend):
    """float32 only: every new shape and dtype costs tinygrad a clang compile of each kernel (seconds)."""
    assert disagreements(tinygrad_backend, EXTRA_SPECS, "float32") == []


def test_float16_bias_is_rounded_twice_as_declared(tinygrad_backend):
    """With a bias, float16 y is exactly round(round(conv) + b), conv being tinygrad's result without it."""
    for spec in (s.replace(dtype="float16", bias=True) for s in EXTRA_SPECS if s.rank < 3):
        inputs = make_inputs(spec, 0)
        y = tinygrad_backend.run(spec, inputs.x, inputs.w, inputs.b, inputs.dy)[0]
        conv = tinygrad_backend.run(spec.replace(bias=False), inputs.x, inputs.w, None, inputs.dy)[0]
        np.testing.assert_array_equal(y, conv + inputs.b.reshape((1, -1) + (1,) * spec.rank))


def test_bfloat16_products_are_rounded_before_the_sum(tinygrad_backend):
    """Without a bias, bfloat16 y is exactly round(sum in float32 of round(x * w)), element by element."""
    spec = ConvSpec(batch=2, in_channels=8, out_channels=4, input_size=(6, 6), kernel_size=(3, 3), padding=1,
                    bias=False, dtype="bfloat16")
    inputs = make_inputs(spec, 0)
    y = tinygrad_backend.run(spec, inputs.x, inputs.w, None, inputs.dy)[0]
    x = np.pad(inputs.x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    products = np.stack([x[:, None, :, i:i + 6, j:j + 6] * inputs.w.astype(np.float64)[None, :, :, i, j, None, None]
                         for i in range(3) for j in range(3)], axis=2)  # (N, O, 9, C, 6, 6)
    rounded = products.astype(ml_dtypes.bfloat16).astype(np.float32).sum(axis=(2, 3), dtype=np.float32)
    exact = products.sum(axis=(2, 3))
    to_bf16 = ml_dtypes.bfloat16
    assert (y.astype(to_bf16) == rounded.astype(to_bf16)).mean() == 1.0
    assert (y.astype(to_bf16) != exact.astype(to_bf16)).any()


def test_captured_stderr_sees_child_processes():
    with captured_stderr() as text:
        subprocess.run(["sh", "-c", "echo 'error: from a child' >&2"], check=True)
    assert "error: from a child" in text[0]


def test_limits_are_probed_dtypes_with_the_compilers_words(tinygrad_backend):
    assert tinygrad_backend.limits[0].condition == "transposed convolution"
    for limit in tinygrad_backend.limits[1:]:
        assert limit.condition in ("dtype float16", "dtype bfloat16")
        assert limit.reason.startswith("tinygrad ")


def test_smoke_sweep_through_the_cli(tmp_path):
    code, results = smoke_sweep("tinygrad", tmp_path / "run", dtypes=("float32",))
    assert set(results["status"]) == {"pass"}, results[results["status"] != "pass"]
    assert code == 0



# -- post-op chains: every kind in eleven cases (each case costs tinygrad a compile of its kernels) ----------

# float64 where its arithmetic differs most from float32's: erf (a declared deviation), exp2 and log2 (tinygrad's own
# polynomials), batchnorm's rsqrt and the operand gradients.
FLOAT64_CHAINS = ("gelu_erf", "abs+sqrt+pow:0.5:3+exp+log", "batchnorm+prelu:per_oc+sum:0.5+relu:0.1")


def case_id(case):
    return f"{case.name}-{case.spec.dtype}"


def test_declares_every_post_op_kind_and_the_chains_reach_them(tinygrad_backend):
    assert set(tinygrad_backend.post_ops) == ALL_KINDS == kinds(EVERY_KIND)


@pytest.mark.parametrize("case", [chain_case(c, "float32") for c in EVERY_KIND]
                         + [chain_case(c, "float64") for c in FLOAT64_CHAINS], ids=case_id)
def test_chains_reaching_every_kind(tinygrad_backend, case):
    check_case(tinygrad_backend, case)


def test_the_program_with_a_chain_is_self_contained(tinygrad_backend):
    """The program's source alone, given the chain and its operands, gives the bits run() gives (the contract
    suite checks this on the smoke grid, which has no chain)."""
    check_program("tinygrad", [chain_case("batchnorm+prelu:per_oc+sum:0.5+relu:0.1", "float32")])


def test_the_chain_runs_in_the_convolutions_kernel():
    """tinygrad fuses the elementwise chain into the convolution's reduce kernel: the forward of conv + batchnorm +
    sum + relu is one kernel, as the convolution alone is (so the chains above test the fused kernels)."""
    tinygrad = framework_module("tinygrad")
    rng = np.random.default_rng(0)
    x, w, r = (tinygrad.Tensor(rng.uniform(-1, 1, shape).astype(np.float32), device=DEVICE).realize()
               for shape in ((2, 3, 10), (4, 3, 3), (2, 4, 10)))
    mean, invstd = (tinygrad.Tensor(rng.uniform(0.5, 1, 4).astype(np.float32), device=DEVICE).realize()
                    for _ in range(2))
    counts = []
    for chain in (lambda y: y, lambda y: (y.batchnorm(None, None, mean, invstd) + 0.5 * r).relu()):
        tinygrad.GlobalCounters.reset()
        chain(x.conv2d(w, padding=(1, 1))).realize()
        counts.append(tinygrad.GlobalCounters.kernel_count)
    assert counts == [1, 1]


def test_float64_erf_is_the_abramowitz_stegun_polynomial_outside_convparity():
    """The evidence of the float64 gelu_erf deviation, in tinygrad alone: Tensor.erf errs by up to 1.5e-7 (the
    polynomial's bound) in float64, where float64's own rounding is 1e-16."""
    tinygrad = framework_module("tinygrad")
    x = np.linspace(-3, 3, 61)
    got = tinygrad.Tensor(x, dtype=tinygrad.dtypes.float64, device=DEVICE).erf().numpy()
    error = np.abs(got - np.array([math.erf(v) for v in x]))
    assert 1e-7 < error.max() <= 1.5e-7


class SumScaleIgnored(TinygradBackend):
    """A planted epilogue bug: every sum adds its residual with scale 1, whatever the spec's scale."""

    deviations = ()

    def program(self, spec):
        arguments = program_arguments(spec, device=DEVICE)
        arguments["post_ops"] = tuple(tuple((key, 1.0 if key == "scale" else value) for key, value in step)
                                      for step in arguments["post_ops"])
        return Program(tinygrad_conv, arguments)

    def run(self, spec, x, w, b, dy, extras=None):
        return self.program(spec).build()(x, w, b, dy, operands=extras.operands)


def test_a_planted_sum_that_ignores_its_scale_fails_where_tinygrad_passes(tinygrad_backend):
    case = chain_case("batchnorm+prelu:per_oc+sum:0.5+relu:0.1", "float32")
    assert judge_case(tinygrad_backend, case).outcome == "pass"
    planted = judge_case(SumScaleIgnored(), case)
    assert planted.outcome == "fail"
    assert {row.tensor for row in planted.rows if row.status == "fail"} >= {"y", "dx", "dw", "db", "dpost2"}


# Its workers' variables: they need no tinygrad (installed_version is patched where it matters).


@pytest.fixture
def installed(monkeypatch):
    monkeypatch.setattr(plugin_module, "installed_version", lambda *names: "1.2.3")


def test_a_folder_puts_the_kernel_cache_in_a_folder_of_this_version(installed, tmp_path):
    found = TinygradBackend().cache_environment(tmp_path, {})
    assert found == {"CACHEDB": str(tmp_path / "tinygrad-1.2.3" / "cache.db")}
    assert not any(tmp_path.iterdir())  # tinygrad makes the folder when it stores a kernel


def test_off_turns_the_kernel_cache_off_whatever_the_user_set(installed):
    assert TinygradBackend().cache_environment(None, {}) == {"CACHELEVEL": "0"}
    assert TinygradBackend().cache_environment(None, {"CACHEDB": "/mine.db"}) == {"CACHELEVEL": "0"}


@pytest.mark.parametrize("mine", [{"CACHEDB": "/mine.db"}, {"CACHELEVEL": "1"}])
def test_a_users_own_cache_variables_win_over_a_folder(installed, tmp_path, mine):
    assert TinygradBackend().cache_environment(tmp_path, mine) == {}


def test_nothing_when_tinygrad_is_not_installed(monkeypatch, tmp_path):
    monkeypatch.setattr(plugin_module, "installed_version", lambda *names: None)
    assert TinygradBackend().cache_environment(tmp_path, {}) == {}
    assert TinygradBackend().cache_environment(None, {}) == {}


def test_a_worker_gets_one_cpu_thread_and_the_machines_cache_folder(installed, tmp_path):
    plugins = PluginSelection(("reference", "tinygrad"))
    found = WorkerSetup("tinygrad", plugins, str(tmp_path)).environment({})
    assert found["NUM_CPU_THREADS"] == "1"
    assert found["CACHEDB"] == str(tmp_path / compile_cache.machine_fingerprint() / "tinygrad-1.2.3" / "cache.db")
    assert WorkerSetup("tinygrad", plugins, "off").environment({"NUM_CPU_THREADS": "4"})["NUM_CPU_THREADS"] == "4"
