"""Per-case cost of the harness itself, beyond the backend's and the reference's own compute.

Backend `reference` on the default grid (240 cases x float64, float32 = 480 items), one job, so the
costs add up instead of overlapping:

- end to end: (sweep of every item - sweep of one item) / (items - 1), both through the real
  runner (`run_sweep` + `LocalProcessExecutor`), so worker start-up and probing cancel out;
- own compute: the backend's run time (the `seconds` column the workers measure) and the reference
  computation (timed in this process on the same inputs);
- harness = end to end - own compute; then its parts, timed in this process: input generation (in the
  backend's worker and again in the reference's), comparison, row writing, pickling of what crosses
  processes (task, outputs, evaluation, rows) and the round trip of a no-op task between processes.

    python benchmarks/harness_overhead.py          # ~30 s on 2 cores; target: harness < 5 ms per case
"""

from __future__ import annotations

import pickle
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from convparity.harness.cases.builtin_grids import default
from convparity.harness.cases.inputs import make_inputs
from convparity.harness.cases.selection import expand
from convparity.harness.evaluation.verdict import compare_rows, reference
from convparity.harness.results import ResultsWriter
from convparity.harness.running.local_executor import LocalProcessExecutor
from convparity.harness.running.runner import plan, run_sweep
from convparity.harness.running.tasks import BackendResult, EvaluateCase, Probe, RunCase, run_case
from convparity.harness.settings import RunSettings
from convparity.plugins.reference_backend import ReferenceBackend

SETTINGS = RunSettings(backends=("reference",), dtypes=("float64", "float32"), jobs=1)
REPEATS = 3


@dataclass(frozen=True)
class Nothing:
    """A task that does nothing: what remains of its time is the round trip between processes."""

    pool: str = "noop"

    def __call__(self) -> None:
        return None


def sweep_seconds(cases) -> tuple[float, list]:
    """Wall time of a one-job sweep of `cases` on the reference backend, and its rows."""
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        writer = ResultsWriter(Path(folder))

        def write(batch):
            writer.write(batch)
            rows.extend(batch)

        start = time.perf_counter()
        with LocalProcessExecutor(jobs=1) as executor:
            run_sweep(plan(cases, SETTINGS.backends), SETTINGS, executor, write)
        seconds = time.perf_counter() - start
        writer.close()
    return seconds, rows


def round_trip_seconds(count: int = 2000) -> float:
    with LocalProcessExecutor(jobs=1) as executor:
        executor.submit(Nothing(), 0)
        executor.next_outcome()  # the worker has started
        start = time.perf_counter()
        for tag in range(count):
            executor.submit(Nothing(), tag)
            executor.next_outcome()
        return (time.perf_counter() - start) / count


def parts_seconds(cases) -> dict[str, float]:
    """Mean seconds per item of each part, timed in this process."""
    backend = ReferenceBackend()
    totals = dict.fromkeys(["inputs (x2)", "reference", "backend run", "compare", "write rows", "pickling"], 0.0)
    with tempfile.TemporaryDirectory() as folder:
        writer = ResultsWriter(Path(folder))
        for case in cases:
            spec = case.spec
            start = time.perf_counter()
            inputs = make_inputs(spec, 0)
            totals["inputs (x2)"] += 2 * (time.perf_counter() - start)
            start = time.perf_counter()
            ref = reference(spec, inputs)
            totals["reference"] += time.perf_counter() - start
            ran = run_case(backend, spec, 0)
            totals["backend run"] += ran.seconds
            start = time.perf_counter()
            rows = compare_rows(spec, case.name, "reference", "v", 0, ran.outputs, ref, ran.seconds)
            totals["compare"] += time.perf_counter() - start
            start = time.perf_counter()
            writer.write(rows)
            totals["write rows"] += time.perf_counter() - start
            start = time.perf_counter()
            evaluation = EvaluateCase(spec, case.name, 0, 1.0, (BackendResult("reference", "v", ran),))
            for message in (RunCase("reference", spec, 0), (True, ran), evaluation, (True, rows)):
                pickle.loads(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
            totals["pickling"] += time.perf_counter() - start
        writer.close()
    return {name: total / len(cases) for name, total in totals.items()}


def main() -> None:
    cases = expand(default(), SETTINGS.dtypes)
    Probe("reference")()  # warm imports
    parts = min((parts_seconds(cases) for _ in range(REPEATS)), key=lambda p: sum(p.values()))
    one = min(sweep_seconds(cases[:1])[0] for _ in range(REPEATS))
    runs = [sweep_seconds(cases) for _ in range(REPEATS)]
    every, rows = min(runs, key=lambda run: run[0])
    per_item = (every - one) / (len(cases) - 1)
    backend = statistics.fmean({(r.case, r.dtype): r.seconds for r in rows}.values())
    own = backend + parts["reference"]
    trip = round_trip_seconds()

    print(f"{len(cases)} items (default grid x float64, float32), backend reference, -j 1, best of {REPEATS}")
    print(f"sweep of one item (start-up): {one:.2f} s; of every item: {every:.2f} s")
    print(f"end to end per item            {per_item * 1e3:7.3f} ms")
    print(f"  backend's own run (seconds)  {backend * 1e3:7.3f} ms")
    print(f"  reference computation        {parts['reference'] * 1e3:7.3f} ms")
    print(f"  harness                      {(per_item - own) * 1e3:7.3f} ms   (target < 5 ms)")
    print("parts of the harness, timed in one process:")
    for name in ("inputs (x2)", "compare", "write rows", "pickling"):
        print(f"  {name:28} {parts[name] * 1e3:7.3f} ms")
    print(f"  process round trip x2        {2 * trip * 1e3:7.3f} ms   (no-op task: {trip * 1e6:.0f} us)")


if __name__ == "__main__":
    main()
