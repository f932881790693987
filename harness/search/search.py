"""`convparity.harness.search.search(...)`: hunt for disagreements, shrink each, group them by cause, write a report.

    from convparity.harness.search import search
    found = search(["keras"], dtypes=["float64", "float32"], budget=100, seed=0, jobs=2)
    print(found.path / "findings.md")

Phases, all through one executor (the sweep's workers, isolation and verdicts; convparity.harness.search.evaluations):

0. models (`models`): every distinct layer of each model, in every dtype, is evaluated first and taken as a
   lead, so exploring starts around the user's own layers; a failing layer is settled like any failure.
   Then replay: earlier findings (`known_findings`: search or triage folders, or folders holding them) are
   run first on their minimal cases, as Hypothesis replays its example database: one that still fails
   the same way is reported as seen before and its way of failing is not hunted again; one that passes
   is reported as fixed.
1. explore (convparity.harness.search.explore): `budget` cases (or until its share of `minutes`), in rounds
   of 2 x jobs + 2, each case in one dtype on every backend. The first time a backend fails in a new way
   (dtype, bias, kind, failing tensors) the failure is *settled* at once: run again with the same values
   (convparity.harness.search.values: a flaky failure is reported as flaky, with its rate, and not shrunk), shrunk
   (convparity.harness.search.shrink; starting from an earlier minimal case carried over to the new dtype and
   bias when that also fails this way), its minimal case run again, and its values redrawn as small
   integers when the failure survives them. A hang (timeout) is neither shrunk nor run again: each step
   would take the whole timeout.
2. cover: failures that no rule learnt so far explains (another cause behind the same symptoms) are
   settled too, at most `extra_shrinks` of them, shrinking away from the cases known causes explain.
3. check (convparity.harness.search.check): groups by cause with their rules (convparity.harness.search.group),
   each rule checked on fresh cases on both sides, relearnt when it fails.
4. write: results.csv (every evaluation), reruns.csv (the reruns and redraws), run.json (with the
   search's own numbers), findings.csv, findings.md and repro/<group>.py (convparity.search and
   `convparity search` then write the reports).

Time: with `minutes`, the whole search (every phase, writing included) ends by then. The time is split
(PHASE_SHARES): exploring until 60% of it, covering until 70%, checking until 88%, and the rest for
grouping and writing; the split is printed when the search starts. A case's timeout is cut to its phase's
time left, so a slow case cannot carry a phase past its end (a case cut short is not run, not reported
as a hang); the stated margin is the start of the workers (bounded by the startup timeout, not by
`minutes`) and the reports written after the search.

A search runs in a RunContext (harness.running.context) like a sweep: on any executor (local or Dask),
with the compile cache, and interrupted at any stage, it writes the findings it has so far (grouped,
not checked) before it stops, and says how to continue. `resume_search(path)`, or `search` again with the
same `out` and settings, continues it: every evaluation already in results.csv and reruns.csv is replayed
from there, not run again, so the search retraces its own steps (its draws are seeded) and goes on where
it stopped; a budget in cases gives the same findings as an uninterrupted search.
"""

from __future__ import annotations

import csv
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TextIO

from convparity.harness.backends.manager import PluginSelection
from convparity.harness.cases.descriptor import parse_case
from convparity.harness.cases.inputs import InputStyle
from convparity.harness.cases.models import Model, write_models
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.files import RunFolderError
from convparity.harness.results import COLUMNS, CsvAppender, Row, bias_word, csv_cell, read_results
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
from convparity.harness.search.findings import Earlier, Finding, read_findings, write_findings
from convparity.harness.search.group import Group, Key, group_failures
from convparity.harness.search.observations import Observation, observations_from_rows, observe
from convparity.harness.search.rules import Rule
from convparity.harness.search.shrink import Shrunk, fails_the_same_way, shrink
from convparity.harness.search.space import SpecSpace
from convparity.harness.search.values import Reruns, flaky_reruns, rerun_check, simpler_values
from convparity.harness.settings import DEFAULT_REFERENCE_TIMEOUT, DEFAULT_STARTUP_TIMEOUT, DEFAULT_TIMEOUT, RunSettings
from convparity.harness.vocabulary import check_dtypes

