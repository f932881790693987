"""One pass over results.csv, in chunks: everything the reports need, in memory bounded by the grid's shape.

A run of any size is read CHUNK_ROWS rows at a time and reduced as it goes:
- per (backend, dtype, tensor): the count of every status and the worst err_ratio (the summary);
- the compared rows aggregated to heatmap cells: the worst err_ratio per (backend, dtype, tensor,
  power-of-2 bin of K, kernel size, stride, declared: whether the rows are xfail/xpass);
- the err_ratio distribution: compared rows counted per (backend, dtype, tensor, ratio bin, kind of row),
  and that of integer outputs' max_steps (convparity.harness.reporting.distribution);
- with --perf, one line per timed (case, bias, dtype, backend): its timing and how many tensors it covers;
- the non-passing rows, the first KEPT_PER_STATUS of each status (the rest counted in `left_out`);
- for a backend and its `-unfused` twin (from run.json's backends), the verdicts of both side by side
  (convparity.harness.reporting.pairs);
- the total per status, and a version per backend.
So the reports' memory depends on the number of backends, dtypes and distinct shapes, not on the rows
(timings excepted: one small line per timed case and backend).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from convparity.harness.errors import ConvparityError
from convparity.harness.reporting.distribution import ratio_counts, step_counts
from convparity.harness.reporting.heatmap import compared_rows
from convparity.harness.reporting.matrix import finish_summary, summary_parts
from convparity.harness.reporting.pairs import pair_part, pair_tables, pairs
from convparity.harness.results import COLUMNS, iter_results
from convparity.harness.running.run_folder import read_record
from convparity.harness.vocabulary import STATUSES

CHUNK_ROWS = 50_000
KEPT_PER_STATUS = 2_000
HEATMAP_KEYS = ["backend", "dtype", "tensor", "reduction", "kernel_size", "stride", "declared"]
TIMING_KEYS = ["case", "name", "bias", "dtype", "backend"]
TIMING_COLUMNS = ["seconds", "compile_seconds", "perf_repeats", "perf_min_s", "perf_median_s", "perf_spread",
                  "gflops"]


@dataclass
class ResultsDigest:
    """What the reports read of a run's rows (see the module docstring)."""

    summary: pd.DataFrame
    heatmap_cells: pd.DataFrame
    non_passing: pd.DataFrame
    left_out: dict[str, int] = field(default_factory=dict)
    status_counts: dict[str, int] = field(default_factory=dict)
    rows: int = 0
    versions: dict[str, str] = field(default_factory=dict)
    distribution: pd.DataFrame = field(default_factory=pd.DataFrame)
    step_distribution: pd.DataFrame = field(default_factory=pd.DataFrame)
    timings: pd.DataFrame = field(default_factory=pd.DataFrame)
    pair_counts: pd.DataFrame = field(default_factory=pd.DataFrame)
    pair_differences: pd.DataFrame = field(default_factory=pd.DataFrame)


def _heatmap_part(chunk: pd.DataFrame) -> pd.DataFrame:
    compared = compared_rows(chunk)
    binned = compared.assign(reduction=np.exp2(np.floor(np.log2(compared["reduction"].to_numpy(float)))).astype(
        np.int64), declared=compared["status"].isin(["xfail", "xpass"]))
    return binned.groupby(HEATMAP_KEYS, observed=True)["err_ratio"].max().reset_index()


def _timing_part(chunk: pd.DataFrame) -> pd.DataFrame:
    """One line per timed (case, bias, dtype, backend): its timing, `tensors` (the rows it timed: its pass rows)
    and `rows` (all its rows: more where a forward-only backend's gradients read unsupported)."""
    timed = chunk[chunk["perf_repeats"] > 0]
    if timed.empty:
        return pd.DataFrame(columns=TIMING_KEYS + TIMING_COLUMNS + ["tensors", "rows"])
    grouped = timed.groupby(TIMING_KEYS, observed=True, sort=False)
    rows = chunk.groupby(TIMING_KEYS, observed=True, sort=False).size().rename("rows")
    return grouped[TIMING_COLUMNS].first().join(grouped.size().rename("tensors")).join(rows).reset_index()


