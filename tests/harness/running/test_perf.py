"""--perf: a case is timed on a backend only after every tensor it computed passed, in that backend's pool."""

from __future__ import annotations

import math
from collections import Counter

from convparity.harness.cases.descriptor import parse_case
from convparity.harness.cases.selection import expand
from convparity.harness.results import Row
from convparity.harness.running.runner import plan, run_sweep, timed_backends
from convparity.harness.running.tasks import TimeCase, backend_pool
from convparity.harness.settings import RunSettings
from tests.harness.running.test_sweep import InlineExecutor

# oc3 is where the faulty backends misbehave (faulty_backends.FAULTY_OUT_CHANNELS).
CASES = ["mb1ic2iw6oc2kw3", "mb1ic2iw6oc3kw3"]


def _sweep(perf: bool) -> tuple[InlineExecutor, list[Row]]:
    cases = list(expand([parse_case(text) for text in CASES], ("float32",)))
    backends = ("reference", "test-wrong-shape")
    settings = RunSettings(backends=backends, dtypes=("float32",), perf=perf)
    executor = InlineExecutor()
    written: list[list[Row]] = []
    run_sweep(plan(cases, backends), settings, executor, written.append)
    return executor, [row for rows in written for row in rows]


def test_only_cases_that_pass_are_timed_and_only_their_pass_rows_carry_times(faulty_plugins):
    executor, rows = _sweep(perf=True)
    timed = [task for task in executor.submitted if isinstance(task, TimeCase)]
    # the reference passes both cases; the wrong-shape backend passes oc2 only (its y fails on oc3)
    assert Counter((t.backend, t.spec.out_channels) for t in timed) == {
        ("reference", 2): 1, ("reference", 3): 1, ("test-wrong-shape", 2): 1}
    assert all(t.pool == backend_pool(t.backend) for t in timed)
    for row in rows:
        failed_case = row.backend == "test-wrong-shape" and row.out_channels == 3
        if failed_case:
            assert row.perf_repeats == 0 and math.isnan(row.perf_median_s), row  # never a time for a failing case
        else:
            assert row.status == "pass"
            assert row.perf_repeats >= 5 and 0 < row.perf_min_s <= row.perf_median_s < 1
            assert row.perf_spread >= 0 and row.gflops > 0
    # y, dx, dw and db rows of one case and backend share one timing
    medians = {(r.backend, r.out_channels): set() for r in rows}
    for row in rows:
        medians[(row.backend, row.out_channels)].add(row.perf_median_s)
    assert all(len(values) == 1 for values in medians.values())


def test_without_perf_nothing_is_timed(faulty_plugins):
    executor, rows = _sweep(perf=False)
    assert not [task for task in executor.submitted if isinstance(task, TimeCase)]
    assert all(row.perf_repeats == 0 and math.isnan(row.perf_median_s) for row in rows)


def _rows(*verdicts: tuple[str, str]) -> list[Row]:
    return [Row(case="c", name="", bias=True, dtype="float32", backend=backend, backend_version="1", tensor="y",
                status=status) for backend, status in verdicts]


def test_which_backends_a_case_is_timed_on():
    rows = _rows(("a", "pass"), ("a", "pass"), ("b", "pass"), ("b", "fail"), ("c", "xfail"), ("d", "pass"),
                 ("d", "unsupported"), ("e", "unsupported"), ("f", "pass"), ("f", "xpass"), ("g", "error"))
    # d is forward only (its gradients unsupported); e computed nothing; f's pass is a stale declaration
    assert timed_backends(rows) == ["a", "d"]
