"""Evaluating batches of cases for the search, through a sweep's own machinery.

`Evaluator.observe(specs, backends)` hands the cases to `convparity.harness.running.runner.run_sweep` on one
executor that lives as long as the search: the same probes, `RunCase` tasks in each backend's
workers, `EvaluateCase` in the reference's, the same timeouts, crash isolation and `-j` parallelism,
and the same verdicts as `convparity run`. Every row is passed to `write` (the search folder's
results.csv) and folded into an `Observation` per (case, backend), cached so that no case is run
twice on a backend. A backend found unavailable is recorded once and skipped from then on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from convparity.harness.backends.manager import PluginSelection
from convparity.harness.cases.descriptor import Case
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.results import Row
from convparity.harness.running.executor import Executor
from convparity.harness.running.runner import Item, SweepVersions, run_sweep
from convparity.harness.search.observations import Observation, observe
from convparity.harness.settings import RunSettings


@dataclass
class EvaluationCounts:
    """How many (case, backend) evaluations each phase ran, and the seconds they took."""

    evaluations: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, phase: str, count: int, seconds: float) -> None:
        self.evaluations[phase] = self.evaluations.get(phase, 0) + count
        self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds

    @property
    def total(self) -> int:
        return sum(self.evaluations.values())


class Evaluator:
    """Runs cases on backends by batches and remembers every observation.

    settings: the run's settings (seed, tolerance, timeouts, jobs); its `backends` are the ones
    probed first. write: called with each case's rows as they arrive.
    """

    def __init__(self, settings: RunSettings, executor: Executor, plugins: PluginSelection,
                 write: Callable[[list[Row]], None] | None = None) -> None:
        self.settings = settings
        self.executor = executor
        self.plugins = plugins
        self.write = write
        self.versions: dict[str, str] = {}
        self.unavailable: dict[str, str] = {}
        self.cache: dict[tuple[ConvSpec, str], Observation] = {}
        self.counts = EvaluationCounts()
        self._named = 0

    def replay(self, observations: Sequence[Observation]) -> None:
        """Take observations made earlier (a resumed search's results.csv) as if just made: they are not run again."""
        for observation in observations:
            self.cache[(observation.spec, observation.backend)] = observation

    def probe(self) -> SweepVersions:
        """Probe every backend of the settings (no cases): their versions, or why they are unavailable."""
        found = run_sweep([], self.settings, self.executor, lambda rows: None, plugins=self.plugins,
                          on_versions=self._found)
        return found

    def _found(self, found: SweepVersions) -> None:
        self.versions.update(found.versions)
        self.unavailable.update(found.unavailable)

    @property
    def available(self) -> tuple[str, ...]:
        return tuple(b for b in self.settings.backends if b not in self.unavailable)

    def observe(self, specs: Sequence[ConvSpec], backends: Sequence[str] | None = None,
                phase: str = "explore") -> list[dict[str, Observation]]:
        """For each spec, {backend: observation} on `backends` (default: every available one).

        Cases already observed on a backend are not run again; the rest run as one sweep.
        """
        backends = tuple(b for b in (backends or self.available) if b not in self.unavailable)
        wanted: dict[ConvSpec, list[str]] = {}
        for spec in specs:
            missing = [b for b in backends if (spec, b) not in self.cache and b not in wanted.get(spec, [])]
            if missing:
                wanted.setdefault(spec, []).extend(missing)
        if wanted:
            start = time.perf_counter()
            items = []
            for spec, names in wanted.items():
                items.append(Item(Case(spec, f"search-{phase}-{self._named}"), list(names)))
                self._named += 1
            settings = replace(self.settings, backends=tuple(dict.fromkeys(b for names in wanted.values()
                                                                            for b in names)))
            run_sweep(items, settings, self.executor, self._rows, plugins=self.plugins, on_versions=self._found)
            self.counts.add(phase, sum(len(names) for names in wanted.values()), time.perf_counter() - start)
        return [{b: self.cache[(spec, b)] for b in backends if (spec, b) in self.cache} for spec in specs]

    def _rows(self, rows: list[Row]) -> None:
        if self.write:
            self.write(rows)
        by_backend: dict[str, list[Row]] = {}
        for row in rows:
            by_backend.setdefault(row.backend, []).append(row)
        for backend, own in by_backend.items():
            first = own[0]
            spec = _spec_of(first)
            self.cache[(spec, backend)] = observe(spec, backend, own)

    def observations(self, backend: str) -> list[Observation]:
        """Every observation of `backend` so far, in the order they were made."""
        return [obs for (_, name), obs in self.cache.items() if name == backend]


def _spec_of(row: Row) -> ConvSpec:
    from convparity.harness.cases.descriptor import parse_case

    return parse_case(row.case, dtype=row.dtype, bias=row.bias).spec
