"""`LocalProcessExecutor`: the Executor of harness.running.executor on this machine's cores.

Tasks run in worker processes (harness.running.worker: fresh interpreters started with our own `-m`
entry point, so a caller's script, stdin or notebook is never re-imported), at most `jobs` at once.
Each pool keeps its workers between tasks (one at least, once started, so a sweep that cycles through
backends does not re-import frameworks); beyond one per pool, `jobs - 1` more in all go to the pools
whose tasks take the most time (see `_may_grow`). A pool's workers start with the environment of its
tasks' `setup` (harness.running.placement.WorkerSetup), and a running task's worker is pinned to a
core no other running task has (`slot_cores`). Worker output (and the traceback faulthandler prints
when a worker dies of a signal) goes to `log` when given.

A fresh worker says ALIVE, runs its first task's `prepare` (a framework's imports) and says READY,
within `startup_timeout` seconds; a task's own timeout starts only after that. A worker that dies
before ALIVE could not start at all: its task's outcome is `start`, the harness's failure, which the
sweep reports as one error rather than as rows of the backend.
"""

from __future__ import annotations

import bisect
import math
import os
import pickle
import subprocess
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from convparity.harness.errors import describe_exception
from convparity.harness.running.executor import Outcome, PoolTiming, Task, task_rank
from convparity.harness.running.placement import WorkerSetup, pin_process, slot_cores, thread_variables
from convparity.harness.running.worker import ALIVE, READY, describe_exit, import_path, start_worker


@dataclass
class _Job:
    task: Task
    tag: Any
    timeout: float | None
    resent: bool = False
    order: int = 0  # submission order: among equally long tasks the oldest goes first

    @property
    def rank(self) -> tuple[int, float, int]:
        """Sort key of the queue: most urgent, then longest expected, then oldest first."""
        urgency, seconds = task_rank(self.task)
        return (-urgency, -seconds, self.order)


@dataclass
class _Worker:
    pool: str
    process: subprocess.Popen
    conn: Connection
    spawned: float
    alive: bool = False
    ready: bool = False
    job: _Job | None = None
    started: float = 0.0
    tasks_done: int = 0
    core: int | None = None  # the core its threads are pinned to, if any
    startup_timeout: float | None = None

    @property
    def deadline(self) -> float:
        """When its job times out: from the task's start once ready, from the spawn while starting up."""
        if self.job is None:
            return math.inf
        if not self.ready:
            return math.inf if self.startup_timeout is None else self.spawned + self.startup_timeout
        return math.inf if self.job.timeout is None else self.started + self.job.timeout


