"""Search on backends with planted bugs: each bug found, shrunk to the feature that triggers it, grouped
under the rule that describes it (which holds where the backend fails on fresh cases the search never
drew); the honest reference yields nothing; every generated script reproduces.

One search over all planted backends (in this process: the sweep's tasks through an inline executor)
serves every test of the module.
"""

from __future__ import annotations

import io
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from convparity.harness.api import search
from convparity.harness.cases.descriptor import parse_case
from convparity.harness.evaluation.verdict import evaluate_case
from convparity.harness.running import tasks
from convparity.harness.search.check import RuleCheck
from convparity.harness.search.findings import read_findings
from convparity.harness.search.observations import observe
from convparity.harness.search.rules import Rule
from convparity.harness.search.search import DEFAULT_BUDGET
from convparity.harness.search.shrink import fails_the_same_way, simplifications
from convparity.harness.search.space import SpecSpace
from tests.harness.search import planted_backends
from tests.harness.search.inline import InlineExecutor
from tests.harness.search.planted_backends import PLANTED, PlantedBackend

SEED = 0
BUDGET = 60
FRESH = 200  # cases the search never drew, on which a reported rule must say where the backend fails
AGREEMENT = 0.95
# Tensors a bug also breaks in transposed convolutions (a dilation ignored moves db's dy too), if the search saw one.
MAY_ALSO_FAIL = {"planted-no-dilation": {"db"}}


def parse_check(text: str) -> RuleCheck:
    """A findings.csv rule_check back as a RuleCheck."""
    match = re.fullmatch(r"(\d+)/(\d+) fresh cases it holds on fail this way, (\d+)/(\d+) it does not hold on do not",
                         text)
    assert match, text
    satisfying_failed, satisfying, violating_passed, violating = map(int, match.groups())
    return RuleCheck(satisfying, satisfying_failed, violating, violating_passed)


def agreement(backend, finding, seed: int = 1234, count: int = FRESH) -> float:
    """On `count` fresh draws the backend runs (a post-op chain the planted backends do not declare is unsupported,
    and no case for them), the share where the finding's rule holds exactly where the backend fails its way."""
    rule = Rule.from_text(finding.rule)
    rng = random.Random(seed)
    space = SpecSpace(("float64", "float32", "float16"))
    agree = ran = 0
    while ran < count:
        spec = space.draw(rng)
        observation = _evaluate(backend, spec)
        if observation.kind == "skip":
            continue
        ran += 1
        fails = observation.kind == finding.kind and (
            finding.kind != "fail" or bool(set(observation.undeclared) & set(finding.tensors.split())))
        agree += fails == rule.holds(spec)
    return agree / count


