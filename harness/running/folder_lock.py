"""One writer per run folder: an OS lock (flock) on DIR/.convparity.lock, released even when the holder is killed.

A run, resume, search, triage or merge holds it while it writes; a second writer is refused with one line
naming the holder. The lock file is removed when the holder lets go (also from a finished folder), so it
never stays behind in a run's files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from convparity.harness.files import RunFolderError, os_error

LOCK_FILE = ".convparity.lock"


@contextmanager
def lock(directory: Path) -> Iterator[None]:
    """Hold the folder's writer lock for the duration (an OS lock, released even if the process is killed);
    RunFolderError naming the holder when another process holds it."""
    import fcntl

    path = directory / LOCK_FILE
    while True:
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise os_error(path, error) from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(descriptor)
            raise RunFolderError(f"{directory} is being written by {holder}: one writer at a time") from None
        if _same_file(path, descriptor):
            break
        os.close(descriptor)  # the holder before us removed the file as it let go: lock the new one
    try:
        try:
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, f"convparity pid {os.getpid()}".encode(), 0)
        except OSError:  # a full disk: the lock holds all the same, only its holder's name is missing
            pass
        yield
    finally:
        path.unlink(missing_ok=True)  # still holding it: whoever opened the old file retries on a new one
        os.close(descriptor)


def _same_file(path: Path, descriptor: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(descriptor).st_ino
    except OSError:
        return False


def is_locked(directory: Path) -> bool:
    """Whether a writer holds the folder's lock now."""
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
