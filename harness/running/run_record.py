"""run.json: the record of one run folder, typed, versioned and validated field by field.

Every command that writes or reads a run folder (run, resume, search, triage, merge, report, compare)
goes through `RunRecord`: `to_json` writes it, `from_json` reads it back and names the field at fault
when a hand edit or a damaged file left something unusable (`RunRecordError`, one line, exit 2).

Schema versions: SCHEMA_VERSION is written in every record. A record without one (written before
records were versioned, convparity 0.1 of 2026-12) is migrated as it is read: its fields are the same.
A record of a newer version is refused, naming both versions.

Fields: `kind` (sweep, search or merge); the settings (RunSettings) and, for a sweep, the case
selection; the harness's version and commit; `status` (running, finished, interrupted); times; the
platform; every backend's version and every unavailable one's reason; the executor and each pool's
time; the worker environment; a shard's place; a search's own figures; a merge's sources; and
`segments`: the parts of a run made by different invocations (a resume adds one), each with the
backend versions it ran with when they changed.
"""

from __future__ import annotations

import math
import platform
import sys
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from convparity.harness import __version__
from convparity.harness.cases.grids import GridError
from convparity.harness.cases.selection import CaseSelection
from convparity.harness.errors import ConvparityError
from convparity.harness.running.shards import Shard, ShardError
from convparity.harness.settings import RunSettings, SettingsError

SCHEMA_VERSION = 2
KINDS = ("sweep", "search", "merge")
RUN_STATUSES = ("running", "finished", "interrupted")


class RunRecordError(ConvparityError, ValueError):
    """A run.json that cannot be used: damaged, of a newer version, or a field of the wrong kind (named)."""


def now() -> str:
    """The time now, as run.json keeps times (ISO 8601, UTC, seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def this_platform() -> dict[str, str]:
    return {"python": sys.version.split()[0], "system": platform.platform(), "machine": platform.machine(),
            "processor": platform.processor()}


@dataclass
class Segment:
    """One invocation's part of a run: when it started, and the backend versions it ran with."""

    started: str
    backend_versions: dict[str, str] = field(default_factory=dict)
    note: str = ""


@dataclass
class RunRecord:
    """run.json (see the module docstring). `settings` and `selection` are typed objects; the rest JSON values."""

    kind: str
    settings: RunSettings
    selection: CaseSelection | None = None
    status: str = "running"
    harness_version: str = __version__
    harness_commit: str = ""
    started: str = field(default_factory=now)
    finished: str = ""
    seconds: float = 0.0
    platform: dict[str, str] = field(default_factory=this_platform)
    backend_versions: dict[str, str] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    batch_files: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_cases: int | None = None
    shard: Shard | None = None
    executor: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, dict[str, Any]] = field(default_factory=dict)
    worker_environment: dict[str, str] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)
    merged_from: list[str] = field(default_factory=list)
    shards: list[dict[str, Any]] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["settings"] = self.settings.to_json()
        data["selection"] = None if self.selection is None else self.selection.to_json()
        data["shard"] = None if self.shard is None else self.shard.to_json()
        return data

    @classmethod
    def from_json(cls, stored: object, where: str = "run.json") -> RunRecord:
        """The record in `stored` (a parsed run.json), migrated from an older version; RunRecordError naming
        `where` and the field at fault otherwise."""
        if not isinstance(stored, dict):
            raise RunRecordError(f"{where} is damaged: not a JSON object")
        data = dict(stored)
        version = data.pop("schema_version", 1)
        if not isinstance(version, int) or isinstance(version, bool):
            raise RunRecordError(f"{where}: schema_version must be an integer, got {version!r}")
        if version > SCHEMA_VERSION:
            raise RunRecordError(f"{where} was written by a newer convparity (record version {version}; this one "
                                 f"reads up to {SCHEMA_VERSION}): upgrade convparity to read it")
        if version < 2:
            data = _migrate_1(data)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RunRecordError(f"{where}: unknown field {unknown[0]!r}")
        try:
            settings = RunSettings.from_json(data.pop("settings", None))
            selection = data.pop("selection", None)
            selection = None if selection is None else CaseSelection.from_json(selection)
            shard = data.pop("shard", None)
            shard = None if shard is None else Shard.from_json(shard)
        except (SettingsError, GridError, ShardError) as error:
            raise RunRecordError(f"{where}: {error}") from None
        segments = data.pop("segments", [])
        record = cls(kind=_text(data.pop("kind", "sweep"), "kind", where), settings=settings, selection=selection,
                     shard=shard, segments=_segments(segments, where))
        for name, value in data.items():
            setattr(record, name, _checked(name, value, where))
        if record.kind not in KINDS:
            raise RunRecordError(f"{where}: kind must be one of {', '.join(KINDS)}, got {record.kind!r}")
        if record.status not in RUN_STATUSES:
            raise RunRecordError(f"{where}: status must be one of {', '.join(RUN_STATUSES)}, got {record.status!r}")
        return record

    def versions_segment(self) -> Segment:
        """A new segment for an invocation starting now with the record's backend versions."""
        return Segment(now(), dict(self.backend_versions))


