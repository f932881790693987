"""Checking a group's rule on fresh cases before it is reported, on both sides.

A rule learnt from the cases seen may fit them by accident: every grouped case seen was also depthwise,
so "groups > 1" and "depthwise" tie; or the search looked mostly near its failures, so a broad rule's
exceptions were never drawn. `fresh_cases` draws cases the search has not run:

- cases the rule holds on, half drawn from the whole space (a fresh draw, kept when the rule holds:
  everything the rule does not name varies as it does anywhere) and half small changes of the group's
  own cases that keep the rule;
- cases it does not hold on, preferring near misses (exactly one literal false: each literal is
  needed) and then fresh draws;
- for each of the first MAX_TIES rules that tie with it, cases on which the two disagree.

`RuleCheck` counts how those cases came out. A case that fails the way another group of the same
backend does, where that group's rule holds, says nothing for or against this rule and is not counted.
A rule *held* when, on each side, at most CHECK_EXCEPTIONS of the cases went against it (a
cause's rare exceptions, see convparity.harness.search.rules). `check_rules` repeats learning and
checking (at most `rounds` times) until every rule held (or its group depends on the values, so that no
rule can), each round learning from the cases the last one checked. The rules reported are the last ones
learnt, and their check uses only cases that were not used to learn them.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass

from convparity.harness.cases.spec import ConvSpec
from convparity.harness.search.evaluations import Evaluator
from convparity.harness.search.group import Group, group_failures
from convparity.harness.search.observations import Observation
from convparity.harness.search.rules import Rule
from convparity.harness.search.space import SpecSpace

DRAWS = 400  # fresh draws and mutations looked at per group for its cases
MAX_TIES = 2  # rules tying with a group's that get cases of their own to separate them
CHECK_EXCEPTIONS = 0.15  # the share of a side's fresh cases that may go against a rule that held


@dataclass(frozen=True)
class RuleCheck:
    """Fresh cases the rule holds on and how many failed the group's way; those it does not hold on
    and how many did not fail that way (unsupported and skipped cases are not counted)."""

    satisfying: int = 0
    satisfying_failed: int = 0
    violating: int = 0
    violating_passed: int = 0
    note: str = ""  # why no fresh case was run, when none was

    @property
    def held(self) -> bool:
        allowed = lambda count: int(CHECK_EXCEPTIONS * count)  # noqa: E731
        return (self.satisfying > 0 and self.satisfying - self.satisfying_failed <= allowed(self.satisfying)
                and self.violating - self.violating_passed <= allowed(self.violating))

    def describe(self) -> str:
        text = (f"{self.satisfying_failed}/{self.satisfying} fresh cases it holds on fail this way, "
                f"{self.violating_passed}/{self.violating} it does not hold on do not")
        if self.satisfying or self.violating:
            return text
        return f"not checked: {self.note or 'no fresh case could be run'}"


def _near_miss(rule: Rule, spec: ConvSpec) -> bool:
    return sum(not literal.holds(spec) for literal in rule.literals) == 1


def _draws(group: Group, space: SpecSpace, rng: random.Random, evaluated: set[ConvSpec]
           ) -> tuple[list[ConvSpec], list[ConvSpec]]:
    """Candidate fresh cases: (fresh draws from the whole space, changes of the group's own cases)."""
    bases = [group.minimal.spec] + [m.spec for m in rng.sample(group.members, min(len(group.members), 8))]
    drawn: dict[ConvSpec, None] = {}
    changed: dict[ConvSpec, None] = {}
    for attempt in range(DRAWS):
        if attempt % 2:
            spec = space.draw(rng)
            if spec not in evaluated:
                drawn[spec] = None
        else:
            spec = space.mutate(rng.choice(bases), rng, changes=rng.choice((1, 2, 3)))
            if spec not in evaluated:
                changed[spec] = None
    return list(drawn), list(changed)


def fresh_cases(group: Group, space: SpecSpace, rng: random.Random, evaluated: set[ConvSpec], *,
                satisfying: int = 8, violating: int = 8) -> list[ConvSpec]:
    """Fresh cases for checking the group's rule on both sides and separating it from the rules that tie."""
    drawn, changed = _draws(group, space, rng, evaluated)
    rule = group.rule
    holds = {spec: bool(held) for spec, held in zip(drawn + changed, rule.holds_all(drawn + changed))}

    def pick(candidates: Sequence[ConvSpec], count: int, keep: Callable[[ConvSpec], bool]) -> list[ConvSpec]:
        kept = [spec for spec in candidates if keep(spec)]
        return rng.sample(kept, min(count, len(kept)))

    chosen = pick(drawn, satisfying - satisfying // 2, lambda s: holds[s])
    chosen += pick(changed, satisfying - len(chosen), lambda s: holds[s] and s not in chosen)
    near = pick(changed + drawn, violating - violating // 2, lambda s: not holds[s] and _near_miss(rule, s))
    chosen += near
    chosen += pick(drawn, violating - len(near), lambda s: not holds[s] and s not in near)
    for tie in group.ties[:MAX_TIES + 1]:
        if tie.rule != rule:
            other: Rule = tie.rule
            chosen += pick(drawn + changed, 1, lambda s, other=other: holds[s] and not other.holds(s))  # type: ignore[misc]
            chosen += pick(drawn + changed, 1, lambda s, other=other: not holds[s] and other.holds(s))  # type: ignore[misc]
    return list(dict.fromkeys(chosen))


def rule_check(group: Group, observations: Sequence[Observation], others: Sequence[Group] = ()) -> RuleCheck:
    """How the group's rule fared on `observations` (the fresh cases run on its backend); `others`: the other
    groups, whose rules explain failures of the cases this rule does not hold on."""
    counts = [0, 0, 0, 0]
    rivals = [g for g in others if g is not group and g.backend == group.backend and not g.value_dependent]
    for observation in observations:
        if observation.backend != group.backend or observation.kind == "skip":
            continue
        fails = group.fails_like(observation)
        if fails and any(g.rule.holds(observation.spec) and g.fails_like(observation) for g in rivals):
            continue  # another group's cause explains it: it says nothing for or against this rule
        if group.rule.holds(observation.spec):
            counts[0] += 1
            counts[1] += fails
        else:
            counts[2] += 1
            counts[3] += not fails
    return RuleCheck(counts[0], counts[1], counts[2], counts[3])


def check_rules(evaluator: Evaluator, space: SpecSpace, rng: random.Random, learning: list[Observation],
                minimal: Sequence[Observation], *, rounds: int = 3, satisfying: int = 8,
                violating: int = 8, deadline: float = math.inf,
                walked: Set[Observation] = frozenset()) -> list[tuple[Group, RuleCheck | None]]:
    """Groups learnt from `learning` (plus earlier rounds' fresh cases), each with its rule's check (None: there
    was no time left before `deadline` to check it); `walked`: observations made while shrinking."""
    known = dict.fromkeys(learning)
    checked: list[tuple[Group, RuleCheck | None]] = []
    for _ in range(rounds):
        groups = group_failures(list(known), minimal, walked)
        if time.perf_counter() >= deadline:
            return checked or [(group, None) for group in groups]
        evaluated = {obs.spec for obs in known}
        fresh = {id(group): fresh_cases(group, space, rng, evaluated, satisfying=satisfying, violating=violating)
                 for group in groups}
        for backend in dict.fromkeys(group.backend for group in groups):
            specs = [spec for group in groups if group.backend == backend for spec in fresh[id(group)]]
            evaluator.observe(specs, [backend], phase="check", deadline=deadline)
        checked = []
        new: list[Observation] = []
        for group in groups:
            seen = [evaluator.cache[(spec, group.backend)] for spec in fresh[id(group)]
                    if (spec, group.backend) in evaluator.cache]
            checked.append((group, rule_check(group, seen, groups)))
            new += seen
        if all(check is not None and (check.held or group.value_dependent) and len(group.ties) == 1
               for group, check in checked):
            break
        known.update(dict.fromkeys(new))
    return checked
