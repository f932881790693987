"""Shared by the tensorflow, keras and jax tests: focused epilogue cases, and planted bugs in a backend's chain.

A planted bug is the honest backend with one post-op step changed in its program's arguments (relu6 capped at 5,
batchnorm without its eps, gelu's tanh form where the erf form is asked for): the same program computes it, so
the verdict must read `fail` where the honest backend passes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from convparity.harness.backends.program import Program
from convparity.harness.cases.builtin_grids import epilogues
from convparity.harness.cases.descriptor import Case
from convparity.harness.evaluation.verdict import evaluate_case
from convparity.harness.testing.checks import case_id


def epilogue_cases(shape: str, dtype: str, only: tuple[str, ...] = ()) -> list[Case]:
    """The epilogues grid's cases on one of its shapes ("1d-0", "2d-1" padded, "2d-2" grouped and strided) in dtype,
    only the chains in `only` where given."""
    return [Case(case.spec.replace(dtype=dtype), case.name) for case in epilogues()
            if case.name.endswith(f" {shape}") and (not only or case.name.removesuffix(f" {shape}") in only)]


def ids(cases: list[Case]) -> list[str]:
    return [f"{case.name.split(' ')[0]}-{case_id(case)}" for case in cases]


def relu6_at_5(step: dict[str, Any]) -> dict[str, Any]:
    return {**step, "beta": 5.0} if step["kind"] == "clip" and step["beta"] == 6 else step


def batchnorm_without_eps(step: dict[str, Any]) -> dict[str, Any]:
    return {**step, "alpha": 0.0} if step["kind"] == "batchnorm" else step


def gelu_tanh_for_erf(step: dict[str, Any]) -> dict[str, Any]:
    return {**step, "kind": "gelu_tanh"} if step["kind"] == "gelu_erf" else step


# (bug, the chain that shows it: values reach past 5 only when scaled up first)
PLANTED = [(relu6_at_5, "linear:8:0+clip:0:6"), (batchnorm_without_eps, "batchnorm"), (gelu_tanh_for_erf, "gelu_erf")]


class Planted:
    """`honest` with `change` applied to every step of its programs' chains; everything else is the honest one's."""

    def __init__(self, honest: Any, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.honest, self.change = honest, change
        self.name = f"{honest.name}-planted-{change.__name__}"

    def __getattr__(self, member: str) -> Any:
        return getattr(self.honest, member)

    def program(self, spec: Any) -> Program:
        program = self.honest.program(spec)
        arguments = dict(program.arguments)
        arguments["post_ops"] = tuple(tuple(self.change(dict(step)).items()) for step in arguments["post_ops"])
        return Program(program.function, arguments)

    def run(self, spec: Any, x: Any, w: Any, b: Any, dy: Any, extras: Any = None) -> Any:
        step = self.program(spec).build()
        return step(x, w, b, dy, operands=tuple(extras.operands)) if extras is not None else step(x, w, b, dy)


def planted_statuses(honest: Any, change: Callable[[dict[str, Any]], dict[str, Any]], spec: Any,
                     ) -> tuple[dict[str, str], dict[str, str]]:
    """{tensor: status} of the planted backend and of the honest one on spec."""
    _, planted = evaluate_case(Planted(honest, change), spec, seed=0)
    _, rows = evaluate_case(honest, spec, seed=0)
    return {row.tensor: row.status for row in planted}, {row.tensor: row.status for row in rows}
