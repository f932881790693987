"""Shared by the torch tests (test_torch, test_torch_inductor, test_torch_quantized): outputs a backend computed
from inputs of our own judged by the one verdict path of a sweep, and statuses by tensor.

`judged_rows` is `evaluate_case` for inputs that are not the seeded draw (crafted tie, saturation or fusion
inputs): the backend's declared accumulation, rounding and deviations, the reference of those inputs, and
`compare_rows`, the function every sweep row goes through.
"""

from __future__ import annotations

from collections.abc import Sequence

from convparity.harness.backends.contract import accumulation_of, declared_rounding, optional_members
from convparity.harness.backends.deviations import matching
from convparity.harness.cases.inputs import Inputs
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.evaluation.reference import reference
from convparity.harness.evaluation.verdict import Ran, compare_rows, validate_outputs
from convparity.harness.results import Row


def judged_rows(backend: object, spec: ConvSpec, inputs: Inputs, outputs: object) -> list[Row]:
    """The rows of `outputs` (what `backend` returned for `inputs`) as a sweep would write them."""
    members = optional_members(backend)
    arrays, problems = validate_outputs(spec, outputs)
    version = backend.version()  # type: ignore[attr-defined]
    ran = Ran(arrays, 0.0, accumulation_of(members, spec.dtype), problems,
              matching(members.deviations, spec, version), rounding=declared_rounding(members, spec.dtype))
    return compare_rows(spec, "", backend.name, version, 0, ran, reference(spec, inputs))  # type: ignore[attr-defined]


def run_with(backend: object, spec: ConvSpec, inputs: Inputs) -> object:
    """backend.run on `inputs`, with extras where the spec has any."""
    return backend.run(spec, inputs.x, inputs.w, inputs.b, inputs.dy, extras=inputs.extras)  # type: ignore[attr-defined]


def statuses(rows: Sequence[Row]) -> dict[str, str]:
    """{tensor: status} of one case's rows."""
    return {row.tensor: row.status for row in rows}