DEFAULT_BUDGET = 100
DEFAULT_SHRINK_BUDGET = 300
DEFAULT_EXTRA_SHRINKS = 4
DEFAULT_CHECK_ROUNDS = 5  # learning and checking on fresh cases, until every rule held
PHASE_SHARES = (("explore", 0.6), ("cover", 0.7), ("check", 0.88))  # each phase ends at this share of `minutes`
RERUNS_FILE = "reruns.csv"
RERUN_COLUMNS = ("inputs", "attempt", *COLUMNS)


@dataclass
class SearchResult:
    """A finished search: its folder, the groups found (findings.csv's rows) and how long each phase took."""

    path: Path
    findings: list[Finding]
    counts: EvaluationCounts
    unavailable: dict[str, str] = field(default_factory=dict)
    first_finding_seconds: float = math.nan
    seconds: float = 0.0
    resumed: bool = False

    @property
    def new(self) -> list[Finding]:
        return [f for f in self.findings if f.status == "new"]

    def exit_code(self) -> int:
        """1 while some undeclared failure remains (a new finding, or one seen before that still fails), else 0."""
        return 1 if any(f.status in ("new", "seen before") for f in self.findings) else 0


@dataclass(frozen=True)
class SearchPlan:
    """What a search was asked to do, saved in run.json's "search" object (beside its figures) and checked
    field by field when it is read back."""

    budget: int | None = None
    minutes: float | None = None
    shrink_budget: int = DEFAULT_SHRINK_BUDGET
    extra_shrinks: int = DEFAULT_EXTRA_SHRINKS
    check_rounds: int = DEFAULT_CHECK_ROUNDS
    known_findings: tuple[str, ...] = ()
    models: tuple[str, ...] = ()  # the model sources read (`models`)
    seeds: tuple[dict[str, Any], ...] = ()  # their distinct layers: {"case": descriptor, "dtype", "bias"}

    def __post_init__(self) -> None:
        for name in ("budget", "shrink_budget", "extra_shrinks", "check_rounds"):
            value = getattr(self, name)
            smallest = 0 if name == "extra_shrinks" else 1
            if (value is not None or name != "budget") and (
                    not isinstance(value, int) or isinstance(value, bool) or value < smallest):
                raise SweepError(f"{name} must be a whole number >= {smallest}, got {value!r}")
        if self.minutes is not None and (not isinstance(self.minutes, (int, float)) or isinstance(self.minutes, bool)
                                         or not (math.isfinite(self.minutes) and self.minutes > 0)):
            raise SweepError(f"minutes must be a finite number > 0, got {self.minutes!r}")
        if not isinstance(self.known_findings, (tuple, list)) or not all(
                isinstance(p, str) for p in self.known_findings):
            raise SweepError(f"known_findings must be a list of folders, got {self.known_findings!r}")
        object.__setattr__(self, "known_findings", tuple(self.known_findings))
        if not isinstance(self.models, (tuple, list)) or not all(isinstance(m, str) for m in self.models):
            raise SweepError(f"models must be a list of model sources, got {self.models!r}")
        object.__setattr__(self, "models", tuple(self.models))
        if not isinstance(self.seeds, (tuple, list)) or not all(
                isinstance(seed, dict) and set(seed) == {"case", "dtype", "bias"} for seed in self.seeds):
            raise SweepError(f"seeds must be a list of {{case, dtype, bias}} objects, got {self.seeds!r}")
        object.__setattr__(self, "seeds", tuple(dict(seed) for seed in self.seeds))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["known_findings"] = list(self.known_findings)
        data["models"] = list(self.models)
        data["seeds"] = [dict(seed) for seed in self.seeds]
        return data

    @classmethod
    def from_record(cls, record: RunRecord) -> SearchPlan:
        """The plan in a search's run.json; RunFolderError naming the field at fault."""
        stored = record.search
        try:
            return cls(**{f.name: stored[f.name] for f in fields(cls) if f.name in stored})
        except SweepError as error:
            raise RunFolderError(f"run.json: search.{error}") from None


