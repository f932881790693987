"""Small tasks for the executor's tests; importable by spawned workers."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pid:
    pool: str

    def __call__(self) -> int:
        return os.getpid()


@dataclass(frozen=True)
class Abort:
    pool: str

    def __call__(self) -> None:
        os.abort()


@dataclass(frozen=True)
class Sleep:
    pool: str
    seconds: float

    def __call__(self) -> None:
        time.sleep(self.seconds)


@dataclass(frozen=True)
class Divide:
    pool: str

    def __call__(self) -> float:
        return 1 / 0


@dataclass(frozen=True)
class Unpicklable:
    pool: str

    def __call__(self):
        return lambda: None


@dataclass(frozen=True)
class Meet:
    """Announce itself with a file, then wait (up to `patience` s) for the other's: true if they met."""

    pool: str
    folder: str
    me: str
    other: str
    patience: float = 10.0

    def __call__(self) -> bool:
        Path(self.folder, self.me).touch()
        end = time.monotonic() + self.patience
        while time.monotonic() < end:
            if Path(self.folder, self.other).exists():
                return True
            time.sleep(0.01)
        return False


@dataclass(frozen=True)
class Cores:
    """The cores this worker may run on (os.sched_getaffinity), after meeting `other` like Meet."""

    pool: str
    folder: str
    me: str
    other: str

    def __call__(self) -> set[int]:
        Meet(self.pool, self.folder, self.me, self.other)()
        return os.sched_getaffinity(0)


@dataclass(frozen=True)
class KillParent:
    """Kill the process that started this worker: on a Dask cluster, the Dask worker itself."""

    pool: str

    def __call__(self) -> None:
        os.kill(os.getppid(), signal.SIGKILL)
        time.sleep(60)


@dataclass(frozen=True)
class ParentPid:
    """The pid of the process that started this worker (on a Dask cluster: the Dask worker)."""

    pool: str

    def __call__(self) -> int:
        return os.getppid()


@dataclass(frozen=True)
class Ranked:
    """Returns its name; says how long it expects to take and how urgent it is."""

    pool: str
    name: str
    expected_seconds: float = 0.0
    urgency: int = 0

    def __call__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Environment:
    """The values of the named environment variables in this worker (None where unset); `setup` sets them."""

    pool: str
    names: tuple[str, ...]
    setup: object = None

    def __call__(self) -> dict[str, str | None]:
        return {name: os.environ.get(name) for name in self.names}
