"""Do `--perf` timings repeat? The same sweep with --perf, run twice; each timed case x backend's median compared.

    python benchmarks/perf_repeatability.py -b torch -b onnxruntime -b jax -g default --dtype float32 -j 1

Runs the sweep --runs times (each into a fresh folder under a temporary directory, reports included), then,
for every (case, bias, dtype, backend) timed in the first run and each later one, the ratio of the medians.
Prints, per backend and over all: how many were timed, how many ran 100 µs or more, and the share of
those whose later median is within ±10% of the first (the figure the issue asks for: 90% on an idle
machine); the load average before and after each run (this figure means little on a loaded machine: say
so beside it); and that no row other than `pass` carries a time.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from convparity import sweep
from convparity.harness.results import read_results

KEY = ["case", "bias", "dtype", "backend"]
FLOOR = 100e-6
WITHIN = 0.10


def timed(path: Path) -> tuple[pd.DataFrame, int]:
    """The timed (case, bias, dtype, backend) medians of a run, and how many non-pass rows carry a time."""
    rows = read_results(path)
    wrong = int(((rows["perf_repeats"] > 0) & (rows["status"] != "pass")).sum())
    medians = rows[rows["perf_repeats"] > 0].groupby(KEY, observed=True)["perf_median_s"].first()
    return medians.rename("median").reset_index(), wrong


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-b", "--backend", action="append", required=True)
    parser.add_argument("-g", "--grid", action="append", default=None)
    parser.add_argument("--dtype", action="append", default=None)
    parser.add_argument("-j", "--jobs", type=int, default=1)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="perf-repeat-") as folder:
        for index in range(args.runs):
            before = os.getloadavg()[0]
            start = time.perf_counter()
            run = sweep(backends=args.backend, grids=args.grid or ["default"], dtypes=args.dtype or ["float32"],
                        jobs=args.jobs, perf=True, out=Path(folder) / f"run-{index}")
            medians, wrong = timed(run.path)
            print(f"run {index + 1}: {time.perf_counter() - start:.0f} s, load average {before:.1f} -> "
                  f"{os.getloadavg()[0]:.1f}, {len(medians)} case x backend timed, {wrong} non-pass rows with a time")
            results.append(medians)
    first = results[0]
    for index, later in enumerate(results[1:], start=2):
        joined = first.merge(later, on=KEY, suffixes=("_first", "_later"))
        joined["ratio"] = joined["median_later"] / joined["median_first"]
        joined["slow_enough"] = (joined[["median_first", "median_later"]].min(axis=1) >= FLOOR)
        joined["within"] = (joined["ratio"] - 1).abs() <= WITHIN
        print(f"\nrun 1 vs run {index}: medians within ±{WITHIN:.0%} among cases of {FLOOR * 1e6:.0f} µs or more")
        for backend, part in [*joined.groupby("backend"), ("all", joined)]:
            counted = part[part["slow_enough"]]
            share = counted["within"].mean() if len(counted) else float("nan")
            print(f"  {backend:14} timed {len(part):4}  >= 100 µs {len(counted):4}  within ±10%: {share:6.1%}  "
                  f"median |ratio - 1| {(counted['ratio'] - 1).abs().median():.1%}")


if __name__ == "__main__":
    main()
