"""Which executor a sweep runs on, and opening it with everything its workers need set explicitly.

`ExecutorChoice` is what the user asked for: "local" (spawned processes on this machine, the default)
or "dask" with no scheduler (a LocalCluster of `jobs` workers started for the sweep) or with one (an
address tcp://HOST:PORT or a scheduler file: an existing cluster). `open_executor` builds it from the
run's settings:

- worker environment: each task carries its pool's WorkerSetup (harness.running.placement: the thread
  variables as this process has them, the backend's own variables, its compile cache), resolved where
  its workers start (this machine, or each Dask worker's machine);
- placement: each backend's declared `resources` (Dask only);
- `slots`: how many tasks run at once (the sweep's look-ahead window grows with it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convparity.harness.errors import ConvparityError
from convparity.harness.running import compile_cache
from convparity.harness.running.executor import Executor
from convparity.harness.running.local_executor import LocalProcessExecutor
from convparity.harness.running.placement import slot_cores, thread_variables
from convparity.harness.settings import RunSettings

EXECUTORS = ("local", "dask")


class ExecutorChoiceError(ConvparityError, ValueError):
    """An executor choice that cannot be used; the message names the option."""


@dataclass(frozen=True)
class ExecutorChoice:
    """kind: "local" or "dask"; scheduler: a Dask scheduler's address or scheduler file (None: start a
    LocalCluster of `jobs` workers); only with kind "dask"."""

    kind: str = "local"
    scheduler: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise ExecutorChoiceError(f"executor must be one of {', '.join(EXECUTORS)}, got {self.kind!r}")
        if self.scheduler is not None and self.kind != "dask":
            raise ExecutorChoiceError("--scheduler needs --executor dask")
        if self.scheduler is not None and not (isinstance(self.scheduler, str) and self.scheduler.strip()):
            raise ExecutorChoiceError(f"scheduler must be an address or a scheduler file, got {self.scheduler!r}")

    def describe(self) -> dict[str, Any]:
        """For run.json."""
        return {"kind": self.kind, "scheduler": self.scheduler}


@dataclass
class OpenedExecutor:
    """An open executor, how many tasks it runs at once, and what to record about it in run.json."""

    executor: Executor
    slots: int
    description: dict[str, Any]


def backend_resources(backends: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Per backend pool, the worker resources the backend declares (only those that declare some)."""
    from convparity.harness.backends.contract import optional_members
    from convparity.harness.backends.manager import get_manager
    from convparity.harness.running.tasks import backend_pool

    registered = get_manager().backends()
    found = {}
    for name in backends:
        if name in registered:
            resources = optional_members(registered[name]).resources
            if resources:
                found[backend_pool(name)] = dict(resources)
    return found


@contextmanager
def open_executor(choice: ExecutorChoice, settings: RunSettings, log: Path) -> Iterator[OpenedExecutor]:
    """The executor `choice` asks for, open for the duration; `log` is the run folder's worker log. The compile
    cache setting is checked first where the workers run on this machine (a remote cluster's are its own)."""
    if choice.kind == "local" or choice.scheduler is None:
        compile_cache.check(settings.compile_cache)
    if choice.kind == "local":
        with LocalProcessExecutor(settings.jobs, log=log, startup_timeout=settings.startup_timeout) as executor:
            yield OpenedExecutor(executor, settings.jobs, {**choice.describe(), "jobs": settings.jobs})
        return
    from convparity.harness.running import dask_executor

    if choice.scheduler is None:
        cluster = dask_executor.local_cluster(settings.jobs)
        client = dask_executor.connect(cluster)
        cores = tuple(slot_cores(settings.jobs, thread_variables()))
        worker_log: Path | None = log
    else:
        cluster, client, cores, worker_log = None, dask_executor.connect(choice.scheduler), (), None
    try:
        dask_executor.check_workers(client, str(choice.scheduler or "of the local cluster"), settings.startup_timeout)
        dask = dask_executor.DaskExecutor(
            client, log=worker_log, startup_timeout=settings.startup_timeout,
            resources=backend_resources(settings.backends), cores=cores, cluster=cluster)
    except BaseException:
        client.close()
        if cluster is not None:
            cluster.close()
        raise
    with dask:
        slots = dask.slots
        description = {**choice.describe(), "workers": len(client.scheduler_info(n_workers=-1)["workers"]),
                       "slots": slots}
        try:
            yield OpenedExecutor(dask, slots, description)
        finally:
            if dask.notes:
                description["notes"] = list(dask.notes)
