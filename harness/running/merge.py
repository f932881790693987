"""`convparity merge OUT DIR1 DIR2 ...`: the shards of one sweep joined into one run folder.

Every folder must be a finished shard (`run --shard K/N`) of the same sweep, and together they must be
all N shards, each once. The same sweep means: the same case selection and case limit, the same
settings (all but `jobs` and `compile_cache`, which change no row), the same harness version and
commit, the same backend versions and the same unavailable backends. Anything else is a mixture and
is refused with a MergeError naming the folder and what differs. Platforms may differ (a CI matrix
runs on several machines): run.json keeps each shard's.

Every shard must also be whole: its results.csv holds, for each case its cases.csv logs, one row per
compared tensor and available backend, and no row twice; a shard that falls short (rows cut off) or
repeats rows is refused, naming the shard and both counts. A damaged file is named as the shard's.

The merged folder holds every shard's cases (cases.csv) and rows (results.csv), shard by shard, so its
rows are those of an unsharded run of the sweep (apart from `seconds`). It is written in a temporary
folder beside OUT and renamed to OUT at the end, so OUT is whole or absent. Its run.json (kind "merge")
is the shards' with `merged_from` (the folders) and `shards` (each one's shard, platform, executor,
times); `seconds` is the longest shard's and `timing` the sum of theirs. A merged folder is complete: it
cannot be resumed (resume an interrupted shard before merging).
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from convparity.harness.cases.dedupe import SeenSet
from convparity.harness.files import RunFolderError, os_error
from convparity.harness.results import COLUMNS, RESULTS_FILE
from convparity.harness.running import run_folder
from convparity.harness.running.executor import PoolTiming
from convparity.harness.running.run_logs import CASE_COLUMNS, CASES_FILE
from convparity.harness.running.run_record import RunRecord
from convparity.harness.running.shards import Shard

SAME_FIELDS = ("harness_version", "harness_commit", "selection", "max_cases", "backend_versions", "unavailable")
IGNORED_SETTINGS = ("jobs", "compile_cache")


class MergeError(RunFolderError):
    """Folders that cannot be merged: not finished shards, shards of different sweeps, missing, repeated or
    incomplete shards."""


@dataclass(frozen=True)
class MergedRun:
    path: Path
    shards: int
    cases: int
    rows: int


def _shard_of(path: Path, record: RunRecord) -> Shard:
    if record.shard is None:
        raise MergeError(f"{path} is not a shard (run.json has no shard: it was not run with --shard K/N)")
    return record.shard


def _compared_settings(record: RunRecord) -> dict[str, Any]:
    return {name: value for name, value in record.settings.to_json().items() if name not in IGNORED_SETTINGS}


def check_shards(folders: Sequence[Path]) -> list[tuple[Path, Shard, RunRecord]]:
    """The folders' (path, shard, record) in shard order, once they are shown to be the whole of one sweep;
    MergeError otherwise."""
    if not folders:
        raise MergeError("no shard folders to merge")
    found = []
    for path in folders:
        record = run_folder.read_record(path)
        shard = _shard_of(path, record)
        if record.status == "running":
            raise MergeError(f"{path} (shard {shard}) is still being written: merge the shards once it has finished")
        if record.status != "finished":
            raise MergeError(f"{path} (shard {shard}) is {record.status}, not finished: "
                             f"continue it with: convparity run --resume {path}")
        found.append((path, shard, record))
    first_path, first_shard, first = found[0]
    for path, shard, record in found[1:]:
        if shard.count != first_shard.count:
            raise MergeError(f"{path} is shard {shard} but {first_path} is shard {first_shard}: "
                             "shards of differently split sweeps")
        mine, theirs = record.to_json(), first.to_json()
        for name in SAME_FIELDS:
            if mine[name] != theirs[name]:
                raise MergeError(f"{path} and {first_path} are shards of different sweeps: {name} differs "
                                 f"({mine[name]!r} vs {theirs[name]!r})")
        mine_settings, first_settings = _compared_settings(record), _compared_settings(first)
        for name, value in mine_settings.items():
            if value != first_settings[name]:
                raise MergeError(f"{path} and {first_path} are shards of different sweeps: setting {name} differs "
                                 f"({value!r} vs {first_settings[name]!r})")
    by_index: dict[int, Path] = {}
    for path, shard, _ in found:
        if shard.index in by_index:
            raise MergeError(f"shard {shard} is given twice: {by_index[shard.index]} and {path}")
        by_index[shard.index] = path
    missing = [f"{index}/{first_shard.count}" for index in range(1, first_shard.count + 1) if index not in by_index]
    if missing:
        raise MergeError(f"shard {', '.join(missing)} missing: a merge needs all {first_shard.count} shards")
    return sorted(found, key=lambda entry: entry[1].index)


def _records(path: Path, columns: tuple[str, ...], shard: Shard) -> Iterator[list[str]]:
    """The records of a shard's CSV file after its header, which must be `columns` (an absent file has none);
    a damaged file is a MergeError naming it and the shard."""
    if not path.is_file():
        return
    try:
        with path.open(newline="", encoding="utf-8", errors="surrogateescape") as file:
            reader = csv.reader(file)
            header = next(reader, None)
            if header is None:
                return
            if tuple(header) != columns:
                raise MergeError(f"{path} (shard {shard}): expected the columns {', '.join(columns)}")
            for number, record in enumerate(reader, start=2):
                if len(record) != len(columns):
                    raise MergeError(f"{path}:{number} (shard {shard}) is damaged: {len(record)} fields where "
                                     f"{len(columns)} belong")
                yield record
    except csv.Error as error:
        raise MergeError(f"{path} (shard {shard}) is damaged: {error}") from None
    except OSError as error:
        raise MergeError(f"cannot read {path} (shard {shard}): {error.strerror or error}") from None


def check_complete(path: Path, shard: Shard, record: RunRecord) -> tuple[int, int]:
    """(cases, rows) of a shard shown whole: one row per logged case's compared tensor and available backend,
    none twice; MergeError naming the shard and the counts otherwise."""
    backends = [b for b in record.settings.backends if b not in record.unavailable]
    tensors_column, bias_column = CASE_COLUMNS.index("tensors"), CASE_COLUMNS.index("bias")
    cases = expected = 0
    for case in _records(path / CASES_FILE, CASE_COLUMNS, shard):
        cases += 1
        compared = [t for t in case[tensors_column].split() if t != "db" or case[bias_column] == "on"]
        expected += len(compared) * len(backends)
    key_columns = [COLUMNS.index(c) for c in ("case", "bias", "dtype", "backend", "tensor")]
    seen = SeenSet()
    rows = repeated = 0
    try:
        for row in _records(path / RESULTS_FILE, COLUMNS, shard):
            rows += 1
            key = "\x1f".join(row[i] for i in key_columns).encode("utf-8", errors="surrogateescape")
            repeated += not seen.add_key(hashlib.blake2b(key, digest_size=16).digest())
    finally:
        seen.close()
    if repeated:
        raise MergeError(f"{path} (shard {shard}) holds {repeated} repeated row(s) in {RESULTS_FILE}: a shard has each "
                         "row once; run the shard again")
    if rows != expected:
        raise MergeError(f"{path} (shard {shard}) is incomplete: {RESULTS_FILE} has {rows} rows where its "
                         f"{CASES_FILE} ({cases} cases x compared tensors x {len(backends)} backend(s)) asks for "
                         f"{expected}; continue it with: convparity run --resume {path}")
    return cases, rows


def merge(out: str | Path, folders: Sequence[str | Path]) -> MergedRun:
    """Merge the shard folders into the new run folder `out` (see the module docstring)."""
    out = Path(out)
    shards = check_shards([Path(f) for f in folders])
    if any(out.resolve() == path.resolve() for path, _, _ in shards):
        raise MergeError(f"the merged folder {out} must be a new folder, not one of the shards")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MergeError(f"{out} already exists and is not empty: a merge writes a new folder; pick another OUT")
    counts = [check_complete(path, shard, record) for path, shard, record in shards]
    temporary = out.with_name(f".{out.name}.merging-{os.getpid()}")
    try:
        run_folder.create(temporary)
        with (temporary / CASES_FILE).open("w", newline="", encoding="utf-8", errors="surrogateescape") as cases_file, \
                (temporary / RESULTS_FILE).open("w", newline="", encoding="utf-8",
                                                errors="surrogateescape") as results_file:
            case_writer, row_writer = csv.writer(cases_file), csv.writer(results_file)
            case_writer.writerow(CASE_COLUMNS)
            row_writer.writerow(COLUMNS)
            for path, shard, _ in shards:
                case_writer.writerows(_records(path / CASES_FILE, CASE_COLUMNS, shard))
                row_writer.writerows(_records(path / RESULTS_FILE, COLUMNS, shard))
        run_folder.write_record(temporary, merged_record(shards))
        if out.exists():
            out.rmdir()  # an empty folder the user made for it
        os.replace(temporary, out)
    except BaseException as error:  # a refused or interrupted merge leaves no half-merged folder behind
        shutil.rmtree(temporary, ignore_errors=True)
        if isinstance(error, OSError):
            raise os_error(out, error) from None
        raise
    return MergedRun(out, len(shards), sum(c for c, _ in counts), sum(r for _, r in counts))


def merged_record(shards: list[tuple[Path, Shard, RunRecord]]) -> RunRecord:
    """run.json of the merged folder (see the module docstring)."""
    first = shards[0][2]
    return replace(
        first, kind="merge", status="finished", shard=None, executor={}, worker_environment={},
        merged_from=[str(path) for path, _, _ in shards],
        shards=[{"path": str(path), "shard": str(shard), "started": record.started, "finished": record.finished,
                 "seconds": record.seconds, "platform": record.platform, "executor": record.executor}
                for path, shard, record in shards],
        started=min(record.started for _, _, record in shards),
        finished=max(record.finished for _, _, record in shards),
        seconds=max(record.seconds for _, _, record in shards),
        timing=PoolTiming.add(*(record.timing for _, _, record in shards)),
        segments=[],
    )
