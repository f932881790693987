"""The library API from any script: a file without a `__main__` guard, a program read from stdin; one clear error
when no worker can start; evaluate_case by name or object."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import convparity
import convparity.harness.running.run_folder
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.running.runner import WorkerStartError
from convparity.plugins.reference_backend import ReferenceBackend

EXAMPLE = textwrap.dedent("""\
    import convparity

    run = convparity.sweep(backends=["reference"], grids=["smoke"], dtypes=["float32"], jobs=2, out=OUT)
    print(run.summary)
    print(sorted(set(run.results["status"])), len(run.results), run.path)
""")
ENVIRONMENT = {**os.environ, "CONVPARITY_PLUGINS": "reference"}


@pytest.mark.slow
@pytest.mark.parametrize("how", ["file", "stdin"])
def test_the_readmes_example_runs_as_a_plain_script_and_from_stdin(tmp_path, how):
    program = EXAMPLE.replace("OUT", repr(str(tmp_path / "run")))
    if how == "file":
        (tmp_path / "example.py").write_text(program)
        done = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=ENVIRONMENT, capture_output=True,
                              text=True, timeout=300)
    else:
        done = subprocess.run([sys.executable, "-"], input=program, cwd=tmp_path, env=ENVIRONMENT, capture_output=True,
                              text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("['pass'] ") and int(last.split()[1]) > 80  # every row of the smoke grid passes


@pytest.mark.parametrize("interpreter", ["missing", "dies at once"])
def test_a_sweep_whose_workers_cannot_start_is_one_error_naming_a_log_that_exists(tmp_path, monkeypatch,
                                                                                   interpreter):
    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")
    executable = tmp_path / "python"
    if interpreter == "dies at once":  # starts, but dies before it could say it is alive (convparity not importable)
        executable.write_text("#!/bin/sh\necho 'No module named convparity' >&2\nexit 1\n")
        executable.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(executable))
    with pytest.raises(WorkerStartError, match="no worker of pool") as raised:
        convparity.sweep(backends=["reference"], cases=["mb1ic1iw4oc1kw2"], dtypes=["float32"], out=tmp_path / "r")
    assert raised.value.exit_code == 2
    if interpreter == "dies at once":
        message = str(raised.value)
        assert "before it could start Python and import convparity" in message
        log = message.split("its output is in ")[1].strip()
        assert "No module named convparity" in open(log).read()
    assert convparity.harness.running.run_folder.read_record(tmp_path / "r").status == "interrupted"


def test_evaluate_case_takes_a_name_or_a_backend(monkeypatch):
    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")
    spec = ConvSpec(batch=1, in_channels=2, out_channels=2, input_size=(5,), kernel_size=(3,), dtype="float64")
    for backend in ("reference", ReferenceBackend()):
        _, rows = convparity.evaluate_case(backend, spec)
        assert [row.status for row in rows] == ["pass"] * 4
    with pytest.raises(convparity.ConvparityError, match="unknown backend 'nope'"):
        convparity.evaluate_case("nope", spec)