@dataclass(frozen=True)
class Schedule:
    """When each phase ends (time.perf_counter() values; inf without `minutes`)."""

    started: float
    seconds: float  # the whole search's time, inf without a limit

    def end(self, phase: str) -> float:
        share = dict(PHASE_SHARES).get(phase, 1.0)
        return self.started + share * self.seconds if math.isfinite(self.seconds) else math.inf

    def describe(self) -> str:
        if not math.isfinite(self.seconds):
            return ""
        ends = ", ".join(f"{phase} until {share * self.seconds:.0f} s" for phase, share in PHASE_SHARES)
        return (f"time: {self.seconds:.0f} s in all: {ends}, then grouping and writing the findings by "
                f"{self.seconds:.0f} s (a case's timeout is cut to its phase's time left)")


@dataclass
class _Hunt:
    """The state of one search: what was settled (shrunk, rerun, redrawn), and the log."""

    evaluator: Evaluator
    space: SpecSpace
    rng: random.Random
    jobs: int
    shrink_budget: int
    log: Callable[[str], None]
    started: float
    schedule: Schedule
    shrunk: list[Shrunk] = field(default_factory=list)
    keys: set[Key] = field(default_factory=set)
    first_finding: float = math.nan
    earlier: list[Earlier] = field(default_factory=list)

    def is_shrunk(self, observation: Observation) -> bool:
        return Key.of(observation) in self.keys

    def settle(self, failing: Observation, *, carry_over: bool, deadline: float,
               avoid: Callable[[ConvSpec], bool] | None = None) -> Shrunk:
        """Run `failing` again, shrink it (unless it hangs or is flaky), run its minimal case again and try it on
        small integers (see the module docstring)."""
        self.keys.add(Key.of(failing))
        if math.isnan(self.first_finding):
            self.first_finding = time.perf_counter() - self.started
        if failing.kind == "timeout":
            result = Shrunk(failing, failing, False, 0, [failing.spec], Reruns(), state="a hang: not shrunk")
            self.log(f"a hang: {failing.describe()} on {failing.spec.descriptor} (not shrunk: each step would "
                     "take the whole timeout)")
            self.shrunk.append(result)
            return result
        reruns = rerun_check(failing, self.evaluator, deadline=deadline)
        if reruns.flaky:
            return self._flaky(failing, reruns)
        start = failing
        if carry_over:
            carried = list(dict.fromkeys(
                s.minimal.spec.replace(dtype=failing.spec.dtype, bias=failing.spec.bias) for s in self.shrunk
                if s.minimal.backend == failing.backend and not s.state))
            for found in self.evaluator.observe(carried, [failing.backend], phase="shrink", deadline=deadline):
                candidate = found.get(failing.backend)
                if candidate is not None and fails_the_same_way(candidate, failing) and (
                        avoid is None or not avoid(candidate.spec)):
                    start = candidate
                    break
        self.log(f"shrinking: {failing.describe()} from {start.spec.descriptor}")
        result = shrink(start, self.evaluator, dtypes=self.space.dtypes, budget=self.shrink_budget, jobs=self.jobs,
                        deadline=deadline, avoid=avoid)
        result.start = failing
        result.reruns = rerun_check(result.minimal, self.evaluator, deadline=deadline) \
            if result.minimal != failing else reruns
        if result.reruns.flaky:  # its first reruns all failed by chance, and the shrinking followed chance
            self.keys.add(Key.of(result.minimal))
            return self._flaky(failing, flaky_reruns(failing, self.evaluator, deadline=deadline),
                               "its shrunk case is flaky: the shrinking followed chance; reported as found")
        result.values = simpler_values(result.minimal, self.evaluator, deadline=deadline)
        self.shrunk.append(result)
        self.keys.add(Key.of(result.minimal))
        state = "a local minimum" if result.local_minimum else "budget or time spent"
        values = f"; fails on integers ({result.values.inputs.text})" if result.values else ""
        self.log(f"  -> {result.minimal.spec.descriptor} {result.minimal.spec.dtype} bias "
                 f"{bias_word(result.minimal.spec.bias)} ({state}, {result.evaluations} evaluations; "
                 f"{result.reruns.describe()}{values})")
        return result

    def _flaky(self, failing: Observation, reruns: Reruns, why: str = "not shrunk") -> Shrunk:
        """A flaky failure, settled unshrunk (shrinking it would follow chance)."""
        self.log(f"flaky: {failing.describe()} on {failing.spec.descriptor}: {reruns.describe()} ({why})")
        result = Shrunk(failing, failing, False, 0, [failing.spec], reruns, state="flaky: not shrunk")
        self.shrunk.append(result)
        return result

    def replay_earlier(self, earlier: Sequence[Earlier], deadline: float) -> None:
        """Run each earlier finding's minimal case (phase 0 of the module docstring)."""
        for finding in earlier:
            if finding.backend not in self.evaluator.available:
                continue
            found = self.evaluator.rerun(finding.spec, finding.backend, inputs=finding.inputs, seed=finding.seed,
                                         phase="replay", deadline=deadline)
            if not found:
                continue
            now = found[0]
            finding.now = now
            if finding.fails_like(now):
                self.keys.add(Key.of(now))
                self.shrunk.append(Shrunk(now, now, False, 0, [now.spec], Reruns(), values=None,
                                          state=f"seen before: {finding.source}"))
                self.log(f"seen before, still fails: {finding.source}: {now.describe()}")
            else:
                self.log(f"fixed since {finding.source}: {finding.backend} {finding.spec.descriptor} now "
                         f"{now.kind}")

    def explore(self, budget: int | None, deadline: float, seeds: Sequence[ConvSpec] = ()) -> Explorer:
        explorer = Explorer(self.space, self.rng)
        if seeds:
            backends = self.evaluator.available
            for spec, found in zip(seeds, self.evaluator.observe(seeds, backends, phase="model", deadline=deadline)):
                explorer.learn(spec, found, self.is_shrunk)
                for observation in found.values():
                    if observation.fails and not self.is_shrunk(observation):
                        self.settle(observation, carry_over=True, deadline=deadline)
            self.log(f"evaluated the models' {len(seeds)} distinct layers; {len(self.shrunk)} failure(s) settled")
        explored = 0
        size = 2 * self.jobs + 2
        backends = self.evaluator.available
        while (budget is None or explored < budget) and time.perf_counter() < deadline:
            count = size if budget is None else min(size, budget - explored)
            specs = explorer.propose(count, self.evaluator.specs)
            if not specs:
                break
            results = self.evaluator.observe(specs, backends, phase="explore", deadline=deadline)
            explored += len(specs)
            for spec, found in zip(specs, results):
                explorer.learn(spec, found, self.is_shrunk)
                for observation in found.values():
                    if observation.fails and not self.is_shrunk(observation):
                        self.settle(observation, carry_over=True, deadline=deadline)
            self.log(f"explored {explored}{'' if budget is None else f'/{budget}'} cases; "
                     f"{len(self.shrunk)} failure(s) settled")
        return explorer

    def cover(self, extra: int, deadline: float) -> None:
        """Settle failures that no group's rule explains yet (groups whose minimal case was not settled, then a
        group's misses), shrinking away from the cases the settled groups' rules explain."""
        tried: set[Observation] = set()
        for _ in range(extra):
            if time.perf_counter() >= deadline:
                return
            minimal = set(self.minimal())
            flaky = {s.minimal for s in self.shrunk if s.state.startswith("flaky")}
            groups = group_failures(self._all(), list(minimal), self.evaluator.walked)
            unexplained = [g.minimal for g in groups if g.minimal not in minimal and g.minimal not in tried
                           and not (g.value_dependent and flaky.intersection(g.members))]
            unexplained += [m for g in groups if not g.value_dependent for m in g.missed[:1] if m not in tried]
            if not unexplained:
                return
            target = unexplained[0]
            tried.add(target)
            explained = [g.rule for g in groups if g.minimal in minimal and g.backend == target.backend
                         and not g.value_dependent]
            self.settle(target, carry_over=False, deadline=deadline, avoid=_explained_by(explained))

    def _all(self) -> list[Observation]:
        return list(self.evaluator.cache.values())

    def minimal(self) -> list[Observation]:
        return [s.minimal for s in self.shrunk]


