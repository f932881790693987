"""The work of a sweep, as small picklable tasks that run wherever an executor puts them.

- `Probe(backend)`: is the backend usable here, and which version (imports its framework).
- `RunCase(backend, spec, seed)`: the backend's raw outputs for one case (`Ran`), or why there are
  none (`Status`: unsupported or error). Inputs are regenerated from (spec, seed), not shipped.
- `EvaluateCase(...)`: the rows of one case in one dtype for every backend that took part: computes the
  float64 reference once and compares each backend's outputs with it (shapes included).

A task names the `pool` of workers that runs it: one pool per backend ("backend:<name>"), so a
framework is imported only in its own workers, once per worker, and the pool "reference" for
evaluations, so the reference's BLAS threads never share a process with a framework.
Backends are looked up by name in the worker's own plugin manager (CONVPARITY_PLUGINS and
CONVPARITY_EXTRA_PLUGINS apply there as in the parent).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import cache

import numpy as np

from harness.backends.contract import Backend, declared_accumulation
from harness.backends.limits import Unsupported
from harness.cases.inputs import make_inputs
from harness.cases.spec import ConvSpec
from harness.evaluation.verdict import compare_rows, reference, status_rows
from harness.results import TENSORS, Row
from harness.running.executor import describe_exception

REFERENCE_POOL = "reference"


def backend_pool(backend: str) -> str:
    """The pool of workers that run `backend` (distinct from REFERENCE_POOL whatever the name)."""
    return f"backend:{backend}"


@dataclass(frozen=True)
class BackendInfo:
    """What a probe found: the version, or why the backend is unavailable (then version is "")."""

    version: str
    unavailable: str | None


@dataclass(frozen=True)
class Ran:
    """A backend's outputs for one case, as NumPy arrays (None where it computes no gradient).

    outputs: y (N, O, *out), dx (N, C, *in), dw (O, C/groups, *kernel), db (O,), shapes as the
    backend returned them (checked against the reference's by the evaluation, never trusted).
    """

    outputs: tuple[np.ndarray | None, ...]
    seconds: float
    accumulation: str | None


@dataclass(frozen=True)
class Status:
    """A result without outputs: unsupported, error, crash, timeout or unavailable, with why."""

    status: str
    message: str
    seconds: float = math.nan


@cache
def _backend(name: str) -> Backend:
    """The backend registered as `name` in this process, its framework imported (by `availability`),
    so that no case's time includes the import."""
    from harness.backends.manager import get_manager

    backends = get_manager().backends()
    if name not in backends:
        raise LookupError(f"backend {name!r} is not registered in this worker (registered: {', '.join(backends)})")
    backends[name].availability()
    return backends[name]


def run_case(backend: Backend, spec: ConvSpec, seed: int) -> Ran | Status:
    """One case on one backend in this process: its outputs, or unsupported / error with the reason."""
    reason = backend.supports(spec)
    if reason:
        return Status("unsupported", reason)
    inputs = make_inputs(spec, seed)
    start = time.perf_counter()
    try:
        outputs = backend.run(spec, inputs.x, inputs.w, inputs.b, inputs.dy)
    except Unsupported as error:
        return Status("unsupported", str(error), time.perf_counter() - start)
    except Exception as error:  # noqa: BLE001 - a backend's exception is a result, not a harness failure
        return Status("error", describe_exception(error), time.perf_counter() - start)
    seconds = time.perf_counter() - start
    if not isinstance(outputs, (tuple, list)) or len(outputs) != len(TENSORS):
        return Status("error", f"run() must return (y, dx, dw, db), got {_kind(outputs)}", seconds)
    arrays = []
    for tensor, out in zip(TENSORS, outputs):
        array = None if out is None else np.asarray(out)
        if array is not None and array.dtype.kind not in "fV":
            return Status("error", f"run() returned {tensor} as {_kind(out)} of dtype {array.dtype}, "
                                   f"expected a floating array", seconds)
        arrays.append(array)
    return Ran(tuple(arrays), seconds, declared_accumulation(backend, spec.dtype))


def _kind(value: object) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return type(value).__name__


@dataclass(frozen=True)
class Probe:
    backend: str

    @property
    def pool(self) -> str:
        return backend_pool(self.backend)

    def __call__(self) -> BackendInfo:
        backend = _backend(self.backend)
        reason = backend.availability()
        return BackendInfo(version="" if reason else backend.version(), unavailable=reason or None)


@dataclass(frozen=True)
class WarmUp:
    """Nothing to do: submitted first so that the reference's worker starts alongside the backends'."""

    pool: str = REFERENCE_POOL

    def __call__(self) -> None:
        return None


@dataclass(frozen=True)
class RunCase:
    backend: str
    spec: ConvSpec
    seed: int

    @property
    def pool(self) -> str:
        return backend_pool(self.backend)

    def __call__(self) -> Ran | Status:
        return run_case(_backend(self.backend), self.spec, self.seed)


@dataclass(frozen=True)
class BackendResult:
    """One backend's part in a case: its name, version and what it returned."""

    backend: str
    version: str
    result: Ran | Status


def case_rows(spec: ConvSpec, name: str, seed: int, tolerance_factor: float,
              results: tuple[BackendResult, ...]) -> list[Row]:
    """The rows of one case for every backend in `results`, in that order.

    The reference is computed (once) only when some backend has outputs to compare.
    """
    ref = None
    rows: list[Row] = []
    for part in results:
        result = part.result
        if isinstance(result, Status):
            rows += status_rows(spec, name, part.backend, part.version, seed, result.status, result.message,
                                result.seconds)
            continue
        if ref is None:
            ref = reference(spec, make_inputs(spec, seed))
        rows += compare_rows(spec, name, part.backend, part.version, seed, result.outputs, ref,  # type: ignore[arg-type]
                             result.seconds, tolerance_factor=tolerance_factor, accumulation=result.accumulation)
    return rows


@dataclass(frozen=True)
class EvaluateCase:
    spec: ConvSpec
    name: str
    seed: int
    tolerance_factor: float
    results: tuple[BackendResult, ...]

    pool = REFERENCE_POOL

    def __call__(self) -> list[Row]:
        return case_rows(self.spec, self.name, self.seed, self.tolerance_factor, self.results)
