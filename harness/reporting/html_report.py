"""report.html: one self-contained page that shows a run (inline CSS, figures as PNG data URIs).

Sections, in order:
- status totals of every row;
- the parity matrix (convparity.harness.reporting.matrix): backends x dtypes down, tensors across, each cell
  coloured by its band and showing pass/fail/unsupported counts (other statuses named) and the worst err_ratio;
- findings, when the folder has a findings.csv (from `convparity search` or `convparity triage`): one
  line per group with its rule, minimal case and repro script; new findings open, known deviations folded;
- per backend, heatmaps of the worst err_ratio over spec axes (convparity.harness.reporting.heatmap),
  declared deviations hatched apart from failures;
- the err_ratio distribution per backend x dtype x tensor (convparity.harness.reporting.distribution),
  so "barely passing" shows before it fails;
- the non-passing rows grouped by cause: per kind (failures, known deviations, stale declarations,
  reference errors, unsupported), one group per backend and cause (the declared deviation, or the
  message with its numbers left out), with its counts, dtypes, tensors and worst err_ratio, the reason
  once, and its cases collapsed under it, one line per (case, bias, dtype) with the tensors together,
  descriptor and repro in monospace cells that do not wrap;
- with --perf, speed beside correctness (convparity.harness.reporting.speed): per backend and dtype,
  and the fastest correct backend of every case;
- time per backend: in workers, in the backend's run (compile where measured), the harness's share,
  start-up (convparity.harness.reporting.timing), when run.json records it;
- the run's metadata from run.json (harness and backend versions, platform, seed, grids, duration).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from convparity.harness.files import atomic_write
from convparity.harness.reporting import html_page, speed
from convparity.harness.reporting.digest import ResultsDigest
from convparity.harness.reporting.distribution import histograms_html
from convparity.harness.reporting.heatmap import backend_figure
from convparity.harness.reporting.matrix import BAND_BY_NAME, BANDS, counts_text, format_ratio, parity_matrix
from convparity.harness.reporting.pairs import pairs_section
from convparity.harness.reporting.timing import idle_line, timing_table
from convparity.harness.results import bias_word
from convparity.harness.running.run_folder import read_record
from convparity.harness.running.run_record import RunRecord
from convparity.harness.search.findings import read_findings
from convparity.harness.vocabulary import BAD_STATUSES, in_tensor_order, tensor_key

REPORT_HTML = "report.html"
SEVERITY = {s: i for i, s in enumerate(("crash", "timeout", "error", "fail", "xpass", "xfail", "reference-error",
                                        "harness-error", "unsupported"))}
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


_NUMBER = re.compile(r"(?<![A-Za-z_])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
CAUSE_COLUMNS = ["status", "backend", "cause"]
CASE_LINE = ["case", "name", "dtype", "bias", "tensors", "err_ratio", "detail", "repro"]


def message_pattern(message: str, tensor: str = "") -> str:
    """A message with its numbers left out ('#') and its own tensor's name generic, so that one cause's rows
    share it: '123 of 512 elements exceed the bound' -> '# of # elements exceed the bound'; 'computes no dw
    (forward only)' on the dw row -> 'computes no ‹tensor› (forward only)'."""
    if tensor:
        message = re.sub(rf"\b{re.escape(tensor)}\b", "‹tensor›", message)
    return _NUMBER.sub("#", message)


def _detail(row: pd.Series) -> str:
    """What a row's message says beyond its group's reason (a declared deviation's reason is said once)."""
    message = str(row["message"] or "")
    if row["status"] == "xfail":  # "known deviation: <reason>; <what the comparison found>", the reason may hold "; "
        prefix, deviation = "known deviation: ", str(row["deviation"] or "")
        for cut in (m.start() for m in re.finditer("; ", message)):
            if message.startswith(prefix) and deviation.startswith(message[len(prefix):cut] + " ("):
                return message[cut + 2:]
        return message.removeprefix(prefix) if not deviation else ""
    if row["status"] == "xpass":
        return ""
    # the cause line says a message without numbers whole (its tensor's name made generic): only numbers differ
    return message if "#" in message_pattern(message, str(row["tensor"])) else ""


