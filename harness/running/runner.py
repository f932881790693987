"""Runs a sweep: every case x dtype on every backend, rows written as each case finishes.

The sweep decides what runs and in which order; an `Executor` (convparity.harness.running.executor) decides where.
The unit of work is an `Item`: one case in one dtype and the backends that still lack its rows.

- Each backend is probed once first (in its own worker, the parent never imports a framework). An
  unavailable one runs nothing and has no rows: `on_versions` reports it once, with the reason.
- A task whose worker could not start at all (outcome `start`: the harness's own failure, never the
  backend's) stops the sweep with one WorkerStartError naming the pool and the log.
- Every backend runs the item (`RunCase`, under `settings.timeout`); when all have answered, one
  `EvaluateCase` computes the reference once (under `settings.reference_timeout`) and turns every
  backend's outputs into rows, which are written together.
- Tasks say what they should cost (harness.running.cost_model) and where their workers start
  (harness.running.placement.WorkerSetup); `on_ran(backend, spec, ran)` hears of every result a
  backend returned (the sweep learns costs and compile time from them).
- A backend task that crashes, times out or fails becomes that backend's rows for the item; an
  evaluation that fails becomes `reference-error` rows for the backends it was comparing (their
  outputs were validated in their own workers, so the failure can only be the reference's).
- With `settings.perf`, a case's rows wait, once evaluated, for a `TimeCase` per backend on which every
  compared tensor passed (in that backend's pool); the timings fill those pass rows' speed columns
  (a timing that fails leaves them empty) and the rows are written then.
- Cases are drawn from an iterator as room frees up: at most `window` items are in flight and a
  finished item keeps nothing, so memory stays flat however many cases the iterator yields.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Set
from dataclasses import dataclass, field
from typing import Any

from convparity.harness.backends.manager import PluginSelection
from convparity.harness.cases.descriptor import Case
from convparity.harness.cases.inputs import UNIFORM, InputStyle
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.errors import ConvparityError
from convparity.harness.evaluation.speed import Timing
from convparity.harness.evaluation.verdict import BackendResult, Ran, Status, case_rows
from convparity.harness.results import Row
from convparity.harness.running.cost_model import CostModel
from convparity.harness.running.executor import Executor, Outcome
from convparity.harness.running.placement import WorkerSetup
from convparity.harness.running.tasks import (
    BackendInfo,
    EvaluateCase,
    Probe,
    RunCase,
    TimeCase,
    WarmUp,
    backend_pool,
    reference_setup,
)
from convparity.harness.settings import RunSettings

DoneKey = tuple[str, bool, str, str, str]  # (descriptor, bias, dtype, backend, inputs) whose rows are all written


class WorkerStartError(ConvparityError):
    """No worker of a pool could start (the harness's own failure: nothing of the backend ran)."""

    def __init__(self, pool: str, message: str) -> None:
        super().__init__(f"no worker of pool {pool} could start, so the sweep stopped: {message}")


@dataclass
class Item:
    """One case in one dtype (the spec carries it), the backends still to run it, and their results;
    `inputs`: the style its values are drawn in (a sweep's are uniform; a search also tries integers)."""

    case: Case
    backends: list[str]
    results: dict[str, BackendResult] = field(default_factory=dict)
    inputs: InputStyle = UNIFORM

    @property
    def complete(self) -> bool:
        return len(self.results) == len(self.backends)


def done_key(case: Case, backend: str) -> DoneKey:
    spec = case.spec
    return (spec.descriptor, spec.bias, spec.dtype, backend, case.inputs_key)


def plan(cases: Iterable[Case], backends: tuple[str, ...], done: Set[DoneKey] = frozenset()) -> Iterator[Item]:
    """The items still to run, lazily: each case (with its dtype) and the backends whose rows are not all written."""
    for case in cases:
        missing = [b for b in backends if done_key(case, b) not in done]
        if missing:
            yield Item(case, missing, inputs=case.inputs)


@dataclass(frozen=True)
class SweepVersions:
    """What probing found: each available backend's version, and each unavailable one's reason."""

    versions: dict[str, str]
    unavailable: dict[str, str]


OnRan = Callable[[str, ConvSpec, Ran], None]
OnProbed = Callable[[str, BackendInfo], None]


class _Sweep:
    def __init__(self, settings: RunSettings, executor: Executor, write: Callable[[list[Row]], None],
                 on_versions: Callable[[SweepVersions], None] | None, plugins: PluginSelection, costs: CostModel,
                 on_ran: OnRan | None, on_probed: OnProbed | None) -> None:
        self.settings = settings
        self.executor = executor
        self.write = write
        self.on_versions = on_versions
        self.on_ran = on_ran
        self.on_probed = on_probed
        self.plugins = plugins
        self.costs = costs
        self.setups = {name: WorkerSetup.here(name, plugins, settings.compile_cache) for name in settings.backends}
        self.reference_setup = reference_setup(plugins)
        self.probed: dict[str, BackendInfo | Status] = {}
        self.waiting: dict[str, list[Item]] = {}
        self.in_flight = 0
        self.tasks = 0

    def submit(self, task, tag, timeout: float | None) -> None:
        self.executor.submit(task, tag, timeout)
        self.tasks += 1

    def run(self, items: Iterator[Item], window: int) -> SweepVersions:
        for name in self.settings.backends:
            self.waiting[name] = []
            self.submit(Probe(name, self.plugins, self.setups[name]), ("probe", name), self.settings.startup_timeout)
        self.submit(WarmUp(self.reference_setup), ("warm-up", None), None)
        handlers: dict[str, Callable[[Any, Outcome], None]] = {
            "probe": self.probe_ended, "run": self.run_ended, "evaluate": self.evaluate_ended,
            "time": self.time_ended}
        while True:
            while self.in_flight < window and (item := next(items, None)) is not None:
                self.start(item)
            if not self.tasks:
                return self.versions()
            outcome = self.executor.next_outcome()
            self.tasks -= 1
            kind, subject = outcome.tag
            if outcome.failure == "start":
                pool = backend_pool(subject) if kind == "probe" else "reference" if kind not in ("run", "time") \
                    else backend_pool(subject[1])
                raise WorkerStartError(pool, outcome.message)
            handle = handlers.get(kind)
            if handle:  # a warm-up has nothing to hand over
                handle(subject, outcome)

    def versions(self) -> SweepVersions:
        versions, unavailable = {}, {}
        for name, info in self.probed.items():
            if isinstance(info, BackendInfo) and info.unavailable:
                unavailable[name] = info.unavailable
            else:
                versions[name] = info.version if isinstance(info, BackendInfo) else ""
        return SweepVersions(versions, unavailable)

    def start(self, item: Item) -> None:
        self.in_flight += 1
        for name in list(item.backends):
            if name in self.probed:
                self.begin(item, name)
            else:
                self.waiting[name].append(item)
        self.evaluate_if_complete(item)

    def begin(self, item: Item, name: str) -> None:
        """Run `item` on backend `name`, or record at once why it cannot run there."""
        info = self.probed[name]
        if isinstance(info, Status):
            item.results[name] = BackendResult(name, "", info)
        elif info.unavailable:
            item.backends.remove(name)  # named once in run.json and reports, no rows
        else:
            spec = item.case.spec
            self.submit(RunCase(name, spec, self.settings.seed, info.version, self.plugins, self.setups[name],
                                self.costs.expected_seconds(spec, name), item.inputs),
                        ("run", (item, name)), self.settings.timeout)

    def probe_ended(self, name: str, outcome: Outcome) -> None:
        if outcome.failure:
            self.probed[name] = Status(outcome.failure, f"probing backend {name}: {outcome.message}")
        else:
            self.probed[name] = outcome.value
            if self.on_probed is not None:  # may stop the sweep before any case of the backend runs
                self.on_probed(name, outcome.value)
        if len(self.probed) == len(self.settings.backends) and self.on_versions:
            self.on_versions(self.versions())
        for item in self.waiting.pop(name):
            self.begin(item, name)
            self.evaluate_if_complete(item)

    def run_ended(self, subject: tuple[Item, str], outcome: Outcome) -> None:
        item, name = subject
        result = Status(outcome.failure, outcome.message, outcome.seconds) if outcome.failure else outcome.value
        if isinstance(result, Ran) and self.on_ran is not None:
            self.on_ran(name, item.case.spec, result)
        item.results[name] = BackendResult(name, self.probed[name].version, result)  # type: ignore[union-attr]
        self.evaluate_if_complete(item)

    def evaluate_if_complete(self, item: Item) -> None:
        if not item.complete:
            return
        results = tuple(item.results[name] for name in item.backends)
        item.results = {}  # the outputs now travel with the evaluation only
        if not results:
            self.in_flight -= 1
        elif any(isinstance(part.result, Ran) for part in results):
            spec = item.case.spec
            self.submit(EvaluateCase(spec, item.case.name, self.settings.seed, self.settings.tolerance_factor, results,
                                     item.case.compared, self.reference_setup,
                                     self.costs.expected_evaluation_seconds(spec, len(results)), item.inputs),
                        ("evaluate", (item, results)),
                        self.settings.reference_timeout)
        else:
            self.finish(self.rows(item, results))

    def evaluate_ended(self, subject: tuple[Item, tuple[BackendResult, ...]], outcome: Outcome) -> None:
        item, results = subject
        if not outcome.failure:
            self.time_or_finish(item, outcome.value)
            return
        # The reference side failed: every backend that ran gets reference-error rows, the rest keep theirs.
        message = f"the reference side failed ({outcome.failure}): {outcome.message}"
        self.finish(self.rows(item, tuple(
            BackendResult(part.backend, part.version, Status("reference-error", message, part.result.seconds))
            if isinstance(part.result, Ran) else part for part in results)))

    def rows(self, item: Item, results: tuple[BackendResult, ...]) -> list[Row]:
        return case_rows(item.case.spec, item.case.name, self.settings.seed, self.settings.tolerance_factor, results,
                         item.case.compared, item.inputs)

    def time_or_finish(self, item: Item, rows: list[Row]) -> None:
        """With --perf, time the case on every backend it passed on before its rows are written."""
        timed = timed_backends(rows) if self.settings.perf else []
        if not timed:
            self.finish(rows)
            return
        waiting = _Timings(rows, len(timed))
        spec = item.case.spec
        for name in timed:
            self.submit(TimeCase(name, spec, self.settings.seed, self.plugins, self.setups[name],
                                 self.costs.expected_seconds(spec, name)),
                        ("time", (waiting, name)), self.settings.timeout)

    def time_ended(self, subject: tuple[_Timings, str], outcome: Outcome) -> None:
        waiting, name = subject
        if not outcome.failure:
            apply_timing(waiting.rows, name, outcome.value)
        waiting.left -= 1
        if not waiting.left:
            self.finish(waiting.rows)

    def finish(self, rows: list[Row]) -> None:
        self.in_flight -= 1
        self.write(rows)


@dataclass
class _Timings:
    """A case's rows waiting for `left` timings."""

    rows: list[Row]
    left: int


def timed_backends(rows: list[Row]) -> list[str]:
    """The backends of a case's rows that computed something and got every tensor right: each row `pass`, or
    `unsupported` for a gradient a forward-only backend does not compute (never a time for a failing row)."""
    verdicts: dict[str, set[str]] = {}
    for row in rows:
        verdicts.setdefault(row.backend, set()).add(row.status)
    return [name for name, statuses in verdicts.items() if "pass" in statuses and statuses <= {"pass", "unsupported"}]


def apply_timing(rows: list[Row], backend: str, timing: Timing) -> None:
    """Fill the speed columns of `backend`'s pass rows."""
    for row in rows:
        if row.backend == backend and row.status == "pass":
            row.perf_repeats, row.perf_min_s, row.perf_median_s = timing.repeats, timing.min_s, timing.median_s
            row.perf_spread, row.gflops = timing.spread, timing.gflops


def run_sweep(
    items: Iterable[Item],
    settings: RunSettings,
    executor: Executor,
    write: Callable[[list[Row]], None],
    *,
    on_versions: Callable[[SweepVersions], None] | None = None,
    window: int | None = None,
    plugins: PluginSelection | None = None,
    costs: CostModel | None = None,
    on_ran: OnRan | None = None,
    on_probed: OnProbed | None = None,
) -> SweepVersions:
    """Run every item, calling `write(rows)` once per item as it finishes (in any order).

    `on_versions(found)` is called once every backend has been probed; the same is returned.
    `window` bounds the items in flight (default 4 per job + 4). `plugins` is the plugin selection
    workers load (default: this process's CONVPARITY_PLUGINS / CONVPARITY_EXTRA_PLUGINS). `costs`
    orders the tasks (default: every backend at the default cost); `on_ran` hears of every result;
    `on_probed(name, info)` hears of each backend's probe before any of its cases runs (and may raise to stop).
    """
    window = window or 4 * settings.jobs + 4
    plugins = plugins or PluginSelection.from_environment()
    costs = costs or CostModel({})
    return _Sweep(settings, executor, write, on_versions, plugins, costs, on_ran, on_probed).run(iter(items), window)
