"""The pytest plugin (convparity.harness.testing.pytest_plugin) and BackendContract: the same items, ids and verdicts.

Each test runs pytest on a throw-away project (pytester). A backend that is right on some cases,
wrong on others, wrong where it declares a deviation and unable to run others gives every outcome;
the expected counts are worked out from the smoke grid's specs here, independently of the plugin.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from convparity.harness.cases.builtin_grids import smoke

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[3]
PLUGIN = "convparity.harness.testing.pytest_plugin"
# Installed (pytest11 entry point) it loads by itself, and naming it again would register it twice.
LOADED_BY_ENTRY_POINT = (not os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
                         and any(ep.value == PLUGIN for ep in entry_points(group="pytest11")))
PLUGIN_ARGS = () if LOADED_BY_ENTRY_POINT else ("-p", PLUGIN)

PARTLY_WRONG = '''
from convparity import reference_impl
from convparity.harness.backends.deviations import Deviation
from convparity.harness.backends.hookspecs import hookimpl
from convparity.harness.backends.limits import DeclaredLimits, Limit


class PartlyWrong(DeclaredLimits):
    """Cannot run 3-D; y is 1% off in 1-D (declared) and with groups (not declared); right elsewhere."""

    name = "partly-wrong"
    limits = (Limit("spatial rank 3", "no 3-D here", lambda spec: spec.rank == 3),)
    deviations = (Deviation("spatial rank 1", "y is 1% off in 1-D", applies=lambda spec: spec.rank == 1,
                            tensors=("y",)),)

    def version(self):
        return "1.0"

    def availability(self):
        return None

    def run(self, spec, x, w, b, dy):
        y, dx, dw, db = reference_impl.conv_forward_backward(x, w, b, dy, stride=spec.stride, padding=spec.padding,
                                                             dilation=spec.dilation, groups=spec.groups)
        if spec.rank == 1 or spec.groups > 1:
            y = y * 1.01
        return y, dx, dw, db


@hookimpl
def convparity_register_backends(register):
    register(PartlyWrong())
'''


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch) -> pytest.Pytester:
    """A project with the partly-wrong backend registered by import path; only the reference besides."""
    pytester.makepyfile(partly_wrong=PARTLY_WRONG)
    pytester.syspathinsert()
    monkeypatch.setenv("CONVPARITY_EXTRA_PLUGINS", "partly_wrong")
    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(pytester.path)]))  # for subprocesses
    return pytester


def case_id(spec, dtype: str) -> str:
    return f"{spec.descriptor}-{dtype}" + ("" if spec.bias else "-nobias")


def test_without_options_it_adds_nothing(project):
    project.makepyfile(test_one="def test_one():\n    pass\n")
    result = project.runpytest(*PLUGIN_ARGS, "--co", "-q")
    assert [line for line in result.outlines if "::" in line] == ["test_one.py::test_one"]
    project.runpytest(*PLUGIN_ARGS).assert_outcomes(passed=1)


def test_item_ids_are_the_descriptors_in_each_dtype(project):
    result = project.runpytest(*PLUGIN_ARGS, "--convparity-backend", "reference", "--convparity-dtype", "float64",
                               "--convparity-dtype", "bfloat16", "--co", "-q")
    prefix = "convparity[reference]::"
    expected = [prefix + name for name in ("test_registered_with_contract_members", "test_version_is_a_string",
                                           "test_supports_answers_none_or_reason", "test_deterministic",
                                           "test_program_is_self_contained")]
    expected += [f"{prefix}test_agrees_with_reference[{case_id(case.spec, dtype)}]"
                 for case in smoke() for dtype in ("float64", "bfloat16")]
    assert [line for line in result.outlines if "::" in line] == expected


CONTRACT_CLASS = '''
from convparity.plugin import BackendContract


class TestPartlyWrong(BackendContract):
    backend_name = "partly-wrong"
    dtypes = ("float64",)
'''


@pytest.mark.parametrize("entry", ["options", "BackendContract"])
def test_every_outcome_and_the_repro_line(project, entry):
    """Unsupported cases skip, declared deviations xfail, other disagreements fail with the repro command."""
    if entry == "options":
        result = project.runpytest(*PLUGIN_ARGS, "--convparity-backend", "partly-wrong",
                                   "--convparity-dtype", "float64")
    else:
        project.makepyfile(test_contract=CONTRACT_CLASS)
        result = project.runpytest(*PLUGIN_ARGS)
    specs = [case.spec for case in smoke()]
    wrong = [s for s in specs if s.rank == 2 and s.groups > 1]
    declared = [s for s in specs if s.rank == 1]
    unsupported = [s for s in specs if s.rank == 3]
    right = len(specs) - len(wrong) - len(declared) - len(unsupported)
    assert wrong and declared and unsupported and right
    # the four contract checks pass, the program check skips (the test backend declares no program)
    result.assert_outcomes(passed=4 + right, failed=len(wrong), xfailed=len(declared), skipped=1 + len(unsupported))
    text = result.stdout.str()
    for spec in wrong:
        assert f"test_agrees_with_reference[{case_id(spec, 'float64')}]" in text
        assert (f"repro: convparity explain {spec.descriptor} -b partly-wrong --dtype float64 --seed 0 "
                f"--bias {'on' if spec.bias else 'off'}") in text
    assert "  y: fail, err_ratio " in text and "Traceback" not in text


def test_xdist_runs_a_grid_file_on_two_workers(project):
    batch = project.path / "layers.txt"
    batch.write_text("# two layers\ng1mb2ic3ih5iw7oc4oh2ow3kh3kw3sh2sw2\ng2mb1ic4ih6iw6oc4oh6ow6kh3kw3ph1pw1\n")
    result = project.runpytest_subprocess(*PLUGIN_ARGS, "-n", "2", "--convparity-backend", "reference",
                                          "--convparity-grid", str(batch), "--convparity-dtype", "float32")
    result.assert_outcomes(passed=5 + 2)  # the five contract checks (the reference has a program)
    assert "2 workers" in result.stdout.str()


@pytest.mark.parametrize(("options", "message"), [
    (["--convparity-grid", "smoke"], "--convparity-grid needs --convparity-backend NAME"),
    (["--convparity-dtype", "float32"], "--convparity-dtype needs --convparity-backend NAME"),
    (["--convparity-backend", "reference", "--convparity-grid", "nope"], "--convparity-grid: unknown grid 'nope'"),
    (["--convparity-backend", "reference", "--convparity-dtype", "float8"], "--convparity-dtype: dtype must be one of"),
    (["--convparity-backend", "nope"], "--convparity-backend: no backend 'nope' is registered"),
])
def test_bad_options_are_usage_errors_naming_the_option(project, options, message):
    result = project.runpytest(*PLUGIN_ARGS, *options)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
