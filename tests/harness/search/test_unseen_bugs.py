"""Issue 22's bar, on planted bugs written before the grouping was reworked and never used to tune it: a bug
with one cause gives exactly one finding, whose rule agrees with the backend on at least 95% of 200 fresh
cases; a backend with two independent causes gives two findings, one per cause.

One search over those backends and the honest reference (in this process: the sweep's tasks through an
inline executor) serves every test of the module.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from convparity.harness.api import search
from convparity.harness.cases.descriptor import parse_case
from convparity.harness.running import tasks
from convparity.harness.search.rules import Rule
from tests.harness.search import planted_backends
from tests.harness.search.inline import InlineExecutor
from tests.harness.search.planted_backends import TWO_CAUSES, UNSEEN, PlantedBackend
from tests.harness.search.test_planted import AGREEMENT, FRESH, agreement, parse_check

SEED = 0
BUDGET = 60
DTYPES = ("float64", "float32", "float16")


@pytest.fixture(scope="module")
def found(tmp_path_factory):
    """The search's findings by backend."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVPARITY_EXTRA_PLUGINS", planted_backends.__name__)
        patch.setenv("CONVPARITY_PLUGINS", "reference")
        tasks._backend.cache_clear()
        out = tmp_path_factory.mktemp("unseen") / "run"
        result = search(["reference", *UNSEEN, *TWO_CAUSES], dtypes=DTYPES, budget=BUDGET, seed=SEED, out=out,
                        executor=InlineExecutor())
        tasks._backend.cache_clear()
    by_backend: dict[str, list] = {}
    for finding in result.findings:
        by_backend.setdefault(finding.backend, []).append(finding)
    return result, by_backend


def literals(text: str) -> frozenset:
    """A rule's literals, whatever their order ("rank == 3 and any stride > 1" is "any stride > 1 and rank == 3")."""
    return frozenset(Rule.from_text(text).literals)


@pytest.mark.parametrize("name", list(UNSEEN))
def test_a_single_cause_is_one_finding_whose_rule_holds_where_the_backend_fails(found, name):
    planted_rule, tensors = UNSEEN[name]
    (finding,) = found[1][name]
    assert finding.status == "new" and finding.kind == "fail" and tensors <= set(finding.tensors.split())
    assert parse_check(finding.rule_check).held, finding.rule_check
    # the rule stated in the planted backend, or one that says the same on fresh cases
    rate = agreement(PlantedBackend(name), finding, seed=4321, count=FRESH)
    assert rate >= AGREEMENT, (finding.rule, rate)
    assert agreement(PlantedBackend(name), _as(finding, planted_rule), seed=4321, count=FRESH) >= AGREEMENT
    print(f"{name}: {finding.rule!r} agrees on {rate:.1%} of {FRESH} fresh cases")


def _as(finding, rule: str):
    """The finding with another rule (to measure the planted rule the same way)."""
    return replace(finding, rule=rule)


@pytest.mark.parametrize("name", list(TWO_CAUSES))
def test_two_causes_are_two_findings(found, name):
    causes = TWO_CAUSES[name]
    findings = found[1][name]
    assert len(findings) == 2 and {literals(f.rule) for f in findings} == {literals(rule) for rule, _ in causes}, \
        [f.rule for f in findings]
    for rule, tensors in causes:
        (finding,) = [f for f in findings if literals(f.rule) == literals(rule)]
        assert set(finding.tensors.split()) == tensors and finding.status == "new"
        minimal = parse_case(finding.minimal_case, dtype=finding.minimal_dtype, bias=finding.minimal_bias == "on")
        assert Rule.from_text(finding.rule).holds(minimal.spec)  # its minimal case shows this cause


def test_the_reference_has_no_findings(found):
    result, by_backend = found
    assert "reference" not in by_backend and set(by_backend) == {*UNSEEN, *TWO_CAUSES}