def _explained_by(rules: Sequence[Rule]) -> Callable[[ConvSpec], bool]:
    """Whether one of `rules` holds on a spec (a case a known cause explains)."""
    return lambda spec: any(rule.holds(spec) for rule in rules)


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
    check_rounds: int = DEFAULT_CHECK_ROUNDS,
    known_findings: Sequence[str | Path] = (),
    executor: ExecutorChoice | Executor | None = None,
    compile_cache: str = "default",
    log: TextIO | None = None,
    models: Sequence[str | Model] = (),
    input_shapes: Sequence[str] | dict[str, tuple[int, ...]] | None = None,
    epilogues: bool = True,
) -> SearchResult:
    """Search `backends` for disagreements with the reference (see the module docstring).

    budget: cases to explore (default DEFAULT_BUDGET unless `minutes` is given); minutes: the whole
    search's time (whichever comes first). seed: the search's draws and the inputs. known_findings:
    folders of earlier findings to replay first. executor: where tasks run (an ExecutorChoice, default
    local worker processes `jobs` at once, or an Executor object); compile_cache: as for a sweep. log:
    where progress lines go (None: nowhere). models: model sources or Models (as for a sweep, with
    `input_shapes`) whose layers are evaluated first and explored around.

    When `out` already holds a search with the same settings (the number of jobs, the executor and the
    compile cache aside), that search is continued (an unfinished one) or its findings returned (a
    finished one); a folder holding anything else is refused.
    """
    try:
        dtypes = check_dtypes(list(dtypes))
    except ValueError as error:
        raise SweepError(str(error)) from None
    if budget is None and minutes is None:
        budget = DEFAULT_BUDGET
    read = resolve_models(models, input_shapes, epilogues=epilogues, startup_timeout=startup_timeout) \
        if models or input_shapes else ()
    seeds = dict.fromkeys(case.spec if case.fixed_dtype else case.spec.replace(dtype=dtype)
                          for model in read for case in model.cases()
                          for dtype in (dtypes if not case.fixed_dtype else (case.spec.dtype,)))
    plan = SearchPlan(budget, minutes, shrink_budget, extra_shrinks, check_rounds,
                      tuple(str(Path(p)) for p in known_findings), tuple(model.source for model in read),
                      tuple({"case": spec.descriptor, "dtype": spec.dtype, "bias": spec.bias} for spec in seeds))
    settings = RunSettings(backends=available_backends(backends), dtypes=dtypes, grids=(), seed=seed, timeout=timeout,
                           jobs=jobs, tolerance_factor=tolerance_factor, startup_timeout=startup_timeout,
                           reference_timeout=reference_timeout, compile_cache=compile_cache)
    earlier_findings(plan.known_findings)  # a folder without findings is refused before anything is written
    path = Path(out) if out is not None else run_folder.default_run_dir(Path("reports"), ("search",))
    if _holds_a_run(path):
        return _again(path, settings, plan, executor, log)
    record = RunRecord("search", settings, harness_commit=run_folder.harness_commit(), search=plan.to_json(),
                       worker_environment=thread_variables())
    with _interrupt_said(), RunContext.new(path, record) as context:
        if read:
            write_models(path, read)
        result = _hunt(context, executor, log, replayed=[], reruns=[])
        context.finish()
    return result


