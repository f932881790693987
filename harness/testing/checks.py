"""The backend contract checks, one function each, shared by `BackendContract` and the pytest plugin.

Both turn a backend name, a grid and dtypes into the same test items: the contract checks
(`CONTRACT_CHECKS`, one item each) and one item per case x dtype (`check_case`), whose id is the
case's descriptor (`case_id`). Every verdict comes from `convparity.harness.evaluation.verdict.evaluate_case`;
these functions only say which rows a test may accept. A failure is reported without a traceback
(the harness's frames say nothing about the backend): its message names the case, each tensor that
failed, and ends with the row's repro command.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

import numpy as np
import pytest

from convparity.harness.backends.contract import Backend, BackendContractError, check_backend, step_extras
from convparity.harness.backends.manager import get_manager
from convparity.harness.cases.descriptor import Case
from convparity.harness.cases.inputs import make_inputs
from convparity.harness.cases.selection import CaseSelection, expand
from convparity.harness.errors import describe_exception
from convparity.harness.evaluation.verdict import Ran, Status, evaluate_case, run_backend, validate_outputs
from convparity.harness.results import Row, bias_word

ACCEPTED = ("pass", "xfail", "unsupported")
DETERMINISM_SAMPLE = 4  # `check_deterministic` reruns every 4th case


def fail(message: str) -> NoReturn:
    """Fail the running test with `message` alone."""
    pytest.fail(message, pytrace=False)
    raise AssertionError(message)  # not reached: pytest.fail raises (said here for type checkers without pytest)


@dataclass(frozen=True)
class CaseVerdict:
    """One case's outcome: "pass"; "fail" (some tensor neither passes, is unsupported nor fails as a
    declared deviation); "xfail" (every disagreement declared); "unsupported" (the backend ran none
    of it). `message` says what and why for all but "pass"."""

    outcome: str
    message: str
    rows: tuple[Row, ...]


def grid_cases(grids: Sequence[str], dtypes: Sequence[str]) -> list[Case]:
    """Every case of `grids` (named grids, TOML or batch files) in every dtype, case-major, without repeats.

    Raises GridError naming an unknown grid; ValueError naming an unknown dtype."""
    from convparity.harness.vocabulary import check_dtype

    for dtype in dtypes:
        check_dtype(dtype)
    _, stream = CaseSelection(grids=tuple(grids)).stream()
    return list(expand(stream, tuple(dict.fromkeys(dtypes))))


def case_id(case: Case) -> str:
    """The test id of a case in one dtype: its descriptor, the dtype, and "nobias" without a bias."""
    spec = case.spec
    return f"{spec.descriptor}-{spec.dtype}" + ("" if spec.bias else "-nobias")


def registered_backend(name: str) -> Backend:
    """The backend registered as `name`; else the test fails, saying why (broken, or which are registered)."""
    manager = get_manager()
    backends = manager.backends()
    if name not in backends:
        broken = manager.broken.get(name)
        fail(f"backend {name!r} is not registered"
             + (f": {broken}" if broken else f" (registered: {', '.join(backends) or 'none'})"))
    return backends[name]


def usable_backend(name: str) -> Backend:
    """`registered_backend(name)`, skipping the test (with the reason) when it is unavailable here."""
    backend = registered_backend(name)
    reason = backend.availability()
    if reason:
        pytest.skip(f"{name} unavailable: {reason}")
    return backend


# -- the contract checks -----------------------------------------------------------------------------

def check_registered(name: str, cases: Sequence[Case] = (), seed: int = 0) -> None:
    """Registered through the plugin manager with every contract member valid; availability() None or a reason."""
    backend = registered_backend(name)
    try:
        check_backend(backend)
    except BackendContractError as error:
        fail(str(error))
    availability = backend.availability()
    if not (availability is None or (isinstance(availability, str) and availability.strip())):
        fail(f"availability() returned {availability!r}: must be None or a non-empty reason")


def check_version(name: str, cases: Sequence[Case] = (), seed: int = 0) -> None:
    """version() is a non-empty string."""
    version = usable_backend(name).version()
    if not (isinstance(version, str) and version.strip()):
        fail(f"version() returned {version!r}: must be a non-empty string")


def check_supports(name: str, cases: Sequence[Case], seed: int = 0) -> None:
    """supports(spec) answers None or a non-empty reason for every case."""
    backend = usable_backend(name)
    for case in cases:
        reason = backend.supports(case.spec)
        if not (reason is None or (isinstance(reason, str) and reason.strip())):
            fail(f"supports({case.descriptor}) returned {reason!r}: must be None or a non-empty reason")


def check_deterministic(name: str, cases: Sequence[Case], seed: int = 0) -> None:
    """Two runs of every DETERMINISM_SAMPLE-th case give the same bits in every tensor."""
    backend = usable_backend(name)
    for case in cases[::DETERMINISM_SAMPLE]:
        first = run_backend(backend, case.spec, seed)
        if not isinstance(first, Ran):
            continue  # unsupported or an error: the case's own item reports it
        second = run_backend(backend, case.spec, seed)
        if not isinstance(second, Ran):
            fail(f"{case_id(case)}: the second run gave {second.status}: {second.message}")
        for tensor, a in first.outputs.items():
            b = second.outputs.get(tensor)
            if a is not None and (b is None or not np.array_equal(a, b, equal_nan=True)):
                fail(f"{case_id(case)}: {tensor} differs between two runs of the same inputs")


def check_program(name: str, cases: Sequence[Case], seed: int = 0) -> None:
    """The backend's `program` is self-contained and is what `run` computes: for every DETERMINISM_SAMPLE-th
    case it runs, the function's source alone, executed on a namespace holding only builtins, gives the bits
    `run` gives. A backend without `program` skips."""
    backend = usable_backend(name)
    program_of = getattr(backend, "program", None)
    if program_of is None:
        pytest.skip(f"backend {name!r} declares no program (its repro scripts go through convparity)")
    checked = 0
    for case in cases[::DETERMINISM_SAMPLE]:
        expected = run_backend(backend, case.spec, seed)
        program = program_of(case.spec)
        if not isinstance(expected, Ran) or program is None:
            continue
        namespace: dict = {"__builtins__": builtins}
        try:
            exec(compile(program.source(), f"<the program of {name}>", "exec"), namespace)  # noqa: S102
            inputs = make_inputs(case.spec, seed)
            step = namespace[program.name](**program.arguments)
            got, _ = validate_outputs(case.spec, step(inputs.x, inputs.w, inputs.b, inputs.dy,
                                                      **step_extras(case.spec, inputs.extras)))
        except Exception as error:  # noqa: BLE001 - what a repro script would meet
            fail(f"{case_id(case)}: the source of {program.name}, run alone, raised {describe_exception(error)}: "
                 "a program imports what it uses inside its body and reads no name of its module")
        for tensor, a in expected.outputs.items():
            b = got.get(tensor)
            if a is not None and (b is None or not np.array_equal(a, np.asarray(b), equal_nan=True)):
                fail(f"{case_id(case)}: {tensor} of {program.name}, run alone, differs from what run() gives")
        checked += 1
    if not checked:
        pytest.skip("no case of the grid runs with a program")


CONTRACT_CHECKS: dict[str, Callable[[str, Sequence[Case], int], None]] = {
    "test_registered_with_contract_members": check_registered,
    "test_version_is_a_string": check_version,
    "test_supports_answers_none_or_reason": check_supports,
    "test_deterministic": check_deterministic,
    "test_program_is_self_contained": check_program,
}
CASE_TEST = "test_agrees_with_reference"


# -- one case ----------------------------------------------------------------------------------------

def judge_case(backend: Backend, case: Case, seed: int = 0) -> CaseVerdict:
    """One case through `evaluate_case`, judged as the contract suite judges it: a fail lists each tensor
    that neither passes, is unsupported nor fails as a declared deviation (xpass, a stale declaration,
    is a failure too)."""
    result, rows = evaluate_case(backend, case.spec, name=case.name, seed=seed, inputs=case.inputs)
    wrong = [row for row in rows if row.status not in ACCEPTED]
    if wrong:
        return CaseVerdict("fail", failure_message(case, result, wrong), tuple(rows))
    if all(row.status == "unsupported" for row in rows):
        return CaseVerdict("unsupported", rows[0].message if rows else "", tuple(rows))
    declared: dict[str, list[str]] = {}  # each declaration with the tensors it turned into xfail
    for row in rows:
        if row.status == "xfail":
            declared.setdefault(row.deviation, []).append(row.tensor)
    if declared:
        return CaseVerdict("xfail", "; ".join(f"{', '.join(tensors)}: {deviation}"
                                             for deviation, tensors in declared.items()), tuple(rows))
    return CaseVerdict("pass", "", tuple(rows))


def failure_message(case: Case, result: Ran | Status, wrong: Sequence[Row]) -> str:
    """What failed in one case, a line per tensor, and the command that reproduces it."""
    spec = case.spec
    head = f"{spec.descriptor} {spec.dtype} bias {bias_word(spec.bias)}" + (f" ({case.name})" if case.name else "")
    lines = [head + (": run() raised or returned what cannot be compared" if isinstance(result, Status) else ":")]
    for row in wrong:
        ratio = "" if np.isnan(row.err_ratio) else f", err_ratio {row.err_ratio:.3g}"
        lines.append(f"  {row.tensor}: {row.status}{ratio}: {row.message}")
    lines.append(f"repro: {wrong[0].repro}")
    return "\n".join(lines)


def check_case(backend: Backend, case: Case, seed: int = 0) -> CaseVerdict:
    """`judge_case` as a pytest outcome: fails, skips an unsupported case, xfails a declared deviation."""
    verdict = judge_case(backend, case, seed)
    if verdict.outcome == "fail":
        fail(verdict.message)
    if verdict.outcome == "unsupported":
        pytest.skip(f"unsupported: {verdict.message}")
    if verdict.outcome == "xfail":
        pytest.xfail(f"known deviation: {verdict.message}")
    return verdict
