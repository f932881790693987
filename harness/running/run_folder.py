"""A run's folder: reports/<run-name>/ with results.csv, run.json and the summaries.

A run never overwrites an earlier one: a new run needs a folder that does not exist or is empty.
run.json records the settings (so `--resume DIR` needs nothing else), every backend's version,
the platform, harness version, seed, grids and start/end times.
cases.csv lists the run's cases (one per case x dtype) so a resume does not depend on grids that may
have changed since; `repair_results` readies a results.csv cut by an interruption for appending.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.cases.descriptor import Case, format_descriptor, parse_case
from harness.results import COLUMNS, RESULTS_FILE
from harness.settings import RunSettings

RUN_FILE = "run.json"


class RunFolderError(ValueError):
    """A folder that cannot hold a new run (exists with results, is a file) or is not a run."""


def default_run_dir(root: Path, grids: tuple[str, ...]) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    label = "-".join(Path(g).stem for g in grids)[:40] or "cases"
    candidate = root / f"{stamp}-{label}"
    suffix = 1
    while candidate.exists():
        suffix += 1
        candidate = root / f"{stamp}-{label}-{suffix}"
    return candidate


def create(directory: Path) -> Path:
    """Make a fresh run folder; refuse a file or a folder that already holds anything."""
    if directory.exists() and not directory.is_dir():
        raise RunFolderError(f"output folder {directory} is a file")
    if directory.is_dir() and any(directory.iterdir()):
        raise RunFolderError(f"output folder {directory} is not empty: a run never overwrites another "
                             f"(use --resume {directory} to continue it, or pick a new -o)")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def write_metadata(directory: Path, settings: RunSettings, versions: dict[str, str], **extra) -> None:
    """Write (or update) run.json with the settings, versions, platform and times."""
    from harness import __version__

    previous = read_metadata(directory) if (directory / RUN_FILE).exists() else {}
    data = {
        **previous,
        "harness_version": __version__,
        "settings": asdict(settings),
        "backend_versions": versions,
        "platform": {"python": sys.version.split()[0], "system": platform.platform(), "machine": platform.machine(),
                     "processor": platform.processor()},
        "started": previous.get("started", datetime.now(UTC).isoformat(timespec="seconds")),
        **extra,
    }
    _write_json(directory, data)


def _write_json(directory: Path, data: dict) -> None:
    """Replace run.json atomically: an interruption leaves the old file or the new one, never half of one."""
    temporary = directory / (RUN_FILE + ".tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(temporary, directory / RUN_FILE)


def read_metadata(directory: Path) -> dict:
    path = directory / RUN_FILE
    if not path.is_file():
        raise RunFolderError(f"{directory} is not a convparity run folder (no {RUN_FILE})")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunFolderError(f"{path} is damaged: {error}") from None
    if not isinstance(data, dict):
        raise RunFolderError(f"{path} is damaged: not a JSON object")
    return data


def finish(directory: Path, started: float) -> None:
    data = read_metadata(directory)
    data["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    data["seconds"] = round(data.get("seconds", 0.0) + time.perf_counter() - started, 3)
    _write_json(directory, data)


# -- resuming ----------------------------------------------------------------------------------------

CASES_FILE = "cases.csv"
CASE_COLUMNS = ("descriptor", "bias", "dtype", "name")


def read_settings(directory: Path) -> RunSettings:
    """The settings a run was started with, from its run.json."""
    stored: Any = read_metadata(directory).get("settings")
    try:
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()}
        return RunSettings(**fields)
    except (AttributeError, TypeError) as error:
        raise RunFolderError(f"{directory / RUN_FILE}: settings not understood ({error})") from None


def write_cases(directory: Path, cases: list[Case]) -> None:
    """Save the run's expanded cases (one per case x dtype, in order) so a resume needs no grid."""
    temporary = directory / (CASES_FILE + ".tmp")
    with temporary.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(CASE_COLUMNS)
        writer.writerows((format_descriptor(c.spec), c.spec.bias, c.spec.dtype, c.name) for c in cases)
    os.replace(temporary, directory / CASES_FILE)


def read_cases(directory: Path) -> list[Case]:
    """The cases saved by `write_cases`, each with its dtype and bias."""
    path = directory / CASES_FILE
    if not path.is_file():
        raise RunFolderError(f"{directory} has no {CASES_FILE}: the run stopped before it started; start it anew")
    with path.open(newline="") as file:
        rows = list(csv.reader(file))
    if not rows or tuple(rows[0]) != CASE_COLUMNS:
        raise RunFolderError(f"{path}: expected the columns {', '.join(CASE_COLUMNS)}")
    cases = []
    for number, (descriptor, bias, dtype, name) in enumerate(rows[1:], start=2):
        try:
            case = parse_case(descriptor, dtype=dtype, bias=bias == "True")
        except ValueError as error:
            raise RunFolderError(f"{path}:{number}: {error}") from None
        cases.append(Case(case.spec, name))
    return cases


def repair_results(directory: Path) -> set[tuple[str, bool, str, str]]:
    """Make results.csv fit to append to after an interruption; return the (case, bias, dtype, backend) done.

    A run killed mid-write can leave a cut last line, or some but not all tensor rows of a
    (case, bias, dtype, backend). Both are removed (the file is rewritten only then), so the resumed
    run writes each of them whole, once. Done means every tensor row of the case is present.
    """
    path = directory / RESULTS_FILE
    if not path.is_file():
        return set()
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    records = _records(text)
    if not records or not records[0][2]:
        kept = ""  # not even a whole header
        done: set[tuple[str, bool, str, str]] = set()
    else:
        header = records[0][1]
        if tuple(header) != COLUMNS:
            raise RunFolderError(f"{path} has other columns than this version writes; cannot resume it")
        rows = [(span, fields) for span, fields, whole in records[1:] if whole and len(fields) == len(COLUMNS)]
        columns = [COLUMNS.index(c) for c in ("case", "bias", "dtype", "backend")]
        tensors: dict[tuple[str, ...], set[str]] = {}
        for _, fields in rows:
            tensors.setdefault(tuple(fields[i] for i in columns), set()).add(fields[COLUMNS.index("tensor")])
        complete = {key for key, found in tensors.items() if len(found) == (4 if key[1] == "True" else 3)}
        kept = text[: records[0][0][1]] + "".join(
            text[start:end] for (start, end), fields in rows if tuple(fields[i] for i in columns) in complete
        )
        done = {(case, bias == "True", dtype, backend) for case, bias, dtype, backend in complete}
    if kept != text:
        temporary = path.with_suffix(".csv.tmp")
        temporary.write_bytes(kept.encode("utf-8", errors="surrogateescape"))
        os.replace(temporary, path)
    return done


def _records(text: str) -> list[tuple[tuple[int, int], list[str], bool]]:
    """CSV records of `text` with their (start, end) offsets and whether each ends with a line break."""
    lines = io.StringIO(text, newline="")
    offset = 0

    def counted():
        nonlocal offset
        for line in lines:
            offset += len(line)
            yield line

    records: list[tuple[tuple[int, int], list[str], bool]] = []
    start = 0
    reader = csv.reader(counted())
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return records
        except csv.Error:  # a quoted field cut by the interruption
            return records
        records.append(((start, offset), fields, text[start:offset].endswith(("\n", "\r"))))
        start = offset