def _holds_a_run(path: Path) -> bool:
    return (path / run_folder.RUN_FILE).is_file()


def _again(path: Path, settings: RunSettings, plan: SearchPlan, executor: ExecutorChoice | Executor | None,
           log: TextIO | None) -> SearchResult:
    """`search` into a folder that holds a run: continue the same search, or say why not (one line)."""
    record = run_folder.read_record(path)
    if record.kind != "search":
        raise RunFolderError(f"output folder {path} holds a {record.kind}, not a search: a run never overwrites "
                             "another; pick a new -o")
    mine = replace(settings, jobs=record.settings.jobs, compile_cache=record.settings.compile_cache)
    differences = [f"{f.name} {getattr(record.settings, f.name)!r} there, {getattr(mine, f.name)!r} now"
                   for f in fields(RunSettings) if getattr(record.settings, f.name) != getattr(mine, f.name)]
    stored = SearchPlan.from_record(record)
    differences += [f"{f.name} {getattr(stored, f.name)!r} there, {getattr(plan, f.name)!r} now"
                    for f in fields(SearchPlan) if getattr(stored, f.name) != getattr(plan, f.name)]
    if differences:
        raise RunFolderError(f"output folder {path} holds another search ({'; '.join(differences)}): continue it "
                             f"with: convparity search --resume {path}; or pick a new -o")
    if record.status == "finished":
        if log is not None:
            print(f"convparity search: {path} holds this very search, finished: its findings are reported as they "
                  "are", file=log, flush=True)
        table = read_findings(path)
        found = [] if table is None else [Finding.from_record(row) for row in table.to_dict("records")]
        return SearchResult(path, found, EvaluationCounts(), dict(record.unavailable), resumed=True,
                            seconds=record.seconds)
    if log is not None:
        print(f"convparity search: {path} holds this search, {record.status}: continuing it", file=log, flush=True)
    return resume_search(path, settings.jobs, executor=executor, compile_cache=settings.compile_cache, log=log)


