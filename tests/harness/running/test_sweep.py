"""A sweep over misbehaving backends completes with each fault's status; the reference runs once per case."""

from __future__ import annotations

from collections import Counter, deque

import pytest

from convparity.harness.cases.descriptor import parse_case
from convparity.harness.cases.selection import expand
from convparity.harness.cli import main
from convparity.harness.results import read_results
from convparity.harness.running.executor import Outcome
from convparity.harness.running.run_folder import read_record
from convparity.harness.running.runner import plan, run_sweep
from convparity.harness.running.tasks import EvaluateCase, RunCase
from convparity.harness.settings import RunSettings

# out_channels 2, 3, 4: the faulty backends misbehave on the middle one only (oc3).
DESCRIPTORS = ["mb2ic2ih5iw5oc2kh3kw3", "mb2ic2ih5iw5oc3kh3kw3", "mb2ic2ih5iw5oc4kh3kw3"]
FAULTY = DESCRIPTORS[1]


class InlineExecutor:
    """The Executor seam served in this process, one task at a time, recording what was submitted."""

    def __init__(self) -> None:
        self.queue: deque = deque()
        self.submitted: list = []
        self.in_flight_specs: Counter = Counter()
        self.most_specs_in_flight = 0

    def submit(self, task, tag, timeout=None) -> None:
        self.queue.append((task, tag))
        self.submitted.append(task)
        if isinstance(task, (RunCase, EvaluateCase)):
            self.in_flight_specs[task.spec] += 1
            self.most_specs_in_flight = max(self.most_specs_in_flight, len(+self.in_flight_specs))

    def next_outcome(self) -> Outcome:
        task, tag = self.queue.popleft()
        if isinstance(task, (RunCase, EvaluateCase)):
            self.in_flight_specs[task.spec] -= 1
        return Outcome(tag, value=task())

    def close(self) -> None:
        self.queue.clear()


def test_reference_once_per_case_and_bounded_look_ahead(faulty_plugins):
    cases = list(expand([parse_case(f"mb1ic2iw{size}oc{oc}kw3") for size in (5, 6, 7) for oc in (2, 3)],
                        ("float64", "float32")))
    backends = ("reference", "test-wrong-shape", "test-missing")
    settings = RunSettings(backends=backends, dtypes=("float64", "float32"))
    executor = InlineExecutor()
    written = []
    versions = run_sweep(plan(cases, backends), settings, executor, written.append, window=3)

    kinds = Counter(type(task).__name__ for task in executor.submitted)
    # One reference evaluation per case x dtype for all backends; nothing runs on the unavailable one.
    assert kinds == {"Probe": 3, "WarmUp": 1, "RunCase": 2 * len(cases), "EvaluateCase": len(cases)}
    assert {task.backend for task in executor.submitted if isinstance(task, RunCase)} == set(backends[:2])
    assert Counter(t.spec for t in executor.submitted if isinstance(t, EvaluateCase)) == Counter(c.spec for c in cases)
    assert executor.most_specs_in_flight <= 3
    assert versions.versions == {"reference": versions.versions["reference"], "test-wrong-shape": "faulty 1.0"}
    assert versions.unavailable == {"test-missing": "libmissing.so is not installed"}
    assert len(written) == len(cases)  # one write per case x dtype, every backend's rows together
    for rows in written:
        # the unavailable backend has no rows: it is named once, in what the sweep returns (and run.json)
        assert [r.backend for r in rows] == [b for b in backends[:2] for _ in range(4)]
        wrong_y = next(r for r in rows if r.backend == "test-wrong-shape" and r.tensor == "y")
        if rows[0].out_channels == 3:
            n, o, width = 1, 3, int(rows[0].input_size) - 2  # kernel 3, no padding
            assert wrong_y.status == "fail"
            assert wrong_y.message == f"y has shape ({n}, {o}, {width - 1}), expected ({n}, {o}, {width})"
        else:
            assert wrong_y.status == "pass"


def test_resuming_plans_only_the_missing_backends():
    cases = [parse_case(d, dtype="float32") for d in DESCRIPTORS]
    done = {(cases[0].spec.descriptor, True, "float32", "a", ""), (cases[1].spec.descriptor, True, "float32", "a", ""),
            (cases[1].spec.descriptor, True, "float32", "b", "")}
    items = list(plan(cases, ("a", "b"), done))
    assert [(item.case.spec.out_channels, item.backends) for item in items] == [(2, ["b"]), (4, ["a", "b"])]


