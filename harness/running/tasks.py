"""The work of a sweep, as small picklable tasks that run wherever an executor puts them.

- `Probe(backend)`: is the backend usable here, and which version (imports its framework).
- `RunCase(backend, spec, seed)`: the backend's validated outputs for one case (`Ran`), or why there
  are none (`Status`), from convparity.harness.evaluation.verdict.run_backend. Inputs are regenerated from
  (spec, seed, input style), not shipped: both tasks carry the style (harness.cases.inputs.InputStyle).
- `EvaluateCase(...)`: the rows of one case in one dtype for every backend that took part
  (convparity.harness.evaluation.verdict.case_rows: the reference once, then every comparison).
- `TimeCase(backend, spec, seed)`: with `--perf`, after a case passed on a backend, the backend's own
  `run` timed after warm-up with repeats (convparity.harness.evaluation.speed), in the backend's pool.

A task names the `pool` of workers that runs it: one pool per backend ("backend:<name>"), so a
framework is imported only in its own workers, once per worker, and the pool "reference" for
evaluations, so the reference's BLAS threads never share a process with a framework.
A task's `prepare` is what a fresh worker of its pool runs before it takes any task (a backend's
framework import), under the start-up deadline rather than the task's own timeout, and its `setup` the
environment that worker starts with (harness.running.placement). Its `expected_seconds` (given by the
sweep from harness.running.cost_model) and `urgency` order the executor's queue: probes first, then
evaluations, then the backends' runs, longest expected first.
Backends are looked up by name in the worker's own plugin manager, built from the `PluginSelection`
the task carries (never from inherited environment variables), so a remote worker needs nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from convparity.harness.backends.contract import Backend
from convparity.harness.backends.manager import PluginSelection
from convparity.harness.cases.inputs import UNIFORM, InputStyle
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.evaluation.speed import Timing, time_backend
from convparity.harness.evaluation.verdict import BackendResult, Ran, Status, case_rows, evaluate_case, run_backend
from convparity.harness.results import Row
from convparity.harness.running.placement import WorkerSetup
from convparity.harness.vocabulary import TENSORS

REFERENCE_POOL = "reference"
PROBE_URGENCY = 2  # every case of a backend waits for its probe
EVALUATION_URGENCY = 1  # short, and finishing a case lets the sweep draw the next


def backend_pool(backend: str) -> str:
    """The pool of workers that run `backend` (distinct from REFERENCE_POOL whatever the name)."""
    return f"backend:{backend}"


@dataclass(frozen=True)
class BackendInfo:
    """What a probe found: the version, or why the backend is unavailable (then version is "")."""

    version: str
    unavailable: str | None


@cache
def _backend(name: str, plugins: PluginSelection) -> Backend:
    """The backend registered as `name` in this process, its framework imported (by `availability`)."""
    backends = plugins.manager().backends()
    if name not in backends:
        raise LookupError(f"backend {name!r} is not registered in this worker (registered: {', '.join(backends)})")
    backends[name].availability()
    return backends[name]


@dataclass(frozen=True)
class PrepareBackend:
    """Run by a fresh worker of a backend's pool before its first task: imports the framework."""

    backend: str
    plugins: PluginSelection

    def __call__(self) -> None:
        _backend(self.backend, self.plugins)


def reference_setup(plugins: PluginSelection) -> WorkerSetup:
    """The setup of the reference's workers: the thread variables only."""
    return WorkerSetup.here(None, plugins, "off")


class InBackendPool:
    """A task that runs in its backend's pool, whose fresh workers import the framework first (PrepareBackend)."""

    backend: str
    plugins: PluginSelection

    @property
    def pool(self) -> str:
        return backend_pool(self.backend)

    @property
    def prepare(self) -> PrepareBackend:
        return PrepareBackend(self.backend, self.plugins)


@dataclass(frozen=True)
class Probe(InBackendPool):
    backend: str
    plugins: PluginSelection = field(default_factory=PluginSelection)
    setup: WorkerSetup | None = None
    urgency = PROBE_URGENCY

    def __call__(self) -> BackendInfo:
        backend = _backend(self.backend, self.plugins)
        reason = backend.availability()
        return BackendInfo(version="" if reason else backend.version(), unavailable=reason or None)


