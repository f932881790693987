"""The backend contract tests, for every backend author to reuse with pytest.

    from harness.testing.contract_suite import BackendContract

    class TestMyBackend(BackendContract):
        backend_name = "my-backend"
        known_failures = Path(__file__).parent / "known_failures.txt"   # optional

The class checks that the backend is registered through the `convparity` entry points, reports a
version, answers `supports` with None or a reason, raises only `Unsupported` on specs it cannot run,
returns outputs of the right shapes and floating dtypes, is deterministic, and agrees with the
reference within the error bound on the `smoke` grid (float64 and float32 by default).

Known failures are a text file owned by the backend, one entry a line:

    CASE  DTYPE  TENSOR  BIAS  # reason (required)

each field an fnmatch pattern over the canonical descriptor, dtype, tensor (y, dx, dw, db) and bias
(on/off). A known failure still fails in parity reports; here it is expected. An entry that matches
no failing row is stale and fails the suite, so the list cannot rot.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from harness.backends.contract import Backend, check_backend, declared_accumulation
from harness.backends.limits import Unsupported
from harness.backends.manager import get_manager
from harness.cases.descriptor import Case
from harness.cases.inputs import make_inputs
from harness.evaluation.verdict import compare_rows, reference
from harness.results import Row


@dataclass(frozen=True)
class KnownFailure:
    case: str
    dtype: str
    tensor: str
    bias: str
    reason: str
    line: int

    def matches(self, row: Row) -> bool:
        return all(
            fnmatch.fnmatchcase(value, pattern)
            for value, pattern in (
                (row.case, self.case),
                (row.dtype, self.dtype),
                (row.tensor, self.tensor),
                ("on" if row.bias else "off", self.bias),
            )
        )


def read_known_failures(path: str | Path) -> list[KnownFailure]:
    """Entries of a known-failures file; a malformed line is a ValueError naming the file and line."""
    entries = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        text, _, reason = line.partition("#")
        fields = text.split()
        if not fields:
            continue
        if len(fields) != 4 or not reason.strip():
            raise ValueError(f"{path}:{number}: expected 'CASE DTYPE TENSOR BIAS  # reason', got {line!r}")
        case, dtype, tensor, bias = fields
        entries.append(KnownFailure(case, dtype, tensor, bias, reason=reason.strip(), line=number))
    return entries


class BackendContract:
    """Subclass with `backend_name` set; pytest collects the tests below for that backend."""

    backend_name: ClassVar[str] = ""
    grid: ClassVar[str] = "smoke"
    dtypes: ClassVar[tuple[str, ...]] = ("float64", "float32")
    known_failures: ClassVar[str | Path | None] = None
    seed: ClassVar[int] = 0

    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls) -> Backend:
        backends = get_manager().backends()
        if cls.backend_name not in backends:
            pytest.fail(f"backend {cls.backend_name!r} is not registered (registered: {', '.join(backends)})")
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

    def test_outputs_have_canonical_shapes_and_float_dtypes(self, backend: Backend, cases: list[Case]) -> None:
        for case in self._runnable(backend, cases):
            spec = case.spec
            outputs = self._run(backend, case)
            if outputs is None:
                continue
            assert isinstance(outputs, (tuple, list)) and len(outputs) == 4, "run() must return (y, dx, dw, db)"
            expected = {"y": spec.y_shape, "dx": spec.x_shape, "dw": spec.w_shape, "db": (spec.out_channels,)}
            assert outputs[0] is not None, f"{case.descriptor}: y must not be None"
            for tensor, out in zip(expected, outputs):
                if out is None or (tensor == "db" and not spec.bias):
                    continue
                assert isinstance(out, np.ndarray), f"{case.descriptor}: {tensor} is {type(out).__name__}"
                assert out.shape == expected[tensor], f"{case.descriptor}: {tensor} shape {out.shape}"
                assert out.dtype.kind == "f" or "float" in out.dtype.name, f"{tensor} dtype {out.dtype}"

    def test_deterministic(self, backend: Backend, cases: list[Case]) -> None:
        for case in self._runnable(backend, cases)[::4]:
            first, second = self._run(backend, case), self._run(backend, case)
            if first is None or second is None:
                continue
            for tensor, a, b in zip(("y", "dx", "dw", "db"), first, second):
                if a is not None:
                    np.testing.assert_array_equal(a, b, err_msg=f"{case.descriptor} {tensor} differs between runs")

    def test_agrees_with_reference(self, backend: Backend, cases: list[Case]) -> None:
        known = read_known_failures(self.known_failures) if self.known_failures else []
        used: set[int] = set()
        unexpected = []
        version = backend.version()
        for case in self._runnable(backend, cases):
            outputs = self._run(backend, case)
            if outputs is None:
                continue
            ref = reference(case.spec, make_inputs(case.spec, self.seed))
            rows = compare_rows(case.spec, case.name, backend.name, version, self.seed, tuple(outputs), ref, 0.0,
                                accumulation=declared_accumulation(backend, case.spec.dtype))
            for row in rows:
                if row.status != "fail":
                    continue
                matched = [k for k in known if k.matches(row)]
                used.update(k.line for k in matched)
                if not matched:
                    unexpected.append(f"{row.case} {row.dtype} {row.tensor} bias={row.bias}: {row.message}")
        stale = [f"line {k.line}: {k.case} {k.dtype} {k.tensor} {k.bias}" for k in known if k.line not in used]
        assert not unexpected, "disagrees with the reference:\n" + "\n".join(unexpected)
        assert not stale, f"known failures in {self.known_failures} that no longer fail:\n" + "\n".join(stale)

    def _runnable(self, backend: Backend, cases: list[Case]) -> list[Case]:
        return [case for case in cases if backend.supports(case.spec) is None]

    def _run(self, backend: Backend, case: Case):
        """Outputs of one case, or None when the backend raises Unsupported (any other exception fails)."""
        inputs = make_inputs(case.spec, self.seed)
        try:
            return backend.run(case.spec, inputs.x, inputs.w, inputs.b, inputs.dy)
        except Unsupported as error:
            assert str(error).strip(), f"{case.descriptor}: Unsupported raised without a reason"
            return None
