"""Where tasks run: the one seam between a sweep's logic and the processes that do its work.

An `Executor` takes tasks (`submit`) and hands back their outcomes as they end (`next_outcome`),
in any order. A task is a picklable callable with a `pool` name; tasks of one pool run in workers
kept for that pool (a framework is imported once per worker, not per task). The sweep knows nothing
else: swapping `LocalProcessExecutor` for one that submits to a cluster (e.g. Dask futures with
`as_completed`, a worker crash read from `KilledWorker`) changes nothing outside this module.

Tasks start longest-expected-first: a task may say how long it should take (`expected_seconds`,
convparity.harness.running.cost), and among the tasks waiting the longest goes first (ties: oldest first), so a
sweep does not end with one slow backend working alone. A task's `urgency` (default 0) comes before
its length: probes (every case waits for them) and evaluations (short, and each finishes a case, which
lets the sweep draw the next one) go before the backends' runs. An executor also keeps each pool's time
(`timing()`: tasks, seconds in the workers, compile seconds where the framework reports them,
workers started and their start-up), which run.json and the report show per backend.

An outcome is the task's return value, or a failure that no task can report itself:
- `crash`: the worker died (segfault, abort, out-of-memory kill); the signal or exit code is kept.
- `timeout`: the task ran longer than its timeout; its worker is killed.
- `error`: the task raised (type, message and innermost frame kept) or its result could not be sent.
After a crash or timeout the next task of that pool gets a fresh worker.
"""

from __future__ import annotations

import bisect
import faulthandler
import math
import multiprocessing
import os
import pickle
import signal
import sys
import time
import traceback
from collections import Counter, defaultdict, deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Protocol

# Environment defaults for workers (a variable the user has set wins): one thread per worker, so -j N
# keeps N cores busy, no worker's threads fight another's, and a backend's numbers do not depend on -j.
# It also tames NumPy's OpenBLAS: its threads spin ~0.1 s after each GEMM, stealing a core from what
# runs next, in the same process or not (OPENBLAS_THREAD_TIMEOUT=4 stops the spin but then every
# GEMM waits for its threads to wake). benchmarks/blas_spin.py measures both.
WORKER_ENVIRONMENT = {
    "OMP_NUM_THREADS": "1",  # OpenMP: PyTorch's intra-op pool, oneDNN
    "OPENBLAS_NUM_THREADS": "1",  # NumPy's BLAS: the reference, NumPy-based backends
    "MKL_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",  # TensorFlow's intra-op pool
}
# Some pools ignore those variables and size themselves by the cores a process may use: XLA compiles
# a jax program's fusions on two threads of a 2-core machine, TensorFlow's graph runs on two inter-op
# threads. So while workers keep one thread each, each running task is also pinned to a core of its
# own (`slot_cores`): -j 1 would otherwise keep ~1.4 cores busy and -j N could not be N times faster.
FAILURES = ("crash", "timeout", "error")


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
    `run_seconds`: the part of it in the backend's own `run` (the rows' `seconds`, filled in by the
    sweep; the rest is the harness: inputs, checks, pickling); `compile_seconds`: the part of `run`
    the framework reported compiling (JAX; `compile_measured` says whether any worker could measure
    it); `startup_seconds`: workers' start-up (spawn, imports) summed."""

    tasks: int = 0
    failures: int = 0
    seconds: float = 0.0
    run_seconds: float = 0.0
    compile_seconds: float = 0.0
    compile_measured: bool = False
    workers: int = 0
    startup_seconds: float = 0.0

    def task_ended(self, seconds: float, stats: tuple[float, float, bool] | None = None, failed: bool = False) -> None:
        """Count one task: `stats` (seconds, compile seconds, compile measured) as its worker measured them,
        else `seconds` as seen from outside (NaN when unknown)."""
        self.tasks += 1
        self.failures += failed
        if stats is not None:
            seconds, compiled, measured = stats
            self.compile_seconds += compiled
            self.compile_measured = self.compile_measured or measured
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


def describe_exception(error: BaseException) -> str:
    """"Type: message (at file:line)" with the innermost frame, on one line."""
    last = traceback.extract_tb(error.__traceback__)[-1:]
    where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
    return f"{type(error).__name__}: {error}{where}"


