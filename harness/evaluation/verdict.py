"""From one case's numbers to its rows: reference results, comparison, statuses.

Kept apart from the runner so that whichever process runs a backend, the rows come out the same.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass

import numpy as np

import reference_impl
from harness.backends.contract import Outputs
from harness.cases.inputs import Inputs
from harness.cases.spec import ConvSpec
from harness.evaluation.bound import compare_tensor
from harness.results import TENSORS, Row


@dataclass(frozen=True)
class Reference:
    """Float64 results and magnitudes (the same ops on absolute values) of one case, keyed by tensor."""

    values: dict[str, np.ndarray]
    magnitudes: dict[str, np.ndarray]


def tensors(spec: ConvSpec) -> tuple[str, ...]:
    """The tensors a case has: db only with a bias."""
    return TENSORS if spec.bias else TENSORS[:3]


def reference(spec: ConvSpec, inputs: Inputs) -> Reference:
    """Reference results computed from the inputs as cast to the spec's dtype, in float64."""
    kwargs = dict(stride=spec.stride, padding=spec.padding, dilation=spec.dilation, groups=spec.groups)

    def run(x, w, b, dy):
        return dict(zip(TENSORS, reference_impl.conv_forward_backward(x, w, b, dy, **kwargs)))

    as64 = [None if a is None else np.asarray(a, dtype=np.float64) for a in (inputs.x, inputs.w, inputs.b, inputs.dy)]
    values = run(*as64)
    magnitudes = run(*[None if a is None else np.abs(a) for a in as64])
    return Reference(values={t: values[t] for t in tensors(spec)}, magnitudes={t: magnitudes[t] for t in tensors(spec)})


def repro(spec: ConvSpec, backend: str, seed: int, tolerance_factor: float = 1.0) -> str:
    """The command line that re-runs and explains this case alone, under the same bound."""
    words = ["convparity", "explain", spec.descriptor, "-b", backend, "--dtype", spec.dtype, "--seed", str(seed)]
    if not spec.bias:
        words.append("--no-bias")
    if tolerance_factor != 1.0:
        words += ["--tolerance-factor", repr(tolerance_factor)]
    return shlex.join(words)


def _base(spec: ConvSpec, name: str, backend: str, version: str, seed: int, tolerance_factor: float = 1.0) -> dict:
    return {**Row.spec_columns(spec), "name": name, "backend": backend, "backend_version": version,
            "reduction": 0, "repro": repro(spec, backend, seed, tolerance_factor)}


def status_rows(
    spec: ConvSpec, name: str, backend: str, version: str, seed: int, status: str, message: str,
    seconds: float = math.nan,
) -> list[Row]:
    """The same status for every tensor of the case (unsupported, error, crash, timeout, unavailable)."""
    base = _base(spec, name, backend, version, seed)
    return [Row(**base, tensor=t, status=status, message=message, seconds=seconds) for t in tensors(spec)]


def compare_rows(
    spec: ConvSpec,
    name: str,
    backend: str,
    version: str,
    seed: int,
    outputs: Outputs,
    ref: Reference,
    seconds: float,
    *,
    tolerance_factor: float = 1.0,
    accumulation: str | None = None,
) -> list[Row]:
    """One row per tensor: pass/fail from the bound, or unsupported where the backend gave no gradient."""
    base = _base(spec, name, backend, version, seed, tolerance_factor)
    reductions = spec.reductions
    rows = []
    for tensor, out in zip(TENSORS, outputs):
        if tensor not in ref.values:
            continue
        base["reduction"] = reductions[tensor]
        if out is None:
            rows.append(Row(**base, tensor=tensor, status="unsupported", seconds=seconds,
                            message=f"{backend} computes no {tensor} (forward only)"))
            continue
        result = compare_tensor(
            tensor, np.asarray(out), ref.values[tensor], ref.magnitudes[tensor], reduction=reductions[tensor],
            dtype=spec.dtype, accumulation=accumulation, tolerance_factor=tolerance_factor,
        )
        rows.append(Row(
            **base, tensor=tensor, status="pass" if result.passed else "fail", err_ratio=result.err_ratio,
            max_abs_err=result.max_abs_err, max_rel_err=result.max_rel_err,
            worst_index="" if result.worst_index is None else dims_index(result.worst_index),
            worst_value=result.worst_value, worst_reference=result.worst_reference,
            allclose=str(result.allclose).lower(), message=result.message, seconds=seconds,
        ))
    return rows


def dims_index(index: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, index)) + ")"
