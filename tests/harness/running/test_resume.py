"""Resume: a results.csv cut by an interruption is repaired, and a run killed with SIGKILL then resumed
has exactly the rows of an uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from convparity.harness.cases.descriptor import parse_case
from convparity.harness.evaluation.verdict import status_rows
from convparity.harness.results import KEY, RESULTS_FILE, ResultsWriter, read_results
from convparity.harness.running.run_logs import repair_results
from tests.harness.running import faulty_backends

BIASED = parse_case("mb2ic2ih5iw5oc2kh3kw3", dtype="float32", bias=True).spec
UNBIASED = parse_case("mb2ic2ih5iw5oc3kh3kw3", dtype="float32", bias=False).spec
MULTILINE = "RuntimeError: first line\nsecond line, \"quoted\""


def write_rows(folder: Path, groups) -> bytes:
    folder.mkdir()
    writer = ResultsWriter(folder)
    for rows in groups:
        writer.write(rows)
    writer.close()
    return (folder / RESULTS_FILE).read_bytes()


def groups():
    return [status_rows(BIASED, "", "a", "1", 0, "error", MULTILINE),  # 4 rows
            status_rows(UNBIASED, "", "b", "1", 0, "crash", "worker died")]  # 3 rows


def cut_after(text: bytes, marker: bytes, occurrence: int) -> bytes:
    """`text` up to just after the `occurrence`-th (1-based) `marker`."""
    at = -1
    for _ in range(occurrence):
        at = text.index(marker, at + 1)
    return text[: at + len(marker)]


@pytest.mark.parametrize("where", ["intact", "mid-row", "row boundary", "inside quotes", "mid-first-group",
                                   "mid-header"])
def test_repair_drops_cut_rows_and_incomplete_groups(tmp_path, where):
    full = write_rows(tmp_path / "full", groups())
    first_only = write_rows(tmp_path / "first", groups()[:1])
    header = write_rows(tmp_path / "header", [])
    done_first = {(BIASED.descriptor, True, "float32", "a", "")}
    cases = {
        "intact": (full, full, done_first | {(UNBIASED.descriptor, False, "float32", "b", "")}),
        "mid-row": (full[:-20], first_only, done_first),
        "row boundary": (cut_after(full, b"worker died", 2) + b",nan,1,2,2,3,1,5x5,3x3,1x1,0:0x0:0,1x1,3x3,",
                         first_only, done_first),
        "inside quotes": (cut_after(first_only + full[len(first_only):], b"first line\n", 1) + b"sec",
                          header, set()),
        "mid-first-group": (cut_after(full, b"\r\n", 3), header, set()),
        "mid-header": (full[:30], b"", set()),
    }
    given, expected, expected_done = cases[where]
    run = tmp_path / "run"
    run.mkdir()
    (run / RESULTS_FILE).write_bytes(given)
    assert repair_results(run).done == expected_done
    assert (run / RESULTS_FILE).read_bytes() == expected
    # Appending after the repair gives a file pandas reads with every row whole.
    writer = ResultsWriter(run)
    writer.write(groups()[1])
    writer.close()
    assert len(read_results(run)) == sum(4 if bias else 3 for _, bias, *_ in expected_done) + 3


def test_repair_keeps_the_first_of_duplicated_rows_and_counts_them(tmp_path):
    """Two writers before folders were locked wrote every row twice: a resume keeps one copy of each."""
    once = write_rows(tmp_path / "once", groups())
    twice = write_rows(tmp_path / "twice", groups() + groups())
    run = tmp_path / "run"
    run.mkdir()
    (run / RESULTS_FILE).write_bytes(twice)
    repair = repair_results(run)
    assert (repair.dropped_duplicates, repair.dropped_incomplete) == (7, 0)
    assert (run / RESULTS_FILE).read_bytes() == once


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state


def test_sigkill_then_resume_gives_the_rows_of_an_uninterrupted_run(tmp_path):
    env = {**os.environ, "CONVPARITY_EXTRA_PLUGINS": faulty_backends.__name__, "CONVPARITY_PLUGINS": "reference"}
    command = [sys.executable, "-m", "convparity", "run", "-b", "reference", "-b", "test-slow", "-g", "smoke",
               "--dtype", "float32", "-j", "2"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert subprocess.run([*command, "-o", str(full)], env=env, capture_output=True, timeout=120).returncode == 0
    expected = read_results(full)

    runner = subprocess.Popen([*command, "-o", str(cut)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    results = cut / RESULTS_FILE
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and runner.poll() is None:
        if results.exists() and results.read_bytes().count(b"\r\n") > len(expected) // 3:
            break
        time.sleep(0.005)
    assert runner.poll() is None, "the run ended before it could be killed"
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    rows_at_kill = results.read_bytes().count(b"\r\n") - 1
    assert 0 < rows_at_kill < len(expected)

    # The killed runner's workers die with it.
    pids = [int(line.split()[2]) for line in (cut / "workers.log").read_text().splitlines()
            if line.startswith("[convparity worker")]
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in pids)

    resumed = subprocess.run([sys.executable, "-m", "convparity", "run", "--resume", str(cut)], env=env,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "case x dtype were drawn before" in resumed.stdout
    got = read_results(cut)
    assert not got.duplicated(list(KEY)).any()

    def comparable(frame):
        return frame.drop(columns="seconds").sort_values(list(KEY)).reset_index(drop=True)

    assert comparable(got).equals(comparable(expected))
