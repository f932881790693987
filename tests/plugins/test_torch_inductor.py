"""The torch-inductor backend: contract suite, compile once per spec (forward and backward), compile
failures as error rows, a smoke sweep."""

from __future__ import annotations

import stat

import pytest

torch = pytest.importorskip("torch")

from convparity.harness import cli  # noqa: E402
from convparity.harness.backends.manager import get_manager  # noqa: E402
from convparity.harness.cases.inputs import make_inputs  # noqa: E402
from convparity.harness.cases.spec import ConvSpec  # noqa: E402
from convparity.harness.results import read_results  # noqa: E402
from convparity.harness.testing.contract_suite import BackendContract  # noqa: E402
from convparity.plugins.torch_inductor_backend import compiled_forward  # noqa: E402
from tests.plugins.backend_checks import (  # noqa: E402
    EXTRA_SPECS,
    check_usable_in_own_tox_env,
    disagreements,
    smoke_sweep,
)


class TestTorchInductor(BackendContract):
    backend_name = "torch-inductor"


@pytest.fixture(scope="module")
def inductor_backend():
    backend = get_manager().backends()["torch-inductor"]
    reason = backend.availability()
    if reason:
        pytest.skip(reason)
    return backend


def test_usable_in_its_tox_env():
    check_usable_in_own_tox_env(get_manager().backends()["torch-inductor"], "torch-inductor")


def test_agrees_on_negative_and_one_sided_padding_groups_and_dilation(inductor_backend):
    assert disagreements(inductor_backend, EXTRA_SPECS, "float32") == []


def _inductor_graphs() -> int:
    """Graphs Inductor has compiled or fetched from its cache in this process."""
    from torch._dynamo.utils import counters

    return sum(counters["inductor"][key] for key in ("fxgraph_cache_miss", "fxgraph_cache_hit", "fxgraph_cache_bypass"))


def test_a_spec_compiles_forward_and_backward_once_and_is_reused(inductor_backend):
    spec = ConvSpec(batch=1, in_channels=2, out_channels=3, input_size=(11,), kernel_size=(4,), stride=3,
                    padding=((2, -1),), dtype="float32")
    inputs = make_inputs(spec, 1)
    before = _inductor_graphs()
    first = inductor_backend.run(spec, inputs.x, inputs.w, inputs.b, inputs.dy)
    assert _inductor_graphs() == before + 2  # the forward graph and AOTAutograd's backward graph
    assert compiled_forward(spec) is compiled_forward(spec)
    second = inductor_backend.run(spec, inputs.x, inputs.w, inputs.b, inputs.dy)
    assert _inductor_graphs() == before + 2
    for a, b in zip(first, second, strict=True):
        assert (a == b).all()


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


def test_smoke_sweep_through_the_cli(tmp_path):
    code, results = smoke_sweep("torch-inductor", tmp_path / "run", dtypes=("float32",))
    assert set(results["status"]) == {"pass"}, results[results["status"] != "pass"]
    assert code == 0
