"""LocalProcessExecutor: tasks run in spawned workers per pool; a death, a hang or an exception is an
outcome of that task alone, and the next task gets a working worker."""

from __future__ import annotations

import os

import pytest

from convparity.harness.running.local_executor import LocalProcessExecutor
from tests.harness.running.sample_tasks import Abort, Cores, Divide, Meet, Pid, Ranked, Sleep, Unpicklable


def outcomes(executor, count):
    return {o.tag: o for o in (executor.next_outcome() for _ in range(count))}


def test_a_pool_keeps_its_worker_and_pools_are_separate_processes():
    with LocalProcessExecutor(jobs=1) as executor:
        for tag, pool in enumerate(["a", "a", "b", "a"]):
            executor.submit(Pid(pool), tag)
        got = outcomes(executor, 4)
    pids = [got[tag].value for tag in range(4)]
    assert pids[0] == pids[1] == pids[3] != pids[2]
    assert os.getpid() not in pids


def test_crash_timeout_and_error_are_outcomes_and_the_pool_goes_on():
    with LocalProcessExecutor(jobs=2) as executor:
        executor.submit(Pid("p"), "before")
        executor.submit(Abort("p"), "abort")
        executor.submit(Sleep("p", 60), "hang", timeout=0.5)
        executor.submit(Divide("p"), "raise")
        executor.submit(Unpicklable("p"), "unpicklable")
        executor.submit(Pid("p"), "after")
        got = outcomes(executor, 6)
    assert got["abort"].failure == "crash" and "SIGABRT" in got["abort"].message
    assert got["hang"].failure == "timeout" and "0.5 s" in got["hang"].message and got["hang"].seconds >= 0.5
    assert got["raise"].failure == "error"
    assert got["raise"].message.startswith("ZeroDivisionError: division by zero (at ")
    assert "sample_tasks.py" in got["raise"].message
    assert got["unpicklable"].failure == "error" and "could not be sent back" in got["unpicklable"].message
    assert got["before"].failure == got["after"].failure == ""
    assert isinstance(got["after"].value, int) and got["after"].value != got["before"].value


def test_jobs_run_at_the_same_time(tmp_path):
    # Each task waits for the other's file: they can only both succeed if they run at once.
    with LocalProcessExecutor(jobs=2) as executor:
        executor.submit(Meet("a", str(tmp_path), "one", "two"), 1)
        executor.submit(Meet("b", str(tmp_path), "two", "one"), 2)
        got = outcomes(executor, 2)
    assert got[1].value is True and got[2].value is True


def test_worker_output_goes_to_the_log(tmp_path):
    log = tmp_path / "workers.log"
    with LocalProcessExecutor(jobs=1, log=log) as executor:
        executor.submit(Abort("p"), "abort")
        crash = executor.next_outcome()
    assert "workers.log" in crash.message
    text = log.read_text()
    assert "pool p] started" in text and "Fatal Python error: Aborted" in text


def test_bad_jobs_and_empty_wait():
    with pytest.raises(ValueError, match="jobs must be at least 1"):
        LocalProcessExecutor(jobs=0)
    with LocalProcessExecutor(jobs=1) as executor, pytest.raises(RuntimeError, match="no task submitted"):
        executor.next_outcome()


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="pinning needs Linux and two cores")
def test_running_tasks_are_pinned_to_cores_of_their_own(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # a user's own thread count turns pinning off
    with LocalProcessExecutor(jobs=2) as executor:
        executor.submit(Cores("a", str(tmp_path), "one", "two"), 1)
        executor.submit(Cores("b", str(tmp_path), "two", "one"), 2)
        got = outcomes(executor, 2)
    first, second = got[1].value, got[2].value
    assert len(first) == len(second) == 1 and first != second
    assert first | second <= os.sched_getaffinity(0)


def test_urgent_then_longest_expected_tasks_start_first():
    with LocalProcessExecutor(jobs=1) as executor:
        for tag, (seconds, urgency) in enumerate([(0.1, 0), (5.0, 0), (0.0, 0), (0.01, 1), (5.0, 0)]):
            executor.submit(Ranked("p", str(tag), seconds, urgency), tag)
        order = [executor.next_outcome().tag for _ in range(5)]
    assert order == [3, 1, 4, 0, 2]  # urgent; then the longest, the older of equals first; unranked last


def test_timing_counts_each_pools_tasks_failures_and_workers():
    with LocalProcessExecutor(jobs=1) as executor:
        for tag, task in enumerate([Sleep("a", 0.2), Sleep("a", 0.2), Divide("a"), Abort("b")]):
            executor.submit(task, tag)
        outcomes(executor, 4)
        timing = executor.timing()
    assert timing["a"]["tasks"] == 3 and timing["a"]["failures"] == 1 and timing["a"]["workers"] == 1
    assert 0.4 <= timing["a"]["seconds"] < 5 and timing["a"]["startup_seconds"] > 0
    assert timing["b"] == {**timing["b"], "tasks": 1, "failures": 1, "workers": 1}
    assert timing["a"]["compile_measured"] is False  # no framework reported compiling