def resume_search(path: str | Path, jobs: int | None = None, *, executor: ExecutorChoice | Executor | None = None,
                  compile_cache: str | None = None, log: TextIO | None = None) -> SearchResult:
    """Continue the interrupted search in `path` with its own settings (only the number of jobs, the executor
    and the compile cache may change): its evaluations are replayed from results.csv and reruns.csv, then
    it goes on."""
    path = Path(path)
    record = run_folder.read_record(path)
    if record.kind != "search":
        raise RunFolderError(f"{path} holds a {record.kind}, not a search: continue it with: convparity run "
                             f"--resume {path}")
    SearchPlan.from_record(record)  # checked before anything is opened
    with _interrupt_said(), RunContext.reopen(path) as context:
        settings = context.record.settings
        if jobs is not None:
            settings = replace(settings, jobs=jobs)
        if compile_cache is not None:
            settings = replace(settings, compile_cache=compile_cache)
        context.record.settings = settings
        replayed = observations_from_rows(read_results(path).itertuples(index=False)) \
            if (path / "results.csv").is_file() else []
        result = _hunt(context, executor, log, replayed=replayed, reruns=read_reruns(path))
        result.resumed = True
        context.finish()
    return result


def read_reruns(path: Path) -> list[tuple[Observation, int]]:
    """reruns.csv: every rerun and redraw with its attempt number (their input style in each observation)."""
    file = path / RERUNS_FILE
    if not file.is_file():
        return []
    grouped: dict[tuple, list[Any]] = {}
    with open(file, newline="", encoding="utf-8", errors="surrogateescape") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return []
        if tuple(header) != RERUN_COLUMNS:
            raise RunFolderError(f"{file} has other columns than this version of convparity writes")
        for number, cells in enumerate(reader, start=2):
            if len(cells) != len(RERUN_COLUMNS):
                continue  # a line cut by a full disk: that attempt is run again
            record = dict(zip(RERUN_COLUMNS, (c[1:] if c.startswith("'") else c for c in cells)))
            try:
                key = (record["inputs"], int(record["attempt"]), record["case"], record["dtype"],
                       record["bias"] == "on", record["backend"])
            except ValueError:
                raise RunFolderError(f"{file}:{number}: attempt must be a whole number") from None
            grouped.setdefault(key, []).append(_RerunRow(record))
    found = []
    for (inputs, attempt, case, dtype, bias, backend), rows in grouped.items():
        try:
            style = InputStyle.parse(inputs)
            spec = parse_case(case, dtype=dtype, bias=bias).spec
        except ValueError as error:
            raise RunFolderError(f"{file}: {error}") from None
        found.append((observe(spec, backend, rows, style), attempt))
    return found


