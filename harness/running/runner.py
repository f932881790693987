"""Runs a sweep: every case x dtype on every backend, rows written as each case finishes.

The sweep decides what runs and in which order; an `Executor` (harness.running.executor) decides where.
The unit of work is an `Item`: one case in one dtype and the backends that still lack its rows.

- Each backend is probed once first (in its own worker, the parent never imports a framework);
  an unavailable one gets `unavailable` rows and runs nothing.
- Every backend runs the item (`RunCase`); when all have answered, one `EvaluateCase` computes the
  reference once and turns every backend's outputs into rows, which are written together. So the
  reference costs one computation per item, however many backends there are.
- A task that crashes, times out or fails becomes that backend's rows for the item (or, for the
  evaluation, the rows of every backend whose outputs it was comparing): nothing stops the sweep.
- At most `window` items are in flight, so memory stays bounded on a grid of any size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Set
from dataclasses import dataclass, field
from typing import Any

from harness.cases.descriptor import Case
from harness.results import Row
from harness.running.executor import Executor, Outcome
from harness.running.tasks import (
    BackendInfo,
    BackendResult,
    EvaluateCase,
    Probe,
    Ran,
    RunCase,
    Status,
    WarmUp,
    case_rows,
)
from harness.settings import RunSettings

DoneKey = tuple[str, bool, str, str]  # (descriptor, bias, dtype, backend) whose rows are all written


@dataclass
class Item:
    """One case in one dtype (the spec carries it), the backends still to run it, and their results."""

    case: Case
    backends: tuple[str, ...]
    results: dict[str, BackendResult] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return len(self.results) == len(self.backends)


def expand(cases: list[Case], dtypes: tuple[str, ...]) -> list[Case]:
    """Every case in every dtype, case-major."""
    return [Case(case.spec.replace(dtype=dtype), case.name) for case in cases for dtype in dtypes]


def done_key(case: Case, backend: str) -> DoneKey:
    spec = case.spec
    return (spec.descriptor, spec.bias, spec.dtype, backend)


def plan(cases: Iterable[Case], backends: tuple[str, ...], done: Set[DoneKey] = frozenset()) -> list[Item]:
    """The items still to run: each case (with its dtype) and the backends whose rows are not all written."""
    items = []
    for case in cases:
        missing = tuple(b for b in backends if done_key(case, b) not in done)
        if missing:
            items.append(Item(case, missing))
    return items


class _Sweep:
    def __init__(self, settings: RunSettings, executor: Executor, write: Callable[[list[Row]], None],
                 on_versions: Callable[[dict[str, str]], None] | None) -> None:
        self.settings = settings
        self.executor = executor
        self.write = write
        self.on_versions = on_versions
        self.backends: list[str] = []
        self.probed: dict[str, BackendInfo | Status] = {}
        self.waiting: dict[str, list[Item]] = {}
        self.in_flight = 0
        self.tasks = 0

    def submit(self, task, tag) -> None:
        self.executor.submit(task, tag, self.settings.timeout)
        self.tasks += 1

    def run(self, items: list[Item], window: int) -> dict[str, str]:
        self.backends = list(dict.fromkeys(b for item in items for b in item.backends))
        for name in self.backends:
            self.waiting[name] = []
            self.submit(Probe(name), ("probe", name))
        if items:
            self.submit(WarmUp(), ("warm-up", None))
        pending = iter(items)
        while True:
            while self.in_flight < window and (item := next(pending, None)) is not None:
                self.start(item)
            if not self.tasks:
                return self.versions()
            outcome = self.executor.next_outcome()
            self.tasks -= 1
            kind, subject = outcome.tag
            handlers: dict[str, Callable[[Any, Outcome], None]] = {
                "probe": self.probe_ended, "run": self.run_ended, "evaluate": self.evaluate_ended}
            handle = handlers.get(kind)
            if handle:  # a warm-up has nothing to hand over
                handle(subject, outcome)

    def versions(self) -> dict[str, str]:
        return {name: info.version if isinstance(info, BackendInfo) else "" for name, info in self.probed.items()}

    def start(self, item: Item) -> None:
        self.in_flight += 1
        for name in item.backends:
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
            item.results[name] = BackendResult(name, "", Status("unavailable", info.unavailable))
        else:
            self.submit(RunCase(name, item.case.spec, self.settings.seed), ("run", (item, name)))

    def probe_ended(self, name: str, outcome: Outcome) -> None:
        if outcome.failure:
            self.probed[name] = Status(outcome.failure, f"probing backend {name}: {outcome.message}")
        else:
            self.probed[name] = outcome.value
        if len(self.probed) == len(self.backends) and self.on_versions:
            self.on_versions(self.versions())
        for item in self.waiting.pop(name):
            self.begin(item, name)
            self.evaluate_if_complete(item)

    def run_ended(self, subject: tuple[Item, str], outcome: Outcome) -> None:
        item, name = subject
        result = Status(outcome.failure, outcome.message, outcome.seconds) if outcome.failure else outcome.value
        item.results[name] = BackendResult(name, self.probed[name].version, result)  # type: ignore[union-attr]
        self.evaluate_if_complete(item)

    def evaluate_if_complete(self, item: Item) -> None:
        if not item.complete:
            return
        results = tuple(item.results[name] for name in item.backends)
        if any(isinstance(part.result, Ran) for part in results):
            self.submit(EvaluateCase(item.case.spec, item.case.name, self.settings.seed,
                                     self.settings.tolerance_factor, results), ("evaluate", item))
        else:
            self.finish(self.rows(item, results))

    def evaluate_ended(self, item: Item, outcome: Outcome) -> None:
        if not outcome.failure:
            self.finish(outcome.value)
            return
        # The reference side failed: every backend that had outputs gets that failure, the rest keep theirs.
        message = f"evaluating against the reference: {outcome.message}"
        results = tuple(
            BackendResult(part.backend, part.version, Status(outcome.failure, message, part.result.seconds))
            if isinstance(part.result, Ran) else part
            for part in (item.results[name] for name in item.backends)
        )
        self.finish(self.rows(item, results))

    def rows(self, item: Item, results: tuple[BackendResult, ...]) -> list[Row]:
        return case_rows(item.case.spec, item.case.name, self.settings.seed, self.settings.tolerance_factor, results)

    def finish(self, rows: list[Row]) -> None:
        self.in_flight -= 1
        self.write(rows)


def run_sweep(
    items: list[Item],
    settings: RunSettings,
    executor: Executor,
    write: Callable[[list[Row]], None],
    *,
    on_versions: Callable[[dict[str, str]], None] | None = None,
    window: int | None = None,
) -> dict[str, str]:
    """Run every item, calling `write(rows)` once per item as it finishes (in any order).

    `on_versions(versions)` is called once every backend has been probed; the versions (empty for
    an unavailable backend) are also returned. `window` bounds the items in flight (default 4 per job + 4).
    """
    window = window or 4 * settings.jobs + 4
    return _Sweep(settings, executor, write, on_versions).run(items, window)
