"""The backend contract: every member of a backend that the harness reads, required or optional.

A backend is any object with these members (no base class needed):

required
- `name: str`: unique, e.g. "torch" or "torch-channels_last".
- `version() -> str`: the framework's version (called only when available). Its first word is
  the version that `Deviation.versions` ranges are matched against ("3.15.0 (tensorflow 2.21)").
- `availability() -> str | None`: None when usable here, else why not ("torch is not installed").
- `supports(spec) -> str | None`: None when the backend can run `spec`, else the reason it cannot.
- `run(spec, x, w, b, dy) -> (y, dx, dw, db)`: NumPy arrays in canonical layout, any floating
  dtype at least as wide as `spec.dtype`; `x (N, C, *in)`, `w (O, C/groups, *kernel)`, `b (O,)` or
  None when `spec.bias` is false, `dy (N, O, *out)`, all of `spec.dtype`. A forward-only backend
  returns None for the gradients. `run` may raise `Unsupported` when it finds out only while
  running that it cannot run the spec.

optional (read with `optional_members`, validated by `check_backend` at registration)
- `limits: tuple[Limit, ...]`: the specs it cannot run, with the framework's reason (listed by
  `convparity backends --limits`; `supports` usually answers from them with `first_limit`).
- `deviations: tuple[Deviation, ...]`: known wrong results, turning matching fails into xfail.
- `accumulation: Mapping[str, str]`: {input dtype: accumulation dtype} where it accumulates in
  other than the default (float64 for float64, float32 otherwise), e.g. {"float16": "float16"}.
  Never narrower than the input dtype, so no declaration can widen the bound past the dtype itself.
- `resources: Mapping[str, float]`: worker resources a task of this backend needs on a cluster,
  e.g. {"GPU": 1} (Dask resource restrictions).
- `cost: BackendCost`: what a case costs it before this machine has measured it (seconds per case
  and per GFLOP); the runner learns the real figures from each run (harness.running.cost_model).
- `thread_environment(threads) -> Mapping[str, str]`: variables a worker process of this backend needs to
  use `threads` threads (beyond OMP_NUM_THREADS and the BLAS variables every worker gets).
- `cache_environment(folder, current) -> Mapping[str, str]`: variables that put the framework's compile
  cache in `folder` (a folder per machine; the backend picks its own subfolder), or turn it off for
  None; `current` is the environment the worker starts from, whose own settings should win.
  Both are called where workers start, in a process that must not import the framework.
- `compile_seconds() -> float | None`: seconds this process has spent compiling so far, as the framework
  reports it, or None where it cannot tell (called in the backend's worker, around each case).
- `program(spec) -> Program | None`: the backend's convolution for `spec` as one self-contained function
  (harness.backends.program); `run` calls it and repro scripts print it.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from convparity.harness.backends.deviations import Deviation
from convparity.harness.backends.limits import Limit
from convparity.harness.backends.program import BackendCost, Program
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.errors import ConvparityError
from convparity.harness.vocabulary import DTYPES, UNIT_ROUNDOFF

Outputs = tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]


@runtime_checkable
class Backend(Protocol):
    """The required members (see the module docstring for the optional ones)."""

    name: str

    def version(self) -> str: ...

    def availability(self) -> str | None: ...

    def supports(self, spec: ConvSpec) -> str | None: ...

    def run(
        self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray
    ) -> Outputs: ...


class OptionalMethods(Protocol):
    """The optional methods, typed (see the module docstring); a backend may have any of them or none."""

    def thread_environment(self, threads: int) -> Mapping[str, str]: ...

    def cache_environment(self, folder: Path | None, current: Mapping[str, str]) -> Mapping[str, str]: ...

    def compile_seconds(self) -> float | None: ...

    def program(self, spec: ConvSpec) -> Program | None: ...


@dataclass(frozen=True)
class OptionalMembers:
    """A backend's optional members, validated, with their defaults where it has none."""

    limits: tuple[Limit, ...] = ()
    deviations: tuple[Deviation, ...] = ()
    accumulation: Mapping[str, str] = None  # type: ignore[assignment]  # {} after __post_init__
    resources: Mapping[str, float] = None  # type: ignore[assignment]
    cost: BackendCost | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "accumulation", dict(self.accumulation or {}))
        object.__setattr__(self, "resources", dict(self.resources or {}))


class BackendContractError(ConvparityError, TypeError):
    """A backend that does not meet the contract; the message names the backend and the member."""


