"""The Executor seam on a Dask cluster: `convparity run --executor dask [--scheduler ADDRESS|FILE]`.

`DaskExecutor` submits each task with `Client.submit` (retries=0) and hands back outcomes in the
order they finish (`distributed.as_completed`). On the worker the task runs in a child process kept
for its pool (convparity.harness.running.child_pool), so failures keep their meaning:

- a segfault, abort or kill is the child's: a `crash` outcome, and the Dask worker lives on;
- past its timeout the child is killed: a `timeout` outcome;
- an exception is an `error` outcome, its type, message and innermost frame kept;
- should a Dask worker die all the same (killed from outside, out of memory), its task is a `crash`
  and is not retried elsewhere: a local cluster's scheduler is started with allowed_failures=0, so the
  first death ends the task (KilledWorker). Set `distributed.scheduler.allowed-failures: 0` on a
  scheduler of your own for the same.

Placement: a backend that declares `resources` (e.g. {"GPU": 1}) has its tasks restricted to workers
that offer them (Dask resource restrictions), when some worker does; when none does, its tasks run
anywhere (where a GPU backend then reports itself unavailable, as on a machine without one) and
`notes` says so.

Order: each task's urgency and expected seconds (convparity.harness.running.executor.task_rank) become its Dask
`priority`, which Dask honours among the tasks it holds back (with worker-saturation 1.0, as the
local cluster is started, every task Dask deems root-like waits in one queue until a thread is free).

`local_cluster(jobs)` starts a `distributed.LocalCluster` of `jobs` single-threaded worker processes,
each pinned to a core of its own like LocalProcessExecutor's running tasks (convparity.harness.running.executor.
slot_cores); `connect(scheduler)` joins an existing cluster by address or scheduler file.
Dask is an optional dependency (`pip install 'convparity[dask]'`), imported only here.
"""

from __future__ import annotations

import itertools
import json
import math
import pickle
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convparity.harness.errors import ConvparityError, describe_exception
from convparity.harness.running.child_pool import Call, Reply, run_call
from convparity.harness.running.executor import Outcome, PoolTiming, Task, task_rank

RESOURCE_REFRESH_SECONDS = 30.0


class DaskUnavailable(ConvparityError, RuntimeError):
    """Dask is not installed, or its scheduler cannot be reached (the message says which and how to fix it)."""


def _distributed():
    try:
        import distributed
    except ImportError as error:
        raise DaskUnavailable(f"--executor dask needs dask.distributed (pip install 'convparity[dask]'): {error}") \
            from None
    return distributed


def local_cluster(jobs: int) -> Any:
    """A LocalCluster of `jobs` worker processes of one thread each, which never retries a task whose
    worker died; its workers are named 0..jobs-1 (children of worker i run on cores[i], see Call)."""
    distributed = _distributed()
    import dask

    # worker-saturation 1.0: a worker is sent a queued task only when a thread is free, so the queue's
    # priorities (urgent, then longest expected first) hold across the whole cluster
    with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
        return distributed.LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None,
                                        scheduler_kwargs={"allowed_failures": 0}, silence_logs=40)


def scheduler_address(scheduler: str) -> str:
    """The address of `scheduler`: itself, or the "address" of the scheduler file it names (checked: a JSON object
    whose address is text); DaskUnavailable naming the file and what is wrong otherwise."""
    path = Path(scheduler)
    if not path.is_file():
        return scheduler
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DaskUnavailable(f"scheduler file {path} is not a Dask scheduler file (JSON with an \"address\"): "
                              f"{' '.join(str(error).split())}") from None
    address = data.get("address") if isinstance(data, dict) else None
    if not isinstance(address, str) or not address.strip():
        raise DaskUnavailable(f"scheduler file {path} names no scheduler: its \"address\" must be text such as "
                              f"tcp://HOST:PORT, got {address!r}")
    return address


