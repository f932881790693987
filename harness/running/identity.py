"""Whether a run can go on as the same run: its backends are still registered here, at the versions it ran.

A resume that found a backend gone would charge the backend with rows it never made ("not registered in this
worker"), and one that found another version would mix two versions' rows under one run.json. So before any case
runs again:
- `check_registered` refuses, in one line, a run whose backend no plugin registers here (naming why, when its
  plugin is broken);
- `VersionCheck` (the sweep's `on_probed`) compares each backend's probed version with the one the run
  recorded, and refuses a difference in one line, unless the user asked to go on as a new segment: then the
  run's record gains a `Segment` saying which versions changed, and the rows of each segment carry their own
  backend_version.
"""

from __future__ import annotations

from pathlib import Path

from convparity.harness.backends.manager import get_manager
from convparity.harness.errors import ConvparityError
from convparity.harness.running.run_record import RunRecord, Segment, now
from convparity.harness.running.tasks import BackendInfo


class RunChanged(ConvparityError):
    """A run that cannot go on as it was: a backend is gone, or runs at another version (the message says which)."""


def check_registered(record: RunRecord, path: Path) -> None:
    """RunChanged naming the first of the run's backends that no plugin registers here."""
    manager = get_manager()
    registered = manager.backends()
    for name in record.settings.backends:
        if name not in registered:
            why = manager.broken.get(name) or "no installed plugin registers it"
            raise RunChanged(f"{path} ran backend {name!r}, which is not registered here ({why}): install its plugin "
                             "to continue this run, or start a new one")


class VersionCheck:
    """`on_probed` for a resume: refuse (or, with `new_segment`, record) a backend whose version changed."""

    def __init__(self, record: RunRecord, path: Path, command: str, new_segment: bool) -> None:
        self.record, self.path, self.command, self.new_segment = record, path, command, new_segment
        self.recorded = dict(record.backend_versions)
        self.changed: dict[str, str] = {}

    def __call__(self, name: str, info: BackendInfo) -> None:
        before = self.recorded.get(name)
        if info.unavailable or before is None or before == info.version:
            return
        if not self.new_segment:
            raise RunChanged(f"{name} is {info.version} here but {self.path} ran it at {before}: its rows would mix "
                             f"two versions; go on as a new segment of the run with: {self.command} --new-segment, "
                             "or start a new run")
        if not self.changed:
            self.record.segments.append(Segment(now(), {}, ""))
        self.changed[name] = info.version
        segment = self.record.segments[-1]
        segment.backend_versions = dict(self.changed)
        segment.note = "backend versions changed: " + "; ".join(
            f"{backend} {self.recorded[backend]} -> {version}" for backend, version in self.changed.items())
