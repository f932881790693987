"""How fast a backend computes a case it got right: `--perf`, measured in the backend's own worker.

`time_backend(backend, spec, seed)` draws the case's inputs as the evaluation does and calls the
backend's own `run` (conversions, the forward and every gradient it computes), first WARMUP_CALLS
times untimed (compilation, caches, allocator), then repeatedly, each call timed with
`time.perf_counter`, until it has at least MIN_REPEATS calls and BUDGET_SECONDS of them, or MAX_REPEATS
calls; a case whose one call outlasts the budget gets SLOW_REPEATS. The case's first call, compile
included, is the sweep's own (the rows' `seconds`), so steady state and first call stay apart.

A `Timing` holds the repeats, the fastest and the median call, the spread (the interquartile range of
the repeats over their median: how noisy the machine was while timing, robust to the odd call a busy
machine stretches) and GFLOP/s at the median, from the exact
multiply-add count (`ConvSpec.multiply_adds`: y, dx and dw take as many each; db's additions are not
counted) times two, times the tensors the backend computed.
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass
from typing import Any

from convparity.harness.backends.contract import Backend, takes_extras
from convparity.harness.cases.inputs import make_inputs
from convparity.harness.cases.spec import ConvSpec

WARMUP_CALLS = 2
MIN_REPEATS = 5
MAX_REPEATS = 50
SLOW_REPEATS = 3
BUDGET_SECONDS = 0.5


@dataclass(frozen=True)
class Timing:
    """What timing a case on a backend measured (seconds per call of `run`)."""

    repeats: int
    min_s: float
    median_s: float
    spread: float
    gflops: float


def flops(spec: ConvSpec, computed: int) -> int:
    """Floating-point operations of `computed` of y, dx and dw: a multiply and an add per multiply-add each."""
    return 2 * spec.multiply_adds * computed


def summarize(samples: list[float], operations: int) -> Timing:
    """A Timing of the timed calls' seconds `samples` (at least one)."""
    median = statistics.median(samples)
    quartiles = statistics.quantiles(samples, n=4) if len(samples) > 1 else [median] * 3
    spread = (quartiles[2] - quartiles[0]) / median if median > 0 else 0.0
    rate = operations / median / 1e9 if median > 0 else float("inf")
    return Timing(len(samples), min(samples), median, spread, rate)


def time_backend(backend: Backend, spec: ConvSpec, seed: int, *, budget: float = BUDGET_SECONDS,
                 warmup: int = WARMUP_CALLS, min_repeats: int = MIN_REPEATS,
                 max_repeats: int = MAX_REPEATS) -> Timing:
    """Time `backend.run` on the case (see the module docstring); whatever `run` raises propagates."""
    inputs = make_inputs(spec, seed)
    arguments = (spec, inputs.x, inputs.w, inputs.b, inputs.dy)
    extras: dict[str, Any] = {"extras": inputs.extras} if takes_extras(spec) else {}
    outputs = None
    for _ in range(max(warmup, 1)):
        outputs = backend.run(*arguments, **extras)
    computed = sum(out is not None for out in (outputs or ())[:3])
    gc.collect()
    samples: list[float] = []
    spent = 0.0
    while len(samples) < max_repeats:
        start = time.perf_counter()
        backend.run(*arguments, **extras)
        samples.append(time.perf_counter() - start)
        spent += samples[-1]
        slow = samples[0] >= budget
        if len(samples) >= (min(SLOW_REPEATS, min_repeats) if slow else min_repeats) and (slow or spent >= budget):
            break
    return summarize(samples, flops(spec, computed))
