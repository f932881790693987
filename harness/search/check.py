"""Checking a group's rule on fresh cases before it is reported.

A rule learnt from the cases seen may fit them by accident (every grouped case seen was also
depthwise, so "groups > 1" and "depthwise" tie). `fresh_cases` draws cases the search has not run:

- cases the rule holds on (they should fail the group's way), mostly small changes of the group's
  own failing cases, so that everything but the rule's features varies;
- cases it does not hold on, preferring near misses (exactly one of its literals false), which
  show that each literal is needed;
- for each of the first MAX_TIES rules that tie with it, cases on which the two disagree.

`RuleCheck` counts how those cases came out; `check_rules` repeats learning and checking (at most
`rounds` times) until every rule holds on its fresh cases (or its group's failures depend on the
values, so that no rule can), each round learning from the cases the last one checked. The rules
reported are the last ones learnt, and their check uses only cases that were not used to learn them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from convparity.harness.cases.spec import ConvSpec
from convparity.harness.search.evaluations import Evaluator
from convparity.harness.search.group import Group, group_failures
from convparity.harness.search.observations import Observation
from convparity.harness.search.rules import Rule
from convparity.harness.search.shrink import complexity
from convparity.harness.search.space import SpecSpace

POOL = 300
MAX_TIES = 2  # rules tying with a group's that get cases of their own to separate them


@dataclass(frozen=True)
class RuleCheck:
    """Fresh cases the rule holds on and how many failed the group's way; those it does not hold on
    and how many did not fail that way (unsupported and skipped cases are not counted)."""

    satisfying: int = 0
    satisfying_failed: int = 0
    violating: int = 0
    violating_passed: int = 0

    @property
    def held(self) -> bool:
        return (self.satisfying > 0 and self.satisfying_failed == self.satisfying
                and self.violating_passed == self.violating)

    def describe(self) -> str:
        text = (f"{self.satisfying_failed}/{self.satisfying} fresh cases it holds on fail this way, "
                f"{self.violating_passed}/{self.violating} it does not hold on do not")
        return text if self.satisfying or self.violating else "not checked: no fresh case could be run"


def _near_miss(rule: Rule, spec: ConvSpec) -> bool:
    return sum(not literal.holds(spec) for literal in rule.literals) == 1


def _pool(group: Group, space: SpecSpace, rng: random.Random, evaluated: set[ConvSpec]) -> list[ConvSpec]:
    """Candidate fresh cases: changes of the group's failing cases and fresh draws, in its dtypes."""
    bases = [group.minimal.spec] + [m.spec for m in rng.sample(group.members, min(len(group.members), 8))]
    found: dict[ConvSpec, None] = {}
    for attempt in range(POOL):
        if attempt % 3 == 2:
            spec = space.draw(rng)
        else:
            spec = space.mutate(rng.choice(bases), rng, changes=rng.choice((1, 2, 3)))
        if spec.dtype not in group.dtypes:
            spec = spec.replace(dtype=rng.choice(group.dtypes))
        if spec not in evaluated:
            found[spec] = None
    return sorted(found, key=complexity)


def _pick(candidates: list[ConvSpec], count: int, rng: random.Random) -> list[ConvSpec]:
    """`count` of the candidates (sorted by complexity), at random among the simpler half."""
    simpler = candidates[:max(count, len(candidates) // 2)]
    return rng.sample(simpler, min(count, len(simpler)))


def fresh_cases(group: Group, space: SpecSpace, rng: random.Random, evaluated: set[ConvSpec], *,
                satisfying: int = 4, violating: int = 4) -> list[ConvSpec]:
    """Fresh cases for checking the group's rule and separating it from the rules that tie with it."""
    pool = _pool(group, space, rng, evaluated)
    rule = group.rule
    holds = [spec for spec in pool if rule.holds(spec)]
    misses = [spec for spec in pool if not rule.holds(spec)]
    near = [spec for spec in misses if _near_miss(rule, spec)]
    chosen = _pick(holds, satisfying, rng) + _pick(near or misses, violating, rng)
    for tie in group.ties[:MAX_TIES + 1]:
        if tie.rule == rule:
            continue
        chosen += _pick([s for s in holds if not tie.rule.holds(s)], 1, rng)
        chosen += _pick([s for s in misses if tie.rule.holds(s)], 1, rng)
    return list(dict.fromkeys(chosen))


def rule_check(group: Group, observations: Sequence[Observation]) -> RuleCheck:
    """How the group's rule fared on `observations` (the fresh cases run on its backend)."""
    counts = [0, 0, 0, 0]
    for observation in observations:
        if observation.backend != group.backend or observation.kind == "skip":
            continue
        fails = group.fails_like(observation)
        if group.rule.holds(observation.spec):
            counts[0] += 1
            counts[1] += fails
        else:
            counts[2] += 1
            counts[3] += not fails
    return RuleCheck(*counts)


def check_rules(evaluator: Evaluator, space: SpecSpace, rng: random.Random, learning: list[Observation],
                minimal: Sequence[Observation], *, rounds: int = 3, satisfying: int = 4,
                violating: int = 4) -> list[tuple[Group, RuleCheck]]:
    """Groups learnt from `learning` (plus earlier rounds' fresh cases), each with its rule's check."""
    learning = list(learning)
    checked: list[tuple[Group, RuleCheck]] = []
    for _ in range(rounds):
        groups = group_failures(learning, minimal)
        evaluated = {obs.spec for obs in learning}
        fresh = {id(group): fresh_cases(group, space, rng, evaluated, satisfying=satisfying, violating=violating)
                 for group in groups}
        for backend in dict.fromkeys(group.backend for group in groups):
            specs = [spec for group in groups if group.backend == backend for spec in fresh[id(group)]]
            evaluator.observe(specs, [backend], phase="check")
        checked = []
        new: list[Observation] = []
        for group in groups:
            seen = [evaluator.cache[(spec, group.backend)] for spec in fresh[id(group)]
                    if (spec, group.backend) in evaluator.cache]
            checked.append((group, rule_check(group, seen)))
            new += seen
        if all((check.held or group.value_dependent) and len(group.ties) == 1 for group, check in checked):
            break
        learning += [obs for obs in dict.fromkeys(new) if obs not in learning]
    return checked
