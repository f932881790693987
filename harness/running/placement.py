"""What a worker process is given before it starts: its environment, and the core its threads run on.

Environment (`WorkerSetup.environment`), from three sources, a variable the user has set winning over ours:
- `THREAD_VARIABLES`: one thread per worker for the libraries every framework links (OpenMP, OpenBLAS,
  MKL), so -j N keeps N cores busy, no worker's threads fight another's, and a backend's numbers do not
  depend on -j. It also tames NumPy's OpenBLAS: its threads spin ~0.1 s after each GEMM, stealing a core
  from what runs next (benchmarks/blas_spin.py measures it);
- the backend's `thread_environment(threads)`: what its framework reads instead (its own pool sizes);
- the backend's `cache_environment(folder, current)`: where its framework keeps compiled programs for the
  run's compile-cache setting, resolved on the machine the worker starts on (compile_cache.machine_folder).
A setup is picklable: a Dask client sends it to the worker machine, which resolves it there.

Cores (`slot_cores`, `pin_process`): some pools ignore the thread variables and size themselves by the
cores a process may use (XLA's compiler threads, TensorFlow's inter-op pool), so while workers keep one
thread each, each running task is also pinned to a core of its own: -j 1 would otherwise keep ~1.4 cores
busy and -j N could not be N times faster.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from convparity.harness.backends.contract import environment_of
from convparity.harness.backends.manager import PluginSelection
from convparity.harness.running import compile_cache

THREAD_VARIABLES = {
    "OMP_NUM_THREADS": "1",  # OpenMP: most frameworks' intra-op pools, oneDNN
    "OPENBLAS_NUM_THREADS": "1",  # NumPy's BLAS: the reference, NumPy-based backends
    "MKL_NUM_THREADS": "1",
}


def thread_variables(current: Mapping[str, str] | None = None) -> dict[str, str]:
    """THREAD_VARIABLES with the values `current` (default: this process's environment) has for them."""
    current = os.environ if current is None else current
    return {name: current.get(name, value) for name, value in THREAD_VARIABLES.items()}


@dataclass(frozen=True)
class WorkerSetup:
    """The environment of a pool's workers, resolved where they start.

    backend: the backend whose tasks the pool runs (None: the reference's pool, thread variables only);
    plugins: the plugin selection that finds it; compile_cache: the run's setting; threads: per worker;
    fixed: variables decided where the run started (the thread variables as the user set them there).
    """

    backend: str | None
    plugins: PluginSelection
    compile_cache: str = compile_cache.DEFAULT
    threads: int = 1
    fixed: tuple[tuple[str, str], ...] = ()

    @classmethod
    def here(cls, backend: str | None, plugins: PluginSelection, compile_cache_setting: str) -> WorkerSetup:
        """A setup whose thread variables are this process's (a user's own thread count wins everywhere)."""
        return cls(backend, plugins, compile_cache_setting, fixed=tuple(sorted(thread_variables().items())))

    def environment(self, current: Mapping[str, str]) -> dict[str, str]:
        """The whole environment of a worker started from `current` (the starting process's environment)."""
        found = {**current, **dict(self.fixed)}
        for name, value in THREAD_VARIABLES.items():
            found.setdefault(name, value)
        if self.backend is None:
            return found
        backend = self.plugins.manager().backends().get(self.backend)
        if backend is None:  # the worker itself reports the unknown backend
            return found
        for name, value in environment_of(backend, "thread_environment", self.threads).items():
            found.setdefault(name, value)
        folder = compile_cache.machine_folder(self.compile_cache, found)
        found.update(environment_of(backend, "cache_environment", folder, dict(found)))
        return found


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