def connect(scheduler: str | Any, timeout: float = 30.0) -> Any:
    """A Client of an existing cluster: `scheduler` is an address (tcp://host:port), a scheduler file, or a
    cluster object (LocalCluster, a dask-jobqueue or Kubernetes cluster)."""
    distributed = _distributed()
    try:
        return distributed.Client(scheduler_address(scheduler) if isinstance(scheduler, str) else scheduler,
                                  timeout=timeout)
    except (OSError, ValueError, TypeError) as error:  # unreachable, or not an address
        raise DaskUnavailable(f"cannot reach the Dask scheduler {scheduler} (an address tcp://HOST:PORT or a "
                              f"scheduler file): {' '.join(str(error).split())}") from None


def ready_worker() -> str:
    """Run on a Dask worker: what convparity needs there imports (its answer is the worker's host name)."""
    import socket

    from convparity.harness.running import child_pool  # noqa: F401 - the module every task runs through

    return socket.gethostname()


def check_workers(client: Any, scheduler: str, timeout: float) -> None:
    """DaskUnavailable naming the scheduler unless, within `timeout` seconds, some worker runs convparity's code (a
    cluster with no worker, or with workers that cannot import convparity, would otherwise wait forever)."""
    distributed = _distributed()
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, OSError):
        raise DaskUnavailable(f"the Dask scheduler {scheduler} has no worker (none joined within {timeout:g} s): "
                              "start workers for it, or give another --scheduler") from None
    future = client.submit(ready_worker, pure=False, retries=0)
    try:
        future.result(timeout=timeout)
    except (TimeoutError, distributed.TimeoutError):
        raise DaskUnavailable(f"no worker of the Dask scheduler {scheduler} ran convparity's code within {timeout:g} "
                              "s: are its workers busy, or unable to import convparity?") from None
    except Exception as error:  # noqa: BLE001 - e.g. the workers cannot unpickle our function
        raise DaskUnavailable(f"the workers of the Dask scheduler {scheduler} cannot run convparity's code (install "
                              f"convparity where they run): {describe_exception(error)}") from None
    finally:
        future.cancel()


