"""How long a task should take, before it runs: for longest-first scheduling and for balancing shards.

An estimate, not a measurement: `expected_seconds(spec, backend)` = the backend's fixed cost per case
+ the case's arithmetic (`gflop`) x the backend's seconds per GFLOP. Only the ratios matter (which task
first, which shard), and on every grid we ship the fixed part dominates: it is compiling (XLA backends)
or dispatching, a case's arithmetic is micro- to milli-seconds.

Fixed costs are the median `seconds` per case of a 2-core run of the smoke and default grids in four
dtypes (results.csv, 2026-12, cold compile caches): jax 0.42 s, keras 0.42 s, tensorflow 0.27 s,
torch 4 ms, torch-channels_last 2 ms, onnxruntime 2 ms, the reference backend 0.3 ms. The throughputs
are round numbers of the right order for one CPU core: 20 GFLOP/s for a framework (0.05 s/GFLOP),
10 for the NumPy reference including its magnitude pass (0.1 s/GFLOP), and half types at a quarter of
that (most CPUs convert them). A backend not listed costs like a fast framework (DEFAULT_COST).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from convparity.harness.cases.spec import ConvSpec


@dataclass(frozen=True)
class BackendCost:
    """fixed: seconds per case whatever its size; per_gflop: seconds per 10^9 floating-point operations."""

    fixed: float
    per_gflop: float


COSTS = {
    "jax": BackendCost(0.42, 0.05),
    "keras": BackendCost(0.42, 0.05),
    "tensorflow": BackendCost(0.27, 0.05),
    "torch": BackendCost(0.004, 0.05),
    "torch-channels_last": BackendCost(0.002, 0.05),
    "torch-cuda": BackendCost(0.004, 0.001),
    "onnxruntime": BackendCost(0.002, 0.05),
    "reference": BackendCost(0.0003, 0.1),
}
DEFAULT_COST = BackendCost(0.01, 0.05)
REFERENCE_COST = BackendCost(0.001, 0.1)  # the evaluation: reference outputs, magnitudes, comparisons
HALF_TYPE_SLOWDOWN = 4.0


def gflop(spec: ConvSpec) -> float:
    """10^9 x the multiply-adds x 2 of y, dx and dw together: 3 x 2 x N x O x prod(out) x C/groups x prod(kernel)."""
    per_output = (spec.in_channels // spec.groups) * math.prod(spec.kernel_size)
    return 6 * spec.batch * spec.out_channels * math.prod(spec.output_size) * per_output / 1e9


def _seconds(cost: BackendCost, spec: ConvSpec) -> float:
    slowdown = HALF_TYPE_SLOWDOWN if spec.dtype in ("float16", "bfloat16") else 1.0
    return cost.fixed + gflop(spec) * cost.per_gflop * slowdown


def expected_seconds(spec: ConvSpec, backend: str) -> float:
    """Estimated seconds for `backend` to run `spec` (outputs and gradients) in its worker."""
    return _seconds(COSTS.get(backend, DEFAULT_COST), spec)


def expected_evaluation_seconds(spec: ConvSpec, backends: int) -> float:
    """Estimated seconds to evaluate `spec`: the reference once, then comparing `backends` backends' outputs."""
    return _seconds(REFERENCE_COST, spec) * (1 + 0.1 * backends)


def expected_item_seconds(spec: ConvSpec, backends: tuple[str, ...]) -> float:
    """Estimated seconds of every task of one case in one dtype: each backend's run and the evaluation."""
    return sum(expected_seconds(spec, b) for b in backends) + expected_evaluation_seconds(spec, len(backends))
