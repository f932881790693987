"""RunSettings: everything that decides a run's rows, shared by the runner and the reports."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunSettings:
    """Everything that decides a run's rows; saved in run.json so `--resume` needs nothing else."""

    backends: tuple[str, ...]
    dtypes: tuple[str, ...]
    grids: tuple[str, ...] = ()
    seed: int = 0
    timeout: float = 300.0
    jobs: int = 1
    tolerance_factor: float = 1.0