@dataclass
class LocalProcessExecutor:
    """Runs tasks in worker processes on this machine, at most `jobs` at once (see the module docstring)."""

    jobs: int
    log: Path | None = None
    startup_timeout: float | None = None
    _queue: list[_Job] = field(default_factory=list, init=False)
    _workers: list[_Worker] = field(default_factory=list, init=False)
    _retired: list[subprocess.Popen] = field(default_factory=list, init=False)
    _outcomes: deque[Outcome] = field(default_factory=deque, init=False)
    _pool_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float), init=False)
    _start_up_seconds: dict[str, float] = field(default_factory=dict, init=False)
    _timing: dict[str, PoolTiming] = field(default_factory=lambda: defaultdict(PoolTiming), init=False)
    _submitted: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise ValueError(f"jobs must be at least 1, got {self.jobs}")
        self._cores = slot_cores(self.jobs, thread_variables())

    def __enter__(self) -> LocalProcessExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, task: Task, tag: Any, timeout: float | None = None) -> None:
        job = _Job(task, tag, timeout, order=self._submitted)
        self._submitted += 1
        bisect.insort(self._queue, job, key=lambda j: j.rank)

    def timing(self) -> dict[str, dict[str, Any]]:
        return {pool: timing.as_json() for pool, timing in sorted(self._timing.items())}

    def next_outcome(self) -> Outcome:
        self._dispatch()
        while not self._outcomes:
            busy = [w for w in self._workers if w.job is not None]
            if not busy:
                raise RuntimeError("next_outcome() called with no task submitted")
            deadline = min(w.deadline for w in busy)
            timeout = None if deadline == math.inf else max(0.0, deadline - time.perf_counter())
            # a worker that dies closes its end of the connection: that wakes the wait too (end of file)
            ready = set(wait([w.conn for w in self._workers], timeout))
            for worker in list(self._workers):
                if worker.conn in ready:
                    self._service(worker)
            now = time.perf_counter()
            for worker in list(self._workers):
                if worker.deadline <= now:
                    self._expired(worker, now)
            self._dispatch()  # keep the workers busy while the caller handles the outcome
        return self._outcomes.popleft()

    def close(self) -> None:
        for worker in self._workers:
            if worker.job is None and worker.ready:
                self._send(worker, None)
            else:
                worker.process.kill()
        processes = [w.process for w in self._workers] + self._retired
        end = time.perf_counter() + 5.0
        for process in processes:
            try:
                process.wait(max(0.0, end - time.perf_counter()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for worker in self._workers:
            worker.conn.close()
        self._workers.clear()
        self._retired.clear()
        self._queue.clear()

    # -- scheduling --------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Start queued tasks while fewer than `jobs` run: longest expected first, preferring an idle worker."""
        while self._queue and sum(w.job is not None for w in self._workers) < self.jobs:
            idle = {w.pool: w for w in self._workers if w.job is None}
            job = next((j for j in self._queue if j.task.pool in idle), None)
            if job is not None:
                worker = idle[job.task.pool]
            else:
                job = next((j for j in self._queue if self._may_grow(j.task.pool)), None)
                if job is None:
                    return
                try:
                    worker = self._start(job.task)
                except Exception as error:  # noqa: BLE001 - e.g. an unpicklable prepare, a failing setup
                    self._queue.remove(job)
                    self._outcomes.append(Outcome(job.tag, failure="start", message=(
                        f"a {job.task.pool} worker could not be started: {describe_exception(error)}")))
                    continue
            self._queue.remove(job)
            self._assign(worker, job)

    def _may_grow(self, pool: str) -> bool:
        """Whether to start a worker for `pool` now that a slot is free and no idle worker can use it.

        A pool's first worker always; another one for a backlog (two tasks or more waiting), with
        `jobs - 1` extra workers in all, going where the time goes: a pool deserves
        1 + (jobs - 1) x its fraction of the task time (rounded), so slow framework cases earn more
        workers than fast ones. A pool below that may retire an idle worker of a pool above it.
        Allocations move only towards these numbers, so pools do not take turns restarting workers.
        And a worker must be worth its start-up (spawn, imports, first task: a second or more for a
        framework): a pool grows only once its tasks have taken twice that long.
        """
        counts = Counter(w.pool for w in self._workers)
        if not counts[pool]:
            return True
        deserved = self._deserved()
        if (not deserved or counts[pool] >= deserved[pool] or sum(j.task.pool == pool for j in self._queue) < 2
                or self._pool_seconds[pool] < 2 * self._start_up_seconds.get(pool, math.inf)):
            return False
        if len(self._workers) - len(counts) < self.jobs - 1:
            return True
        spare = next((w for w in self._workers if w.job is None and counts[w.pool] > deserved[w.pool]), None)
        if spare is None:
            return False
        self._send(spare, None)
        self._workers.remove(spare)
        spare.conn.close()
        self._retired.append(spare.process)
        return True

    def _deserved(self) -> dict[str, int]:
        """Workers each pool in use deserves (see `_may_grow`); empty until each has measured load."""
        pools = {w.pool for w in self._workers} | {j.task.pool for j in self._queue}
        if any(not self._pool_seconds[p] for p in pools):
            return {}
        total = sum(self._pool_seconds[p] for p in pools)
        return {p: 1 + round((self.jobs - 1) * self._pool_seconds[p] / total) for p in pools}

    def _start(self, task: Task) -> _Worker:
        setup: WorkerSetup | None = getattr(task, "setup", None)
        environment = dict(os.environ) if setup is None else setup.environment(os.environ)
        environment["PYTHONPATH"] = import_path()
        prepare = pickle.dumps(getattr(task, "prepare", None), protocol=pickle.HIGHEST_PROTOCOL)
        process, conn = start_worker(task.pool, environment, str(self.log) if self.log else None, prepare)
        worker = _Worker(task.pool, process, conn, spawned=time.perf_counter(), startup_timeout=self.startup_timeout)
        self._workers.append(worker)
        self._timing[task.pool].workers += 1
        return worker

    def _assign(self, worker: _Worker, job: _Job) -> None:
        worker.job = job
        if worker.ready:
            self._send_job(worker)

    def _send_job(self, worker: _Worker) -> None:
        job = worker.job
        assert job is not None
        try:
            data = pickle.dumps(job.task, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:  # noqa: BLE001 - an unpicklable task fails alone
            worker.job = None
            self._outcomes.append(Outcome(job.tag, failure="error",
                                          message=f"the task could not be sent: {describe_exception(error)}"))
            return
        self._pin(worker)
        worker.started = time.perf_counter()
        if self._send(worker, data):
            return
        if job.resent:  # a second worker gone before it could take the task: report it
            self._died(worker)
            return
        job.resent = True  # the worker died while idle: the task never ran, give it a fresh worker
        worker.job = None
        self._remove(worker, kill=True)
        bisect.insort(self._queue, job, key=lambda j: j.rank)

    def _pin(self, worker: _Worker) -> None:
        """Pin `worker`, about to run a task, to a core no other running task holds (its own if free)."""
        if not self._cores:
            return
        held = {w.core for w in self._workers if w is not worker and w.job is not None and w.ready}
        free = [core for core in self._cores if core not in held]
        core = worker.core if worker.core in free else free[0]
        if core != worker.core:
            pin_process(worker.process.pid, core)
            worker.core = core

    @staticmethod
    def _send(worker: _Worker, data: bytes | None) -> bool:
        try:
            worker.conn.send_bytes(pickle.dumps(None) if data is None else data)
        except OSError:  # BrokenPipeError and friends: the worker is gone
            return False
        return True

    # -- what workers say --------------------------------------------------------------------------

    def _service(self, worker: _Worker) -> None:
        """Read what `worker` sent (ALIVE, READY or a result), or learn that it died."""
        if not worker.conn.poll():
            if worker.process.poll() is not None:
                self._died(worker)
            return
        try:
            message = pickle.loads(worker.conn.recv_bytes())
        except (EOFError, OSError):
            self._died(worker)
            return
        if message == ALIVE:
            worker.alive = True
            return
        if message == READY:
            worker.ready = True
            self._timing[worker.pool].startup_seconds += time.perf_counter() - worker.spawned
            if worker.job is not None:
                self._send_job(worker)
            return
        job, worker.job = worker.job, None
        assert job is not None
        now = time.perf_counter()
        if worker.tasks_done:
            self._pool_seconds[worker.pool] += now - worker.started
        else:  # a worker's first task pays for imports: count it as start-up, not as the pool's load
            start_up = max(self._start_up_seconds.get(worker.pool, 0.0), now - worker.spawned)
            self._start_up_seconds[worker.pool] = start_up
        worker.tasks_done += 1
        ok, value, seconds = message
        self._timing[worker.pool].task_ended(seconds, failed=not ok)
        if ok:
            self._outcomes.append(Outcome(job.tag, value=value))
        else:
            self._outcomes.append(Outcome(job.tag, failure="error", message=value, seconds=seconds))

    def _expired(self, worker: _Worker, now: float) -> None:
        """`worker` is past its deadline: kill it; its task timed out, or its start-up did."""
        job = worker.job
        assert job is not None  # only a busy worker has a deadline
        self._remove(worker, kill=True)
        self._timing[worker.pool].task_ended(now - worker.started if worker.ready else math.nan, failed=True)
        if worker.ready:
            self._outcomes.append(Outcome(job.tag, failure="timeout", seconds=now - worker.started,
                                          message=f"no result after {job.timeout:g} s; worker killed"))
        else:
            self._outcomes.append(Outcome(job.tag, failure="error", message=(
                f"the {worker.pool} worker did not start within {self.startup_timeout:g} s "
                "(framework imports; see --startup-timeout); worker killed")))

    def _died(self, worker: _Worker) -> None:
        job = worker.job
        seconds = time.perf_counter() - worker.started if worker.ready else math.nan
        self._remove(worker, kill=False)
        if job is None:
            return
        self._timing[worker.pool].task_ended(seconds, failed=True)
        message = describe_exit(worker.process.pid, worker.process.returncode)
        if not worker.alive:
            message += " before it could start Python and import convparity"
        elif not worker.ready:
            message += " before it was ready (while importing its framework)"
        if self.log:
            message += f"; its output is in {self.log}"
        self._outcomes.append(Outcome(job.tag, failure="crash" if worker.alive else "start", message=message,
                                      seconds=seconds))

    def _remove(self, worker: _Worker, *, kill: bool) -> None:
        if kill:
            worker.process.kill()
        try:
            worker.process.wait(5.0)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()
        worker.conn.close()
        self._workers.remove(worker)
