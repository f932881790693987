"""A run's folder: reports/<run-name>/ with run.json, cases.csv, results.csv and the reports.

- A run never overwrites an earlier one: a new run needs a folder that does not exist or is empty
  (`create`).
- run.json is the folder's `RunRecord` (harness.running.run_record): `read_record` validates it,
  `write_record` replaces it whole. A record whose status says "running" while no process holds the
  folder's lock (harness.running.folder_lock) was killed: it reads as "interrupted".
- The logs (cases.csv, results.csv) are harness.running.run_logs'.
- Every file is written whole or not at all (harness.files.atomic_write); an OS error (read-only or
  full disk) is a RunFolderError naming the path and the error.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from importlib import metadata
from pathlib import Path

from convparity.harness.files import RunFolderError, atomic_write, os_error
from convparity.harness.running.folder_lock import LOCK_FILE, is_locked
from convparity.harness.running.run_record import RunRecord, RunRecordError

RUN_FILE = "run.json"


def default_run_dir(root: Path, grids: tuple[str, ...]) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    label = "".join(c if c.isalnum() or c in "-_." else "_" for c in "-".join(Path(g).stem for g in grids))[:40]
    candidate = root / f"{stamp}-{label or 'cases'}"
    suffix = 1
    while candidate.exists():
        suffix += 1
        candidate = root / f"{stamp}-{label or 'cases'}-{suffix}"
    return candidate


def create(directory: Path, prepared: tuple[str, ...] = ()) -> Path:
    """Make a fresh run folder; refuse a file or a folder that already holds anything (but the entries named in
    `prepared`, which the starting run wrote itself: a model's weights)."""
    if directory.exists() and not directory.is_dir():
        raise RunFolderError(f"output folder {directory} is a file")
    if directory.is_dir() and any(entry.name not in (LOCK_FILE, *prepared) for entry in directory.iterdir()):
        raise RunFolderError(f"output folder {directory} is not empty: a run never overwrites another "
                             f"(use --resume {directory} to continue it, or pick a new -o)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise os_error(directory, error) from None
    return directory


def read_record(directory: Path) -> RunRecord:
    """The folder's run.json, checked: RunFolderError when there is none, RunRecordError naming the field at
    fault when it is damaged or hand-edited wrongly."""
    path = directory / RUN_FILE
    if not path.is_file():
        raise RunFolderError(f"{directory} is not a convparity run folder (no {RUN_FILE})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunRecordError(f"{path} is damaged: {error}") from None
    except OSError as error:
        raise RunFolderError(f"cannot read {path}: {error.strerror}") from None
    record = RunRecord.from_json(data, str(path))
    if record.status == "running" and not is_locked(directory):
        record.status = "interrupted"  # killed, or stopped when run.json could not be written (a full disk)
    return record


def write_record(directory: Path, record: RunRecord) -> None:
    """Replace run.json whole (never half of one)."""
    text = json.dumps(record.to_json(), indent=2) + "\n"
    atomic_write(directory / RUN_FILE, lambda file: file.write(text))


def harness_commit() -> str:
    """The git commit convparity was built from: the checkout's HEAD when it runs from one, else what the build
    recorded in the package (convparity.harness._build, written by setup.py), else its metadata's commit
    (direct_url.json, for pip installs from a VCS URL), else ""."""
    source = Path(__file__).resolve().parents[2]
    if (source / ".git").exists():
        try:
            done = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True,
                                  timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            done = None
        if done is not None and done.returncode == 0:
            return done.stdout.strip()
    return _built_commit()


def _built_commit() -> str:
    import importlib

    try:
        recorded = getattr(importlib.import_module("convparity.harness._build"), "COMMIT", "")
    except ImportError:
        recorded = ""
    if isinstance(recorded, str) and recorded:
        return recorded
    try:
        text = metadata.distribution("convparity").read_text("direct_url.json") or ""
    except metadata.PackageNotFoundError:
        return ""
    commit = json.loads(text).get("vcs_info", {}).get("commit_id", "") if text.strip() else ""
    return commit if isinstance(commit, str) else ""