@dataclass
class DaskExecutor:
    """Runs tasks on the cluster of `client` (see module). `log`: the worker log, only when every worker
    runs on this machine; `resources`: per pool, the worker resources its tasks need; `cores`: see Call;
    `cluster`: a cluster this executor started and closes with itself."""

    client: Any
    log: Path | None = None
    startup_timeout: float | None = None
    resources: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    cores: tuple[int, ...] = ()
    cluster: Any = None
    notes: list[str] = field(default_factory=list, init=False)
    _pending: dict[str, tuple[Any, str, Any]] = field(default_factory=dict, init=False)  # key: (tag, pool, future)
    _outcomes: deque[Outcome] = field(default_factory=deque, init=False)
    _timing: dict[str, PoolTiming] = field(default_factory=lambda: defaultdict(PoolTiming), init=False)
    _offered: list[dict[str, float]] = field(default_factory=list, init=False)
    _offered_at: float = field(default=-math.inf, init=False)
    _restrictions: dict[str, dict[str, float] | None] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self._completed = _distributed().as_completed()
        self._prefix = uuid.uuid4().hex[:8]
        self._numbers = itertools.count()

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def slots(self) -> int:
        """Tasks the cluster runs at once: its workers' threads (at least 1)."""
        workers = self.client.scheduler_info(n_workers=-1)["workers"].values()
        return max(1, sum(int(w.get("nthreads", 1)) for w in workers))

    def submit(self, task: Task, tag: Any, timeout: float | None = None) -> None:
        try:
            task_bytes = pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)
            prepare = pickle.dumps(getattr(task, "prepare", None), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:  # noqa: BLE001 - an unpicklable task fails alone
            self._outcomes.append(Outcome(tag, failure="error",
                                          message=f"the task could not be sent: {describe_exception(error)}"))
            return
        call = Call(task.pool, task_bytes, prepare, getattr(task, "setup", None), timeout, self.startup_timeout,
                    str(self.log) if self.log else None, self.cores)
        urgency, seconds = task_rank(task)
        key = f"convparity-{task.pool.replace(':', '-')}-{self._prefix}-{next(self._numbers)}"
        future = self.client.submit(run_call, call, key=key, pure=False, retries=0,
                                    resources=self._placement(task.pool),
                                    priority=urgency * 10**9 + min(round(seconds * 1000), 10**9 - 1))
        self._pending[future.key] = (tag, task.pool, future)
        self._completed.add(future)

    def next_outcome(self) -> Outcome:
        if self._outcomes:
            return self._outcomes.popleft()
        if not self._pending:
            raise RuntimeError("next_outcome() called with no task submitted")
        future = next(self._completed)
        tag, pool, _ = self._pending.pop(future.key)
        try:
            return self._outcome(future, tag, pool)
        finally:
            future.release()

    def close(self) -> None:
        """Cancel what is still queued or running (running children are killed within a second), then
        disconnect; a cluster this executor started is shut down."""
        futures = [future for _, _, future in self._pending.values()]
        try:
            if futures:
                self.client.cancel(futures, force=True)
        finally:
            self._pending.clear()
            self.client.close()
            if self.cluster is not None:
                self.cluster.close()

    def timing(self) -> dict[str, dict[str, Any]]:
        return {pool: timing.as_json() for pool, timing in sorted(self._timing.items())}

    # -- outcomes ----------------------------------------------------------------------------------

    def _outcome(self, future: Any, tag: Any, pool: str) -> Outcome:
        timing = self._timing[pool]
        if future.status == "finished":
            reply: Reply = future.result()
            if reply.startup_seconds == reply.startup_seconds:
                timing.workers += 1
                timing.startup_seconds += reply.startup_seconds
            if reply.payload is None:
                timing.task_ended(reply.seconds, failed=True)
                return Outcome(tag, failure=reply.failure, message=reply.message, seconds=reply.seconds)
            try:
                ok, value, seconds = pickle.loads(reply.payload)
            except Exception as error:  # noqa: BLE001 - e.g. a module the client lacks
                timing.task_ended(math.nan, failed=True)
                return Outcome(tag, failure="error", message=f"the result could not be read here: "
                                                             f"{describe_exception(error)}")
            timing.task_ended(seconds, failed=not ok)
            if ok:
                return Outcome(tag, value=value)
            return Outcome(tag, failure="error", message=value, seconds=seconds)
        timing.task_ended(math.nan, failed=True)
        if future.status == "cancelled":
            return Outcome(tag, failure="error", message="the task was cancelled on the cluster")
        raised = future.exception()
        if isinstance(raised, _distributed().KilledWorker):
            return Outcome(tag, failure="crash", message=f"the Dask worker running it died; not retried ({raised})")
        return Outcome(tag, failure="error", message=f"on the cluster: {describe_exception(raised)}")

    # -- placement ---------------------------------------------------------------------------------

    def _placement(self, pool: str) -> dict[str, float] | None:
        """The resource restrictions of `pool`'s tasks: its declared resources where a worker offers them."""
        wanted = self.resources.get(pool)
        if not wanted:
            return None
        now = time.monotonic()
        if pool not in self._restrictions or now - self._offered_at > RESOURCE_REFRESH_SECONDS:
            if now - self._offered_at > RESOURCE_REFRESH_SECONDS:
                workers = self.client.scheduler_info(n_workers=-1)["workers"].values()
                self._offered = [dict(w.get("resources") or {}) for w in workers]
                self._offered_at = now
            able = any(all(offer.get(name, 0) >= amount for name, amount in wanted.items())
                       for offer in self._offered)
            if not able and self._restrictions.get(pool, {}) is not None:
                self.notes.append(f"{pool}: no worker offers {dict(wanted)}; its tasks run on any worker")
            self._restrictions[pool] = dict(wanted) if able else None
        return self._restrictions[pool]
