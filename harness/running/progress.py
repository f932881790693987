"""Progress of a sweep on a terminal: cases done / total, failures so far, elapsed time and ETA.

Drawn with rich on stderr, only when stderr is a terminal; in a pipe or a file it prints nothing,
so the final summary is all a script sees.
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from convparity.harness.results import Row
from convparity.harness.vocabulary import BAD_STATUSES


class SweepProgress:
    """Counts finished case x dtype items and the (item, backend) results that went bad."""

    def __init__(self, total: int, done: int = 0, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.failures = 0
        stream = stream or sys.stderr
        self._progress = None
        if enabled and stream.isatty():
            self._progress = Progress(
                TextColumn("cases"), BarColumn(), MofNCompleteColumn(),
                TextColumn("[red]{task.fields[failures]} failed"), TextColumn("elapsed"), TimeElapsedColumn(),
                TextColumn("eta"), TimeRemainingColumn(), console=Console(file=stream),
            )
            self._task = self._progress.add_task("sweep", total=total, completed=done, failures=0)

    def __enter__(self) -> SweepProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, rows: list[Row]) -> None:
        """One item finished with these rows (every backend's)."""
        self.failures += len({row.backend for row in rows if row.status in BAD_STATUSES})
        if self._progress is not None:
            self._progress.update(self._task, advance=1, failures=self.failures)
