"""A run's folder: reports/<run-name>/ with results.csv, run.json and the summaries.

A run never overwrites an earlier one: a new run needs a folder that does not exist or is empty.
run.json records the settings (so `--resume DIR` needs nothing else), every backend's version,
the platform, harness version, seed, grids and start/end times.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from harness.runner import RunSettings

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

    path = directory / RUN_FILE
    previous = json.loads(path.read_text()) if path.exists() else {}
    data = {
        **previous,
        "harness_version": __version__,
        "settings": asdict(settings),
        "backend_versions": versions,
        "platform": {"python": sys.version.split()[0], "system": platform.platform(), "machine": platform.machine(),
                     "processor": platform.processor()},
        "started": previous.get("started", datetime.now(timezone.utc).isoformat(timespec="seconds")),
        **extra,
    }
    path.write_text(json.dumps(data, indent=2) + "\n")


def read_metadata(directory: Path) -> dict:
    path = directory / RUN_FILE
    if not path.is_file():
        raise RunFolderError(f"{directory} is not a convparity run folder (no {RUN_FILE})")
    return json.loads(path.read_text())


def finish(directory: Path, started: float) -> None:
    data = read_metadata(directory)
    data["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    data["seconds"] = round(data.get("seconds", 0.0) + time.perf_counter() - started, 3)
    (directory / RUN_FILE).write_text(json.dumps(data, indent=2) + "\n")
