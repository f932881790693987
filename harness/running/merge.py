"""`convparity merge OUT DIR1 DIR2 ...`: the shards of one sweep joined into one run folder.

Every folder must be a finished shard (`run --shard K/N`) of the same sweep, and together they must be
all N shards, each once. The same sweep means: the same case selection and case limit, the same
settings (all but `jobs` and `compile_cache`, which change no row), the same harness version and
commit, the same backend versions and the same unavailable backends. Anything else is a mixture and
is refused with a MergeError naming the folder and what differs. Platforms may differ (a CI matrix
runs on several machines): run.json keeps each shard's.

The merged folder holds every shard's cases (cases.csv) and rows (results.csv), shard by shard, so its
rows are those of an unsharded run of the sweep (apart from `seconds`), and the reports of them.
Its run.json is the shards' with `merged_from` (the folders) and `shards` (each one's shard, platform,
executor, times); `seconds` is the longest shard's and `timing` the sum of theirs. A merged folder is
complete: it cannot be resumed (resume an interrupted shard before merging).
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convparity.harness.results import COLUMNS, RESULTS_FILE
from convparity.harness.running import run_folder
from convparity.harness.running.executor import PoolTiming
from convparity.harness.running.run_folder import CASE_COLUMNS, CASES_FILE, RunFolderError
from convparity.harness.running.shards import Shard, ShardError
from convparity.harness.settings import RunSettings

SAME_FIELDS = ("harness_version", "harness_commit", "selection", "max_cases", "backend_versions", "unavailable")
IGNORED_SETTINGS = ("jobs", "compile_cache")


class MergeError(RunFolderError):
    """Folders that cannot be merged: not finished shards, shards of different sweeps, missing or repeated shards."""


@dataclass(frozen=True)
class MergedRun:
    path: Path
    shards: int
    cases: int
    rows: int


def _shard_of(path: Path, metadata: dict[str, Any]) -> Shard:
    if not metadata.get("shard"):
        raise MergeError(f"{path} is not a shard (run.json has no shard: it was not run with --shard K/N)")
    try:
        return Shard.from_json(metadata["shard"])
    except ShardError as error:
        raise MergeError(f"{path / run_folder.RUN_FILE}: {error}") from None


def _settings(metadata: dict[str, Any]) -> dict[str, Any]:
    settings = RunSettings.from_json(metadata["settings"]).to_json()
    return {name: value for name, value in settings.items() if name not in IGNORED_SETTINGS}


def check_shards(folders: Sequence[Path]) -> list[tuple[Path, Shard, dict[str, Any]]]:
    """The folders' (path, shard, run.json) in shard order, once they are shown to be the whole of one
    sweep; MergeError otherwise."""
    if not folders:
        raise MergeError("no shard folders to merge")
    found = []
    for path in folders:
        metadata = run_folder.read_metadata(path)
        shard = _shard_of(path, metadata)
        if metadata.get("status") != "finished":
            raise MergeError(f"{path} (shard {shard}) is {metadata.get('status')}, not finished: "
                             f"continue it with: convparity run --resume {path}")
        found.append((path, shard, metadata))
    first_path, first_shard, first = found[0]
    for path, shard, metadata in found[1:]:
        if shard.count != first_shard.count:
            raise MergeError(f"{path} is shard {shard} but {first_path} is shard {first_shard}: "
                             "shards of differently split sweeps")
        for name in SAME_FIELDS:
            if metadata.get(name) != first.get(name):
                raise MergeError(f"{path} and {first_path} are shards of different sweeps: {name} differs "
                                 f"({metadata.get(name)!r} vs {first.get(name)!r})")
        mine, theirs = _settings(metadata), _settings(first)
        for name in mine:
            if mine[name] != theirs[name]:
                raise MergeError(f"{path} and {first_path} are shards of different sweeps: setting {name} differs "
                                 f"({mine[name]!r} vs {theirs[name]!r})")
    by_index: dict[int, Path] = {}
    for path, shard, _ in found:
        if shard.index in by_index:
            raise MergeError(f"shard {shard} is given twice: {by_index[shard.index]} and {path}")
        by_index[shard.index] = path
    missing = [f"{index}/{first_shard.count}" for index in range(1, first_shard.count + 1) if index not in by_index]
    if missing:
        raise MergeError(f"shard {', '.join(missing)} missing: a merge needs all {first_shard.count} shards")
    return sorted(found, key=lambda entry: entry[1].index)


def _csv_body(path: Path, columns: tuple[str, ...]):
    """The records of a CSV file after its header, which must be `columns` (an empty or absent file has none)."""
    if not path.is_file():
        return
    with path.open(newline="", encoding="utf-8", errors="surrogateescape") as file:
        reader = csv.reader(file)
        header = next(reader, None)
        if header is None:
            return
        if tuple(header) != columns:
            raise MergeError(f"{path}: expected the columns {', '.join(columns)}")
        yield from reader


def merge(out: str | Path, folders: Sequence[str | Path]) -> MergedRun:
    """Merge the shard folders into the new run folder `out` (see module) and write its reports."""
    out = Path(out)
    shards = check_shards([Path(f) for f in folders])
    if any(out.resolve() == path.resolve() for path, _, _ in shards):
        raise MergeError(f"the merged folder {out} must be a new folder, not one of the shards")
    run_folder.create(out)
    cases, rows = 0, 0
    with run_folder.lock(out):
        seen: dict[tuple[str, ...], Path] = {}
        try:
            with (out / CASES_FILE).open("w", newline="", encoding="utf-8", errors="surrogateescape") as cases_file, \
                    (out / RESULTS_FILE).open("w", newline="", encoding="utf-8",
                                              errors="surrogateescape") as results_file:
                case_writer, row_writer = csv.writer(cases_file), csv.writer(results_file)
                case_writer.writerow(CASE_COLUMNS)
                row_writer.writerow(COLUMNS)
                for path, _, _ in shards:
                    for record in _csv_body(path / CASES_FILE, CASE_COLUMNS):
                        key = tuple(record[:3])
                        if key in seen:
                            raise MergeError(f"shards {seen[key]} and {path} both ran {' '.join(key)}: they were "
                                             "not split from the same sweep by this version")
                        seen[key] = path
                        case_writer.writerow(record)
                        cases += 1
                    for record in _csv_body(path / RESULTS_FILE, COLUMNS):
                        row_writer.writerow(record)
                        rows += 1
            run_folder.write_metadata(out, merged_metadata(shards))
        except BaseException as error:  # a refused or interrupted merge leaves no half-merged folder behind
            shutil.rmtree(out, ignore_errors=True)
            if isinstance(error, OSError):
                raise run_folder.os_error(out, error) from None
            raise
    from convparity.harness.reporting.summaries import write_reports

    write_reports(out)
    return MergedRun(out, len(shards), cases, rows)


def merged_metadata(shards: list[tuple[Path, Shard, dict[str, Any]]]) -> dict[str, Any]:
    """run.json of the merged folder (see module)."""
    metadata = {key: value for key, value in shards[0][2].items()
                if key not in ("shard", "executor", "timing", "platform", "worker_environment")}
    metadata.update(
        status="finished",
        merged_from=[str(path) for path, _, _ in shards],
        shards=[{"path": str(path), "shard": str(shard), "started": data.get("started"),
                 "finished": data.get("finished"), "seconds": data.get("seconds"), "platform": data.get("platform"),
                 "executor": data.get("executor")} for path, shard, data in shards],
        platform=shards[0][2].get("platform", {}),
        started=min(str(data.get("started", "")) for _, _, data in shards),
        finished=max(str(data.get("finished", "")) for _, _, data in shards),
        seconds=max(float(data.get("seconds", 0.0)) for _, _, data in shards),
        timing=PoolTiming.add(*(data.get("timing", {}) for _, _, data in shards)),
    )
    return metadata
