"""Tasks run for a remote scheduler (a Dask worker), each in a child process kept for its pool.

A cluster's worker calls `run_call(call)`. The task goes to a child process of that worker kept for the task's
pool (a worker process of harness.running.worker, exactly as LocalProcessExecutor starts them), and the worker
waits for its answer. Whatever the task does to its process (segfault, abort, out-of-memory kill, hang)
happens to the child: the worker survives, finds the child dead or past its timeout, kills it if needed, and
returns that as the task's answer, a `Reply`. So Dask sees every task succeed; nothing is retried on another
worker and no worker dies of a case.

- Everything a child needs travels in the `Call`: the task and its `prepare` (pickled by the client:
  they carry the plugin selection), its pool's WorkerSetup (resolved on this machine, so the compile
  cache "default" is this machine's cache folder), the timeout, the start-up deadline, the worker log,
  and the cores to pin children to.
- A child's import path is the worker's `sys.path`.
- Idle children are kept per (pool, setup), at most MAX_IDLE per worker process (the least
  recently used beyond that stop). Every child is started from one long-lived thread: the kernel
  kills a child when the *thread* that started it ends (PR_SET_PDEATHSIG), and the worker's task
  threads may come and go.
- A task cancelled by the client (the sweep stopped) is noticed within POLL_SECONDS: its child is killed.
- Children write to the log named in the call, else to convparity-workers.log in the Dask worker's
  local directory (or the temporary folder); crash messages name it and the machine.
"""

from __future__ import annotations

import atexit
import math
import os
import pickle
import socket
import subprocess
import tempfile
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection

from convparity.harness.errors import describe_exception
from convparity.harness.running.placement import WorkerSetup, pin_process
from convparity.harness.running.worker import ALIVE, READY, describe_exit, import_path, start_worker

MAX_IDLE = 12
POLL_SECONDS = 0.5
LOG_NAME = "convparity-workers.log"


@dataclass(frozen=True)
class Call:
    """One task and what its child process needs. `task` and `prepare` are pickled (the worker never
    unpickles them); `setup` gives the child's environment, resolved here (None: this worker's own);
    `cores`: one core per worker of a local cluster, the children of worker `name` i pinned to cores[i]
    (empty: none)."""

    pool: str
    task: bytes
    prepare: bytes
    setup: WorkerSetup | None = None
    timeout: float | None = None
    startup_timeout: float | None = None
    log: str | None = None
    cores: tuple[int, ...] = ()


@dataclass(frozen=True)
class Reply:
    """A task's answer. `payload`: what the child sent, pickled (ok, value or error text, stats), or
    None when the task failed from outside: `failure` (crash, timeout, error) with `message` and the
    `seconds` it ran. `startup_seconds`: the start-up of the child started for it (NaN: an idle one ran it)."""

    payload: bytes | None = None
    failure: str = ""
    message: str = ""
    seconds: float = math.nan
    startup_seconds: float = math.nan
    host: str = ""


@dataclass
class _Child:
    key: tuple
    process: subprocess.Popen
    conn: Connection
    log: str

    def kill(self) -> None:
        try:
            self.process.kill()
        except OSError:
            pass
        self.process.wait()
        self.conn.close()


