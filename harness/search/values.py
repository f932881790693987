"""After a failure is found: does it happen every time, and does it survive values a maintainer can read?

`rerun_check(observation, evaluator)` runs the failing case again with the very same values, REPEATS
more times (fewer for a crash, whose every rerun starts a worker; none for a hang, whose every rerun
takes the whole timeout). When every rerun fails the same way the failure is deterministic; when
some do not, it is *flaky*, and it is rerun FLAKY_REPEATS times in all so that the rate reported (reruns
that failed the same way, of all reruns: the first run is left out, it was picked for failing) means
something. A backend wrong on 30% of its calls is a
flaky backend, not a value-dependent bug with a rule; and shrinking a flaky failure would follow chance,
so the search does not shrink one. A flaky failure can fail every one of its first reruns by chance (a backend
wrong on 30% of its calls does so once in 400); when its shrunk case then shows flaky, the shrinking followed
chance, and the search reports the failure as found, unshrunk, with `flaky_reruns` of it.

`simpler_values(observation, evaluator)` draws the (shrunk) case's values again as small integers,
+-1, then up to +-2, then up to +-3 (harness.cases.inputs), and keeps the first draw that still fails
the same way: the repro script then shows a bug on numbers a maintainer can check by hand. A failure
that needs rounding (an accumulation in a narrow dtype) does not survive integers, whose sums are exact:
then the uniform values stay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from convparity.harness.cases.inputs import InputStyle
from convparity.harness.search.evaluations import Evaluator
from convparity.harness.search.observations import Observation
from convparity.harness.search.shrink import fails_the_same_way

REPEATS = {"fail": 5, "error": 5, "crash": 2, "timeout": 0}  # reruns of a failing case, by kind
FLAKY_REPEATS = 20  # reruns in all once a failure turned out flaky
INTEGER_SCALES = (1, 2, 3)


@dataclass(frozen=True)
class Reruns:
    """How a failing case fared when run again with the same values: `attempts` reruns (the run that found it
    aside: it was picked for failing), `same` of them failing the same way."""

    attempts: int = 0
    same: int = 0

    @property
    def flaky(self) -> bool:
        return self.same < self.attempts

    @property
    def rate(self) -> float:
        """The share of reruns that failed the same way (NaN when it was never run again)."""
        return self.same / self.attempts if self.attempts else math.nan

    def describe(self) -> str:
        if not self.attempts:
            return "not run again"
        if self.flaky:
            return f"flaky: failed this way in {self.same} of {self.attempts} reruns ({self.rate:.0%})"
        return f"deterministic: failed this way in all {self.attempts} reruns"


def rerun_check(observation: Observation, evaluator: Evaluator, *, deadline: float = math.inf) -> Reruns:
    """Run `observation`'s case again with its values (see the module docstring)."""
    repeats = REPEATS.get(observation.kind, 0)
    if not repeats:
        return Reruns()
    found = evaluator.rerun(observation.spec, observation.backend, times=repeats, inputs=observation.inputs,
                            deadline=deadline)
    if all(fails_the_same_way(again, observation) for again in found):
        return Reruns(len(found), len(found))
    return flaky_reruns(observation, evaluator, deadline=deadline)


def flaky_reruns(observation: Observation, evaluator: Evaluator, *, deadline: float = math.inf) -> Reruns:
    """Run `observation`'s case FLAKY_REPEATS times with its values, for the rate of a failure known to be flaky."""
    found = evaluator.rerun(observation.spec, observation.backend, times=FLAKY_REPEATS, inputs=observation.inputs,
                            deadline=deadline)
    return Reruns(len(found), sum(fails_the_same_way(again, observation) for again in found))


def simpler_values(observation: Observation, evaluator: Evaluator, *, deadline: float = math.inf
                   ) -> Observation | None:
    """The case with small integer values, when it fails the same way with them (else None; a quantized case's
    sources are small integers already)."""
    if observation.kind == "timeout" or observation.spec.quantized:
        return None
    for scale in INTEGER_SCALES:
        found = evaluator.rerun(observation.spec, observation.backend, inputs=InputStyle("integers", scale),
                                phase="values", deadline=deadline)
        if found and fails_the_same_way(found[0], observation):
            return found[0]
    return None
