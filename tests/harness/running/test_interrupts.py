"""SIGINT and SIGTERM at every moment of a run, and a second writer on a run folder.

Each interrupt is sent by the test at a moment it detects from the run folder: while the backends'
frameworks import, while workers spawn, mid-sweep, while the reports are written. Afterwards: no
traceback, exit 130/143, every finished row whole, run.json `interrupted`, every report file whole or
absent, no temporary file left, and `--resume` completes the run with the rows of an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from convparity.harness.results import KEY, read_results
from tests.harness.running import faulty_backends

ROOT = Path(__file__).resolve().parents[3]
ENVIRONMENT = {**os.environ, "CONVPARITY_EXTRA_PLUGINS": faulty_backends.__name__, "CONVPARITY_PLUGINS": "reference"}


def start_run(out: Path, *backends: str, new_session: bool = False) -> subprocess.Popen:
    command = [sys.executable, "-m", "convparity", "run", "-g", "smoke", "--dtype", "float32", "-j", "2",
               "-o", str(out)]
    for backend in backends:
        command += ["-b", backend]
    return subprocess.Popen(command, cwd=ROOT, env=ENVIRONMENT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=new_session)


def rows_written(out: Path) -> int:
    path = out / "results.csv"
    return path.read_bytes().count(b"\r\n") - 1 if path.exists() else 0


def wait_for(condition: Callable[[], bool], runner: subprocess.Popen, what: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert runner.poll() is None, f"the run ended before {what}: {runner.communicate()}"
        assert time.monotonic() < deadline, f"no {what} within {seconds} s"
        time.sleep(0.002)


def run_status(out: Path) -> str:
    try:
        return json.loads((out / "run.json").read_text())["status"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return ""


def assert_clean_stop(runner: subprocess.Popen, out: Path, code: int, status: str = "interrupted") -> str:
    """The run stopped as promised (its run.json says `status`); returns its stderr."""
    _, stderr = runner.communicate(timeout=60)
    assert runner.returncode == code, stderr
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert lines and lines[-1].startswith("convparity: "), stderr
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp")), list(out.iterdir())
    if (out / "run.json").exists():
        assert run_status(out) == status
    if (out / "results.csv").exists():
        read_results(out)  # every row whole
    if (out / "summary.csv").exists():
        assert list(pd.read_csv(out / "summary.csv").columns)[:3] == ["backend", "dtype", "tensor"]
    if (out / "summary.md").exists():
        assert (out / "summary.md").read_text().rstrip().endswith("|")  # the last table is complete
    if (out / "report.html").exists():
        ElementTree.fromstring((out / "report.html").read_text())
    return stderr


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("full") / "run"
    runner = start_run(out, "reference", "test-slow")
    _, stderr = runner.communicate(timeout=180)
    assert runner.returncode == 0, stderr
    return read_results(out)


def resumed_rows(out: Path) -> pd.DataFrame:
    done = subprocess.run([sys.executable, "-m", "convparity", "run", "--resume", str(out)], cwd=ROOT,
                          env=ENVIRONMENT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert run_status(out) == "finished"
    rows = read_results(out)
    assert not rows.duplicated(list(KEY)).any()
    return rows.drop(columns="seconds").sort_values(list(KEY)).reset_index(drop=True)


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_mid_sweep(tmp_path, uninterrupted, number):
    out = tmp_path / "run"
    runner = start_run(out, "reference", "test-slow")
    wait_for(lambda: rows_written(out) >= 8, runner, "rows")
    runner.send_signal(number)
    stderr = assert_clean_stop(runner, out, 128 + number)
    assert f"continue with: convparity run --resume {out}" in stderr
    expected = uninterrupted.drop(columns="seconds").sort_values(list(KEY)).reset_index(drop=True)
    assert resumed_rows(out).equals(expected)


def test_twice_in_a_row_and_to_the_whole_process_group(tmp_path, uninterrupted):
    """What a terminal does on Ctrl-C Ctrl-C: SIGINT to every process of the group, twice."""
    out = tmp_path / "run"
    runner = start_run(out, "reference", "test-slow", new_session=True)
    wait_for(lambda: rows_written(out) >= 8, runner, "rows")
    os.killpg(runner.pid, signal.SIGINT)
    time.sleep(0.02)
    os.killpg(runner.pid, signal.SIGINT)
    assert_clean_stop(runner, out, 130)
    assert "Traceback" not in (out / "workers.log").read_text()


def test_while_frameworks_import(tmp_path):
    out = tmp_path / "run"
    runner = start_run(out, "reference", "test-slow-start")
    log = out / "workers.log"
    wait_for(lambda: log.exists() and "backend:test-slow-start] started" in log.read_text(), runner,
             "the slow backend's worker")
    runner.send_signal(signal.SIGINT)
    assert_clean_stop(runner, out, 130)
    assert not (out / "results.csv").exists() or rows_written(out) < 200


def test_while_workers_spawn(tmp_path):
    out = tmp_path / "run"
    runner = start_run(out, "reference", "test-slow")
    wait_for(lambda: (out / "run.json").exists(), runner, "run.json")
    runner.send_signal(signal.SIGINT)
    assert_clean_stop(runner, out, 130)


def test_while_reports_are_written(tmp_path):
    out = tmp_path / "run"
    runner = start_run(out, "reference")
    wait_for(lambda: run_status(out) == "finished", runner, "the end of the sweep")
    runner.send_signal(signal.SIGINT)
    stderr = assert_clean_stop(runner, out, 130, status="finished")  # every row is there: only the reports are not
    assert f"write them with: convparity report {out}" in stderr
    done = subprocess.run([sys.executable, "-m", "convparity", "report", str(out)], cwd=ROOT, env=ENVIRONMENT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    ElementTree.fromstring((out / "report.html").read_text())


def test_a_second_writer_is_refused_and_duplicates_nothing(tmp_path, uninterrupted):
    out = tmp_path / "run"
    runner = start_run(out, "reference", "test-slow")
    wait_for(lambda: rows_written(out) >= 8, runner, "rows")
    runner.send_signal(signal.SIGINT)
    assert_clean_stop(runner, out, 130)
    command = [sys.executable, "-m", "convparity", "run", "--resume", str(out)]
    slowly = {**ENVIRONMENT, "CONVPARITY_TEST_SLOW_SECONDS": "0.5"}  # still running when the second one starts
    first = subprocess.Popen(command, cwd=ROOT, env=slowly, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    wait_for(lambda: run_status(out) == "running", first, "the first resume")
    second = subprocess.run(command, cwd=ROOT, env=ENVIRONMENT, capture_output=True, text=True, timeout=60)
    assert second.returncode == 2
    (line,) = second.stderr.strip().splitlines()
    assert f"{out} is being written by convparity pid {first.pid}" in line
    _, stderr = first.communicate(timeout=180)
    assert first.returncode == 0, stderr
    rows = read_results(out)
    assert not rows.duplicated(list(KEY)).any() and len(rows) == len(uninterrupted)
