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

from convparity.harness.cases.descriptor import Case, DescriptorError, format_descriptor, parse_case
from convparity.harness.cases.grids import GridError
from convparity.harness.cases.selection import CaseSelection
from convparity.harness.cases.spec import DTYPES
from convparity.harness.results import COLUMNS, RESULTS_FILE, CsvAppender, bias_word
from convparity.harness.settings import RunSettings, SettingsError

RUN_FILE = "run.json"
CASES_FILE = "cases.csv"
LOCK_FILE = ".convparity.lock"
CASE_COLUMNS = ("descriptor", "bias", "dtype", "name", "tensors")
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
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise os_error(path, error) from None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 200, 0).decode(errors="replace").strip() or "another process"
            raise RunFolderError(f"{directory} is being written by {holder}: one run or resume at a time") from None
        try:
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, f"convparity pid {os.getpid()}".encode(), 0)
        except OSError:  # a full disk: the lock holds all the same, only its holder's name is missing
            pass
        yield
    finally:
        if not (directory / RUN_FILE).exists():  # nothing was started: leave the folder as empty as it was
            path.unlink(missing_ok=True)
        os.close(descriptor)


def is_locked(directory: Path) -> bool:
    """Whether a run or resume holds the folder's lock now."""
    import fcntl

    try:
        descriptor = os.open(directory / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False


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
    from convparity import __version__

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
    if data.get("status") == "running" and not is_locked(directory):
        data["status"] = "interrupted"  # killed, or stopped when run.json could not be written (a full disk)
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

class CaseLog(CsvAppender):
    """Appends each case (with its dtype and compared tensors) to cases.csv before it runs."""

    def __init__(self, directory: Path) -> None:
        try:
            super().__init__(directory / CASES_FILE, CASE_COLUMNS)
        except OSError as error:
            raise os_error(directory / CASES_FILE, error) from None

    def log(self, case: Case) -> None:
        spec = case.spec
        try:
            self.append([(format_descriptor(spec), bias_word(spec.bias), spec.dtype, case.name,
                          " ".join(case.tensors))])
        except OSError as error:
            raise os_error(self.path, error) from None


def read_cases(directory: Path) -> Iterator[Case]:
    """The cases logged in cases.csv, in order, as a stream: each with its dtype, bias and tensors. A cut
    last line is removed from the file first; a damaged line is a RunFolderError naming it."""
    path = directory / CASES_FILE
    if not path.is_file():
        return iter(())
    _drop_cut_tail(path, CASE_COLUMNS)
    return _parse_cases(path)


def _parse_cases(path: Path) -> Iterator[Case]:
    for number, (_, fields) in enumerate(_csv_records(path), start=1):
        if number == 1:
            continue
        if len(fields) != len(CASE_COLUMNS):
            raise RunFolderError(f"{path}:{number}: expected {len(CASE_COLUMNS)} fields, got {len(fields)}")
        descriptor, bias, dtype, name, tensors = fields
        if bias not in ("on", "off") or dtype not in DTYPES:
            raise RunFolderError(f"{path}:{number}: bias must be on/off and dtype one of {', '.join(DTYPES)}")
        try:
            case = parse_case(descriptor, dtype=dtype, bias=bias == "on")
            yield Case(case.spec, name, tensors=tuple(tensors.split()))
        except (DescriptorError, ValueError) as error:
            raise RunFolderError(f"{path}:{number}: {error}") from None


def count_cases(directory: Path) -> int:
    """How many cases cases.csv logs (read as a stream)."""
    path = directory / CASES_FILE
    return max(sum(1 for _ in _csv_records(path)) - 1, 0) if path.is_file() else 0


# -- results.csv: readied for appending ------------------------------------------------------------------

@dataclass(frozen=True)
class Repair:
    """What readying results.csv for a resume found: the (case, bias, dtype, backend) keys done, and
    how many rows it dropped as cut or incomplete, or as duplicates of rows before them."""

    done: set[tuple[str, bool, str, str]]
    dropped_incomplete: int
    dropped_duplicates: int


def repair_results(directory: Path, compared: Callable[[str, bool, str], int] | None = None) -> Repair:
    """Make results.csv fit to append to after an interruption; read and rewritten as a stream.

    A run killed mid-write can leave a cut last line, or some but not all tensor rows of a
    (case, bias, dtype, backend); a second writer (before runs were locked) may have written rows twice.
    Cut and incomplete groups are removed, a repeated row keeps its first copy, and the file is
    rewritten only then. Done means every tensor the case compares has its row: `compared(case, bias,
    dtype)` says how many (default: 4 with a bias, 3 without).
    """
    path = directory / RESULTS_FILE
    if not path.is_file():
        return Repair(set(), 0, 0)
    _drop_cut_tail(path, COLUMNS)
    expected = compared or (lambda case, bias, dtype: 4 if bias else 3)
    key_columns = [COLUMNS.index(c) for c in ("case", "bias", "dtype", "backend")]
    tensor_column = COLUMNS.index("tensor")
    seen: dict[tuple[str, ...], set[str]] = {}
    duplicates = malformed = 0
    for number, (_, fields) in enumerate(_csv_records(path), start=1):
        if number == 1:
            continue
        if len(fields) != len(COLUMNS):
            malformed += 1
            continue
        tensors = seen.setdefault(tuple(fields[i] for i in key_columns), set())
        if fields[tensor_column] in tensors:
            duplicates += 1
        tensors.add(fields[tensor_column])
    complete = {key for key, tensors in seen.items() if len(tensors) >= expected(key[0], key[1] == "on", key[2])}
    dropped = 0
    if duplicates or malformed or len(complete) < len(seen):
        written: set[tuple[str, ...]] = set()

        def keep(file) -> None:
            nonlocal dropped
            for number, (raw, fields) in enumerate(_csv_records(path), start=1):
                whole = len(fields) == len(COLUMNS)
                full = tuple(fields[i] for i in key_columns) + (fields[tensor_column],) if whole else ()
                if number == 1 or (whole and full[:4] in complete and full not in written):
                    file.write(raw)
                    written.add(full)
                elif not whole or full[:4] not in complete:
                    dropped += 1

        atomic_write(path, keep)
    done = {(case, bias == "on", dtype, backend) for case, bias, dtype, backend in complete}
    return Repair(done, dropped, duplicates)


def _drop_cut_tail(path: Path, header: tuple[str, ...]) -> None:
    """Remove what an interruption cut from the end of an appended CSV file: a last record without its line
    break (or with a quoted field left open). Other columns than `header` are a RunFolderError."""
    whole_end, first = 0, None
    for raw, fields in _csv_records(path, whole_only=False):
        if first is None:
            first = fields
        if not raw.endswith(("\n", "\r")) or not fields:
            break
        whole_end += len(raw.encode("utf-8", errors="surrogateescape"))
    if first is not None and whole_end and tuple(first) != header:
        raise RunFolderError(f"{path} has other columns than this version writes ({', '.join(header)}); "
                             "cannot resume it")
    if whole_end != path.stat().st_size:
        try:
            with path.open("r+b") as file:
                file.truncate(whole_end)
        except OSError as error:
            raise os_error(path, error) from None


def _csv_records(path: Path, whole_only: bool = True) -> Iterator[tuple[str, list[str]]]:
    """(raw text, fields) of each CSV record of `path`, streamed; a record whose quoted field the end of the
    file cuts open is yielded with no fields unless `whole_only`."""
    raw: list[str] = []
    with path.open(newline="", encoding="utf-8", errors="surrogateescape") as file:

        def lines() -> Iterator[str]:
            for line in file:
                raw.append(line)
                yield line

        reader = csv.reader(lines())
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error:  # a quoted field cut by the interruption
                if not whole_only:
                    yield "".join(raw), []
                return
            yield "".join(raw), fields
            raw.clear()


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