@pytest.fixture(scope="module")
def found(tmp_path_factory):
    """The search's result and its findings by backend."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVPARITY_EXTRA_PLUGINS", planted_backends.__name__)
        patch.setenv("CONVPARITY_PLUGINS", "reference")
        tasks._backend.cache_clear()
        out = tmp_path_factory.mktemp("search") / "run"
        result = search(["reference", *PLANTED], budget=BUDGET, seed=SEED, out=out, executor=InlineExecutor())
        tasks._backend.cache_clear()
    by_backend: dict[str, list] = {}
    for finding in result.findings:
        by_backend.setdefault(finding.backend, []).append(finding)
    return result, by_backend


def _minimal(finding):
    return parse_case(finding.minimal_case, dtype=finding.minimal_dtype, bias=finding.minimal_bias == "on").spec


def _evaluate(backend, spec):
    _, rows = evaluate_case(backend, spec, seed=SEED)
    return observe(spec, backend.name, rows)


@pytest.mark.parametrize("name", list(PLANTED))
def test_each_planted_bug_is_one_group_with_its_rule(found, name):
    rule, tensors, _ = PLANTED[name]
    (finding,) = found[1][name]
    assert (finding.rule, finding.known, finding.status) == (rule, False, "new")
    assert tensors <= set(finding.tensors.split()) <= tensors | MAY_ALSO_FAIL.get(name, set())
    assert finding.kind == ("error" if name == "planted-raise" else "fail")
    assert finding.rule_exceptions <= 0.1 * finding.cases_seen  # a cause's rare exceptions (outputs of padding only)
    check = parse_check(finding.rule_check)
    assert check.held and check.satisfying >= 4 and (check.violating >= 4 or rule == "every case"), finding.rule_check
    assert finding.reruns == "deterministic: failed this way in all 5 reruns" and not finding.flaky


@pytest.mark.parametrize("name", list(PLANTED))
def test_minimal_case_shows_exactly_the_trigger_and_is_a_local_minimum(found, name):
    """Batch 1, rank 1, a single channel unless the trigger needs more; the trigger's fields as planted;
    and no simplification of it fails the same way (evaluated here, not taken from the search)."""
    (finding,) = found[1][name]
    spec = _minimal(finding)
    _, _, trigger = PLANTED[name]
    plain = {"batch": 1, "rank": 1, "in_channels": 1, "out_channels": 1, "groups": 1, "stride": (1,),
             "dilation": (1,), "padding": ((0, 0),), "bias": False}
    if name == "planted-no-dilation":
        plain["kernel_size"] = (2,)
    if name == "planted-last-size":
        plain.update(kernel_size=(1,), input_size=(2,))
    if name in MAY_ALSO_FAIL and spec.transposed:  # the case that shows db too: with a bias
        plain["bias"] = True
    expected = {**plain, **trigger}
    if "groups" in trigger:
        expected.update(in_channels=trigger["groups"], out_channels=trigger["groups"])
    assert {field: getattr(spec, field) for field in expected} == expected, finding.minimal_case
    assert finding.local_minimum == "yes"
    backend = PlantedBackend(name)
    start = _evaluate(backend, spec)
    assert start.fails and set(start.failing) <= set(finding.tensors.split())
    for simpler in simplifications(spec, ("float64", "float32")):
        assert not fails_the_same_way(_evaluate(backend, simpler), start), simpler.descriptor


@pytest.mark.parametrize("name", list(PLANTED))
def test_rule_says_which_fresh_cases_fail(found, name):
    """On cases the search never drew, the reported rule holds where the backend fails this way (the rare
    exceptions: cases whose output sees nothing but padding, strides that move no window)."""
    (finding,) = found[1][name]
    assert agreement(PlantedBackend(name), finding) >= AGREEMENT


def test_the_honest_reference_has_no_findings_and_files_are_written(found):
    result, by_backend = found
    assert "reference" not in by_backend
    assert set(by_backend) == set(PLANTED)
    assert result.exit_code() == 1
    table = read_findings(result.path)
    assert list(table["group"]) == [f.group for f in result.findings]
    assert (result.path / "findings.md").read_text().count("\n## ") == len(PLANTED)
    page = (result.path / "report.html").read_text()
    assert "<h2>Findings</h2>" in page and 'href="repro/planted-groups-1.py"' in page
    assert result.counts.evaluations["explore"] == BUDGET * (len(PLANTED) + 1)
    assert result.counts.evaluations["rerun"] >= 5 * len(PLANTED)  # each found failure run again
    assert result.first_finding_seconds < result.seconds


def test_every_generated_script_exits_1_while_its_bug_is_there(found):
    result, _ = found
    # The planted backends are test modules: the scripts find them through PYTHONPATH, as a user's own
    # unpackaged plugin would be found (the installed harness itself comes from the interpreter).
    root = str(Path(__file__).resolve().parents[3])
    environment = {"PATH": "/usr/bin:/bin", "CONVPARITY_EXTRA_PLUGINS": planted_backends.__name__,
                   "CONVPARITY_PLUGINS": "reference", "PYTHONPATH": root}
    scripts = sorted((result.path / "repro").glob("*.py"))
    assert len(scripts) == len(PLANTED)
    running = [(script, subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True, env=environment)) for script in scripts]
    for script, process in running:
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 1, (script.name, output)
        if script.name.startswith("planted-raise"):
            assert "RuntimeError: strided kernels are not built for stride (2,)" in output
        else:
            assert "still wrong: " in output, output


def test_a_default_search_of_the_reference_finds_nothing(planted_plugins, tmp_path):
    result = search(["reference"], seed=SEED, out=tmp_path / "hunt", executor=InlineExecutor())
    assert result.findings == [] and result.exit_code() == 0
    assert result.counts.evaluations == {"explore": DEFAULT_BUDGET}
    assert "0 new finding(s), 0 known deviation(s)." in (tmp_path / "hunt" / "findings.md").read_text()


def test_minutes_bound_the_whole_search_and_the_split_is_printed(planted_plugins, tmp_path):
    """No case budget: the whole search (exploring, shrinking, checking, writing) ends by its time (6 s here,
    on a failing backend, so that every phase has work; the margin: a case or a grouping under way at a
    phase's end on a busy machine), the split said at the start."""
    log = io.StringIO()
    result = search(["planted-groups"], minutes=0.1, seed=SEED, out=tmp_path / "hunt", executor=InlineExecutor(),
                    log=log)
    assert result.counts.evaluations["explore"] > 0 and result.seconds < 6.0 + 2.0
    assert ("time: 6 s in all: explore until 4 s, cover until 4 s, check until 5 s, then grouping and writing the "
            "findings by 6 s") in log.getvalue()
    assert (tmp_path / "hunt" / "findings.csv").is_file()
    search_metadata = json.loads((tmp_path / "hunt" / "run.json").read_text())["search"]
    assert (search_metadata["minutes"], search_metadata["budget"]) == (0.1, None)
