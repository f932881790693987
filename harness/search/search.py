"""`convparity.harness.search.search(...)`: hunt for disagreements, shrink each, group them by cause, write a report.

    from convparity.harness.search import search
    found = search(["keras"], dtypes=["float64", "float32"], budget=100, seed=0, jobs=2)
    print(found.path / "findings.md")

Phases, all through one executor (the sweep's workers, isolation and verdicts; convparity.harness.search.evaluations):

0. models (`models`): every distinct layer of each model, in every dtype, is evaluated first and taken as a lead,
   so exploring starts around the user's own layers; a failing layer is shrunk like any failure.
1. explore (convparity.harness.search.explore): `budget` cases (or `minutes` of exploring), in rounds of
   2 x jobs + 2, each case in one dtype on every backend. The first time a backend fails in a new way
   (dtype, bias, kind, failing tensors) that failure is shrunk at once (convparity.harness.search.shrink),
   starting from an earlier minimal case carried over to the new dtype and bias when that also fails
   this way, else from the case itself.
2. cover: failures of a known way that no rule learnt so far explains (another cause behind the
   same symptoms) are shrunk too, at most `extra_shrinks` of them.
3. group and check (convparity.harness.search.group, convparity.harness.search.check): groups by cause with their rules,
   each rule checked on fresh cases.
4. write: results.csv (every evaluation), run.json (with the search's own numbers), findings.csv,
   findings.md and repro/<group>.py (convparity.search and `convparity search` then write the reports).

A search runs in a RunContext (harness.running.context) like a sweep: on any executor (local or Dask),
with the compile cache, and interrupted, it writes the findings it has so far (grouped, not checked)
before it stops. `resume_search(path)` continues it: every evaluation already in results.csv is replayed
from there, not run again, so the search retraces its own steps (its draws are seeded) and goes on
where it stopped; a budget in cases gives the same findings as an uninterrupted search.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from convparity.harness.backends.manager import PluginSelection
from convparity.harness.cases.descriptor import parse_case
from convparity.harness.cases.models import Model, write_models
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.files import RunFolderError
from convparity.harness.results import Row, read_results
from convparity.harness.running import run_folder
from convparity.harness.running.context import RunContext, RunInterrupted
from convparity.harness.running.executor import Executor
from convparity.harness.running.interrupts import Interrupted
from convparity.harness.running.launch import ExecutorChoice
from convparity.harness.running.model_reading import resolve_models
from convparity.harness.running.placement import thread_variables
from convparity.harness.running.run_record import RunRecord
from convparity.harness.running.sweep import DEFAULT_DTYPES, SweepError, available_backends
from convparity.harness.search.check import RuleCheck, check_rules
from convparity.harness.search.evaluations import EvaluationCounts, Evaluator
from convparity.harness.search.explore import Explorer
from convparity.harness.search.findings import Finding, write_findings
from convparity.harness.search.group import Group, Key, group_failures
from convparity.harness.search.observations import Observation, observations_from_rows
from convparity.harness.search.shrink import Shrunk, fails_the_same_way, shrink
from convparity.harness.search.space import SpecSpace
from convparity.harness.settings import DEFAULT_REFERENCE_TIMEOUT, DEFAULT_STARTUP_TIMEOUT, DEFAULT_TIMEOUT, RunSettings
from convparity.harness.vocabulary import check_dtypes

DEFAULT_BUDGET = 100
DEFAULT_SHRINK_BUDGET = 300
DEFAULT_EXTRA_SHRINKS = 4


@dataclass
class SearchResult:
    """A finished search: its folder, the groups found (findings.csv's rows) and how long each phase took."""

    path: Path
    findings: list[Finding]
    counts: EvaluationCounts
    unavailable: dict[str, str] = field(default_factory=dict)
    first_finding_seconds: float = math.nan
    seconds: float = 0.0

    @property
    def new(self) -> list[Finding]:
        return [f for f in self.findings if not f.known]

    def exit_code(self) -> int:
        """1 when some group is a new finding (not a declared deviation), else 0."""
        return 1 if self.new else 0


@dataclass
class _Hunt:
    """The state of one search: what was shrunk, and the log."""

    evaluator: Evaluator
    space: SpecSpace
    rng: random.Random
    jobs: int
    shrink_budget: int
    log: Callable[[str], None]
    started: float
    shrunk: list[Shrunk] = field(default_factory=list)
    keys: set[Key] = field(default_factory=set)
    first_finding: float = math.nan

    def is_shrunk(self, observation: Observation) -> bool:
        return Key.of(observation) in self.keys

    def shrink(self, failing: Observation, *, carry_over: bool) -> Shrunk:
        """Shrink `failing`, first trying earlier minimal cases carried to its dtype and bias."""
        start = failing
        if carry_over:
            carried = list(dict.fromkeys(
                s.minimal.spec.replace(dtype=failing.spec.dtype, bias=failing.spec.bias) for s in self.shrunk
                if s.minimal.backend == failing.backend))
            for found in self.evaluator.observe(carried, [failing.backend], phase="shrink"):
                candidate = found.get(failing.backend)
                if candidate is not None and fails_the_same_way(candidate, failing):
                    start = candidate
                    break
        self.log(f"shrinking: {failing.describe()} from {start.spec.descriptor}")
        result = shrink(start, self.evaluator, dtypes=self.space.dtypes, budget=self.shrink_budget, jobs=self.jobs)
        result.start = failing
        self.shrunk.append(result)
        self.keys.update({Key.of(failing), Key.of(result.minimal)})
        if math.isnan(self.first_finding):
            self.first_finding = time.perf_counter() - self.started
        state = "a local minimum" if result.local_minimum else "budget spent"
        self.log(f"  -> {result.minimal.spec.descriptor} {result.minimal.spec.dtype} bias "
                 f"{'on' if result.minimal.spec.bias else 'off'} ({state}, {result.evaluations} evaluations)")
        return result

    def explore(self, budget: int | None, deadline: float, seeds: Sequence[ConvSpec] = ()) -> Explorer:
        explorer = Explorer(self.space, self.rng)
        if seeds:
            backends = self.evaluator.available
            for spec, found in zip(seeds, self.evaluator.observe(seeds, backends, phase="model")):
                explorer.learn(spec, found, self.is_shrunk)
                for observation in found.values():
                    if observation.fails and not self.is_shrunk(observation):
                        self.shrink(observation, carry_over=True)
            self.log(f"evaluated the models' {len(seeds)} distinct layers; {len(self.shrunk)} failure(s) shrunk")
        explored = 0
        size = 2 * self.jobs + 2
        backends = self.evaluator.available
        while (budget is None or explored < budget) and time.perf_counter() < deadline:
            count = size if budget is None else min(size, budget - explored)
            evaluated = {spec for spec, _ in self.evaluator.cache}
            specs = explorer.propose(count, evaluated)
            if not specs:
                break
            results = self.evaluator.observe(specs, backends, phase="explore")
            explored += len(specs)
            for spec, found in zip(specs, results):
                explorer.learn(spec, found, self.is_shrunk)
                for observation in found.values():
                    if observation.fails and not self.is_shrunk(observation):
                        self.shrink(observation, carry_over=True)
            self.log(f"explored {explored}{'' if budget is None else f'/{budget}'} cases; "
                     f"{len(self.shrunk)} failure(s) shrunk")
        return explorer

    def cover(self, extra: int) -> None:
        """Shrink failures that no group's rule explains yet (groups whose seed is not a shrunk case)."""
        tried: set[Observation] = set()
        for _ in range(extra):
            minimal = [s.minimal for s in self.shrunk]
            groups = group_failures(self._all(), minimal)
            unexplained = [g.minimal for g in groups if g.minimal not in minimal and g.minimal not in tried]
            if not unexplained:
                return
            tried.add(unexplained[0])
            self.shrink(unexplained[0], carry_over=False)

    def _all(self) -> list[Observation]:
        return list(self.evaluator.cache.values())

    def minimal(self) -> list[Observation]:
        return [s.minimal for s in self.shrunk]


def search(
    backends: Sequence[str],
    dtypes: Sequence[str] = DEFAULT_DTYPES,
    budget: int | None = None,
    minutes: float | None = None,
    seed: int = 0,
    jobs: int = 1,
    out: str | Path | None = None,
    *,
    tolerance_factor: float = 1.0,
    timeout: float = DEFAULT_TIMEOUT,
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
    reference_timeout: float = DEFAULT_REFERENCE_TIMEOUT,
    shrink_budget: int = DEFAULT_SHRINK_BUDGET,
    extra_shrinks: int = DEFAULT_EXTRA_SHRINKS,
    check_rounds: int = 3,
    executor: ExecutorChoice | Executor | None = None,
    compile_cache: str = "default",
    log: TextIO | None = None,
    models: Sequence[str | Model] = (),
    input_shapes: Sequence[str] | dict[str, tuple[int, ...]] | None = None,
    epilogues: bool = True,
) -> SearchResult:
    """Search `backends` for disagreements with the reference (see the module docstring).

    budget: cases to explore (default DEFAULT_BUDGET unless `minutes` is given); minutes: stop
    exploring after that long (whichever comes first). seed: the search's draws and the inputs.
    executor: where tasks run (an ExecutorChoice, default local worker processes `jobs` at once, or an
    Executor object); compile_cache: as for a sweep. log: where progress lines go (None: nowhere).
    models: model sources or Models (as for a sweep, with `input_shapes`) whose layers are evaluated first
    and explored around.
    """
    try:
        dtypes = check_dtypes(list(dtypes))
    except ValueError as error:
        raise SweepError(str(error)) from None
    for name, value in (("budget", budget), ("shrink_budget", shrink_budget)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise SweepError(f"{name} must be a positive number of cases, got {value!r}")
    if minutes is not None and not (math.isfinite(minutes) and minutes > 0):
        raise SweepError(f"minutes must be a finite number > 0, got {minutes!r}")
    if budget is None and minutes is None:
        budget = DEFAULT_BUDGET
    settings = RunSettings(backends=available_backends(backends), dtypes=dtypes, grids=(), seed=seed, timeout=timeout,
                           jobs=jobs, tolerance_factor=tolerance_factor, startup_timeout=startup_timeout,
                           reference_timeout=reference_timeout, compile_cache=compile_cache)
    path = Path(out) if out is not None else run_folder.default_run_dir(Path("reports"), ("search",))
    read = resolve_models(models, input_shapes, epilogues=epilogues, startup_timeout=startup_timeout) \
        if models or input_shapes else ()
    seeds = dict.fromkeys(case.spec if case.fixed_dtype else case.spec.replace(dtype=dtype)
                          for model in read for case in model.cases()
                          for dtype in (dtypes if not case.fixed_dtype else (case.spec.dtype,)))
    plan: dict[str, Any] = {"budget": budget, "minutes": minutes, "shrink_budget": shrink_budget,
                            "extra_shrinks": extra_shrinks, "check_rounds": check_rounds}
    if read:
        plan["models"] = [model.source for model in read]
        plan["seeds"] = [{"case": spec.descriptor, "dtype": spec.dtype, "bias": spec.bias} for spec in seeds]
    record = RunRecord("search", settings, harness_commit=run_folder.harness_commit(), search=dict(plan),
                       worker_environment=thread_variables())
    with RunContext.new(path, record) as context:
        if read:
            write_models(path, read)
        result = _hunt(context, executor, log, replayed=[])
        context.finish()
    return result


def resume_search(path: str | Path, jobs: int | None = None, *, executor: ExecutorChoice | Executor | None = None,
                  compile_cache: str | None = None, log: TextIO | None = None) -> SearchResult:
    """Continue the interrupted search in `path` with its own settings (only the number of jobs, the executor
    and the compile cache may change): its evaluations are replayed from results.csv, then it goes on."""
    path = Path(path)
    record = run_folder.read_record(path)
    if record.kind != "search":
        raise RunFolderError(f"{path} holds a {record.kind}, not a search: continue it with: convparity run "
                             f"--resume {path}")
    with RunContext.reopen(path) as context:
        settings = context.record.settings
        if jobs is not None:
            settings = replace(settings, jobs=jobs)
        if compile_cache is not None:
            settings = replace(settings, compile_cache=compile_cache)
        context.record.settings = settings
        replayed = observations_from_rows(read_results(path).itertuples(index=False)) \
            if (path / "results.csv").is_file() else []
        result = _hunt(context, executor, log, replayed=replayed)
        context.finish()
    return result


def _hunt(context: RunContext, executor: ExecutorChoice | Executor | None, log: TextIO | None,
          replayed: list[Observation]) -> SearchResult:
    """The search in an open run context (see the module docstring); `replayed`: observations made before."""
    record, path = context.record, context.path
    settings, plan = record.settings, record.search
    context.open_logs(cases=False)
    started = time.perf_counter()

    def write(rows: list[Row]) -> None:
        assert context.results is not None
        try:
            context.results.write(rows)
        except OSError as error:
            raise run_folder.os_error(context.results.path, error) from None

    def say(line: str) -> None:
        if log is not None:
            print(f"convparity search: {line}", file=log, flush=True)

    with context.executor(executor or ExecutorChoice()) as opened:
        plugins = PluginSelection.from_environment()
        evaluator = Evaluator(settings, opened.executor, plugins, write)
        evaluator.replay(replayed)
        evaluator.probe()
        record.backend_versions, record.unavailable = dict(evaluator.versions), dict(evaluator.unavailable)
        context.save()
        for name, reason in evaluator.unavailable.items():
            say(f"backend {name} is unavailable, it runs nothing: {reason}")
        rng = random.Random(settings.seed)
        space = SpecSpace(settings.dtypes)
        hunt = _Hunt(evaluator, space, rng, settings.jobs, plan["shrink_budget"], say, started)
        spent = record.seconds  # a resumed search has this much less time left
        deadline = started + plan["minutes"] * 60 - spent if plan.get("minutes") is not None else math.inf
        checked: list[tuple[Group, RuleCheck | None]] = []
        try:
            if evaluator.available:
                seeds = [parse_case(seed["case"], dtype=seed["dtype"], bias=seed["bias"]).spec
                         for seed in plan.get("seeds", [])]
                explorer = hunt.explore(plan["budget"], deadline, seeds)
                plan["proposed"] = {"fresh": explorer.fresh, "mutated": explorer.mutated}
                hunt.cover(plan["extra_shrinks"])
            minimal = [s.minimal for s in hunt.shrunk]
            if minimal:
                checked = list(check_rules(evaluator, space, rng, hunt._all(), minimal, rounds=plan["check_rounds"]))
        except (KeyboardInterrupt, Interrupted, RunInterrupted):
            say("interrupted: writing the findings so far (grouped, not checked on fresh cases)")
            _write(path, record, hunt, [(group, None) for group in group_failures(hunt._all(), hunt.minimal())],
                   evaluator, started, plugins)
            raise
    found = _write(path, record, hunt, checked, evaluator, started, plugins)
    say(f"{len(found)} group(s) in {time.perf_counter() - started:.1f} s; {path / 'findings.md'}")
    return SearchResult(path, found, evaluator.counts, dict(evaluator.unavailable), hunt.first_finding,
                        time.perf_counter() - started)


def _write(path: Path, record: RunRecord, hunt: _Hunt, checked: Sequence[tuple[Group, RuleCheck | None]],
           evaluator: Evaluator, started: float, plugins: PluginSelection) -> list[Finding]:
    """findings.csv, findings.md, the repro scripts, and the search's figures in the record."""
    settings = record.settings
    local_minima = {(s.minimal.spec, s.minimal.backend): s.local_minimum for s in hunt.shrunk}
    found = write_findings(path, checked, hunt._all(), seed=settings.seed, tolerance_factor=settings.tolerance_factor,
                           local_minima=local_minima, plugins=plugins)
    record.search.update(
        evaluations=evaluator.counts.evaluations,
        phase_seconds={k: round(v, 3) for k, v in evaluator.counts.seconds.items()},
        first_finding_seconds=None if math.isnan(hunt.first_finding) else round(hunt.first_finding, 3),
        findings=len([f for f in found if not f.known]), known=len([f for f in found if f.known]))
    return found