def digest_results(directory: str | Path, chunk_rows: int = CHUNK_ROWS,
                   kept_per_status: int = KEPT_PER_STATUS) -> ResultsDigest:
    """Read DIR/results.csv once, chunk by chunk, into a ResultsDigest."""
    parts, cells, kept, counts, steps, timings, paired = [], [], [], [], [], [], []
    backend_pairs = pairs(_backends(Path(directory)))
    kept_counts: dict[str, int] = {}
    digest = ResultsDigest(pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
    empty = pd.DataFrame(columns=list(COLUMNS))
    for chunk in iter_results(directory, chunk_rows):
        empty = chunk.iloc[:0]
        digest.rows += len(chunk)
        for status, count in chunk["status"].value_counts().items():
            digest.status_counts[str(status)] = digest.status_counts.get(str(status), 0) + int(count)
        for backend, version in chunk.groupby("backend", observed=True)["backend_version"].first().items():
            digest.versions.setdefault(str(backend), str(version))
        parts.append(summary_parts(chunk))
        cells.append(_heatmap_part(chunk))
        counts.append(ratio_counts(chunk))
        steps.append(step_counts(chunk))
        timings.append(_timing_part(chunk))
        if backend_pairs:
            paired.append(pair_part(chunk, backend_pairs))
        for status, rows in chunk[chunk["status"] != "pass"].groupby("status", observed=True):
            room = kept_per_status - kept_counts.get(str(status), 0)
            kept.append(rows.head(max(room, 0)))
            kept_counts[str(status)] = kept_counts.get(str(status), 0) + min(len(rows), max(room, 0))
            if len(rows) > room:
                digest.left_out[str(status)] = digest.left_out.get(str(status), 0) + len(rows) - max(room, 0)
        if len(parts) > 1:  # fold as we go: memory stays that of one chunk plus the aggregates
            parts = [summary_parts(pd.concat(parts), folded=True)]
            cells = [pd.concat(cells).groupby(HEATMAP_KEYS, observed=True)["err_ratio"].max().reset_index()]
            counts = [ratio_counts(pd.concat(counts), folded=True)]
            steps = [step_counts(pd.concat(steps), folded=True)]
    digest.summary = finish_summary(pd.concat(parts) if parts else summary_parts(None))
    digest.heatmap_cells = (pd.concat(cells) if cells else pd.DataFrame(columns=HEATMAP_KEYS + ["err_ratio"]))
    digest.non_passing = pd.concat(kept, ignore_index=True) if kept else empty
    digest.distribution = ratio_counts(pd.concat(counts) if counts else None, folded=True)
    digest.step_distribution = step_counts(pd.concat(steps) if steps else None, folded=True)
    digest.timings = _timings(timings)
    digest.pair_counts, digest.pair_differences = pair_tables(paired, backend_pairs)
    digest.status_counts = {s: digest.status_counts[s] for s in STATUSES if s in digest.status_counts}
    return digest


def _backends(directory: Path) -> list[str]:
    """The backends run.json says the run asked for (none where it cannot be read)."""
    try:
        return list(read_record(directory).settings.backends)
    except (ConvparityError, OSError):
        return []


def _timings(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The timed lines of every chunk; a case whose rows two chunks split counts the tensors of both."""
    parts = [part for part in parts if len(part)]
    if not parts:
        return pd.DataFrame(columns=TIMING_KEYS + TIMING_COLUMNS + ["tensors", "rows"])
    stacked = pd.concat(parts, ignore_index=True)
    grouped = stacked.groupby(TIMING_KEYS, observed=True, sort=False)
    return grouped[TIMING_COLUMNS].first().join(grouped[["tensors", "rows"]].sum()).reset_index()