def describe_exit(pid: int, exitcode: int | None) -> str:
    """Why a worker process ended, for crash rows: the signal by name, or the exit code."""
    if exitcode is not None and exitcode < 0:
        number = -exitcode
        name = signal.Signals(number).name if number in signal.valid_signals() else f"signal {number}"
        text = f"worker {pid} killed by {name} ({signal.strsignal(number)})"
        if number == signal.SIGKILL:
            text += ": killed from outside, often by the out-of-memory killer"
        return text
    return f"worker {pid} exited with code {exitcode}"


_READY = "ready"


def slot_cores(jobs: int, environment: Mapping[str, str]) -> list[int]:
    """The core each of `jobs` running tasks is pinned to (Linux), or [] to pin nothing.

    Pinned only while workers are asked for one thread (OMP_NUM_THREADS "1", the default: a user who
    raises it wants threads to spread) and there is a core per job among the runner's own cores.
    """
    threads = os.environ.get("OMP_NUM_THREADS", environment.get("OMP_NUM_THREADS"))
    if not sys.platform.startswith("linux") or threads != "1":
        return []
    cores = sorted(os.sched_getaffinity(0))
    return cores[:jobs] if jobs <= len(cores) else []


def pin_process(pid: int, core: int) -> None:
    """Let every thread of process `pid` run only on `core` (threads it starts later inherit that)."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:  # the process is gone: sending it the task will say so
        return
    for thread in threads:
        try:
            os.sched_setaffinity(int(thread), {core})
        except OSError:  # the thread ended meanwhile
            continue


def _die_with_parent(parent: int) -> None:
    """Linux: let the kernel SIGKILL this worker when the runner dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _serve(conn: Connection, pool: str, parent: int, log: str | None, prepare: Any) -> None:
    """A worker's life: run `prepare` (a framework's imports), announce readiness, then run tasks until
    told to stop (None) or orphaned. A `prepare` that raises is left for the first task to meet again.
    Each reply is (ok, value or error text, (seconds, compile seconds, compile measured)) for one task."""
    _die_with_parent(parent)
    # Ctrl-C and SIGTERM are the runner's to handle (a terminal sends Ctrl-C to every process of its group):
    # the worker was started with both blocked, so none can interrupt its start-up; now they are ignored.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    faulthandler.enable()  # a segfault or abort leaves its Python traceback in the log
    print(f"[convparity worker {os.getpid()} pool {pool}] started", file=sys.stderr, flush=True)
    if prepare is not None:
        try:
            prepare()
        except Exception as error:  # noqa: BLE001
            print(f"[convparity worker {os.getpid()}] preparing failed: {describe_exception(error)}", file=sys.stderr)
    from convparity.harness.running.compile_cache import CompileClock

    clock = CompileClock()  # after `prepare`, so that it sees the framework
    conn.send_bytes(pickle.dumps(_READY))
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        started, compiled = time.perf_counter(), clock.seconds
        try:
            task = pickle.loads(data)
            if task is None:
                return
            reply: tuple[bool, Any] = (True, task())
        except Exception as error:  # noqa: BLE001 - reported to the runner as the task's error
            reply = (False, describe_exception(error))
        stats = (time.perf_counter() - started, clock.seconds - compiled, clock.measured)
        try:
            payload = pickle.dumps((*reply, stats), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:  # noqa: BLE001
            payload = pickle.dumps((False, f"the result could not be sent back: {describe_exception(error)}", stats))
        conn.send_bytes(payload)


@contextmanager
def _environment_defaults(defaults: Mapping[str, str]) -> Iterator[None]:
    """Set the variables the user has not set, for the duration (a spawned child copies os.environ)."""
    added = [name for name in defaults if name not in os.environ]
    for name in added:
        os.environ[name] = defaults[name]
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


@contextmanager
def _signals_blocked() -> Iterator[None]:
    """Block SIGINT and SIGTERM in this thread for the duration: a process started meanwhile inherits the
    block (across exec), so a Ctrl-C cannot interrupt its start-up; here they arrive once unblocked."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


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
    process: Any  # multiprocessing's SpawnProcess
    conn: Connection
    spawned: float
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
    """Runs tasks in spawned worker processes on this machine, at most `jobs` at once.

    Each pool keeps its workers between tasks (one at least, once started, so a sweep that cycles
    through backends does not re-import frameworks); beyond one per pool, `jobs - 1` more in all go
    to the pools whose tasks take the most time (see `_may_grow`). Workers get WORKER_ENVIRONMENT, and
    a running task's worker is pinned to a core no other running task has (see `slot_cores`).
    Worker output (and the traceback faulthandler prints when a worker dies of a signal) goes to
    `log` when given. A fresh worker first runs its first task's `prepare` (a framework's imports),
    which may take up to `startup_timeout` seconds; a task's own timeout starts only after that.
    """

    jobs: int
    log: Path | None = None
    startup_timeout: float | None = None
    environment: Mapping[str, str] = field(default_factory=lambda: dict(WORKER_ENVIRONMENT))
    _queue: list[_Job] = field(default_factory=list, init=False)
    _workers: list[_Worker] = field(default_factory=list, init=False)
    _retired: list[Any] = field(default_factory=list, init=False)
    _outcomes: deque[Outcome] = field(default_factory=deque, init=False)
    _pool_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float), init=False)
    _start_up_seconds: dict[str, float] = field(default_factory=dict, init=False)
    _timing: dict[str, PoolTiming] = field(default_factory=lambda: defaultdict(PoolTiming), init=False)
    _submitted: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise ValueError(f"jobs must be at least 1, got {self.jobs}")
        self._context = multiprocessing.get_context("spawn")
        self._cores = slot_cores(self.jobs, self.environment)

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
            ready = set(wait([w.conn for w in self._workers] + [w.process.sentinel for w in self._workers], timeout))
            for worker in list(self._workers):
                if worker.conn in ready or worker.process.sentinel in ready:
                    self._service(worker)
            now = time.perf_counter()
            for worker in list(self._workers):
                if worker.deadline <= now:
                    job = worker.job
                    assert job is not None  # only a busy worker has a deadline
                    self._remove(worker, kill=True)
                    self._timing[worker.pool].task_ended(now - worker.started if worker.ready else math.nan,
                                                         failed=True)
                    if worker.ready:
                        self._outcomes.append(Outcome(job.tag, failure="timeout", seconds=now - worker.started,
                                                      message=f"no result after {job.timeout:g} s; worker killed"))
                    else:
                        self._outcomes.append(Outcome(job.tag, failure="error", message=(
                            f"the {worker.pool} worker did not start within {self.startup_timeout:g} s "
                            "(framework imports; see --startup-timeout); worker killed")))
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
            process.join(max(0.0, end - time.perf_counter()))
            if process.is_alive():
                process.kill()
                process.join()
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
                worker = self._start(job.task.pool, getattr(job.task, "prepare", None))
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

    def _start(self, pool: str, prepare: Any) -> _Worker:
        parent_end, child_end = self._context.Pipe()
        log = str(self.log) if self.log else None
        process = self._context.Process(target=_serve, args=(child_end, pool, os.getpid(), log, prepare),
                                        name=f"convparity-{pool}", daemon=True)
        with _environment_defaults(self.environment), _signals_blocked():
            process.start()
        child_end.close()
        worker = _Worker(pool, process, parent_end, spawned=time.perf_counter(), startup_timeout=self.startup_timeout)
        self._workers.append(worker)
        self._timing[pool].workers += 1
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
        """Read what `worker` sent (readiness or a result), or learn that it died."""
        if not worker.conn.poll():
            if not worker.process.is_alive():
                self._died(worker)
            return
        try:
            message = pickle.loads(worker.conn.recv_bytes())
        except (EOFError, OSError):
            self._died(worker)
            return
        if not worker.ready:
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
        ok, value, stats = message
        self._timing[worker.pool].task_ended(math.nan, stats, failed=not ok)
        if ok:
            self._outcomes.append(Outcome(job.tag, value=value))
        else:
            self._outcomes.append(Outcome(job.tag, failure="error", message=value,
                                          seconds=time.perf_counter() - worker.started))

    def _died(self, worker: _Worker) -> None:
        job = worker.job
        seconds = time.perf_counter() - worker.started if worker.ready else math.nan
        self._remove(worker, kill=False)
        if job is not None:
            self._timing[worker.pool].task_ended(seconds, failed=True)
            message = describe_exit(worker.process.pid, worker.process.exitcode)
            if not worker.ready:
                message += " before it was ready"
            if self.log:
                message += f"; its output is in {self.log.name}"
            self._outcomes.append(Outcome(job.tag, failure="crash", message=message, seconds=seconds))

    def _remove(self, worker: _Worker, *, kill: bool) -> None:
        if kill:
            worker.process.kill()
        worker.process.join(5.0)
        worker.conn.close()
        self._workers.remove(worker)
