"""Timing a backend's run: warm-up apart, repeats until the budget, and the numbers a Timing reports."""

from __future__ import annotations

import pytest

from convparity.harness.cases.descriptor import parse_case
from convparity.harness.evaluation.speed import SLOW_REPEATS, WARMUP_CALLS, flops, summarize, time_backend


class CountingBackend:
    """Returns zeros of the right shapes; `forward_only` returns y alone; each call takes `seconds` (simulated)."""

    name = "counting"

    def __init__(self, forward_only: bool = False) -> None:
        self.calls = 0
        self.forward_only = forward_only

    def run(self, spec, x, w, b, dy):
        import numpy as np

        self.calls += 1
        y = np.zeros(spec.y_shape)
        if self.forward_only:
            return y, None, None, None
        return y, np.zeros(spec.x_shape), np.zeros(spec.w_shape), None


def test_summary_numbers():
    timing = summarize([4.0, 1.0, 2.0, 3.0, 5.0], operations=6_000_000_000)
    assert (timing.repeats, timing.min_s, timing.median_s) == (5, 1.0, 3.0)
    # quartiles of 1..5 (statistics.quantiles, exclusive method): 1.5 and 4.5; spread = 3 / 3
    assert timing.spread == pytest.approx(1.0)
    assert timing.gflops == pytest.approx(2.0)
    assert summarize([0.5], 10**9).spread == 0.0


def test_flops_count_every_computed_tensor():
    spec = parse_case("mb2ic3iw10oc4kw3").spec  # 8 outputs x 3 taps x 3 channels x 4 out channels x batch 2
    assert spec.multiply_adds == 2 * 4 * 8 * 3 * 3
    assert flops(spec, 3) == 6 * spec.multiply_adds and flops(spec, 1) == 2 * spec.multiply_adds


def test_a_call_slower_than_the_budget_is_repeated_a_few_times_only():
    spec = parse_case("mb2ic3iw10oc4kw3").spec
    backend = CountingBackend()
    timing = time_backend(backend, spec, seed=0, budget=0.0, min_repeats=7, max_repeats=50)
    assert timing.repeats == SLOW_REPEATS and backend.calls == WARMUP_CALLS + SLOW_REPEATS
    assert timing.gflops == pytest.approx(6 * spec.multiply_adds / timing.median_s / 1e9)
    forward = CountingBackend(forward_only=True)
    timing = time_backend(forward, spec, seed=0, budget=0.0, min_repeats=5)
    assert timing.gflops == pytest.approx(2 * spec.multiply_adds / timing.median_s / 1e9)


def test_repeats_stop_at_the_maximum():
    backend = CountingBackend()
    timing = time_backend(backend, parse_case("mb1ic1iw4oc1kw3").spec, seed=0, budget=3600.0, max_repeats=11)
    assert timing.repeats == 11 and backend.calls == WARMUP_CALLS + 11