def causes(non_passing: pd.DataFrame) -> pd.DataFrame:
    """The non-passing rows' groups: one per (status, backend, cause), where the cause is the declared
    deviation (xfail, xpass) or the message pattern. Columns: status, backend, cause, rows, cases, dtypes,
    tensors, err_ratio (worst), and `lines`, the group's cases (`case_lines`)."""
    rows = non_passing
    if rows.empty:
        return pd.DataFrame(columns=CAUSE_COLUMNS + ["rows", "cases", "dtypes", "tensors", "err_ratio", "lines"])
    declared = rows["status"].isin(["xfail", "xpass"]) & (rows["deviation"].fillna("") != "")
    patterns = [message_pattern(str(m), str(t)) for m, t in zip(rows["message"].fillna(""), rows["tensor"])]
    cause = rows["deviation"].where(declared, pd.Series(patterns, index=rows.index, dtype=object))
    rows = rows.assign(cause=cause.astype(str))
    groups = []
    for (status, backend, reason), members in rows.groupby(CAUSE_COLUMNS, sort=False, observed=True):
        messages = set(members["message"].fillna(""))
        if not declared[members.index].any() and len(messages) == 1:
            reason = messages.pop()  # one message for every row: say it as it is, numbers included
        lines = case_lines(members)
        tensors = in_tensor_order(members["tensor"])
        groups.append({"status": status, "backend": backend, "cause": reason, "rows": len(members),
                       "cases": len(lines), "dtypes": ", ".join(dict.fromkeys(members["dtype"])),
                       "tensors": " ".join(tensors), "err_ratio": members["err_ratio"].max(), "lines": lines})
    table = pd.DataFrame(groups)
    order = table["status"].map(SEVERITY).fillna(len(SEVERITY))
    return (table.assign(_severity=order, _rows=-table["rows"])
            .sort_values(["_severity", "_rows", "backend"], kind="stable").drop(columns=["_severity", "_rows"]))


def case_lines(members: pd.DataFrame) -> pd.DataFrame:
    """One line per (case, name, bias, dtype) of a cause's rows: its tensors (y, dx, dw, db order), worst
    err_ratio, what each row says beyond the reason (once when the tensors say the same), the repro."""
    rows = members.assign(detail=members.apply(_detail, axis=1) if len(members) else "",
                          _tensor=members["tensor"].map(lambda t: tensor_key(t)))
    rows = rows.sort_values("_tensor", kind="stable")

    def details(group: pd.DataFrame) -> str:
        said = dict(zip(group["tensor"], group["detail"], strict=True))
        if len(set(said.values())) == 1:
            return next(iter(said.values()))
        return "; ".join(f"{tensor}: {text}" for tensor, text in said.items() if text)

    keys = ["case", "name", "bias", "dtype"]
    grouped = rows.groupby(keys, sort=False, dropna=False, observed=True)
    lines = grouped.agg(tensors=("tensor", " ".join), err_ratio=("err_ratio", "max"), repro=("repro", "first"))
    lines["detail"] = grouped[["tensor", "detail"]].apply(details)
    return lines.reset_index()[CASE_LINE]


def _cause_block(group: pd.Series, opened: bool) -> str:
    """One cause: its counts and reason once, then its cases collapsed."""
    lines = group["lines"]
    shown = lines.assign(case=_scrolling(lines["case"]), repro=_scrolling(lines["repro"]),
                         detail=_scrolling(lines["detail"], code=False),
                         bias=lines["bias"].map(bias_word), err_ratio=lines["err_ratio"].map(format_ratio))
    ratio = format_ratio(group["err_ratio"])
    worst = f" · worst err_ratio {html_page.text(ratio)}" if ratio != "–" else ""
    status = html_page.text(group["status"])
    head = (f'<p class="cause-head"><span class="status status-{status}">{status}</span> '
            f'<b>{html_page.text(group["backend"])}</b> · {_count(group["rows"], "row")} in '
            f'{_count(group["cases"], "case")} · '
            f'{html_page.text(group["dtypes"])} · tensors {html_page.text(group["tensors"])}{worst}</p>\n'
            f'<p class="cause">{html_page.linked(group["cause"]) or "(no message)"}</p>')
    table = html_page.table(shown, markup_columns=("case", "repro", "detail"), css_class="cases")
    return (f'<div class="cause-group">{head}\n'
            + html_page.details(f"the {_count(group['cases'], 'case')}", table, opened=opened) + "</div>")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _scrolling(values: pd.Series, code: bool = True) -> pd.Series:
    """Each value in a line (monospace unless `code` is False) that never wraps and scrolls sideways when wider
    than its cell."""
    def line(value: object) -> str:
        text = html_page.text(value)
        return "" if not text else f'<div class="line"><code>{text}</code></div>' if code else \
            f'<div class="line">{text}</div>'

    return values.map(line)


