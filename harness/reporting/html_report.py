"""report.html: one self-contained page that shows a run (inline CSS, figures as PNG data URIs).

Sections, in order:
- status totals of every row;
- the parity matrix (convparity.harness.reporting.matrix): backends x dtypes down, tensors across, each cell
  coloured by its band and showing pass/fail/unsupported counts (other statuses named) and the worst err_ratio;
- findings, when the folder has a findings.csv (from `convparity search` or `convparity triage`): one
  line per group with its rule, minimal case and repro script; new findings open, known deviations folded;
- per backend, heatmaps of the worst err_ratio over spec axes (convparity.harness.reporting.heatmap);
- every non-passing case: one line per (case, bias, dtype, backend, status, message), the tensors it
  covers listed together, with descriptor, message and repro; failures (fail/error/crash/timeout)
  first and open, then known deviations (xfail, with the declared reason and upstream report) and
  stale declarations (xpass), reference errors (the harness's own, never the backend's), unsupported;
- time per backend: in workers, in the backend's run (compile where measured), the harness's share,
  start-up (convparity.harness.reporting.timing), when run.json records it;
- the run's metadata from run.json (harness and backend versions, platform, seed, grids, duration).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from convparity.harness.files import atomic_write
from convparity.harness.reporting import html_page
from convparity.harness.reporting.digest import ResultsDigest
from convparity.harness.reporting.heatmap import backend_figure
from convparity.harness.reporting.matrix import BAND_BY_NAME, BANDS, counts_text, format_ratio, parity_matrix
from convparity.harness.reporting.timing import idle_line, timing_table
from convparity.harness.results import bias_word
from convparity.harness.running.run_folder import read_record
from convparity.harness.running.run_record import RunRecord
from convparity.harness.search.findings import read_findings
from convparity.harness.vocabulary import BAD_STATUSES, TENSORS

REPORT_HTML = "report.html"
CASE_COLUMNS = ["backend", "dtype", "bias", "case", "name", "status", "message", "deviation", "repro"]
SEVERITY = {s: i for i, s in enumerate(("crash", "timeout", "error", "fail", "xpass", "xfail", "reference-error",
                                        "harness-error", "unsupported"))}
CASE_TABLE = ["backend", "dtype", "bias", "case", "name", "status", "tensors", "err_ratio", "message",
              "deviation", "repro"]
CASE_GROUPS = (("failures", list(BAD_STATUSES), True),
               ("known deviations (xfail)", ["xfail"], True),
               ("stale declarations (xpass): the declared deviation did not happen", ["xpass"], True),
               ("the harness's own failures (the reference, drawing the inputs: not the backend's)",
                ["reference-error", "harness-error"], True),
               ("unsupported", ["unsupported"], False))


def _matrix_cell(cell: pd.Series) -> str:
    band = BAND_BY_NAME[cell["band"]]
    counts, ratio = html_page.text(counts_text(cell)), html_page.text(format_ratio(cell["worst_err_ratio"]))
    return (f'<div class="band-{band.name}" title="{html_page.text(band.meaning)}">{counts}'
            f'<br/><span class="ratio">{ratio}</span></div>')


def matrix_section(summary: pd.DataFrame) -> str:
    """The coloured parity matrix with its legend."""
    if summary.empty:
        return "<h2>Parity matrix</h2>\n<p>No rows yet.</p>"
    matrix = parity_matrix(summary, _matrix_cell).fillna('<div class="band-none">—</div>').reset_index()
    matrix[["backend", "dtype"]] = matrix[["backend", "dtype"]].map(html_page.text)
    legend = "".join(f'<span class="band-{b.name}">{html_page.text(b.name + ": " + b.meaning)}</span>'
                     for b in BANDS)
    return (
        "<h2>Parity matrix</h2>\n<p>Each cell: pass/fail/unsupported rows (other statuses named), then the "
        "worst err_ratio (≤ 1 passes; — no compared rows).</p>\n"
        f'<p class="legend">{legend}</p>\n'
        + html_page.table(matrix, markup_columns=matrix.columns, css_class="matrix")
    )


def heatmap_section(cells: pd.DataFrame) -> str:
    """A heatmap figure per backend that has compared rows (`cells`: ResultsDigest.heatmap_cells)."""
    parts = ["<h2>Where errors grow</h2>"]
    for backend, rows in cells.groupby("backend", sort=True, observed=True):
        image = html_page.figure_img(backend_figure(str(backend), rows), f"{backend} heatmaps")
        parts.append(f"<h3>{html_page.text(backend)}</h3>\n{image}")
    if len(parts) == 1:
        parts.append("<p>No compared rows: nothing to draw.</p>")
    return "\n".join(parts)


def non_passing_cases(results: pd.DataFrame) -> pd.DataFrame:
    """Every non-passing row, the tensors of one (case, backend, status, message) joined on one line.

    Columns: backend, dtype, bias, case, name, status, tensors ('y dx dw'), worst err_ratio, message,
    repro; sorted by severity (crash, timeout, error, fail, unsupported, unavailable), backend, dtype.
    """
    rows = results[results["status"] != "pass"]
    tensor_order = rows["tensor"].map({t: i for i, t in enumerate(TENSORS)})
    rows = rows.assign(_tensor=tensor_order).sort_values("_tensor", kind="stable")
    grouped = rows.groupby(CASE_COLUMNS, sort=False, dropna=False, observed=True)
    cases = grouped.agg(tensors=("tensor", " ".join), err_ratio=("err_ratio", "max")).reset_index()
    severity = cases["status"].map(SEVERITY).fillna(len(SEVERITY))
    cases = cases.assign(_severity=severity).sort_values(["_severity", "backend", "dtype", "case"],
                                                         kind="stable")
    return cases[CASE_TABLE]


def cases_section(non_passing: pd.DataFrame, left_out: dict[str, int]) -> str:
    """Non-passing cases in collapsible tables by kind (CASE_GROUPS); rows beyond what the digest kept are
    counted, with where to find them."""
    cases = non_passing_cases(non_passing)
    cases = cases.assign(err_ratio=cases["err_ratio"].map(format_ratio), repro=html_page.code(cases["repro"]),
                         bias=cases["bias"].map(bias_word),
                         case=html_page.code(cases["case"]), deviation=cases["deviation"].map(html_page.linked))
    parts = ["<h2>Non-passing cases</h2>"]
    for title, statuses, opened in CASE_GROUPS:
        chosen = cases[cases["status"].isin(statuses)]
        if len(chosen):
            body = html_page.table(chosen, markup_columns=("case", "repro", "deviation"))
            more = sum(left_out.get(s, 0) for s in statuses)
            if more:
                body += f"<p>{more} more rows of these statuses are in results.csv, not listed here.</p>"
            parts.append(html_page.details(f"{title} ({len(chosen)} cases)", body, opened=opened))
    if len(parts) == 1:
        parts.append("<p>No non-passing rows.</p>")
    return "\n".join(parts)


FINDING_TABLE = ["group", "backend", "dtype", "bias", "tensors", "kind", "rule", "rule_check", "minimal_case",
                 "minimal_dtype", "minimal_bias", "local_minimum", "err_ratio", "cases_seen", "deviation",
                 "repro_script", "repro"]


def findings_section(findings: pd.DataFrame) -> str:
    """Groups by cause (findings.csv): new findings open, known deviations folded; scripts linked."""
    rows = findings.assign(
        minimal_case=html_page.code(findings["minimal_case"]), repro=html_page.code(findings["repro"]),
        repro_script=findings["repro_script"].map(
            lambda p: f'<a href="{html_page.text(p)}">{html_page.text(p)}</a>' if p else ""),
        rule=html_page.code(findings["rule"]), deviation=findings["deviation"].map(html_page.linked),
        err_ratio=findings["err_ratio"].map(lambda v: format_ratio(float(v)) if v else ""))[FINDING_TABLE]
    markup = ("minimal_case", "repro", "repro_script", "rule", "deviation")
    new, known = rows[~findings["known"]], rows[findings["known"]]
    parts = ["<h2>Findings</h2>",
             f"<p>{len(new)} new finding(s), {len(known)} known deviation(s): failures grouped by cause, each with the "
             "simplest rule over spec features that separates its cases from the passing ones, its minimal case "
             "and a standalone script that exits 1 while the bug is there.</p>"]
    if len(new):
        parts.append(html_page.details(f"new findings ({len(new)})", html_page.table(new, markup_columns=markup),
                                       opened=True))
    if len(known):
        parts.append(html_page.details(f"known deviations ({len(known)})",
                                       html_page.table(known, markup_columns=markup)))
    return "\n".join(parts)


def metadata_items(record: RunRecord, row_versions: dict[str, str]) -> pd.DataFrame:
    """run.json (and, for backends it does not list, the rows' versions) as (item, value) pairs."""
    settings = record.settings.to_json()
    items = [
        ("harness version", record.harness_version),
        ("harness commit", record.harness_commit or "not recorded (neither a git checkout nor built from one)"),
        ("status", record.status),
        ("started", record.started),
        ("finished", record.finished or "not finished"),
        ("duration (s)", record.seconds),
        ("seed", settings["seed"]),
        ("grids", ", ".join(settings["grids"]) or "(cases given on the command line)"),
        ("dtypes", ", ".join(settings["dtypes"])),
        ("tolerance factor", settings["tolerance_factor"]),
        ("platform", ", ".join(f"{k} {v}" for k, v in record.platform.items() if v)),
    ]
    versions = {**row_versions, **record.backend_versions}
    items += [(f"backend {name}", version) for name, version in sorted(versions.items())]
    items += [(f"backend {name}", f"unavailable: {reason}") for name, reason in sorted(record.unavailable.items())]
    items += [(f"setting {k}", json.dumps(v)) for k, v in settings.items()
              if k not in ("seed", "grids", "dtypes", "tolerance_factor") and v not in ({}, [], None)]
    return pd.DataFrame(items, columns=["item", "value"])


def totals_line(digest: ResultsDigest, record: RunRecord) -> str:
    """Row counts per status, and the backends that were unavailable (named once, never as rows)."""
    parts = [f"{count} {status}" for status, count in digest.status_counts.items()]
    line = f"<p>{digest.rows} rows: {html_page.text(', '.join(parts) or 'none')}.</p>"
    unavailable = record.unavailable
    if unavailable:
        line += "\n<p>Unavailable, so not run: " + html_page.text("; ".join(
            f"{name} ({reason})" for name, reason in sorted(unavailable.items()))) + ".</p>"
    return line


def timing_section(record: RunRecord) -> str:
    """Time per backend (harness.reporting.timing), when run.json records it."""
    table = timing_table(record)
    if table.empty:
        return ""
    line = idle_line(record)
    return ("<h2>Time per backend</h2>\n" + html_page.table(table)
            + (f"\n<p>{html_page.text(line)}.</p>" if line else ""))


def render(title: str, digest: ResultsDigest, record: RunRecord, findings: pd.DataFrame | None = None,
           extra_sections: Sequence[str] = ()) -> str:
    """The whole page as a string (with a findings section when `findings` is given); `extra_sections` (HTML,
    such as the model view) come after the parity matrix."""
    body = "\n".join(part for part in [
        totals_line(digest, record),
        matrix_section(digest.summary),
        *extra_sections,
        *([findings_section(findings)] if findings is not None else []),
        heatmap_section(digest.heatmap_cells),
        cases_section(digest.non_passing, digest.left_out),
        timing_section(record),
        "<h2>Run</h2>\n" + html_page.table(metadata_items(record, digest.versions)),
    ] if part)
    return html_page.document(f"convparity report: {title}", body)


def write_html_report(directory: Path, digest: ResultsDigest, extra_sections: Sequence[str] = ()) -> Path:
    """Write DIR/report.html from the digest of the run's rows, its run.json and its findings.csv if any."""
    page = render(directory.name, digest, read_record(directory), read_findings(directory), extra_sections)
    return atomic_write(directory / REPORT_HTML, lambda file: file.write(page))
