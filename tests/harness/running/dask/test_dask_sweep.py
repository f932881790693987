"""Sweeps on Dask: the rows of a local run, every fault's status, and resume after an interruption."""

from __future__ import annotations

import importlib.util
import signal

import pytest

pytest.importorskip("distributed", reason="dask.distributed is not installed (pip install 'convparity[dask]')")

from convparity import sweep as run_sweep  # noqa: E402
from convparity.harness.api import resume
from convparity.harness.cli import main  # noqa: E402
from convparity.harness.results import KEY, read_results  # noqa: E402
from convparity.harness.running import context as context_module  # noqa: E402
from convparity.harness.running.context import RunInterrupted  # noqa: E402
from convparity.harness.running.dask_executor import connect  # noqa: E402
from convparity.harness.running.interrupts import Interrupted  # noqa: E402
from convparity.harness.running.launch import ExecutorChoice  # noqa: E402
from convparity.harness.running.run_folder import read_record  # noqa: E402
from tests.harness.running.test_sweep import DESCRIPTORS, check_every_fault  # noqa: E402

FAULTLESS = ["reference", "test-raise", "test-wrong-shape", "test-missing"]


def rows(path):
    """results.csv without `seconds`, in KEY order, as plain records."""
    frame = read_results(path).drop(columns="seconds").sort_values(list(KEY)).reset_index(drop=True)
    return frame.astype(str).to_dict("records")


def test_local_and_dask_runs_write_the_same_rows(faulty_plugins, monkeypatch, tmp_path):
    backends = list(FAULTLESS)
    if importlib.util.find_spec("torch"):  # a real framework too, where one is installed
        monkeypatch.setenv("CONVPARITY_PLUGINS", "reference,torch")
        backends.append("torch")
    common = ["run", "-g", "smoke", "--dtype", "float64", "--dtype", "float32", "-j", "2"]
    for backend in backends:
        common += ["-b", backend]
    assert main([*common, "-o", str(tmp_path / "local")]) == 1  # test-raise and test-wrong-shape fail
    assert main([*common, "-o", str(tmp_path / "dask"), "--executor", "dask"]) == 1
    local, dask = rows(tmp_path / "local"), rows(tmp_path / "dask")
    assert len(local) == (len(backends) - 1) * 2 * (24 * 4 - 3)  # 3 smoke cases have no bias: no db
    assert local == dask
    assert read_record(tmp_path / "dask").executor == {"kind": "dask", "scheduler": None, "workers": 2,
                                                             "slots": 2}


def test_every_fault_keeps_its_status_on_dask(faulty_plugins, scheduler, tmp_path, capsys):
    client = connect(scheduler)
    before = client.run(lambda: __import__("os").getpid())
    check_every_fault(tmp_path / "run", capsys, ["--executor", "dask", "--scheduler", scheduler])
    assert client.run(lambda: __import__("os").getpid()) == before  # no Dask worker died or restarted
    client.close()
    timing = read_record(tmp_path / "run").timing
    assert timing["backend:test-abort"]["failures"] == 1 and timing["backend:test-hang"]["failures"] == 1


def test_an_interrupted_dask_run_resumes_to_the_rows_of_an_uninterrupted_one(faulty_plugins, scheduler,
                                                                            monkeypatch, tmp_path):
    options = dict(backends=["reference", "test-slow", "test-raise"], cases=DESCRIPTORS, bias="both",
                   dtypes=["float64", "float32", "float16"], jobs=2)
    run_sweep(**options, out=tmp_path / "whole")

    class Interrupting(context_module.ResultsWriter):
        writes = 0

        def write(self, rows):
            super().write(rows)
            Interrupting.writes += 1
            if Interrupting.writes == 4:
                raise Interrupted(signal.SIGINT)

    dask = ExecutorChoice("dask", scheduler)
    monkeypatch.setattr(context_module, "ResultsWriter", Interrupting)
    with pytest.raises(RunInterrupted):
        run_sweep(**options, out=tmp_path / "cut", executor=dask)
    monkeypatch.undo()
    monkeypatch.setenv("CONVPARITY_EXTRA_PLUGINS", "tests.harness.running.faulty_backends")
    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")
    cut = read_record(tmp_path / "cut")
    assert cut.status == "interrupted" and 4 * 4 <= len(read_results(tmp_path / "cut")) < len(
        read_results(tmp_path / "whole"))
    run = resume(tmp_path / "cut", executor=dask)
    assert rows(tmp_path / "cut") == rows(tmp_path / "whole")
    assert run.resumed_items >= 4
    resumed = read_record(tmp_path / "cut")
    assert resumed.status == "finished" and resumed.executor["kind"] == "dask"
    # both sessions' tasks are counted: every item's evaluation once, at least
    assert resumed.timing["reference"]["tasks"] >= len(DESCRIPTORS) * 2 * 3


def test_an_unreachable_scheduler_is_one_line_and_exit_2(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "-b", "reference", "--case", "mb2ic2ih5oc2kh3", "-o", str(out), "--executor", "dask",
                 "--scheduler", str(tmp_path / "no-such-scheduler.json")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "cannot reach the Dask scheduler" in error[0], error
    assert not out.exists()  # nothing ran: fix the address and give the same -o again
