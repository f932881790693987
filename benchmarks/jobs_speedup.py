"""How much faster a grid finishes with -j 2 than with -j 1 (target: 1.6x on 2 cores, default grid).

Times the whole sweep through the real runner, as `convparity run` does it (`run_sweep` +
`LocalProcessExecutor`, rows written to a results.csv), from before the first worker starts to after
the last one stops, so worker start-up and each backend's probe (its framework's import) are included.
-j 1 and -j 2 runs alternate (so a change in the machine's load hits both) and the medians of --repeat
runs each are compared. Also prints each backend's start-up (spawn + import + probe, once), the CPU
time of every process (to tell waiting from work: -j 1 must keep one core busy, not more), the
cores the running tasks are pinned to, and whether every run wrote the same rows (all but `seconds`).

    python benchmarks/jobs_speedup.py                  # reference, then reference + torch: ~1 minute
    python benchmarks/jobs_speedup.py -b reference -b torch -b torch-channels_last -b tensorflow \\
        -b jax -b onnxruntime -b keras --dtype float32 --repeat 2    # every framework: ~15 minutes
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

from convparity.harness.backends.manager import get_manager
from convparity.harness.cases.selection import expand
from convparity.harness.results import RESULTS_FILE, ResultsWriter
from convparity.harness.running.local_executor import LocalProcessExecutor
from convparity.harness.running.placement import slot_cores, thread_variables
from convparity.harness.running.runner import plan, run_sweep
from convparity.harness.running.tasks import Probe
from convparity.harness.settings import RunSettings

JOBS = (1, 2)


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def sweep(cases, backends: tuple[str, ...], dtypes: tuple[str, ...], jobs: int) -> tuple[float, float, list]:
    """(wall, CPU) seconds of one sweep of `cases` in `dtypes` on `backends`, and its rows sorted,
    each without its `seconds`."""
    settings = RunSettings(backends=backends, dtypes=dtypes, jobs=jobs)
    items = plan(expand(cases, dtypes), backends)
    with tempfile.TemporaryDirectory() as folder:
        writer = ResultsWriter(Path(folder))
        cpu, start = cpu_seconds(), time.perf_counter()
        with LocalProcessExecutor(jobs) as executor:
            run_sweep(items, settings, executor, writer.write)
        wall = time.perf_counter() - start
        writer.close()
        with open(Path(folder) / RESULTS_FILE, newline="") as file:
            rows = sorted(tuple(v for k, v in row.items() if k != "seconds") for row in csv.DictReader(file))
    return wall, cpu_seconds() - cpu, rows


def startup(backend: str) -> float:
    """Seconds from starting a worker to its probe's answer (the framework imported)."""
    start = time.perf_counter()
    with LocalProcessExecutor(jobs=1) as executor:
        executor.submit(Probe(backend), backend)
        executor.next_outcome()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-b", "--backend", action="append", help="one group of these backends (repeatable); "
                        "default: reference, then reference + torch when torch is installed")
    parser.add_argument("--dtype", action="append", help="repeatable; default float64 and float32")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each -j (medians are compared)")
    parser.add_argument("--grid", default="default", help="a named grid")
    args = parser.parse_args()
    cases = get_manager().grids()[args.grid].cases()
    dtypes = tuple(args.dtype or ("float64", "float32"))
    if args.backend:
        groups = [tuple(args.backend)]
    else:
        groups = [("reference",)]
        if importlib.util.find_spec("torch") and importlib.util.find_spec("convparity.plugins.torch_backend"):
            groups.append(("reference", "torch"))
    print(f"cores {sorted(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.2f}; running tasks "
          f"pinned to " + ", ".join(f"-j {j}: {slot_cores(j, thread_variables()) or 'none'}" for j in JOBS))
    for backend in dict.fromkeys(b for group in groups for b in group):
        print(f"start-up of a {backend} worker: {startup(backend):.2f} s")
    print(f"grid {args.grid}, {len(cases) * len(dtypes)} items ({', '.join(dtypes)}), medians of {args.repeat} "
          f"(CPU: all processes)")
    for backends in groups:
        runs: dict[int, list[tuple[float, float]]] = {jobs: [] for jobs in JOBS}
        rows = []
        for _ in range(args.repeat):
            for jobs in JOBS:
                wall, cpu, written = sweep(cases, backends, dtypes, jobs)
                runs[jobs].append((wall, cpu))
                rows.append(written)
        (wall1, cpu1), (wall2, cpu2) = ((statistics.median(w for w, _ in runs[jobs]),
                                         statistics.median(c for _, c in runs[jobs])) for jobs in JOBS)
        walls = "; ".join(f"-j {jobs}: " + ", ".join(f"{w:.1f}" for w, _ in runs[jobs]) for jobs in JOBS)
        same = "the same" if all(r == rows[0] for r in rows) else "DIFFERENT"
        print(f"{' + '.join(backends)}\n  -j 1 {wall1:6.2f} s (CPU {cpu1:6.2f} s)   -j 2 {wall2:6.2f} s "
              f"(CPU {cpu2:6.2f} s)   speed-up {wall1 / wall2:.2f}x   (walls {walls}; load average "
              f"{os.getloadavg()[0]:.2f})\n  {len(rows[0])} rows, {same} in every run")


if __name__ == "__main__":
    main()