def _migrate_1(data: dict[str, Any]) -> dict[str, Any]:
    """A version-1 record (no schema_version): the same fields, the kind read from which of them it has; fields
    of earlier releases that no longer mean anything (a case count) are dropped."""
    known = {f.name for f in fields(RunRecord)}
    data = {name: value for name, value in data.items() if name in known}
    data.setdefault("kind", "search" if "search" in data else "merge" if data.get("merged_from") else "sweep")
    return data


# What each field of the record holds, checked as it is read: (type description, check).
def _is_text_map(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_timing(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(pool, str) and isinstance(figures, dict)
        and all(isinstance(k, str) and (_is_number(v) or isinstance(v, bool)) for k, v in figures.items())
        for pool, figures in value.items())


def _is_json_object(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) for k in value)


_FIELDS: dict[str, tuple[str, Any]] = {
    "status": ("text", lambda v: isinstance(v, str)),
    "harness_version": ("text", lambda v: isinstance(v, str)),
    "harness_commit": ("text", lambda v: isinstance(v, str)),
    "started": ("text", lambda v: isinstance(v, str)),
    "finished": ("text", lambda v: isinstance(v, str) or v is None),
    "seconds": ("a number of seconds >= 0", lambda v: _is_number(v) and v >= 0),
    "platform": ("a mapping of names to text", _is_text_map),
    "backend_versions": ("a mapping of backend names to text", _is_text_map),
    "unavailable": ("a mapping of backend names to text", _is_text_map),
    "batch_files": ("per batch file, an object", lambda v: _is_json_object(v) and all(_is_json_object(i)
                                                                                        for i in v.values())),
    "max_cases": ("a positive integer or null",
                  lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v > 0)),
    "executor": ("an object", _is_json_object),
    "timing": ("per pool, an object of numbers", _is_timing),
    "worker_environment": ("a mapping of variable names to text", _is_text_map),
    "search": ("an object", _is_json_object),
    "merged_from": ("a list of folders", lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v)),
    "shards": ("a list of objects", lambda v: isinstance(v, list) and all(_is_json_object(i) for i in v)),
}


def _checked(name: str, value: object, where: str) -> Any:
    what, check = _FIELDS[name]
    if not check(value):
        raise RunRecordError(f"{where}: {name} must be {what}, got {_short(value)}")
    return "" if name == "finished" and value is None else value


def _text(value: object, name: str, where: str) -> str:
    if not isinstance(value, str):
        raise RunRecordError(f"{where}: {name} must be text, got {_short(value)}")
    return value


def _segments(value: object, where: str) -> list[Segment]:
    if not isinstance(value, list):
        raise RunRecordError(f"{where}: segments must be a list, got {_short(value)}")
    found = []
    for index, item in enumerate(value):
        if not (isinstance(item, dict) and isinstance(item.get("started"), str)
                and _is_text_map(item.get("backend_versions", {})) and isinstance(item.get("note", ""), str)
                and set(item) <= {"started", "backend_versions", "note"}):
            raise RunRecordError(f"{where}: segments[{index}] must hold started, backend_versions and note, got "
                                 f"{_short(item)}")
        found.append(Segment(item["started"], dict(item.get("backend_versions", {})), item.get("note", "")))
    return found


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
