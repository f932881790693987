"""A run's folder: reports/<run-name>/ with run.json, cases.csv, results.csv and the reports.

- A run never overwrites an earlier one: a new run needs a folder that does not exist or is empty.
- One writer at a time: a run or resume holds an OS lock on the folder (`lock`); a second writer is
  refused with one line.
- run.json records the settings and the case selection (so `--resume DIR` needs nothing else),
  every backend's version and every unavailable one's reason, the platform, the harness version
  and commit, start/end times and `status`: running, finished or interrupted. It is validated when
  read, never trusted silently.
- cases.csv is the log of the cases drawn so far (one per case x dtype, in order), appended before
  each case runs; results.csv the rows of the cases finished. A resume reads both, drops what an
  interruption cut (and any duplicate row, reported), and draws the rest of the selection.
- Every file is written whole or not at all (`atomic_write`): a temporary file renamed into place.
  An OS error (read-only or full disk) is a RunFolderError naming the path and the error.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.cases.descriptor import Case, DescriptorError, format_descriptor, parse_case
from harness.cases.grids import GridError
from harness.cases.selection import CaseSelection
from harness.cases.spec import DTYPES
from harness.results import COLUMNS, RESULTS_FILE, bias_word
from harness.settings import RunSettings, SettingsError

RUN_FILE = "run.json"
CASES_FILE = "cases.csv"
LOCK_FILE = ".convparity.lock"
CASE_COLUMNS = ("descriptor", "bias", "dtype", "name")
RUN_STATUSES = ("running", "finished", "interrupted")


class RunFolderError(ValueError):
    """A folder that cannot hold a new run, is not a run, is damaged, locked, or cannot be written."""


def os_error(path: Path, error: OSError) -> RunFolderError:
    """One line naming the path and the OS error (read-only file system, no space left, ...)."""
    return RunFolderError(f"cannot write {error.filename or path}: {error.strerror or error}")


def atomic_write(path: Path, write: Callable[[Any], None]) -> Path:
    """Write `path` whole or not at all: `write(file)` fills a temporary text file (UTF-8, undecodable
    bytes kept as surrogate escapes) that is renamed into place.

    On any failure (an OS error, an interrupt) the temporary file is removed and `path` is untouched.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8", errors="surrogateescape", newline="") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(error, OSError):
            raise os_error(path, error) from None
        raise
    return path


def default_run_dir(root: Path, grids: tuple[str, ...]) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    label = "".join(c if c.isalnum() or c in "-_." else "_" for c in "-".join(Path(g).stem for g in grids))[:40]
    candidate = root / f"{stamp}-{label or 'cases'}"
    suffix = 1
    while candidate.exists():
        suffix += 1
        candidate = root / f"{stamp}-{label or 'cases'}-{suffix}"
    return candidate


def create(directory: Path) -> Path:
    """Make a fresh run folder; refuse a file or a folder that already holds anything."""
    if directory.exists() and not directory.is_dir():
        raise RunFolderError(f"output folder {directory} is a file")
    if directory.is_dir() and any(entry.name != LOCK_FILE for entry in directory.iterdir()):
        raise RunFolderError(f"output folder {directory} is not empty: a run never overwrites another "
                             f"(use --resume {directory} to continue it, or pick a new -o)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise os_error(directory, error) from None
    return directory


@contextmanager
def lock(directory: Path) -> Iterator[None]:
    """Hold the folder's writer lock (an OS lock, released even if the process is killed)."""
    import fcntl

    path = directory / LOCK_FILE
    try:
        handle = open(path, "a+")
    except OSError as error:
        raise os_error(path, error) from None
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RunFolderError(f"{directory} is being written by {holder}: one run or resume at a time") from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"convparity pid {os.getpid()}")
            handle.flush()
        except OSError:  # a full disk: the lock holds all the same, only its holder's name is missing
            pass
        yield
    finally:
        if not (directory / RUN_FILE).exists():  # nothing was started: leave the folder as empty as it was
            path.unlink(missing_ok=True)
        handle.close()


# -- run.json ------------------------------------------------------------------------------------------

