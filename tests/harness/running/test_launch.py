"""Choosing an executor: bad combinations are one line and exit 2; the local executor records itself in run.json."""

from __future__ import annotations

import pytest

from convparity.harness.cli import main
from convparity.harness.running.launch import ExecutorChoice, ExecutorChoiceError
from convparity.harness.running.run_folder import read_record


@pytest.mark.parametrize(("args", "fragment"), [
    (["--scheduler", "tcp://127.0.0.1:8786"], "--scheduler needs --executor dask"),
    (["--executor", "dask", "--scheduler", " "], "scheduler must be an address or a scheduler file"),
    (["--shard", "3/2"], "shard 3/2: K must be between 1 and N"),
    (["--shard", "half"], "--shard must be K/N"),
    (["--compile-cache", ""], "compile_cache must be 'default', 'off' or a folder"),
])
def test_bad_placement_options_are_one_line_and_exit_2(tmp_path, capsys, args, fragment):
    assert main(["run", "-b", "reference", "--case", "mb2ic2ih5oc2kh3", "-o", str(tmp_path / "r"), *args]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("convparity: error: ") and fragment in error[0], error


def test_executor_choice_checks_its_fields():
    with pytest.raises(ExecutorChoiceError, match="one of local, dask"):
        ExecutorChoice("slurm")
    assert ExecutorChoice().describe() == {"kind": "local", "scheduler": None}


def test_a_local_run_records_its_executor_and_time_per_pool(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")
    out = tmp_path / "r"
    assert main(["run", "-b", "reference", "--case", "mb2ic2ih5oc2kh3", "-o", str(out), "-j", "2",
                 "--compile-cache", "off"]) == 0
    record = read_record(out)
    assert record.executor == {"kind": "local", "scheduler": None, "jobs": 2}
    assert record.settings.compile_cache == "off"
    assert set(record.timing) == {"backend:reference", "reference"}
    assert record.timing["backend:reference"]["tasks"] == 1 + 2  # the probe and one case in two dtypes
    assert "Time per backend" in (out / "report.html").read_text()
