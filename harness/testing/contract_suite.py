"""The backend contract tests, for every backend author to reuse with pytest.

    from convparity.harness.testing.contract_suite import BackendContract

    class TestMyBackend(BackendContract):
        backend_name = "my-backend"
        # grid = "smoke"                          # a named grid, TOML or batch file
        # dtypes = ("float64", "float32")         # the default

The class checks that the backend is registered through the `convparity` entry points with every
member the harness reads (required and optional, see convparity.harness.backends.contract), reports a version,
answers `supports` with None or a reason and gives the same bits twice; then each case of the grid in
each dtype is a test of its own, with the case's descriptor as its id: it runs through the one
evaluation path (convparity.harness.evaluation.verdict, as in a sweep) and passes when every tensor agrees with
the reference, is skipped when the backend does not support the case, and is an xfail when every
disagreement is one of the backend's declared deviations. A declared deviation that no longer
happens (`xpass`) fails, so declarations cannot rot; a failure ends with the repro command.

The same checks (convparity.harness.testing.checks) are the items of the pytest plugin's `--convparity-backend`.
"""

from __future__ import annotations

from typing import ClassVar

import pytest

from convparity.harness.backends.contract import Backend
from convparity.harness.cases.descriptor import Case
from convparity.harness.testing.checks import (
    CASE_TEST,
    case_id,
    check_case,
    check_deterministic,
    check_program,
    check_registered,
    check_supports,
    check_version,
    grid_cases,
    usable_backend,
)


class BackendContract:
    """Subclass with `backend_name` set; pytest collects the tests below for that backend."""

    backend_name: ClassVar[str] = ""
    grid: ClassVar[str] = "smoke"
    dtypes: ClassVar[tuple[str, ...]] = ("float64", "float32")
    seed: ClassVar[int] = 0

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """One `test_agrees_with_reference` per case x dtype of the grid, with the descriptor as its id."""
        if metafunc.function.__name__ == CASE_TEST:
            cases = grid_cases([self.grid], self.dtypes)
            metafunc.parametrize("case", cases, ids=[case_id(case) for case in cases])

    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls) -> Backend:
        return usable_backend(cls.backend_name)

    @pytest.fixture(scope="class")
    @classmethod
    def cases(cls) -> list[Case]:
        return grid_cases([cls.grid], cls.dtypes)

    def test_registered_with_contract_members(self) -> None:
        check_registered(self.backend_name)

    def test_version_is_a_string(self) -> None:
        check_version(self.backend_name)

    def test_supports_answers_none_or_reason(self, cases: list[Case]) -> None:
        check_supports(self.backend_name, cases)

    def test_deterministic(self, cases: list[Case]) -> None:
        check_deterministic(self.backend_name, cases, self.seed)

    def test_program_is_self_contained(self, cases: list[Case]) -> None:
        check_program(self.backend_name, cases, self.seed)

    def test_agrees_with_reference(self, backend: Backend, case: Case) -> None:
        check_case(backend, case, self.seed)
