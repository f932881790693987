"""Evaluating batches of cases for the search, through a sweep's own machinery.

`Evaluator.observe(specs, backends)` hands the cases to `convparity.harness.running.runner.run_sweep` on one
executor that lives as long as the search: the same probes, `RunCase` tasks in each backend's
workers, `EvaluateCase` in the reference's, the same timeouts, crash isolation and `-j` parallelism,
and the same verdicts as `convparity run`. Every row is passed to `write` (the search folder's
results.csv) and folded into an `Observation` per (case, backend), cached so that no case is run
twice on a backend. A backend found unavailable is recorded once and skipped from then on.

`Evaluator.rerun(spec, backend, times=..., inputs=...)` runs one case again on purpose: the same
values several times (is the failure deterministic?), or values drawn in another style (does it
survive small integers?). Those rows go to `write_rerun` (the search folder's reruns.csv, whose rows
carry their input style and attempt number), never to results.csv, whose rows are one per case.

A deadline bounds every call: cases not started by then are not run (the caller sees them missing),
and a backend's case timeout is cut to the time left. A case that runs out of that cut time has not
hung by the backend's own timeout, so its rows are dropped (neither written nor remembered), not
reported as a timeout.

Evaluations made before (a resumed search's results.csv and reruns.csv) are `replay`ed: each is handed
over, as if just made, when the search asks for it again, never run again; until then it is not known to
the search (so that the search proposes, skips and decides exactly as it did the first time).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from convparity.harness.backends.manager import PluginSelection
from convparity.harness.cases.descriptor import Case
from convparity.harness.cases.inputs import UNIFORM, InputStyle
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.results import Row
from convparity.harness.running.executor import Executor
from convparity.harness.running.runner import Item, SweepVersions, run_sweep
from convparity.harness.search.observations import Observation, observe
from convparity.harness.settings import RunSettings

MIN_TIMEOUT = 1.0  # seconds: a case's timeout is never cut below this (nor run with less time left)
RerunKey = tuple  # (spec, backend, input style), and the seed when it is not the run's


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
    probed first. write: called with each case's rows as they arrive; write_rerun: with the rows of a
    rerun, its input style and attempt number.
    """

    def __init__(self, settings: RunSettings, executor: Executor, plugins: PluginSelection,
                 write: Callable[[list[Row]], None] | None = None,
                 write_rerun: Callable[[list[Row], InputStyle, int], None] | None = None) -> None:
        self.settings = settings
        self.executor = executor
        self.plugins = plugins
        self.write = write
        self.write_rerun = write_rerun
        self.versions: dict[str, str] = {}
        self.unavailable: dict[str, str] = {}
        self.cache: dict[tuple[ConvSpec, str], Observation] = {}
        self.specs: set[ConvSpec] = set()  # every spec observed on some backend
        self.replayed: dict[tuple[ConvSpec, str], Observation] = {}  # made before, not asked for again yet
        self.walked: set[Observation] = set()  # observations made while shrinking
        self.reruns: dict[RerunKey, dict[int, Observation]] = {}
        self.counts = EvaluationCounts()
        self.dropped = 0  # cases cut short by a deadline
        self._named = 0

    def replay(self, observations: Sequence[Observation], reruns: Sequence[tuple[Observation, int]] = ()) -> None:
        """Take observations made earlier (a resumed search's results.csv; its reruns.csv with attempt numbers)
        as if just made: they are not run again."""
        for observation in observations:
            self.replayed[(observation.spec, observation.backend)] = observation
        for observation, attempt in reruns:
            key = (observation.spec, observation.backend, observation.inputs)
            self.reruns.setdefault(key, {})[attempt] = observation

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

    def _settings(self, backends: Sequence[str], deadline: float) -> tuple[RunSettings, bool] | None:
        """The settings for one batch: its backends, timeouts cut to the time left (and whether they were);
        None when no time is left."""
        left = deadline - time.perf_counter()
        if left < MIN_TIMEOUT:
            return None
        timeout, reference = min(self.settings.timeout, left), min(self.settings.reference_timeout, left)
        cut = timeout < self.settings.timeout or reference < self.settings.reference_timeout
        return replace(self.settings, backends=tuple(dict.fromkeys(backends)), timeout=timeout,
                       reference_timeout=reference), cut

    def observe(self, specs: Sequence[ConvSpec], backends: Sequence[str] | None = None,
                phase: str = "explore", deadline: float = math.inf) -> list[dict[str, Observation]]:
        """For each spec, {backend: observation} on `backends` (default: every available one).

        Cases already observed on a backend are not run again; the rest run as one sweep (none when the
        deadline has passed: they are missing from the answer).
        """
        backends = tuple(b for b in (backends or self.available) if b not in self.unavailable)
        wanted: dict[ConvSpec, list[str]] = {}
        for spec in specs:
            missing = [b for b in backends if (spec, b) not in self.cache and (spec, b) not in self.replayed
                       and b not in wanted.get(spec, [])]
            if missing:
                wanted.setdefault(spec, []).extend(missing)
        batch = self._settings([b for names in wanted.values() for b in names], deadline) if wanted else None
        arrived: dict[tuple[ConvSpec, str], Observation] = {}
        if batch is not None:
            settings, cut = batch
            start = time.perf_counter()
            items = []
            for spec, names in wanted.items():
                items.append(Item(Case(spec, f"search-{phase}-{self._named}"), list(names)))
                self._named += 1
            run_sweep(items, settings, self.executor, lambda rows: self._rows(rows, cut, arrived), plugins=self.plugins,
                      on_versions=self._found)
            self.counts.add(phase, sum(len(names) for names in wanted.values()), time.perf_counter() - start)
        # remembered in the order asked for (not the order the executor finished them), made before or now
        for spec in specs:
            for backend in backends:
                made = self.replayed.pop((spec, backend), None) or arrived.pop((spec, backend), None)
                if made is not None:
                    self.cache[(spec, backend)] = made
                    self.specs.add(spec)
                    if phase == "shrink":
                        self.walked.add(made)
        return [{b: self.cache[(spec, b)] for b in backends if (spec, b) in self.cache} for spec in specs]

    def _rows(self, rows: list[Row], cut: bool, arrived: dict[tuple[ConvSpec, str], Observation]) -> None:
        if cut and any(row.status == "timeout" for row in rows):
            self.dropped += 1
            return
        if self.write:
            self.write(rows)
        by_backend: dict[str, list[Row]] = {}
        for row in rows:
            by_backend.setdefault(row.backend, []).append(row)
        for backend, own in by_backend.items():
            spec = _spec_of(own[0])
            arrived[(spec, backend)] = observe(spec, backend, own)

    def rerun(self, spec: ConvSpec, backend: str, *, times: int = 1, inputs: InputStyle = UNIFORM,
              phase: str = "rerun", deadline: float = math.inf, seed: int | None = None) -> list[Observation]:
        """`times` evaluations of one case on one backend made on purpose (attempts 1 to `times`), with values
        drawn in `inputs` (from `seed`, default the run's); attempts made before are not run again. Fewer come
        back when the deadline passes."""
        key = (spec, backend, inputs) if seed is None or seed == self.settings.seed else (spec, backend, inputs, seed)
        done = self.reruns.setdefault(key, {})
        missing = [attempt for attempt in range(1, times + 1) if attempt not in done]
        batch = self._settings([backend], deadline) if missing and backend not in self.unavailable else None
        if batch is not None:
            settings, cut = batch
            if seed is not None:
                settings = replace(settings, seed=seed)
            start = time.perf_counter()
            items = [Item(Case(spec, f"search-{phase}-{attempt}"), [backend], inputs=inputs) for attempt in missing]

            def rows_of(rows: list[Row]) -> None:
                if cut and any(row.status == "timeout" for row in rows):
                    self.dropped += 1
                    return
                attempt = int(rows[0].name.rsplit("-", 1)[1])
                if self.write_rerun:
                    self.write_rerun(rows, inputs, attempt)
                done[attempt] = observe(spec, backend, rows, inputs)

            run_sweep(items, settings, self.executor, rows_of, plugins=self.plugins, on_versions=self._found)
            self.counts.add(phase, len(missing), time.perf_counter() - start)
        return [done[attempt] for attempt in range(1, times + 1) if attempt in done]

    def observations(self, backend: str) -> list[Observation]:
        """Every observation of `backend` so far, in the order they were made."""
        return [obs for (_, name), obs in self.cache.items() if name == backend]


def _spec_of(row: Row) -> ConvSpec:
    from convparity.harness.cases.descriptor import parse_case

    return parse_case(row.case, dtype=row.dtype, bias=row.bias).spec
