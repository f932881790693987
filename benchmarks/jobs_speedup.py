"""How much faster a grid finishes with -j 2 than with -j 1 (target: 1.6x on 2 cores, default grid).

Times the whole sweep through the real runner (`run_sweep` + `LocalProcessExecutor`, rows written
to a results.csv), from before the first worker starts to after the last one stops, so worker
start-up and each backend's probe (its framework's import) are included. Default grid, float64 and
float32 (480 items); backends `reference`, then `reference` + `torch` when torch is installed.
Best of --repeat runs each. Also prints each backend's start-up: spawn + import + probe, which no
-j shortens, and the CPU time of every process, to tell waiting from work.

    python benchmarks/jobs_speedup.py                                  # ~1 minute on 2 cores
    python benchmarks/jobs_speedup.py --grid mobilenet_v2 --repeat 1   # larger cases
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import tempfile
import time
from pathlib import Path

from harness.executor import LocalProcessExecutor
from harness.plugin_manager import get_manager
from harness.results import ResultsWriter
from harness.runner import RunSettings, expand, plan, run_sweep
from harness.tasks import Probe

DTYPES = ("float64", "float32")


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def sweep(cases, backends: tuple[str, ...], jobs: int) -> tuple[float, float]:
    """(wall, CPU) seconds of one sweep of `cases` (each in DTYPES)."""
    settings = RunSettings(backends=backends, dtypes=DTYPES, jobs=jobs)
    items = plan(expand(cases, DTYPES), backends)
    with tempfile.TemporaryDirectory() as folder:
        writer = ResultsWriter(Path(folder))
        cpu, start = cpu_seconds(), time.perf_counter()
        with LocalProcessExecutor(jobs) as executor:
            run_sweep(items, settings, executor, writer.write)
        wall = time.perf_counter() - start
        writer.close()
    return wall, cpu_seconds() - cpu


def startup(backend: str) -> float:
    """Seconds from starting a worker to its probe's answer (the framework imported)."""
    start = time.perf_counter()
    with LocalProcessExecutor(jobs=1) as executor:
        executor.submit(Probe(backend), backend)
        executor.next_outcome()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--grid", default="default", help="a named grid")
    args = parser.parse_args()
    cases = get_manager().grids()[args.grid].cases()
    groups = [("reference",)]
    if importlib.util.find_spec("torch") and importlib.util.find_spec("plugins.torch_backend"):
        groups.append(("reference", "torch"))
    for backend in dict.fromkeys(b for group in groups for b in group):
        print(f"start-up of a {backend} worker: {min(startup(backend) for _ in range(args.repeat)):.2f} s")
    print(f"grid {args.grid}, {len(cases) * len(DTYPES)} items, best of {args.repeat} (CPU: all processes)")
    for backends in groups:
        best = {jobs: min((sweep(cases, backends, jobs) for _ in range(args.repeat)), key=lambda r: r[0])
                for jobs in (1, 2)}
        (wall1, cpu1), (wall2, cpu2) = best[1], best[2]
        print(f"{' + '.join(backends):20} -j 1 {wall1:6.2f} s (CPU {cpu1:5.2f} s)   -j 2 {wall2:6.2f} s "
              f"(CPU {cpu2:5.2f} s)   speed-up {wall1 / wall2:.2f}x")


if __name__ == "__main__":
    main()
