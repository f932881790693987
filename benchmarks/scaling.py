"""Scaling out: the local executor against a Dask LocalCluster, cold against warm compile caches, and
the cost of one task on each executor.

    python benchmarks/scaling.py overhead            # no-op tasks and a reference-only sweep: ~2 minutes
    python benchmarks/scaling.py sweeps --repeat 3   # default grid, every CPU backend, float32: ~20 minutes

`overhead`: (1) no-op tasks, one at a time (latency of a round trip) and 2000 at once on 2 slots
(throughput), through LocalProcessExecutor -j 2 and DaskExecutor on a LocalCluster of 2 workers;
(2) the default grid on the reference backend alone (float64, float32: 448 items of ~1 ms compute),
local -j 2 against Dask 2 workers: (wall - start-up) / items is the per-item cost of each executor.

`sweeps`: the default grid on every CPU backend in float32 (`convparity run -b reference -b torch
-b torch-channels_last -b tensorflow -b jax -b onnxruntime -b keras -g default --dtype float32 -j 2`),
each repeat running, in order: local with a fresh compile cache (first run: compiles, fills it), local
again (warm rerun), Dask with another fresh cache (first run), Dask again (warm rerun). Prints the wall
time of each (Dask's includes starting its LocalCluster, given apart), the medians side by side, the
per-backend time from run.json (in workers, backend run, jax's measured compile), and whether every
run wrote the same rows (all but `seconds`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from convparity import sweep
from convparity.harness.results import KEY, read_results
from convparity.harness.running import run_folder
from convparity.harness.running.dask_executor import DaskExecutor, connect, local_cluster
from convparity.harness.running.launch import ExecutorChoice
from convparity.harness.running.local_executor import LocalProcessExecutor

CPU_BACKENDS = ["reference", "torch", "torch-channels_last", "tensorflow", "jax", "onnxruntime", "keras"]


@dataclass(frozen=True)
class Nothing:
    """A task that does nothing: its time is the executor's own."""

    pool: str = "noop"

    def __call__(self) -> None:
        return None


def executors():
    """(name, a fresh executor of 2 slots, seconds it took to start)."""
    start = time.perf_counter()
    yield "local -j 2", LocalProcessExecutor(2), time.perf_counter() - start
    start = time.perf_counter()
    cluster = local_cluster(2)
    yield "Dask LocalCluster 2 workers", DaskExecutor(connect(cluster), cluster=cluster), time.perf_counter() - start


def no_op_costs(executor, serial: int = 300, batch: int = 2000) -> tuple[float, float]:
    """(seconds per task one at a time, seconds per task with `batch` submitted at once) after warming up."""
    for tag in range(4):
        executor.submit(Nothing(), tag)
    for _ in range(4):
        executor.next_outcome()
    start = time.perf_counter()
    for tag in range(serial):
        executor.submit(Nothing(), tag)
        executor.next_outcome()
    one = (time.perf_counter() - start) / serial
    start = time.perf_counter()
    for tag in range(batch):
        executor.submit(Nothing(), tag)
    for _ in range(batch):
        executor.next_outcome()
    return one, (time.perf_counter() - start) / batch


def rows(path: Path) -> list:
    frame = read_results(path).drop(columns="seconds").sort_values(list(KEY)).reset_index(drop=True)
    return frame.astype(str).values.tolist()


def timed_sweep(out: Path, executor: ExecutorChoice, cache: str, **options) -> float:
    start = time.perf_counter()
    sweep(out=out, executor=executor, compile_cache=cache, **options)
    return time.perf_counter() - start


