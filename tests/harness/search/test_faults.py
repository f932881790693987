"""Hangs, crashes and flakiness are findings of their own (issue 21): a backend that hangs on every case is
no "0 new findings, exit 0"; one that hangs only on small cases shows as a hang, with its rule; a crash is a
crash; a backend wrong on 30% of its calls is reported as flaky with the rate observed, not as a
deterministic value-dependent bug, and its script calls it many times.

Hangs and crashes are simulated by the inline executor (the outcome a worker gives: timeout, crash).
"""

from __future__ import annotations

import io
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convparity.harness.api import search
from convparity.harness.running import tasks
from convparity.harness.search.findings import summary_text
from tests.harness.search import planted_backends
from tests.harness.search.inline import InlineExecutor
from tests.harness.search.planted_backends import FAULTS

BUDGET = 300  # cases whose every output size is 1 are rare among random draws: enough of them to meet some


@pytest.fixture(scope="module")
def found(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVPARITY_EXTRA_PLUGINS", planted_backends.__name__)
        patch.setenv("CONVPARITY_PLUGINS", "reference")
        tasks._backend.cache_clear()
        out = tmp_path_factory.mktemp("faults") / "run"
        result = search(["reference", *FAULTS], budget=BUDGET, seed=3, out=out, executor=InlineExecutor())
        tasks._backend.cache_clear()
    by_backend: dict[str, list] = {}
    for finding in result.findings:
        by_backend.setdefault(finding.backend, []).append(finding)
    return result, by_backend


def test_a_backend_that_hangs_on_every_case_is_a_finding_and_exit_1(planted_plugins, tmp_path):
    result = search(["planted-slow"], budget=4, out=tmp_path / "hunt", executor=InlineExecutor(), check_rounds=1)
    (finding,) = result.findings
    assert (finding.kind, finding.rule, finding.status, finding.tensors) == ("timeout", "every case", "new", "")
    assert result.exit_code() == 1
    assert "1 new finding(s)" in summary_text(result.findings, result.path) and "NEW   timeout: every case" in \
        summary_text(result.findings, result.path)
    assert "- a hang: the backend did not finish these cases" in (result.path / "findings.md").read_text()


def test_a_backend_that_hangs_only_on_small_cases_shows_as_a_hang_with_its_rule(found):
    (finding,) = found[1]["planted-hang"]
    assert (finding.kind, finding.rule, finding.status) == ("timeout", FAULTS["planted-hang"][1], "new")
    assert finding.local_minimum == "no" and "not shrunk" in finding.reruns  # a hang is neither shrunk nor rerun


def test_a_crash_is_a_crash_with_its_rule(found):
    (finding,) = found[1]["planted-crash"]
    assert (finding.kind, finding.rule) == ("crash", FAULTS["planted-crash"][1])


def test_a_flaky_backend_is_reported_as_flaky_with_the_rate_seen(found):
    (finding,) = found[1]["planted-flaky"]
    assert finding.flaky and not finding.value_dependent and finding.kind == "fail" and finding.tensors == "y"
    assert 0.05 <= finding.fail_rate <= 0.7, finding.fail_rate  # wrong on 30% of calls
    assert finding.reruns.startswith("flaky: failed this way in ") and finding.reruns.endswith(
        f"of 20 reruns ({finding.fail_rate:.0%})")
    assert finding.local_minimum == "no"  # a flaky failure is not shrunk: each step would follow chance
    markdown = (found[0].path / "findings.md").read_text()
    assert "- flaky: its minimal case, run again with the very same values, failed this way in" in markdown
    assert "depends on the values" not in markdown.split("## planted-flaky-1")[1].split("\n## ")[0]


def test_a_flaky_failure_that_failed_its_first_reruns_by_chance_is_reported_unshrunk(planted_plugins, tmp_path,
                                                                                       monkeypatch):
    rng = np.random.default_rng(0)
    # the first batch (4 cases, 2 dtypes) fails, and so do the first failure's 5 reruns (at 30%, once in 400, as in
    # a CI run); then chance decides
    draws = itertools.chain([0.0] * 13, iter(lambda: float(rng.random()), None))
    monkeypatch.setattr(planted_backends, "chance", lambda: next(draws))
    progress = io.StringIO()
    result = search(["planted-flaky"], budget=6, seed=1, out=tmp_path / "hunt", executor=InlineExecutor(),
                    check_rounds=1, log=progress)
    (finding,) = result.findings
    assert finding.flaky and finding.local_minimum == "no" and finding.reruns.endswith("of 20 reruns "
                                                                                       f"({finding.fail_rate:.0%})")
    assert 0.05 <= finding.fail_rate <= 0.7
    log = progress.getvalue()
    assert "shrinking: " in log and "the shrinking followed chance; reported as found" in log
    first = next(line for line in log.splitlines() if "shrinking: " in line).split(" from ")[1]
    assert finding.minimal_case == first.strip()


def test_the_flaky_findings_script_calls_it_many_times_and_exits_1(found):
    result, by_backend = found
    (finding,) = by_backend["planted-flaky"]
    script = result.path / finding.repro_script
    assert "RUNS, bad = 20, 0" in script.read_text()
    root = str(Path(__file__).resolve().parents[3])
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": root, "CONVPARITY_EXTRA_PLUGINS": planted_backends.__name__,
                   "CONVPARITY_PLUGINS": "reference"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=environment)
    assert done.returncode == 1 and "still wrong in " in done.stdout and " of 20 calls" in done.stdout, done.stdout


def test_deterministic_failures_beside_faults_are_not_flaky(found):
    result, by_backend = found
    assert "reference" not in by_backend and set(by_backend) == set(FAULTS) - {"planted-slow"} | (
        {"planted-slow"} if "planted-slow" in by_backend else set())
    (slow,) = by_backend["planted-slow"]
    assert (slow.kind, slow.rule) == ("timeout", "every case")
    assert result.exit_code() == 1
