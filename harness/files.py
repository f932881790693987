"""Files written whole or not at all, and OS errors told in one line naming the path.

Every file convparity writes whole (run.json, reports, findings, repro scripts, merged CSV files) goes through
`atomic_write`: a temporary file beside it, synced and renamed into place, so an interruption or a full
disk leaves the old file or none, never half of one. Appended files (results.csv, cases.csv) have their own
rule (harness.results.CsvAppender). This module imports nothing of convparity but the error base.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from convparity.harness.errors import ConvparityError


class RunFolderError(ConvparityError, ValueError):
    """A folder or file that cannot be used: not a run, damaged, locked, or that cannot be written."""


def os_error(path: Path, error: OSError) -> RunFolderError:
    """One line naming the path and the OS error (read-only file system, no space left, ...)."""
    return RunFolderError(f"cannot write {error.filename or path}: {error.strerror or error}")


def atomic_write(path: Path, write: Callable[[Any], None], *, binary: bool = False) -> Path:
    """Write `path` whole or not at all: `write(file)` fills a temporary text file (UTF-8, undecodable
    bytes kept as surrogate escapes; a binary file with `binary`) that is renamed into place.

    On any failure (an OS error, an interrupt) the temporary file is removed and `path` is untouched.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with (open(temporary, "wb") if binary else
              open(temporary, "w", encoding="utf-8", errors="surrogateescape", newline="")) as file:
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