def overhead() -> None:
    print("no-op tasks (2 slots):")
    print("| executor | start | one at a time, per task | 2000 at once, per task |")
    print("|---|---:|---:|---:|")
    for name, executor, started in executors():
        with executor:
            one, many = no_op_costs(executor)
        print(f"| {name} | {started:.2f} s | {one * 1e3:.2f} ms | {many * 1e3:.2f} ms |")
    options = dict(backends=["reference"], grids=["default"], dtypes=["float64", "float32"], jobs=2)
    items = 224 * 2
    print(f"\nreference backend, default grid, float64 + float32 ({items} items, 2 tasks each), medians of 3:")
    walls: dict[str, list[float]] = {"local": [], "dask": []}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(3):
            for kind in walls:
                out = Path(folder) / f"{kind}{repeat}"
                walls[kind].append(timed_sweep(out, ExecutorChoice(kind), "off", **options))
                record = run_folder.read_record(out)
                start_up = sum(t["startup_seconds"] for t in record.timing.values()) / 2
        print("| executor | wall | per item |")
        print("|---|---:|---:|")
        for kind, values in walls.items():
            wall = statistics.median(values)
            print(f"| {kind} | {wall:.2f} s ({', '.join(f'{v:.1f}' for v in values)}) | {wall / items * 1e3:.2f} ms |")
        print(f"(worker start-up in the last run, per slot: {start_up:.2f} s)")


def sweeps(repeat: int) -> None:
    for name in ("JAX_COMPILATION_CACHE_DIR", "TF_XLA_FLAGS"):
        os.environ.pop(name, None)
    options = dict(backends=CPU_BACKENDS, grids=["default"], dtypes=["float32"], jobs=2)
    runs: dict[str, list[float]] = {}
    details: dict[str, list[dict]] = {}
    written = []
    with tempfile.TemporaryDirectory() as folder:
        for number in range(repeat):
            for kind in ("local", "dask"):
                cache = Path(folder) / f"cache-{kind}-{number}"
                for phase in ("first run", "warm rerun"):
                    label = f"{kind}, {phase}"
                    out = Path(folder) / f"{kind}-{phase.split()[0]}-{number}"
                    wall = timed_sweep(out, ExecutorChoice(kind), str(cache), **options)
                    record = run_folder.read_record(out)
                    runs.setdefault(label, []).append(wall)
                    details.setdefault(label, []).append(record.timing)
                    written.append(rows(out))
                    print(f"repeat {number + 1} {label}: {wall:.1f} s (load average {os.getloadavg()[0]:.1f})",
                          file=sys.stderr, flush=True)
    print(f"default grid, {', '.join(CPU_BACKENDS)}, float32, 2 slots; medians of {repeat}")
    print("| run | wall (runs) | first run / this |")
    print("|---|---:|---:|")
    for label, walls in runs.items():
        kind = label.split(",")[0]
        base = statistics.median(runs[f"{kind}, first run"])
        print(f"| {label} | {statistics.median(walls):.1f} s ({', '.join(f'{w:.1f}' for w in walls)}) | "
              f"{base / statistics.median(walls):.2f}x |")
    print("\nper backend, seconds summed over tasks (median over repeats): in workers / backend run / jax compile")
    pools = sorted({pool for timings in details.values() for timing in timings for pool in timing})
    print("| pool | " + " | ".join(details) + " |")
    print("|---|" + "---:|" * len(details))
    for pool in pools:
        cells = []
        for timings in details.values():
            seconds = statistics.median(t.get(pool, {}).get("seconds", 0.0) for t in timings)
            ran = statistics.median(t.get(pool, {}).get("run_seconds", 0.0) for t in timings)
            compiled = statistics.median(t.get(pool, {}).get("compile_seconds", 0.0) for t in timings)
            cells.append(f"{seconds:.1f} / {ran:.1f}" + (f" / {compiled:.1f}" if pool == "backend:jax" else ""))
        print(f"| {pool} | " + " | ".join(cells) + " |")
    same = all(r == written[0] for r in written)
    print(f"\n{len(written[0])} rows; every run wrote {'the same rows' if same else 'DIFFERENT rows'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("overhead", "sweeps"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"cores {sorted(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.2f}")
    overhead() if args.what == "overhead" else sweeps(args.repeat)


if __name__ == "__main__":
    main()
