"""index.html: one page that links several run folders (a job of more than one run, or every run under reports/).

`convparity index [DIR ...] [-o OUT]` takes run folders and folders that hold run folders (one level down)
and writes one self-contained page, newest run first: per run its folder (linked to its report.html),
kind, status, start, duration, grids, backends (and the unavailable ones), the rows per status from its
summary.csv, and links to summary.md and results.csv. Links are relative to the page, so the folder can
be moved or served as it is. A run whose run.json cannot be read is listed with why, never skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from convparity.harness.errors import ConvparityError
from convparity.harness.files import atomic_write
from convparity.harness.reporting import html_page
from convparity.harness.running.run_folder import RUN_FILE, read_record
from convparity.harness.vocabulary import STATUSES

INDEX_HTML = "index.html"


class RunIndexError(ConvparityError, ValueError):
    """No run folder among the folders given; the message names them."""


@dataclass(frozen=True)
class RunEntry:
    """One run of the index: its folder and what its run.json and summary.csv say (or why they cannot be read)."""

    path: Path
    facts: dict[str, str]
    started: str


def run_folders(folders: list[Path]) -> list[Path]:
    """The run folders among `folders` and their children (a folder with a run.json is a run)."""
    found: list[Path] = []
    for folder in folders:
        if (folder / RUN_FILE).is_file():
            found.append(folder)
        elif folder.is_dir():
            found += sorted(child for child in folder.iterdir() if (child / RUN_FILE).is_file())
    return list(dict.fromkeys(path.resolve() for path in found))


def _counts(path: Path) -> str:
    """Rows per status from summary.csv ('' when the run has no reports yet)."""
    try:
        summary = pd.read_csv(path / "summary.csv")
    except (OSError, ValueError, pd.errors.ParserError):
        return "no reports yet (convparity report DIR)"
    present = [s for s in STATUSES if s in summary and summary[s].sum()]
    return ", ".join(f"{int(summary[s].sum())} {s}" for s in present) or "no rows"


def entry(path: Path) -> RunEntry:
    """What the index says of the run in `path`."""
    try:
        record = read_record(path)
    except ConvparityError as error:
        return RunEntry(path, {"status": f"unreadable: {error}"}, "")
    unavailable = f" (unavailable: {', '.join(sorted(record.unavailable))})" if record.unavailable else ""
    backends = [b for b in record.settings.backends if b not in record.unavailable]
    facts = {
        "kind": record.kind, "status": record.status, "started": record.started,
        "duration": f"{float(record.seconds):.0f} s" if record.seconds else "",
        "grids": ", ".join(record.settings.grids) or "(cases given)",
        "backends": ", ".join(backends) + unavailable,
        "dtypes": ", ".join(record.settings.dtypes),
        "rows": _counts(path),
    }
    return RunEntry(path, facts, record.started)


def _link(target: Path, base: Path, text: str) -> str:
    if not target.exists():
        return ""
    href = Path(os.path.relpath(target, base)).as_posix()
    return f'<a href="{html_page.text(href)}">{html_page.text(text)}</a>'


def render(entries: list[RunEntry], base: Path, title: str) -> str:
    """The page: one row per run, newest first."""
    rows = []
    for run in sorted(entries, key=lambda e: e.started, reverse=True):
        files = " · ".join(link for link in (_link(run.path / name, base, name) for name in
                                             ("summary.md", "results.csv", "run.json")) if link)
        rows.append({"run": _link(run.path / "report.html", base, run.path.name) or html_page.text(run.path.name),
                     **{key: html_page.text(run.facts.get(key, "")) for key in
                        ("kind", "status", "started", "duration", "grids", "backends", "dtypes", "rows")},
                     "files": files})
    table = html_page.table(pd.DataFrame(rows), markup_columns=list(rows[0]) if rows else ())
    intro = (f"<p>{len(entries)} run(s), newest first. Each run's name opens its report.html (parity matrix, "
             "heatmaps, non-passing rows by cause).</p>")
    return html_page.document(title, intro + "\n" + table)


def write_index(folders: list[Path], out: Path) -> Path:
    """Write the index of the run folders found in `folders` to `out`; RunIndexError when there are none."""
    runs = run_folders(folders)
    if not runs:
        raise RunIndexError(f"no run folder (a folder with {RUN_FILE}) in or under {', '.join(map(str, folders))}")
    page = render([entry(path) for path in runs], out.resolve().parent, f"convparity runs: {out.parent.name or '.'}")
    return atomic_write(out, lambda file: file.write(page))
