"""Where a run's time went, per backend: from run.json's `timing` (convparity.harness.running.executor.PoolTiming).

One row per pool of workers: each backend, and the evaluations (the float64 reference and the
comparisons, pool "reference"). Columns, in seconds summed over the run's tasks:
- in workers: from a worker taking a task to its answer;
- backend run: the backend's own `run` (the rows' `seconds`), of which compile where the framework
  reports it (JAX; "n/a" elsewhere);
- harness: in workers minus backend run: drawing inputs, validating outputs, pickling in the worker
  (for the evaluations, all of it: the reference and comparisons are the harness's own work);
- start-up: spawning workers and importing frameworks, summed over the workers started.
Time between tasks (scheduling, transfers, waiting for a free worker) is in no row: the run's
duration times its slots, minus every row's `in workers` and `start-up`, bounds it.
"""

from __future__ import annotations

import pandas as pd

from convparity.harness.running.run_record import RunRecord

BACKEND_POOL_PREFIX = "backend:"
COLUMNS = ("pool", "tasks", "failures", "in workers (s)", "backend run (s)", "of which compile (s)", "harness (s)",
           "start-up (s)", "workers")


def timing_table(record: RunRecord) -> pd.DataFrame:
    """run.json's timing as the table described in the module (empty when the run recorded none)."""
    rows = []
    for pool, timing in sorted(record.timing.items()):
        is_backend = pool.startswith(BACKEND_POOL_PREFIX)
        seconds, ran = float(timing.get("seconds", 0.0)), float(timing.get("run_seconds", 0.0))
        rows.append({
            "pool": pool.removeprefix(BACKEND_POOL_PREFIX) if is_backend else f"{pool} (evaluations)",
            "tasks": int(timing.get("tasks", 0)),
            "failures": int(timing.get("failures", 0)),
            "in workers (s)": round(seconds, 2),
            "backend run (s)": round(ran, 2) if is_backend else "",
            "of which compile (s)": round(float(timing.get("compile_seconds", 0.0)), 2)
            if timing.get("compile_measured") else "n/a",
            "harness (s)": round(seconds - ran, 2),
            "start-up (s)": round(float(timing.get("startup_seconds", 0.0)), 2),
            "workers": int(timing.get("workers", 0)),
        })
    return pd.DataFrame(rows, columns=list(COLUMNS))


def idle_line(record: RunRecord) -> str:
    """The run's slot-seconds and how much of them the workers were busy (empty without timing)."""
    timing = record.timing
    slots = record.executor.get("slots") or record.executor.get("jobs") or record.settings.jobs
    duration = record.seconds
    if not timing or not slots or not duration:
        return ""
    busy = sum(float(t.get("seconds", 0.0)) + float(t.get("startup_seconds", 0.0)) for t in timing.values())
    capacity = float(duration) * int(slots)
    return (f"{float(duration):.1f} s x {slots} slots = {capacity:.1f} slot-seconds; workers busy {busy:.1f} "
            f"({100 * busy / capacity:.0f} %): the rest is scheduling, transfers and waiting")
