"""Summaries of a run folder: summary.csv and summary.md from results.csv.

summary.csv: one row per (backend, dtype, tensor) with the count of every status and the worst
err_ratio among compared rows.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.results import STATUSES, read_results

SUMMARY_KEYS = ["backend", "dtype", "tensor"]


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Per backend x dtype x tensor: rows, a count column per status, worst_err_ratio."""
    counts = (
        results.groupby(SUMMARY_KEYS + ["status"], observed=True).size().unstack("status", fill_value=0)
        .reindex(columns=list(STATUSES), fill_value=0)
    )
    worst = results.groupby(SUMMARY_KEYS, observed=True)["err_ratio"].max().rename("worst_err_ratio")
    summary = counts.join(worst).reset_index()
    summary.insert(3, "rows", summary[list(STATUSES)].sum(axis=1))
    return summary


def _markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no optional dependency on tabulate)."""
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    cells = (
        "| " + " | ".join("" if pd.isna(v) else f"{v:.3g}" if isinstance(v, float) else str(v) for v in row) + " |"
        for row in frame.itertuples(index=False)
    )
    return "\n".join([header, rule, *cells])


def write_summary(directory: str | Path) -> pd.DataFrame:
    """Write DIR/summary.csv and DIR/summary.md from DIR/results.csv; return the summary."""
    directory = Path(directory)
    summary = summarize(read_results(directory))
    summary.to_csv(directory / "summary.csv", index=False)
    (directory / "summary.md").write_text(f"# convparity summary: {directory.name}\n\n{_markdown(summary)}\n")
    return summary
