"""Shared by the tests of the compiling backends iree and tvm: a focused subset of the epilogues grid, a planted
epilogue bug, and the evidence that a narrow dtype accumulates in itself."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from convparity.harness.backends.program import Program
from convparity.harness.cases.builtin_grids import epilogues
from convparity.harness.cases.descriptor import Case
from convparity.harness.cases.inputs import make_inputs
from convparity.harness.evaluation.bound import compare_tensor
from convparity.harness.evaluation.reference import reference
from convparity.harness.evaluation.verdict import Ran, evaluate_case
from convparity.harness.results import Row

ROOT = Path(__file__).resolve().parents[2]


def workers_import_the_installed_package(monkeypatch, folder: Path) -> None:
    """Sweep workers get this process's sys.path as PYTHONPATH; with the checkout's root on it, the root's
    convparity/ folder (the facade, no harness/ in it: the wheel maps harness/ there) shadows the installed wheel
    and a worker of a tox environment cannot import convparity.harness. Run from `folder`, without the root."""
    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path if entry and Path(entry).resolve() != ROOT])


# One case per kind of step a compiler treats differently: each operand kind (sum with a scale, a per-channel and a
# per-tensor binary, per-channel prelu, batchnorm), eltwise kinds with parameters (a leaky relu among them),
# transcendental ones, a kink (max), a jump (round), and chains, over the three shapes of the grid (1-D, 2-D padded,
# 2-D grouped and strided). A chain bug planted in either plugin's program fails test_epilogues_agree.
EPILOGUE_SUBSET = (
    "batchnorm+sum+relu 2d-2", "sum:0.5+gelu_erf 1d-0", "add:f32:per_oc+clip:0:6 2d-1", "prelu:per_oc 2d-2",
    "linear:2:-1+tanh+mul:f32:per_tensor 2d-1", "hardswish:0.16666667:0.5 2d-2", "mish 1d-0", "max:f32:per_oc 2d-1",
    "abs+log 2d-2", "round 1d-0", "batchnorm+swish:1 2d-1", "relu:0.1 2d-2",
)


def epilogue_cases(names: tuple[str, ...] = EPILOGUE_SUBSET, dtype: str = "float32") -> list[Case]:
    """The epilogues grid's cases of those names, in `dtype`."""
    cases = {case.name: case for case in epilogues()}
    return [Case(cases[name].spec.replace(dtype=dtype), name) for name in names]


def statuses(rows: list[Row]) -> dict[str, str]:
    return {row.tensor: row.status for row in rows}


def problems(backend, cases: list[Case], seed: int = 7) -> list[str]:
    """One line per row of `cases` that is neither pass nor unsupported (an xfail included)."""
    found = []
    for case in cases:
        _, rows = evaluate_case(backend, case.spec, name=case.name, seed=seed)
        found += [f"{case.name} {row.tensor}: {row.status} {row.err_ratio:.3g} {row.message}" for row in rows
                  if row.status not in ("pass", "unsupported")]
    return found


def with_post_ops_changed(program: Program, change) -> Program:
    """The program with each post-op step (a dict) passed through `change`: a planted bug in the chain."""
    steps = tuple(tuple(change(dict(step)).items()) for step in program.arguments["post_ops"])
    return Program(program.function, {**program.arguments, "post_ops": steps})


def narrow_accumulation_evidence(backend, case: Case, tensor: str = "y") -> tuple[float, float]:
    """(error ratio under the float32-accumulation bound, under the bound for accumulation in the case's dtype)
    of `tensor`: the first above 1 and the second below it is what summing in the narrow dtype gives."""
    spec = case.spec
    result, _ = evaluate_case(backend, spec, seed=0)
    assert isinstance(result, Ran), result
    out = result.outputs[tensor]
    ref = reference(spec, make_inputs(spec, 0))
    ratios = []
    for accumulation in ("float32", spec.dtype):
        comparison = compare_tensor(tensor, np.asarray(out), ref.values[tensor], ref.magnitudes[tensor],
                                    reduction=spec.reductions[tensor], dtype=spec.dtype, accumulation=accumulation)
        ratios.append(comparison.err_ratio)
    return ratios[0], ratios[1]