REQUIRED_METHODS = ("version", "availability", "supports", "run")
OPTIONAL_METHODS = tuple(name for name in vars(OptionalMethods) if not name.startswith("_"))


def _fail(backend: object, member: str, problem: str) -> BackendContractError:
    name = getattr(backend, "name", None)
    who = f"backend {name!r}" if isinstance(name, str) and name else f"backend {backend!r}"
    return BackendContractError(f"{who}: {member} {problem} (see docs/writing-a-backend.md)")


def optional_members(backend: object, *, computed: bool = True) -> OptionalMembers:
    """The optional members of `backend`, checked: a wrong type or value raises BackendContractError.

    With `computed` False, a member that is a property (computed on access, e.g. limits probed from the
    framework) is left unread and taken as its default: registration must not import a framework.
    """

    def value(member: str) -> object:
        if not computed and isinstance(inspect.getattr_static(backend, member, None), property):
            return None
        return getattr(backend, member, None)

    limits = _tuple_of(backend, "limits", Limit, value("limits"))
    deviations = _tuple_of(backend, "deviations", Deviation, value("deviations"))
    accumulation = value("accumulation") or {}
    if not isinstance(accumulation, Mapping):
        raise _fail(backend, "accumulation", f"must be a mapping of dtype names, got {type(accumulation).__name__}")
    for dtype, accumulated in accumulation.items():
        if dtype not in DTYPES or accumulated not in DTYPES:
            raise _fail(backend, "accumulation",
                        f"maps {dtype!r} to {accumulated!r}: both must be of {', '.join(DTYPES)}")
        if UNIT_ROUNDOFF[accumulated] > UNIT_ROUNDOFF[dtype]:
            raise _fail(backend, "accumulation", f"declares {accumulated} accumulation for {dtype} inputs: "
                                                 "an accumulation may not be narrower than its input dtype")
    resources = value("resources") or {}
    if not isinstance(resources, Mapping) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
            for k, v in resources.items()):
        raise _fail(backend, "resources", f"must map resource names to positive numbers, got {resources!r}")
    cost = value("cost")
    if cost is not None and not isinstance(cost, BackendCost):
        raise _fail(backend, "cost", f"must be a BackendCost, got {type(cost).__name__}: {cost!r}")
    for method in OPTIONAL_METHODS:
        if getattr(backend, method, None) is not None and not callable(getattr(backend, method)):
            raise _fail(backend, method, "is not callable")
    return OptionalMembers(limits, deviations, accumulation, resources, cost)


def _tuple_of(backend: object, member: str, kind: type, value: object) -> tuple:
    value = value or ()
    if not isinstance(value, (tuple, list)):
        raise _fail(backend, member, f"must be a tuple of {kind.__name__}, got {type(value).__name__}")
    for index, item in enumerate(value):
        if not isinstance(item, kind):
            raise _fail(backend, f"{member}[{index}]",
                        f"must be a {kind.__name__}, got {type(item).__name__}: {item!r}")
    return tuple(value)


def check_backend(backend: object) -> None:
    """Raise BackendContractError naming the backend and member where `backend` breaks the contract."""
    name = getattr(backend, "name", None)
    if not isinstance(name, str) or not name.strip():
        raise _fail(backend, "name", f"must be a non-empty string, got {name!r}")
    for member in REQUIRED_METHODS:
        if not callable(getattr(backend, member, None)):
            raise _fail(backend, member, "is missing or not callable")
    optional_members(backend, computed=False)


def declared_accumulation(backend: object, dtype: str) -> str:
    """The accumulation precision of the bound for inputs of `dtype` on `backend` (declared or default)."""
    return optional_members(backend).accumulation.get(dtype) or default_accumulation(dtype)


def default_accumulation(dtype: str) -> str:
    """float64 accumulates in float64; every narrower dtype in float32 unless a backend declares otherwise."""
    return "float64" if dtype == "float64" else "float32"


def environment_of(backend: object, method: str, *arguments: object) -> dict[str, str]:
    """What the backend's optional `thread_environment` or `cache_environment` returns ({} without one),
    checked to be text; BackendContractError naming the member otherwise."""
    function = getattr(backend, method, None)
    if function is None:
        return {}
    variables = function(*arguments)
    if not isinstance(variables, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                     for k, v in variables.items()):
        raise _fail(backend, method, f"must return a mapping of variable names to text, got {variables!r}")
    return dict(variables)
