"""Where tasks run: the one seam between a sweep's logic and the processes that do its work.

An `Executor` takes tasks (`submit`) and hands back their outcomes as they end (`next_outcome`),
in any order. A task is a picklable callable with a `pool` name; tasks of one pool run in workers
kept for that pool (a framework is imported once per worker, not per task). A task may also carry
`prepare` (what a fresh worker of its pool runs before any task: a framework's imports, under the
start-up deadline) and `setup` (harness.running.placement.WorkerSetup: the environment its pool's
workers start with). The sweep knows nothing else: `LocalProcessExecutor`
(harness.running.local_executor) and `DaskExecutor` (harness.running.dask_executor) implement it.

Tasks start longest-expected-first: a task may say how long it should take (`expected_seconds`,
harness.running.cost_model), and among the tasks waiting the longest goes first (ties: oldest first),
so a sweep does not end with one slow backend working alone. A task's `urgency` (default 0) comes
before its length: probes (every case waits for them) and evaluations (short, and each finishes a
case, which lets the sweep draw the next one) go before the backends' runs. An executor also keeps
each pool's time (`timing()`: tasks, seconds in the workers, workers started and their start-up),
which run.json and the report show per backend.

An outcome is the task's return value, or a failure that no task can report itself:
- `start`: no worker of the task's pool could start (it died before saying it was alive: the
  harness's own failure, e.g. an interpreter that cannot import convparity);
- `crash`: the worker died (segfault, abort, out-of-memory kill); the signal or exit code is kept;
- `timeout`: the task ran longer than its timeout; its worker is killed;
- `error`: the task raised (type, message and innermost frame kept) or its result could not be sent.
After a crash or timeout the next task of that pool gets a fresh worker.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

FAILURES = ("crash", "timeout", "error", "start")


class Task(Protocol):
    @property
    def pool(self) -> str: ...

    def __call__(self) -> Any: ...


def expected_seconds(task: Task) -> float:
    """How long `task` says it should take (its optional `expected_seconds`), 0 when it does not say."""
    value = getattr(task, "expected_seconds", 0.0)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else 0.0


def task_rank(task: Task) -> tuple[int, float]:
    """(urgency, expected seconds): the task with the larger one starts first."""
    urgency = getattr(task, "urgency", 0)
    return (urgency if isinstance(urgency, int) else 0, expected_seconds(task))


@dataclass(frozen=True)
class Outcome:
    """How one submitted task ended. `tag` is the object given to `submit`, never sent to a worker.

    `failure` is "" when the task returned `value`, else one of FAILURES with `message`;
    `seconds` is how long the task ran before it failed (NaN when it returned).
    """

    tag: Any
    value: Any = None
    failure: str = ""
    message: str = ""
    seconds: float = math.nan


class Executor(Protocol):
    def submit(self, task: Task, tag: Any, timeout: float | None = None) -> None:
        """Queue `task`; its outcome will carry `tag`. `timeout` counts from when a worker starts it."""

    def next_outcome(self) -> Outcome:
        """Block until some submitted task ends and return its outcome (each task's exactly once)."""

    def close(self) -> None:
        """Stop every worker; tasks still queued or running are dropped."""

    def timing(self) -> dict[str, dict[str, Any]]:
        """Per pool, what its tasks cost so far (PoolTiming's fields)."""


@dataclass
class PoolTiming:
    """One pool's time. `seconds`: in its workers, from taking each task to its result (or its failure);
    `run_seconds`: the part of it in the backend's own `run` (the rows' `seconds`); `compile_seconds`:
    the part of `run` the framework reported compiling (`compile_measured`: whether it reports it at all;
    both filled in by the sweep from the backend's results); the rest of `seconds` is the harness:
    inputs, checks, pickling. `startup_seconds`: workers' start-up (spawn, imports) summed."""

    tasks: int = 0
    failures: int = 0
    seconds: float = 0.0
    run_seconds: float = 0.0
    compile_seconds: float = 0.0
    compile_measured: bool = False
    workers: int = 0
    startup_seconds: float = 0.0

    def task_ended(self, seconds: float, failed: bool = False) -> None:
        """Count one task that took `seconds` in its worker (NaN when unknown)."""
        self.tasks += 1
        self.failures += failed
        if seconds == seconds:
            self.seconds += seconds

    def as_json(self) -> dict[str, Any]:
        return {name: round(value, 3) if isinstance(value, float) else value for name, value in asdict(self).items()}

    @staticmethod
    def add(*timings: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """Several sessions' or shards' `timing()` in one: per pool, counts and seconds summed."""
        total: dict[str, PoolTiming] = defaultdict(PoolTiming)
        for timing in timings:
            for pool, values in timing.items():
                into = total[pool]
                for name in ("tasks", "failures", "workers"):
                    setattr(into, name, getattr(into, name) + int(values.get(name, 0)))
                for name in ("seconds", "run_seconds", "compile_seconds", "startup_seconds"):
                    setattr(into, name, getattr(into, name) + float(values.get(name, 0.0)))
                into.compile_measured = into.compile_measured or bool(values.get("compile_measured"))
        return {pool: timing.as_json() for pool, timing in sorted(total.items())}