def cases_section(non_passing: pd.DataFrame, left_out: dict[str, int]) -> str:
    """Non-passing rows grouped by cause, by kind (CASE_GROUPS); rows beyond what the digest kept are counted,
    with where to find them."""
    grouped = causes(non_passing)
    parts = ["<h2>Non-passing rows, by cause</h2>"]
    for title, statuses, _ in CASE_GROUPS:
        chosen = grouped[grouped["status"].isin(statuses)]
        if not len(chosen):
            continue
        rows, cases = int(chosen["rows"].sum()), int(chosen["cases"].sum())
        blocks = "\n".join(_cause_block(group, opened=False) for _, group in chosen.iterrows())
        more = sum(left_out.get(s, 0) for s in statuses)
        if more:
            blocks += f"\n<p>{more} more rows of these statuses are in results.csv, not listed here.</p>"
        counts = f"{_count(rows, 'row')} in {_count(cases, 'case')}, {_count(len(chosen), 'cause')}"
        parts.append(f"<h3>{html_page.text(title)} ({counts})</h3>\n{blocks}")
    if len(parts) == 1:
        parts.append("<p>No non-passing rows.</p>")
    return "\n".join(parts)


def distribution_section(counts: pd.DataFrame, steps: pd.DataFrame | None = None) -> str:
    """How close to the bound each backend x dtype x tensor runs, and how many quantization steps integer outputs
    are off (harness.reporting.distribution)."""
    body = histograms_html(counts)
    stepped = histograms_html(steps, steps=True) if steps is not None else ""
    return ("<h2>How close to the bound</h2>\n" + (body or "<p>No compared rows.</p>")
            + (f"\n<h2>Integer outputs: steps from the exact result</h2>\n{stepped}" if stepped else ""))


def speed_section(timings: pd.DataFrame, record: RunRecord) -> str:
    """--perf: per backend and dtype, then the fastest correct backend of every case (harness.reporting.speed)."""
    if timings.empty:
        return ""
    summary = speed.per_backend(timings)
    grids = ", ".join(record.settings.grids) or "the run's cases"
    shown = summary.assign(
        median_gflops=summary["median_gflops"].map(lambda v: f"{v:.3g}"),
        vs_fastest=summary["vs_fastest"].map(lambda v: "" if pd.isna(v) else f"{v:.2f}x"),
        first_call_s=summary["first_call_s"].map(speed.seconds_text),
        compile_s=summary["compile_s"].map(lambda v: "n/a" if pd.isna(v) else f"{v:.1f} s"))
    shown.columns = ["dtype", "backend", "cases timed", "fastest on", "median GFLOP/s", "time vs fastest (geo. mean)",
                     "first call (median)", "compile (total)"]
    cases = speed.per_case(timings)
    backends = [c for c in cases.columns if c not in speed.CASE_KEYS + ["fastest", "fastest_s"]]
    lines = cases.assign(case=_scrolling(cases["case"]), bias=cases["bias"].map(bias_word),
                         **{b: cases[b].map(speed.seconds_text) for b in backends})
    lines = lines.drop(columns=["fastest_s"])
    return (
        f"<h2>Speed of correct results (--perf)</h2>\n<p>Every case that passed on a backend was timed in that "
        f"backend's worker: its run after warm-up, repeated (median shown; GFLOP/s from the exact multiply-adds of "
        f"the tensors it computes). Failing rows are never timed. Fastest correct backend per dtype over "
        f"{html_page.text(grids)}:</p>\n" + html_page.table(shown)
        + "\n" + html_page.details(f"fastest correct backend of each of the {len(cases)} cases (median time per "
                                   "backend; forward-only backends are timed on y and never called fastest)",
                                   html_page.table(lines, markup_columns=("case",), css_class="cases")))


FINDING_TABLE = ["group", "status", "backend", "dtype", "bias", "tensors", "kind", "rule", "rule_check",
                 "minimal_case", "minimal_dtype", "minimal_bias", "local_minimum", "err_ratio", "cases_seen",
                 "deviation", "repro_script", "repro"]


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
        pairs_section(digest.pair_counts, digest.pair_differences),
        *extra_sections,
        *([findings_section(findings)] if findings is not None else []),
        heatmap_section(digest.heatmap_cells),
        distribution_section(digest.distribution, digest.step_distribution),
        cases_section(digest.non_passing, digest.left_out),
        speed_section(digest.timings, record),
        timing_section(record),
        "<h2>Run</h2>\n" + html_page.table(metadata_items(record, digest.versions)),
    ] if part)
    return html_page.document(f"convparity report: {title}", body)


def write_html_report(directory: Path, digest: ResultsDigest, extra_sections: Sequence[str] = ()) -> Path:
    """Write DIR/report.html from the digest of the run's rows, its run.json and its findings.csv if any."""
    page = render(directory.name, digest, read_record(directory), read_findings(directory), extra_sections)
    return atomic_write(directory / REPORT_HTML, lambda file: file.write(page))
