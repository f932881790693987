"""RunSettings: everything that decides a run's rows, shared by the runner and the reports.

Validated on construction, so a hand-edited run.json (duplicate backends, a string where a list
belongs, negative jobs, a tolerance <= 0, a timeout that is not a number) is refused with the
field named, never trusted silently.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from convparity.harness.errors import ConvparityError
from convparity.harness.vocabulary import check_dtype

DEFAULT_TIMEOUT = 300.0
DEFAULT_STARTUP_TIMEOUT = 900.0
DEFAULT_REFERENCE_TIMEOUT = 1800.0


class SettingsError(ConvparityError, ValueError):
    """A setting that cannot be used; the message names it."""


@dataclass(frozen=True)
class RunSettings:
    """Everything that decides a run's rows; saved in run.json so `--resume` needs nothing else.

    timeout: seconds one backend may take on one case; startup_timeout: seconds a backend's worker may
    take to start (framework imports); reference_timeout: seconds the reference may take on one case.
    compile_cache: where frameworks keep compiled programs between runs: "default" (the user's cache
    folder), "off", or a folder (convparity.harness.running.compile_cache); it never changes a row.
    perf: time every case that passes on a backend (convparity.harness.evaluation.speed); it adds the
    speed columns to pass rows and changes no status.
    """

    backends: tuple[str, ...]
    dtypes: tuple[str, ...]
    grids: tuple[str, ...] = ()
    seed: int = 0
    timeout: float = DEFAULT_TIMEOUT
    jobs: int = 1
    tolerance_factor: float = 1.0
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT
    reference_timeout: float = DEFAULT_REFERENCE_TIMEOUT
    compile_cache: str = "default"
    perf: bool = False

    def __post_init__(self) -> None:
        for name in ("backends", "dtypes", "grids"):
            value = getattr(self, name)
            if not isinstance(value, (tuple, list)) or not all(isinstance(v, str) and v for v in value):
                raise SettingsError(f"{name} must be a list of names, got {value!r}")
            if len(set(value)) != len(value):
                raise SettingsError(f"{name} lists {next(v for v in value if list(value).count(v) > 1)!r} twice")
            object.__setattr__(self, name, tuple(value))
        for dtype in self.dtypes:
            try:
                check_dtype(dtype)
            except ValueError as error:
                raise SettingsError(f"dtypes: {error}") from None
        for name in ("seed", "jobs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise SettingsError(f"{name} must be an integer, got {value!r}")
        if self.seed < 0:
            raise SettingsError(f"seed must be >= 0, got {self.seed}")
        if self.jobs < 1:
            raise SettingsError(f"jobs must be at least 1, got {self.jobs}")
        for name in ("timeout", "tolerance_factor", "startup_timeout", "reference_timeout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not (
                    math.isfinite(value) and value > 0):
                raise SettingsError(f"{name} must be a finite number > 0, got {value!r}")
            object.__setattr__(self, name, float(value))
        if not isinstance(self.perf, bool):
            raise SettingsError(f"perf must be true or false, got {self.perf!r}")
        if not isinstance(self.compile_cache, str) or not self.compile_cache.strip():
            raise SettingsError(f"compile_cache must be 'default', 'off' or a folder, got {self.compile_cache!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, stored: object) -> RunSettings:
        """Settings as run.json keeps them; SettingsError names the field at fault."""
        if not isinstance(stored, dict):
            raise SettingsError(f"settings must be a JSON object, got {type(stored).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(stored) - known)
        if unknown:
            raise SettingsError(f"unknown setting {unknown[0]!r}")
        missing = [name for name in ("backends", "dtypes") if name not in stored]
        if missing:
            raise SettingsError(f"missing setting {missing[0]!r}")
        return cls(**stored)

    def differences(self, other: RunSettings) -> dict[str, tuple[Any, Any]]:
        """The settings that decide which rows a run has, or their statuses, and differ: {name: (self's, other's)}."""
        ignored = {"jobs", "timeout", "startup_timeout", "reference_timeout", "compile_cache", "perf"}
        return {f.name: (getattr(self, f.name), getattr(other, f.name)) for f in fields(self)
                if f.name not in ignored and getattr(self, f.name) != getattr(other, f.name)}
