"""The backend contract tests, for every backend author to reuse with pytest.

    from harness.testing.contract_suite import BackendContract

    class TestMyBackend(BackendContract):
        backend_name = "my-backend"

The class checks that the backend is registered through the `convparity` entry points with every
member the harness reads (required and optional, see harness.backends.contract), reports a version,
answers `supports` with None or a reason, and, on the `smoke` grid (float64 and float32 by default),
runs without raising anything but `Unsupported`, returns outputs the harness accepts (validated in
harness.evaluation.verdict, as in a sweep), is deterministic, and agrees with the reference: every
row passes, or fails as one of the backend's declared deviations (`xfail`). A declared deviation
that no longer happens (`xpass`) fails the suite, so declarations cannot rot.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from harness.backends.contract import Backend, check_backend
from harness.backends.manager import get_manager
from harness.cases.descriptor import Case
from harness.evaluation.verdict import Ran, Status, evaluate_case, run_backend
from harness.results import Row

ACCEPTED = ("pass", "xfail", "unsupported")


class BackendContract:
    """Subclass with `backend_name` set; pytest collects the tests below for that backend."""

    backend_name: ClassVar[str] = ""
    grid: ClassVar[str] = "smoke"
    dtypes: ClassVar[tuple[str, ...]] = ("float64", "float32")
    seed: ClassVar[int] = 0

    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls) -> Backend:
        manager = get_manager()
        backends = manager.backends()
        if cls.backend_name not in backends:
            broken = manager.broken.get(cls.backend_name)
            pytest.fail(f"backend {cls.backend_name!r} is not registered"
                        + (f": {broken}" if broken else f" (registered: {', '.join(backends)})"))
        backend = backends[cls.backend_name]
        reason = backend.availability()
        if reason:
            pytest.skip(f"{cls.backend_name} unavailable: {reason}")
        return backend

    @pytest.fixture(scope="class")
    @classmethod
    def cases(cls) -> list[Case]:
        grid = get_manager().grids()[cls.grid]
        return [Case(c.spec.replace(dtype=d), c.name) for c in grid.cases() for d in cls.dtypes]

    @pytest.fixture(scope="class")
    @classmethod
    def evaluated(cls, backend: Backend, cases: list[Case]) -> list[tuple[Case, Ran | Status, list[Row]]]:
        """Every case of the grid through the one evaluation path, once for the whole class."""
        return [(case, *evaluate_case(backend, case.spec, name=case.name, seed=cls.seed)) for case in cases]

    def test_registered_with_contract_members(self) -> None:
        backends = get_manager().backends()
        assert self.backend_name in backends, f"{self.backend_name!r} not among {list(backends)}"
        check_backend(backends[self.backend_name])
        availability = backends[self.backend_name].availability()
        assert availability is None or (isinstance(availability, str) and availability.strip())

    def test_version_is_a_string(self, backend: Backend) -> None:
        version = backend.version()
        assert isinstance(version, str) and version.strip(), f"version() returned {version!r}"

    def test_supports_answers_none_or_reason(self, backend: Backend, cases: list[Case]) -> None:
        for case in cases:
            reason = backend.supports(case.spec)
            assert reason is None or (isinstance(reason, str) and reason.strip()), (
                f"supports({case.descriptor}) returned {reason!r}: must be None or a non-empty reason"
            )

    def test_runs_and_returns_outputs_the_harness_accepts(self, evaluated) -> None:
        errors = [f"{case.descriptor} {case.spec.dtype}: {result.message}"
                  for case, result, _ in evaluated if isinstance(result, Status) and result.status == "error"]
        assert not errors, "run() raised or returned what cannot be compared:\n" + "\n".join(errors)
        problems = [f"{case.descriptor} {case.spec.dtype}: {why}"
                    for case, result, _ in evaluated if isinstance(result, Ran) for _, why in result.problems]
        assert not problems, "outputs of the wrong shape or a narrower dtype:\n" + "\n".join(problems)

    def test_deterministic(self, backend: Backend, evaluated) -> None:
        for case, first, _ in evaluated[::4]:
            if not isinstance(first, Ran):
                continue
            second = run_backend(backend, case.spec, self.seed)
            assert isinstance(second, Ran), f"{case.descriptor}: second run gave {second}"
            for tensor, a, b in zip(("y", "dx", "dw", "db"), first.outputs, second.outputs):
                if a is not None:
                    np.testing.assert_array_equal(a, b, err_msg=f"{case.descriptor} {tensor} differs between runs")

    def test_agrees_with_reference(self, evaluated) -> None:
        rows = [row for _, _, case_rows in evaluated for row in case_rows]
        wrong = [f"{r.case} {r.dtype} {r.tensor} bias={r.bias}: {r.status} {r.message}\n  {r.repro}"
                 for r in rows if r.status not in ACCEPTED + ("xpass",)]
        stale = [f"{r.case} {r.dtype} {r.tensor} bias={r.bias}: {r.message}" for r in rows if r.status == "xpass"]
        assert not wrong, "disagrees with the reference:\n" + "\n".join(wrong)
        assert not stale, "declared deviations that no longer happen (xpass):\n" + "\n".join(stale)
