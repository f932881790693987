"""Run folders built from hand-written rows, so report tests never depend on the runner.

A table is text, one row a line: `case bias dtype backend tensor status err_ratio [message...]`, with
bias T/F and err_ratio `-` when the row has none. The spec columns are fixed per case in SPECS.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from convparity.harness.results import ResultsWriter, Row

# case -> (kernel_size, stride, {tensor: reduction length K}).
SPECS = {
    "c1": ("3x3", "1x1", {"y": 37, "dx": 72, "dw": 128, "db": 128}),
    "c2": ("1x1", "2x2", {"y": 4, "dx": 8, "dw": 32, "db": 32}),
    "c3": ("5x3", "1x2", {"y": 61, "dx": 120, "dw": 18, "db": 18}),
    "c4": ("3", "1", {"y": 13, "dx": 24, "dw": 1000, "db": 1000}),
    "c5": ("3x3", "2x2", {"y": 37, "dx": 72, "dw": 32, "db": 32}),
}


Timing = tuple[float, float]  # median seconds, spread


def parse_rows(table: str, versions: dict[str, str], timings: dict[tuple[str, str], Timing] | None = None) -> list[Row]:
    """Rows from the compact text table; `timings` {(case, backend): (median, spread)} go on pass rows."""
    rows = []
    for line in table.strip().splitlines():
        case, bias, dtype, backend, tensor, status, ratio, *message = line.split()
        kernel, stride, reductions = SPECS[case]
        compared = status in ("pass", "fail", "xfail", "xpass")
        repro = f"convparity explain {case} -b {backend} --dtype {dtype} --bias {'on' if bias == 'T' else 'off'}"
        deviation = "declared reason (https://example.org/issue/1)" if status in ("xfail", "xpass") else ""
        rows.append(Row(
            case=case, name=f"name-{case}", bias=bias == "T", dtype=dtype, backend=backend,
            backend_version=versions.get(backend, ""), tensor=tensor, status=status,
            err_ratio=math.nan if ratio == "-" else float(ratio), message=" ".join(message),
            reduction=reductions[tensor] if compared else 0, rank=kernel.count("x") + 1, batch=2,
            in_channels=4, out_channels=8, groups=1, input_size="8x8", kernel_size=kernel, stride=stride,
            padding="1:1x1:1", dilation="1x1", output_size="8x8", repro=repro, deviation=deviation,
            allclose=(status == "pass") if compared else None, accumulation="float32" if compared else "",
        ))
        timing = (timings or {}).get((case, backend))
        if timing and status == "pass":
            row = rows[-1]
            row.perf_repeats, row.perf_median_s, row.perf_min_s, row.perf_spread = 9, timing[0], timing[0], timing[1]
            row.gflops = 1e-3 / timing[0]
    return rows


def write_run(directory: Path, table: str, versions: dict[str, str], *, seed: int = 7,
              grids: tuple[str, ...] = ("smoke",), seconds: float = 12.5, tolerance_factor: float = 1.0,
              unavailable: dict[str, str] | None = None,
              timings: dict[tuple[str, str], Timing] | None = None) -> Path:
    """A run folder with results.csv from `table` (written as a sweep writes it) and a run.json like
    `convparity run` writes."""
    directory.mkdir(parents=True)
    rows = parse_rows(table, versions, timings)
    writer = ResultsWriter(directory)
    writer.write(rows)
    writer.close()
    metadata = {
        "harness_version": "9.8.7",
        "status": "finished",
        "settings": {"backends": sorted(versions), "dtypes": ["float32", "float16"], "grids": list(grids),
                     "seed": seed, "timeout": 300.0, "jobs": 1, "tolerance_factor": tolerance_factor},
        "backend_versions": versions,
        "unavailable": unavailable or {},
        "platform": {"python": "3.11.7", "system": "Linux-test", "machine": "x86_64", "processor": ""},
        "started": "2026-01-02T03:04:05+00:00",
        "cases": len({r.case for r in rows}),
        "finished": "2026-01-02T03:04:17+00:00",
        "seconds": seconds,
    }
    (directory / "run.json").write_text(json.dumps(metadata, indent=2))
    return directory
