"""Exploring the spec space: fresh draws, and changes of the cases that failed or came close to the bound.

Every evaluated case is a possible *lead*, scored by what it showed on the backends: a failure
scores 1 (2 while its way of failing has not been shrunk yet), a pass scores its worst err_ratio
when that is at least `LEAD_RATIO` (a case at 0.9 of the bound is one small change from failing:
a longer reduction, another dtype, a padding that puts a wrong element in the worst place). Each
proposal is a mutation of a lead (`SpecSpace.mutate`), picked with probability proportional to its
score divided by 1 + the times it was picked already, or, half the time or when there is no lead, a
fresh draw from the whole space, so the search never only circles what it found first.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Container
from dataclasses import dataclass

from convparity.harness.cases.spec import ConvSpec
from convparity.harness.search.observations import Observation
from convparity.harness.search.space import SpecSpace

LEAD_RATIO = 0.25
KEPT_LEADS = 64
MUTATE_SHARE = 0.5


@dataclass
class Lead:
    spec: ConvSpec
    score: float
    picked: int = 0

    @property
    def weight(self) -> float:
        return self.score / (1 + self.picked)


def lead_score(observation: Observation, shrunk: Callable[[Observation], bool]) -> float:
    """How promising a case is on one backend (0: not a lead); see the module docstring."""
    if observation.fails:
        return 1.0 if shrunk(observation) else 2.0
    if observation.kind == "pass" and not math.isnan(observation.err_ratio):
        return min(observation.err_ratio, 1.0) if observation.err_ratio >= LEAD_RATIO else 0.0
    return 0.0


class Explorer:
    """Proposes cases to run; `learn` tells it what each one showed."""

    def __init__(self, space: SpecSpace, rng: random.Random) -> None:
        self.space = space
        self.rng = rng
        self.leads: list[Lead] = []
        self.fresh = 0
        self.mutated = 0

    def propose(self, count: int, evaluated: Container[ConvSpec]) -> list[ConvSpec]:
        """`count` distinct cases not in `evaluated`."""
        proposed: dict[ConvSpec, None] = {}
        attempts = 0
        while len(proposed) < count and attempts < 100 * count:
            attempts += 1
            if self.leads and self.rng.random() < MUTATE_SHARE:
                lead = self.rng.choices(self.leads, weights=[lead.weight for lead in self.leads])[0]
                spec = self.space.mutate(lead.spec, self.rng)
                mutated = True
            else:
                spec = self.space.draw(self.rng)
                mutated = False
            if spec in evaluated or spec in proposed:
                continue
            if mutated:
                lead.picked += 1
            self.mutated += mutated
            self.fresh += not mutated
            proposed[spec] = None
        return list(proposed)

    def learn(self, spec: ConvSpec, observations: dict[str, Observation],
              shrunk: Callable[[Observation], bool]) -> None:
        """Score `spec` by its observations (the best backend counts) and keep the best leads."""
        score = max((lead_score(obs, shrunk) for obs in observations.values()), default=0.0)
        if score <= 0:
            return
        self.leads.append(Lead(spec, score))
        if len(self.leads) > KEPT_LEADS:
            self.leads.sort(key=lambda lead: lead.weight, reverse=True)
            del self.leads[KEPT_LEADS:]