class _RerunRow:
    """A reruns.csv line read back, with the attributes `observe` reads."""

    def __init__(self, cells: dict[str, str]) -> None:
        self.__dict__.update(cells)
        try:
            self.err_ratio = float(cells["err_ratio"]) if cells["err_ratio"] else math.nan
        except ValueError:
            self.err_ratio = math.nan


def _hunt(context: RunContext, executor: ExecutorChoice | Executor | None, log: TextIO | None,
          replayed: list[Observation], reruns: list[tuple[Observation, int]]) -> SearchResult:
    """The search in an open run context (see the module docstring); `replayed`, `reruns`: evaluations made before."""
    record, path = context.record, context.path
    settings, plan = record.settings, SearchPlan.from_record(record)
    context.open_logs(cases=False)
    started = time.perf_counter()
    spent = record.seconds  # a resumed search has this much less time left
    schedule = Schedule(started - spent, plan.minutes * 60 if plan.minutes is not None else math.inf)
    rerun_log = CsvAppender(path / RERUNS_FILE, RERUN_COLUMNS)

    def write(rows: list[Row]) -> None:
        assert context.results is not None
        try:
            context.results.write(rows)
        except OSError as error:
            raise run_folder.os_error(context.results.path, error) from None

    def write_rerun(rows: list[Row], inputs: InputStyle, attempt: int) -> None:
        try:
            rerun_log.append([[inputs.text, attempt] + [bias_word(row.bias) if column == "bias"
                                                        else csv_cell(getattr(row, column)) for column in COLUMNS]
                              for row in rows])
        except OSError as error:
            raise run_folder.os_error(rerun_log.path, error) from None

    def say(line: str) -> None:
        if log is not None:
            print(f"convparity search: {line}", file=log, flush=True)

    checked: list[tuple[Group, RuleCheck | None]] = []
    hunt: _Hunt | None = None
    try:
        with context.executor(executor or ExecutorChoice()) as opened:
            plugins = PluginSelection.from_environment()
            evaluator = Evaluator(settings, opened.executor, plugins, write, write_rerun)
            evaluator.replay(replayed, reruns)
            evaluator.probe()
            record.backend_versions, record.unavailable = dict(evaluator.versions), dict(evaluator.unavailable)
            context.save()
            for name, reason in evaluator.unavailable.items():
                say(f"backend {name} is unavailable, it runs nothing: {reason}")
            if schedule.describe():
                say(schedule.describe())
            rng = random.Random(settings.seed)
            space = SpecSpace(settings.dtypes)
            hunt = _Hunt(evaluator, space, rng, settings.jobs, plan.shrink_budget, say, started, schedule)
            try:
                if evaluator.available:
                    hunt.earlier = earlier_findings(plan.known_findings)
                    hunt.replay_earlier(hunt.earlier, schedule.end("explore"))
                    seeds = [parse_case(seed["case"], dtype=seed["dtype"], bias=seed["bias"]).spec
                             for seed in plan.seeds]
                    explorer = hunt.explore(plan.budget, schedule.end("explore"), seeds)
                    record.search["proposed"] = {"fresh": explorer.fresh, "mutated": explorer.mutated}
                    hunt.cover(plan.extra_shrinks, schedule.end("cover"))
                minimal = hunt.minimal()
                if minimal:
                    checked = check_rules(evaluator, space, rng, hunt._all(), minimal, rounds=plan.check_rounds,
                                          deadline=schedule.end("check"), walked=evaluator.walked)
            except (KeyboardInterrupt, Interrupted, RunInterrupted):
                say("interrupted: writing the findings so far (grouped, not checked on fresh cases)")
                _write(path, record, hunt, [(group, RuleCheck(note="the search was interrupted"))
                                            for group in group_failures(hunt._all(), hunt.minimal(),
                                                                        evaluator.walked)], started,
                       plugins)
                raise
    finally:
        rerun_log.close()
    found = _write(path, record, hunt, checked, started, plugins)
    say(f"{len(found)} group(s) in {time.perf_counter() - started:.1f} s")
    return SearchResult(path, found, evaluator.counts, dict(evaluator.unavailable), hunt.first_finding,
                        time.perf_counter() - started)


