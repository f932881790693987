"""Speed beside correctness (`--perf`): the fastest correct backend per case and per run.

From the digest's timings (one line per timed case x dtype x bias x backend; only cases that passed on
that backend are ever timed, so every time here is a correct backend's):
- `per_case`: one row per case x dtype x bias, the median seconds of each backend, and the fastest
  correct backend: the fastest among those whose every row of the case passed (a forward-only backend,
  timed on y alone while its gradients read unsupported, is shown but never called fastest; a case no
  such backend passed has none);
- `per_backend`: per dtype and backend over the run's grids: cases timed, on how many it was the
  fastest, its median GFLOP/s, the geometric mean of its time over the fastest's on the same cases
  (1.0 = always the fastest), the median first call (the sweep's own call: compile included) and the
  compile seconds its framework reported.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CASE_KEYS = ["case", "name", "bias", "dtype"]


def eligible(timings: pd.DataFrame) -> pd.Series:
    """Whether each timing covers every row of its case and backend (all passed: nothing forward-only)."""
    return timings["tensors"] >= timings["rows"]


def per_case(timings: pd.DataFrame) -> pd.DataFrame:
    """Columns: case, name, bias, dtype, fastest, fastest_s, then one column of median seconds per backend."""
    if timings.empty:
        return pd.DataFrame(columns=CASE_KEYS + ["fastest", "fastest_s"])
    full = timings[eligible(timings)]
    best = full.loc[full.groupby(CASE_KEYS, observed=True, sort=False)["perf_median_s"].idxmin(),
                    CASE_KEYS + ["backend", "perf_median_s"]]
    best = best.rename(columns={"backend": "fastest", "perf_median_s": "fastest_s"})
    wide = timings.pivot_table(index=CASE_KEYS, columns="backend", values="perf_median_s", observed=True,
                               sort=False).reset_index()
    wide.columns.name = None
    table = wide.merge(best, on=CASE_KEYS, how="left")
    table["fastest"] = table["fastest"].fillna("")
    ordered = CASE_KEYS + ["fastest", "fastest_s"] + [c for c in wide.columns if c not in CASE_KEYS]
    return table[ordered].sort_values(["dtype", "case", "bias"], kind="stable")


def per_backend(timings: pd.DataFrame) -> pd.DataFrame:
    """Columns: dtype, backend, cases, fastest_on, median_gflops, vs_fastest, first_call_s, compile_s."""
    columns = ["dtype", "backend", "cases", "fastest_on", "median_gflops", "vs_fastest", "first_call_s", "compile_s"]
    if timings.empty:
        return pd.DataFrame(columns=columns)
    full = timings[eligible(timings)]
    fastest = full.groupby(CASE_KEYS, observed=True, sort=False)["perf_median_s"].transform("min")
    winners = full.loc[full.groupby(CASE_KEYS, observed=True, sort=False)["perf_median_s"].idxmin(), "backend"]
    slowdown = pd.Series(np.log(full["perf_median_s"] / fastest), index=full.index)
    table = timings.groupby(["dtype", "backend"], observed=True).agg(
        cases=("perf_median_s", "size"), median_gflops=("gflops", "median"), first_call_s=("seconds", "median"),
        compile_s=("compile_seconds", lambda c: c.sum(min_count=1)))
    table["fastest_on"] = full.loc[winners.index].groupby(["dtype", "backend"], observed=True).size()
    table["vs_fastest"] = np.exp(slowdown.groupby([full["dtype"], full["backend"]], observed=True).mean())
    table["fastest_on"] = table["fastest_on"].fillna(0).astype(int)
    return table.reset_index()[columns]


def seconds_text(value: float) -> str:
    """0.000183 -> '183 µs', 0.0123 -> '12.3 ms', 2.5 -> '2.50 s'; '' when missing."""
    if pd.isna(value):
        return ""
    if value < 1e-3:
        return f"{value * 1e6:.0f} µs"
    if value < 1:
        return f"{value * 1e3:.3g} ms"
    return f"{value:.2f} s"