@dataclass(frozen=True)
class DescribeBackend:
    """What `convparity backends` prints of one backend, computed in a worker of its own: a backend's
    frameworks are imported there, never beside another backend's (some pairs crash in one process)."""

    backend: str
    plugins: PluginSelection = field(default_factory=PluginSelection)
    setup: WorkerSetup | None = None
    group: str = ""  # the backend whose workers describe this one too (backends of one plugin module share them)

    @property
    def pool(self) -> str:
        return backend_pool(self.group or self.backend)

    prepare = None

    def __call__(self) -> list[str]:
        """The backend's line (version, or why unavailable or broken), then, indented, its limits and deviations."""
        from convparity.harness.backends.contract import optional_members

        backend = self.plugins.manager().backends()[self.backend]
        try:
            reason = backend.availability()
            state = "unavailable: " + reason if reason else backend.version()
        except Exception as error:  # noqa: BLE001 - a plugin that raises is listed with why, like a broken one
            raised = " ".join(f"{type(error).__name__}: {error}".split())
            return [f"broken: availability() or version() raised {raised}"]
        members = optional_members(backend)
        return ([state] + [f"limit: {limit.condition}: {limit.reason}" for limit in members.limits]
                + [f"known deviation: {deviation.describe()}" for deviation in members.deviations])


@dataclass(frozen=True)
class Explained:
    """What ExplainCase found: why the backend is unavailable, or the accumulation its bound used and the rows."""

    unavailable: str | None
    accumulation: str | None
    rows: list[Row]


@dataclass(frozen=True)
class ExplainCase(InBackendPool):
    """One case evaluated in the backend's own worker, for `convparity explain` (evaluate_case: both halves)."""

    backend: str
    spec: ConvSpec
    seed: int
    tolerance_factor: float
    plugins: PluginSelection = field(default_factory=PluginSelection)
    setup: WorkerSetup | None = None
    inputs: InputStyle = UNIFORM

    def __call__(self) -> Explained:
        backend = _backend(self.backend, self.plugins)
        reason = backend.availability()
        if reason:
            return Explained(reason, None, [])
        result, rows = evaluate_case(backend, self.spec, seed=self.seed, tolerance_factor=self.tolerance_factor,
                                     inputs=self.inputs)
        return Explained(None, result.accumulation if isinstance(result, Ran) else None, rows)


@dataclass(frozen=True)
class WarmUp:
    """Nothing to do: submitted first so that the reference's worker starts alongside the backends'."""

    setup: WorkerSetup | None = None
    pool: str = REFERENCE_POOL
    prepare = None

    def __call__(self) -> None:
        return None


@dataclass(frozen=True)
class RunCase(InBackendPool):
    backend: str
    spec: ConvSpec
    seed: int
    version: str = ""
    plugins: PluginSelection = field(default_factory=PluginSelection)
    setup: WorkerSetup | None = None
    expected_seconds: float = 0.0
    inputs: InputStyle = UNIFORM

    def __call__(self) -> Ran | Status:
        return run_backend(_backend(self.backend, self.plugins), self.spec, self.seed, self.version, self.inputs)


@dataclass(frozen=True)
class EvaluateCase:
    spec: ConvSpec
    name: str
    seed: int
    tolerance_factor: float
    results: tuple[BackendResult, ...]
    compared: tuple[str, ...] = TENSORS
    setup: WorkerSetup | None = None
    expected_seconds: float = 0.0
    inputs: InputStyle = UNIFORM

    pool = REFERENCE_POOL
    prepare = None
    urgency = EVALUATION_URGENCY

    def __call__(self) -> list[Row]:
        return case_rows(self.spec, self.name, self.seed, self.tolerance_factor, self.results, self.compared,
                         self.inputs)


@dataclass(frozen=True)
class TimeCase(InBackendPool):
    """Time a case that passed on `backend`, in a worker of the backend's pool, through its own `run`."""

    backend: str
    spec: ConvSpec
    seed: int
    plugins: PluginSelection = field(default_factory=PluginSelection)
    setup: WorkerSetup | None = None
    expected_seconds: float = 0.0

    def __call__(self) -> Timing:
        return time_backend(_backend(self.backend, self.plugins), self.spec, self.seed)