class SearchInterrupted(RunInterrupted):
    """An interrupted search: what was written, and how to continue it."""

    def __init__(self, interrupted: RunInterrupted) -> None:
        path = interrupted.path
        command = f"convparity search --resume {path}"
        super().__init__(path, interrupted.exit_code, command)
        if (path / run_folder.RUN_FILE).is_file():  # else: stopped before any case ran, and not kept (said so)
            findings = (path / "findings.md").is_file()
            written = f"the findings so far are in {path / 'findings.md'} (grouped, not checked); " if findings else ""
            self.args = (f"interrupted; {written}every evaluation is kept in {path / 'results.csv'} and "
                         f"{path / RERUNS_FILE}; continue with: {command} (or the same search command again)",)
        else:
            self.args = interrupted.args


@contextmanager
def _interrupt_said() -> Iterator[None]:
    """An interrupted search's RunInterrupted as a SearchInterrupted, which says what the folder keeps."""
    try:
        yield
    except SearchInterrupted:
        raise
    except RunInterrupted as error:
        raise SearchInterrupted(error) from None


def _write(path: Path, record: RunRecord, hunt: _Hunt | None, checked: Sequence[tuple[Group, RuleCheck | None]],
           started: float, plugins: PluginSelection) -> list[Finding]:
    """findings.csv, findings.md, the repro scripts, and the search's figures in the record."""
    if hunt is None:
        return []
    settings = record.settings
    evaluator = hunt.evaluator
    found = write_findings(path, checked, hunt._all(), seed=settings.seed, tolerance_factor=settings.tolerance_factor,
                           shrunk={(s.minimal.spec, s.minimal.backend): s for s in hunt.shrunk}, plugins=plugins,
                           earlier=hunt.earlier)
    record.search.update(
        evaluations=evaluator.counts.evaluations,
        phase_seconds={k: round(v, 3) for k, v in evaluator.counts.seconds.items()},
        first_finding_seconds=None if math.isnan(hunt.first_finding) else round(hunt.first_finding, 3),
        findings=len([f for f in found if f.status == "new"]), known=len([f for f in found if f.known]),
        seen_before=len([f for f in found if f.status == "seen before"]),
        fixed=len([f for f in found if f.status == "fixed"]), cut_short=evaluator.dropped)
    return found


def earlier_findings(folders: Sequence[str]) -> list[Earlier]:
    """The findings in `folders` (each a search or triage folder with a findings.csv, or a folder of such
    folders), fixed ones left out; RunFolderError for a folder that holds none."""
    found: list[Earlier] = []
    for folder in map(Path, folders):
        sources = [folder] if (folder / "findings.csv").is_file() else sorted(
            p for p in folder.iterdir() if (p / "findings.csv").is_file()) if folder.is_dir() else []
        if not sources:
            raise RunFolderError(f"--known-findings {folder}: no findings.csv there nor in its folders")
        for source in sources:
            seed = run_folder.read_record(source).settings.seed if (source / run_folder.RUN_FILE).is_file() else 0
            table = read_findings(source)
            for row in ([] if table is None else table.to_dict("records")):
                if row.get("status", "new") != "fixed" and not row.get("known"):
                    found.append(Earlier.from_row(row, source, seed))
    return found
