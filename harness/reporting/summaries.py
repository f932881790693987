"""A run folder's reports from its results.csv: summary.csv, summary.md and report.html.

summary.csv: one row per (backend, dtype, tensor) with the count of every status, the worst
err_ratio among compared rows and the colour band (convparity.harness.reporting.matrix). summary.md opens with the
parity matrix as a Markdown table, then the same counts as summary.csv. report.html is described in
convparity.harness.reporting.html_report.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pandas as pd

from convparity.harness import inert_text
from convparity.harness.files import atomic_write
from convparity.harness.reporting import model_view
from convparity.harness.reporting.digest import ResultsDigest, digest_results
from convparity.harness.reporting.html_report import write_html_report
from convparity.harness.reporting.matrix import BAND_BY_NAME, BANDS, counts_text, format_ratio, parity_matrix
from convparity.harness.reporting.pairs import pairs_markdown
from convparity.harness.running.run_folder import read_record
from convparity.harness.running.run_record import RunRecord
from convparity.harness.vocabulary import in_tensor_order

SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"


def _width(text: str) -> int:
    """Terminal columns a string takes: wide characters (the band markers) count two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _markdown_text(value: object) -> str:
    """One cell's text, inert in Markdown: HTML escaped, `|` escaped, no line breaks or unsafe characters."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    return inert_text.markdown(value)


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table, columns padded so that it also lines up in a terminal."""
    body = [[_markdown_text(v) for v in row] for row in frame.itertuples(index=False)]
    cells = [[str(c) for c in frame.columns], *body]
    widths = [max(_width(row[i]) for row in cells) for i in range(len(frame.columns))]
    lines = ["| " + " | ".join(t + " " * (w - _width(t)) for t, w in zip(row, widths, strict=True)) + " |"
             for row in cells]
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([lines[0], rule, *lines[1:]])


def markdown_cell(cell: pd.Series) -> str:
    """One matrix cell in Markdown: band marker, pass/fail/unsupported counts, worst err_ratio."""
    marker = BAND_BY_NAME[cell["band"]].marker
    return f"{marker} {counts_text(cell)} · {format_ratio(cell['worst_err_ratio'])}"


def summary_markdown(title: str, digest: ResultsDigest, record: RunRecord) -> str:
    """summary.md: the parity matrix first (with its legend), the known deviations and unavailable
    backends, then the per-status counts."""
    summary = digest.summary
    matrix = parity_matrix(summary, markdown_cell).fillna("—").reset_index()
    legend = " · ".join(f"{band.marker} {band.name}: {band.meaning}" for band in BANDS)
    counts = summary.assign(worst_err_ratio=summary["worst_err_ratio"].map(format_ratio))
    return (
        f"# convparity parity matrix: {_markdown_text(title)}\n\n{markdown_table(matrix)}\n\n"
        "Cells: pass/fail/unsupported row counts (other statuses named), then the worst err_ratio "
        f"(≤ 1 passes); — means no rows.\n{legend}\n\n"
        f"{_declared_section(digest.non_passing)}{_unavailable_section(record)}"
        f"{pairs_markdown(digest.pair_counts) + chr(10) if len(digest.pair_counts) else ''}"
        f"## Rows per status\n\n{markdown_table(counts)}\n"
    )


def _declared_section(non_passing: pd.DataFrame) -> str:
    """Known deviations (xfail) and stale declarations (xpass): rows per backend, dtype and declaration."""
    declared = non_passing[non_passing["status"].isin(["xfail", "xpass"])] if len(non_passing) else non_passing
    if declared.empty:
        return ""
    table = (declared.groupby(["status", "backend", "dtype", "deviation"], observed=True)
             .agg(tensors=("tensor", lambda t: " ".join(in_tensor_order(t))), rows=("tensor", "size"))
             .reset_index()[["status", "backend", "dtype", "tensors", "rows", "deviation"]])
    return ("## Known deviations\n\nxfail: fails as the backend declares (reason and upstream report below); "
            f"xpass: a declared deviation that did not happen (stale).\n\n{markdown_table(table)}\n\n")


def _unavailable_section(record: RunRecord) -> str:
    unavailable = record.unavailable
    if not unavailable:
        return ""
    table = pd.DataFrame(sorted(unavailable.items()), columns=["backend", "unavailable because"])
    return f"## Unavailable backends (not run)\n\n{markdown_table(table)}\n\n"


def write_reports(directory: str | Path) -> pd.DataFrame:
    """Write DIR/summary.csv, DIR/summary.md and DIR/report.html from DIR/results.csv (read once, in chunks:
    see convparity.harness.reporting.digest); return the summary. Each file is written whole or not at all."""
    directory = Path(directory)
    digest = digest_results(directory)
    summary = digest.summary
    atomic_write(directory / SUMMARY_CSV, lambda file: summary.to_csv(file, index=False))
    markdown = summary_markdown(directory.name, digest, read_record(directory))
    markdown += model_view.markdown_section(directory)  # runs of --model: the model view (harness.reporting.model_view)
    atomic_write(directory / SUMMARY_MD, lambda file: file.write(markdown))
    write_html_report(directory, digest, extra_sections=[model_view.html_section(directory)])
    return summary