def test_every_fault_gets_its_status_and_the_sweep_completes(faulty_plugins, tmp_path, capsys):
    check_every_fault(tmp_path / "run", capsys)


def check_every_fault(out, capsys, extra_args=()):
    """Run every faulty backend on DESCRIPTORS with `extra_args` (e.g. another executor) and check each
    fault's rows. The faulty_plugins fixture must be active."""
    backends = ["reference", "test-abort", "test-segfault", "test-killed", "test-hang", "test-raise",
                "test-wrong-shape", "test-missing"]
    args = ["run", "--dtype", "float32", "--timeout", "2", "-j", "2", "-o", str(out), *extra_args]
    for backend in backends:
        args += ["-b", backend]
    for descriptor in DESCRIPTORS:
        args += ["--case", descriptor]
    assert main(args) == 1
    assert ("backend test-missing is unavailable, it ran nothing: libmissing.so is not installed"
            in capsys.readouterr().err)
    assert read_record(out).unavailable == {"test-missing": "libmissing.so is not installed"}

    frame = read_results(out)
    # every case, available backend and tensor: nothing lost
    assert len(frame) == len(DESCRIPTORS) * (len(backends) - 1) * 4
    assert not frame.duplicated(["case", "backend", "tensor"]).any()
    statuses = frame.groupby(["case", "backend"])["status"].agg(lambda s: ",".join(sorted(set(s))))
    messages = frame.groupby(["case", "backend"])["message"].agg(lambda s: max(s, key=len))
    faulty = parse_case(FAULTY).spec.descriptor
    expected_faults = {
        "test-abort": ("crash", "SIGABRT"),
        "test-segfault": ("crash", "SIGSEGV"),
        "test-killed": ("crash", "SIGKILL"),
        "test-hang": ("timeout", "no result after 2 s"),
        "test-raise": ("error", "ValueError: cannot do this stride (at "),
        "test-wrong-shape": ("fail,pass", "y has shape (2, 3, 3, 2), expected (2, 3, 3, 3)"),
    }
    for backend in backends[:-1]:
        for descriptor in DESCRIPTORS:
            case = parse_case(descriptor).spec.descriptor
            status, fragment = expected_faults.get(backend, ("pass", ""))
            if case != faulty:
                status, fragment = "pass", ""  # a fresh worker carries on after the fault
            assert statuses[case, backend] == status, (case, backend, messages[case, backend])
            assert fragment in messages[case, backend]
    assert "out-of-memory" in messages[faulty, "test-killed"]
    hung = frame[(frame["case"] == faulty) & (frame["backend"] == "test-hang")]
    assert (hung["seconds"] >= 2).all()
    passed = frame[frame["status"] == "pass"]
    assert (passed["seconds"] > 0).all() and not passed["seconds"].isna().any()


def test_progress_only_on_a_terminal():
    import io

    from convparity.harness.results import Row
    from convparity.harness.running.progress import SweepProgress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    rows = [Row(case="c", name="", bias=True, dtype="float32", backend=b, backend_version="", tensor=t, status=s)
            for b, s in (("x", "pass"), ("y", "crash")) for t in ("y", "dx")]
    for stream in (io.StringIO(), Terminal()):
        with SweepProgress(total=3, stream=stream) as progress:
            progress.advance(rows)
            progress.advance(rows[:2])
        assert progress.failures == 1
        text = stream.getvalue()
        if stream.isatty():
            assert "2/3" in text and "1 failed" in text and "eta" in text
        else:
            assert text == ""


@pytest.mark.parametrize(("extra", "named"), [(["-b", "reference"], "-b"), (["--seed", "3"], "--seed"),
                                              (["-o", "elsewhere"], "-o"), (["--bias", "off"], "--bias"),
                                              (["--timeout", "9"], "--timeout")])
def test_resume_takes_no_other_settings(tmp_path, extra, named, capsys):
    assert main(["run", "--resume", str(tmp_path), *extra]) == 2
    error = capsys.readouterr().err.splitlines()
    assert len(error) == 1 and f"{named} would be ignored: drop it (only -j, --executor, --scheduler, " \
        "--compile-cache, --strict and --new-segment may be given" in error[0]
