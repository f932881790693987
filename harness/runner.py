"""Runs a sweep: every case x dtype on every backend, rows appended to the run folder as they finish."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field

from harness.backend import Backend, Unsupported
from harness.descriptor import Case
from harness.evaluate import Reference, compare_rows, reference, status_rows
from harness.inputs import make_inputs
from harness.results import Row
from harness.spec import ConvSpec


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
    extra: dict = field(default_factory=dict)


def run_backend_case(backend: Backend, spec: ConvSpec, name: str, version: str, seed: int,
                     ref: Reference, tolerance_factor: float) -> list[Row]:
    """Rows of one case on one backend, in this process: unsupported, error, or compared numbers."""
    reason = backend.supports(spec)
    if reason:
        return status_rows(spec, name, backend.name, version, seed, "unsupported", reason)
    inputs = make_inputs(spec, seed)
    start = time.perf_counter()
    try:
        outputs = backend.run(spec, inputs.x, inputs.w, inputs.b, inputs.dy)
    except Unsupported as error:
        return status_rows(spec, name, backend.name, version, seed, "unsupported", str(error))
    except Exception as error:  # noqa: BLE001 - a backend's exception is a result, not a harness failure
        message = f"{type(error).__name__}: {error}"
        last = traceback.extract_tb(error.__traceback__)[-1:]
        where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
        return status_rows(spec, name, backend.name, version, seed, "error", message + where,
                           time.perf_counter() - start)
    seconds = time.perf_counter() - start
    if not isinstance(outputs, (tuple, list)) or len(outputs) != 4:
        return status_rows(spec, name, backend.name, version, seed, "error",
                           f"run() must return (y, dx, dw, db), got {type(outputs).__name__}", seconds)
    return compare_rows(spec, name, backend.name, version, seed, tuple(outputs), ref, seconds,  # type: ignore[arg-type]
                        tolerance_factor=tolerance_factor, accumulation=getattr(backend, "accumulation", None))


def expand(cases: list[Case], dtypes: tuple[str, ...]) -> list[Case]:
    """Every case in every dtype, case-major."""
    return [Case(case.spec.replace(dtype=dtype), case.name) for case in cases for dtype in dtypes]


def run_in_process(cases: list[Case], backends: dict[str, Backend], settings: RunSettings, write) -> None:
    """Run every case on every backend in this process, calling `write(rows)` after each (case, backend)."""
    versions = {}
    for name, backend in backends.items():
        reason = backend.availability()
        versions[name] = "" if reason else backend.version()
    for case in expand(cases, settings.dtypes):
        ref = None
        for name, backend in backends.items():
            reason = backend.availability()
            if reason:
                write(status_rows(case.spec, case.name, name, "", settings.seed, "unavailable", reason))
                continue
            if ref is None:
                ref = reference(case.spec, make_inputs(case.spec, settings.seed))
            write(run_backend_case(backend, case.spec, case.name, versions[name], settings.seed, ref,
                                   settings.tolerance_factor))
