"""How long the reports of a large run take: write_reports (summary.csv, summary.md, report.html) and compare.

Builds a synthetic run folder of --rows rows (several backends, dtypes and spec shapes; mostly pass, some
fail, unsupported, error and one unavailable backend), then times
`convparity.harness.reporting.summaries.write_reports` and
`convparity compare` on it against a perturbed copy. Best of --repeat runs, in seconds.

    python benchmarks/report_speed.py --rows 20000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from convparity.harness.reporting.compare_runs import compare_runs, render_html, write_csv
from convparity.harness.reporting.summaries import write_reports
from convparity.harness.results import COLUMNS
from convparity.harness.vocabulary import TENSORS

BACKENDS = {"torch": "2.13.0", "tensorflow": "2.21.0", "jax": "0.10.2", "onnxruntime": "1.32.0", "absent": ""}
DTYPES = ("float64", "float32", "float16", "bfloat16")


def synthetic_rows(rows: int, seed: int) -> pd.DataFrame:
    """`rows` results rows: cases x backends x dtypes x tensors with plausible statuses and ratios."""
    rng = np.random.default_rng(seed)
    per_case = len(BACKENDS) * len(DTYPES) * len(TENSORS)
    cases = -(-rows // per_case)
    kernel = rng.integers(1, 8, size=cases)
    stride = rng.integers(1, 4, size=cases)
    channels = rng.integers(1, 257, size=cases)
    descriptors = np.array([f"g1mb2ic{c}ih32oc{c}kh{k}sh{s}n\"case{i}\"" for i, (c, k, s)
                            in enumerate(zip(channels, kernel, stride, strict=True))])
    grid = pd.MultiIndex.from_product([range(cases), list(BACKENDS), DTYPES, TENSORS],
                                      names=["index", "backend", "dtype", "tensor"]).to_frame(index=False)
    grid = grid.iloc[:rows]
    index = grid["index"].to_numpy()
    n = len(grid)
    status = rng.choice(["pass", "fail", "unsupported", "error"], size=n, p=[0.86, 0.05, 0.08, 0.01])
    status[grid["backend"].to_numpy() == "absent"] = "unavailable"
    compared = np.isin(status, ["pass", "fail"])
    ratio = np.where(status == "fail", rng.uniform(1.01, 50, n), rng.lognormal(-3, 1.5, n).clip(0, 1))
    reduction = channels[index] * kernel[index] ** 2 * rng.integers(1, 64, size=n)
    frame = pd.DataFrame({
        "case": descriptors[index], "name": [f"case{i}" for i in index], "bias": True, "dtype": grid["dtype"],
        "backend": grid["backend"], "backend_version": grid["backend"].map(BACKENDS),
        "tensor": grid["tensor"],
        "status": status, "err_ratio": np.where(compared, ratio, np.nan),
        "message": np.where(status == "pass", "", "synthetic " + status),
        "reduction": np.where(compared, reduction, 0),
        "rank": 2, "batch": 2, "in_channels": channels[index], "out_channels": channels[index], "groups": 1,
        "input_size": "32x32", "kernel_size": [f"{k}x{k}" for k in kernel[index]],
        "stride": [f"{s}x{s}" for s in stride[index]], "padding": "0:0x0:0", "dilation": "1x1",
        "output_size": "30x30",
    })
    frame["repro"] = ("convparity explain " + frame["case"] + " -b " + frame["backend"] + " --dtype "
                      + frame["dtype"])
    return frame.reindex(columns=list(COLUMNS))


def write_synthetic_run(directory: Path, rows: pd.DataFrame, versions: dict[str, str]) -> Path:
    directory.mkdir(parents=True)
    written = rows.assign(bias=rows["bias"].map({True: "on", False: "off"}), perf_repeats=0,
                          allclose=rows["allclose"].map({True: "true", False: "false"}).fillna(""))
    written.to_csv(directory / "results.csv", index=False)
    settings = {"seed": 0, "grids": ["synthetic"], "dtypes": list(DTYPES), "backends": list(versions)}
    metadata = {"harness_version": "bench", "status": "finished", "settings": settings,
                "backend_versions": versions, "platform": {}, "started": "", "seconds": 0.0}
    (directory / "run.json").write_text(json.dumps(metadata))
    return directory


def best_of(repeat: int, action) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old_rows = synthetic_rows(args.rows, seed=1)
        old = write_synthetic_run(Path(tmp) / "old", old_rows, BACKENDS)
        new_rows = old_rows.copy()
        new_rows["err_ratio"] *= np.random.default_rng(2).uniform(0.5, 3.0, len(new_rows))
        new_rows["status"] = np.where(new_rows["err_ratio"] > 1, "fail", new_rows["status"])
        new = write_synthetic_run(Path(tmp) / "new", new_rows, {**BACKENDS, "torch": "2.14.0"})
        reports = best_of(args.repeat, lambda: write_reports(old))
        html_size = (old / "report.html").stat().st_size

        def compare() -> None:
            comparison = compare_runs(old, new)
            write_csv(comparison, Path(tmp) / "compare.csv")
            render_html(comparison)

        compared = best_of(args.repeat, compare)
    print(f"rows {len(old_rows)}: write_reports {reports:.2f} s (report.html {html_size / 1e6:.1f} MB), "
          f"compare + CSV + HTML {compared:.2f} s (best of {args.repeat})")


if __name__ == "__main__":
    main()