def harness_commit() -> str:
    """The git commit of the harness source, when it runs from a checkout ("" otherwise)."""
    source = Path(__file__).resolve().parents[2]
    if not (source / ".git").exists():
        return ""
    try:
        done = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def new_metadata(settings: RunSettings, selection: CaseSelection) -> dict[str, Any]:
    from harness import __version__

    return {
        "harness_version": __version__,
        "harness_commit": harness_commit(),
        "status": "running",
        "settings": settings.to_json(),
        "selection": selection.to_json(),
        "batch_files": selection.batch_summaries(),
        "backend_versions": {},
        "unavailable": {},
        "platform": {"python": sys.version.split()[0], "system": platform.platform(), "machine": platform.machine(),
                     "processor": platform.processor()},
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": 0.0,
    }


def write_metadata(directory: Path, data: dict[str, Any]) -> None:
    """Replace run.json whole (never half of one)."""
    atomic_write(directory / RUN_FILE, lambda file: file.write(json.dumps(data, indent=2) + "\n"))


def read_metadata(directory: Path) -> dict[str, Any]:
    """run.json, checked: RunFolderError naming the field at fault when it is damaged or hand-edited wrongly."""
    path = directory / RUN_FILE
    if not path.is_file():
        raise RunFolderError(f"{directory} is not a convparity run folder (no {RUN_FILE})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunFolderError(f"{path} is damaged: {error}") from None
    except OSError as error:
        raise RunFolderError(f"cannot read {path}: {error.strerror}") from None
    if not isinstance(data, dict):
        raise RunFolderError(f"{path} is damaged: not a JSON object")
    try:
        RunSettings.from_json(data.get("settings"))
        if "selection" in data:
            CaseSelection.from_json(data["selection"])
    except (SettingsError, GridError) as error:
        raise RunFolderError(f"{path}: {error}") from None
    if data.get("status", "finished") not in RUN_STATUSES:
        raise RunFolderError(f"{path}: status must be one of {', '.join(RUN_STATUSES)}, got {data['status']!r}")
    for field in ("backend_versions", "unavailable"):
        value = data.get(field, {})
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise RunFolderError(f"{path}: {field} must map backend names to text, got {value!r}")
    return data


def mark_interrupted(directory: Path) -> None:
    """Set run.json's status to "interrupted" (the reports of a finished sweep were cut short)."""
    data = read_metadata(directory)
    data["status"] = "interrupted"
    write_metadata(directory, data)


def read_settings(directory: Path) -> RunSettings:
    return RunSettings.from_json(read_metadata(directory)["settings"])


def read_selection(directory: Path) -> CaseSelection:
    data = read_metadata(directory)
    if "selection" not in data:
        raise RunFolderError(f"{directory / RUN_FILE} has no case selection: it was written by an older "
                             "convparity and cannot be resumed")
    return CaseSelection.from_json(data["selection"])


# -- cases.csv: the cases drawn so far -----------------------------------------------------------------

class CaseLog:
    """Appends each case (with its dtype) to cases.csv before it runs, flushed at once."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / CASES_FILE
        try:
            new = not self.path.exists() or self.path.stat().st_size == 0
            self._file = self.path.open("a", newline="", encoding="utf-8")
            self._writer = csv.writer(self._file)
            if new:
                self._writer.writerow(CASE_COLUMNS)
                self._file.flush()
        except OSError as error:
            raise os_error(self.path, error) from None

    def append(self, case: Case) -> None:
        spec = case.spec
        try:
            self._writer.writerow((format_descriptor(spec), bias_word(spec.bias), spec.dtype, case.name))
            self._file.flush()
        except OSError as error:
            raise os_error(self.path, error) from None

    def close(self) -> None:
        self._file.close()


def read_cases(directory: Path) -> list[Case]:
    """The cases logged in cases.csv, in order, each with its dtype and bias; a cut last line is dropped
    (and removed from the file); a damaged line is a RunFolderError naming it."""
    path = directory / CASES_FILE
    if not path.is_file():
        return []
    text = _read_for_repair(path)
    records = _records(text)
    if not records or not records[0][2]:
        _rewrite(path, "")
        return []
    if tuple(records[0][1]) != CASE_COLUMNS:
        raise RunFolderError(f"{path}: expected the columns {', '.join(CASE_COLUMNS)}")
    cases = []
    whole = [r for r in records[1:] if r[2]]
    for number, (_, fields, _) in enumerate(whole, start=2):
        if len(fields) != len(CASE_COLUMNS):
            raise RunFolderError(f"{path}:{number}: expected {len(CASE_COLUMNS)} fields, got {len(fields)}")
        descriptor, bias, dtype, name = fields
        if bias not in ("on", "off") or dtype not in DTYPES:
            raise RunFolderError(f"{path}:{number}: bias must be on/off and dtype one of {', '.join(DTYPES)}")
        try:
            case = parse_case(descriptor, dtype=dtype, bias=bias == "on")
        except (DescriptorError, ValueError) as error:
            raise RunFolderError(f"{path}:{number}: {error}") from None
        cases.append(Case(case.spec, name))
    kept = text[: (whole[-1][0][1] if whole else records[0][0][1])]
    if kept != text:
        _rewrite(path, kept)
    return cases


# -- results.csv: readied for appending ------------------------------------------------------------------

@dataclass(frozen=True)
class Repair:
    """What readying results.csv for a resume found: the (case, bias, dtype, backend) keys done, and
    how many rows it dropped as cut or incomplete, or as duplicates of rows before them."""

    done: set[tuple[str, bool, str, str]]
    dropped_incomplete: int
    dropped_duplicates: int


def repair_results(directory: Path) -> Repair:
    """Make results.csv fit to append to after an interruption.

    A run killed mid-write can leave a cut last line, or some but not all tensor rows of a
    (case, bias, dtype, backend); a second writer (before runs were locked) may have written rows twice.
    Cut and incomplete groups are removed, a repeated row keeps its first copy, and the file is
    rewritten only then. Done means every tensor row of the key is present.
    """
    path = directory / RESULTS_FILE
    if not path.is_file():
        return Repair(set(), 0, 0)
    text = _read_for_repair(path)
    records = _records(text)
    if not records or not records[0][2]:
        _rewrite(path, "")
        return Repair(set(), 0, 0)
    if tuple(records[0][1]) != COLUMNS:
        raise RunFolderError(f"{path} has other columns than this version writes; cannot resume it")
    key_columns = [COLUMNS.index(c) for c in ("case", "bias", "dtype", "backend")]
    tensor_column = COLUMNS.index("tensor")
    seen: set[tuple[str, ...]] = set()
    rows, duplicates, cut = [], 0, 0
    for span, fields, whole in records[1:]:
        if not whole or len(fields) != len(COLUMNS):
            cut += 1
            continue
        full_key = tuple(fields[i] for i in key_columns) + (fields[tensor_column],)
        if full_key in seen:
            duplicates += 1
            continue
        seen.add(full_key)
        rows.append((span, full_key))
    tensors: dict[tuple[str, ...], int] = {}
    for _, full_key in rows:
        tensors[full_key[:4]] = tensors.get(full_key[:4], 0) + 1
    complete = {key for key, count in tensors.items() if count == (4 if key[1] == "on" else 3)}
    kept_rows = [(span, key) for span, key in rows if key[:4] in complete]
    kept = text[: records[0][0][1]] + "".join(text[start:end] for (start, end), _ in kept_rows)
    if kept != text:
        _rewrite(path, kept)
    done = {(case, bias == "on", dtype, backend) for case, bias, dtype, backend in complete}
    return Repair(done, len(rows) - len(kept_rows) + cut, duplicates)


def _read_for_repair(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", errors="surrogateescape")
    except OSError as error:
        raise RunFolderError(f"cannot read {path}: {error.strerror}") from None


def _rewrite(path: Path, text: str) -> None:
    atomic_write(path, lambda file: file.write(text))


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


def status_counts(directory: Path) -> dict[str, int]:
    """How many rows of results.csv have each status (read as a stream, in bounded memory)."""
    path = directory / RESULTS_FILE
    counts: dict[str, int] = {}
    if not path.is_file():
        return counts
    column = COLUMNS.index("status")
    with path.open(newline="", encoding="utf-8", errors="replace") as file:
        for fields in itertools.islice(csv.reader(file), 1, None):
            if len(fields) == len(COLUMNS):
                counts[fields[column]] = counts.get(fields[column], 0) + 1
    return counts