class ChildPool:
    """The children of one worker process, idle ones kept per (pool, environment)."""

    def __init__(self, max_idle: int = MAX_IDLE) -> None:
        self.max_idle = max_idle
        self._idle: OrderedDict[int, _Child] = OrderedDict()  # by id, least recently used first
        self._lock = threading.Lock()
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix="convparity-children")

    def run(self, call: Call, cancelled=lambda: False) -> Reply:
        """Run `call.task` in a child of its pool and return how it ended (see module)."""
        host = socket.gethostname()
        key = (call.pool, call.setup, call.log, call.cores)
        for attempt in (1, 2):
            startup = math.nan
            child = self._checkout(key)
            if child is None:
                started = time.perf_counter()
                child, failure = self._start(key, call, cancelled)
                if failure is not None:
                    return failure
                startup = time.perf_counter() - started
            assert child is not None
            try:
                child.conn.send_bytes(call.task)
            except OSError:  # it died while idle: the task never ran, a fresh child takes it once
                child.kill()
                if attempt == 1:
                    continue
                return Reply(failure="crash", message=self._death(child, "before it could take the task"), host=host)
            reply = self._wait(child, call, cancelled)
            reply = Reply(reply.payload, reply.failure, reply.message, reply.seconds, startup, host)
            if reply.payload is not None:
                self._checkin(child)
            return reply
        raise AssertionError("unreachable")

    # -- children ----------------------------------------------------------------------------------

    def _checkout(self, key: tuple) -> _Child | None:
        with self._lock:
            for ident, child in self._idle.items():
                if child.key == key:
                    del self._idle[ident]
                    return child
        return None

    def _checkin(self, child: _Child) -> None:
        with self._lock:
            self._idle[id(child)] = child
            surplus = [self._idle.popitem(last=False)[1] for _ in range(len(self._idle) - self.max_idle)]
        for old in surplus:
            self._stop(old)

    @staticmethod
    def _stop(child: _Child) -> None:
        try:
            child.conn.send_bytes(pickle.dumps(None))
            child.process.wait(5.0)
        except (OSError, subprocess.TimeoutExpired):
            pass
        child.kill()

    def close(self) -> None:
        with self._lock:
            children = list(self._idle.values())
            self._idle.clear()
        for child in children:
            child.kill()

    def _start(self, key: tuple, call: Call, cancelled) -> tuple[_Child | None, Reply | None]:
        """A fresh child of `call.pool`, ready (its `prepare` done), or the Reply saying why there is none."""
        environment = dict(os.environ) if call.setup is None else call.setup.environment(os.environ)
        environment["PYTHONPATH"] = import_path()
        log = call.log or default_log()
        process, conn = start_worker(call.pool, environment, log, call.prepare,
                                     spawn=lambda *a, **k: self._spawner.submit(subprocess.Popen, *a, **k).result())
        child = _Child(key, process, conn, log)
        if call.cores:
            pin_process(process.pid, call.cores[worker_index() % len(call.cores)])
        started = time.perf_counter()
        deadline = math.inf if call.startup_timeout is None else started + call.startup_timeout
        alive = False
        while True:
            while not child.conn.poll(min(POLL_SECONDS, max(0.0, deadline - time.perf_counter()))):
                if time.perf_counter() >= deadline:
                    child.kill()
                    return None, Reply(failure="error", message=(
                        f"the {call.pool} worker did not start within {call.startup_timeout:g} s "
                        "(framework imports; see --startup-timeout); worker killed"))
                if cancelled():
                    child.kill()
                    return None, Reply(failure="error", message="cancelled while its worker started")
            try:
                said = pickle.loads(child.conn.recv_bytes())
            except (EOFError, OSError):
                child.kill()
                when = "before it was ready (while importing its framework)" if alive else \
                    "before it could start Python and import convparity"
                return None, Reply(failure="crash" if alive else "start", message=self._death(child, when))
            if said == READY:
                return child, None
            if said != ALIVE:
                child.kill()
                return None, Reply(failure="error", message=f"the {call.pool} worker answered {said!r} when starting")
            alive = True

    def _wait(self, child: _Child, call: Call, cancelled) -> Reply:
        started = time.perf_counter()
        deadline = math.inf if call.timeout is None else started + call.timeout
        while True:
            if child.conn.poll(min(POLL_SECONDS, max(0.0, deadline - time.perf_counter()))):
                try:
                    return Reply(payload=child.conn.recv_bytes())
                except (EOFError, OSError):
                    child.kill()
                    return Reply(failure="crash", message=self._death(child), seconds=time.perf_counter() - started)
            now = time.perf_counter()
            if now >= deadline:
                child.kill()
                return Reply(failure="timeout", message=f"no result after {call.timeout:g} s; worker killed",
                             seconds=now - started)
            if cancelled():
                child.kill()
                return Reply(failure="error", message="cancelled", seconds=now - started)

    @staticmethod
    def _death(child: _Child, when: str = "") -> str:
        """Why `child` died, for crash rows: signal or exit code, when, and where its output is."""
        child.process.wait()
        message = describe_exit(child.process.pid, child.process.returncode)
        return message + (f" {when}" if when else "") + f"; its output is in {child.log} on {socket.gethostname()}"


def worker_index() -> int:
    """This Dask worker's number in its local cluster (its `name`), 0 outside one."""
    try:
        from distributed import get_worker

        return int(get_worker().name)
    except (ImportError, ValueError, TypeError):
        return 0


def default_log() -> str:
    """The Dask worker's local directory (or the temporary folder) / convparity-workers.log."""
    try:
        from distributed import get_worker

        folder = get_worker().local_directory
    except (ImportError, ValueError):
        folder = tempfile.gettempdir()
    return os.path.join(folder, LOG_NAME)


def dask_task_cancelled() -> bool:
    """Whether the Dask task this thread runs was cancelled by its client (False outside a Dask task)."""
    try:
        from distributed.worker import get_worker, thread_state

        state = get_worker().state.tasks.get(thread_state.key)
    except Exception:  # noqa: BLE001 - not in a Dask task, or a distributed without these internals
        return False
    return state is None or state.state == "cancelled"


_children: ChildPool | None = None
_children_lock = threading.Lock()


def run_call(call: Call) -> Reply:
    """What a Dask worker runs for each task: `call` in a child of this worker process (see module)."""
    global _children
    with _children_lock:
        if _children is None:
            _children = ChildPool()
            atexit.register(_children.close)
    try:
        return _children.run(call, dask_task_cancelled)
    except Exception as error:  # noqa: BLE001 - the worker's own failure is still this task's answer, not a retry
        return Reply(failure="error", message=f"the worker could not run the task: {describe_exception(error)}",
                     host=socket.gethostname())


