"""Integer outputs judged in quantization steps: how far each code is from the exact one, and why.

For every element of an integer y, with v its exact value before rounding (harness.evaluation.reference),
`expected` the code the spec's rounding gives and `declared` the code the backend's declared rounding
gives (harness.backends.contract: `rounding`), d = out - expected in steps:

- exact:    d = 0;
- near-tie: the backend's code is one a value within the window W of v rounds to (the window is how far
            an implementation's own float arithmetic may move v: harness.evaluation.chain_bound.code_window),
            so a code either side of a tie that close is right: allowed;
- tie:      |d| = 1 where v is exactly a tie that float arithmetic computes exactly (a power-of-two
            multiplier sx sw / sy on an accumulator below 2**24): allowed only as the declared rounding
            rounds it (a backend that rounds half away while it declares half to even fails here);
- off-tie:  |d| = 1 elsewhere: allowed only where the declared rounding gives that code (TFLite's
            double rounding may differ by one step off a tie);
- more:     |d| > 1: allowed only where the declared rounding gives that code.

The case passes when every element is allowed. `err_ratio` is at most 1 then (|out - v| / (0.5 + W) for
an allowed element, 0 for an exact one) and 1 + |d| of the worst element when it fails, so a report
sorted by err_ratio lists failing integer rows after passing ones and by their steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BINS = ("exact", "near-tie", "tie", "off-tie", "more")


@dataclass(frozen=True)
class StepComparison:
    """How an integer tensor compares, in steps (module docstring)."""

    passed: bool
    histogram: dict[str, int]
    declared: int
    max_steps: int
    err_ratio: float
    worst_index: tuple[int, ...] | None
    worst_value: float
    worst_reference: float
    message: str

    @property
    def steps_text(self) -> str:
        """"exact 1190, near-tie 2, tie 0, off-tie 0, more 0": the histogram as it is written in rows."""
        return ", ".join(f"{name} {self.histogram[name]}" for name in BINS)


def compare_steps(out: np.ndarray, expected: np.ndarray, declared: np.ndarray, real: np.ndarray, ties: np.ndarray,
                  window: np.ndarray, *, rounding: str, low: int, high: int) -> StepComparison:
    """Classify every element of `out` (module docstring); low, high: the destination type's range.

    `ties`: the exact ties every implementation computes exactly (reference.Codes.hard_ties); a tie that float
    arithmetic cannot hit exactly is a near-tie like any value within the window."""
    out64 = np.asarray(out, dtype=np.float64)
    if out64.size == 0:
        return StepComparison(True, dict.fromkeys(BINS, 0), 0, 0, 0.0, None, math.nan, math.nan, "empty tensor")
    if not np.all(np.isfinite(out64)) or np.any(out64 != np.round(out64)):
        bad = int(np.count_nonzero(~np.isfinite(out64) | (out64 != np.round(np.nan_to_num(out64)))))
        return StepComparison(False, dict.fromkeys(BINS, 0), 0, 0, math.inf, None, math.nan, math.nan,
                              f"{bad} of {out64.size} elements are not integers: an integer y holds codes")
    steps = np.abs(out64 - expected)
    lowest = np.clip(np.ceil(real - window - 0.5), low, high)
    highest = np.clip(np.floor(real + window + 0.5), low, high)
    in_window = (out64 >= lowest) & (out64 <= highest)
    exact = steps == 0
    near = ~exact & in_window & ~ties
    tie = ~exact & ~near & ties & (steps == 1)
    off = ~exact & ~near & ~ties & (steps == 1)
    more = ~exact & ~near & (steps > 1)
    as_declared = ~exact & ~near & (out64 == declared)
    allowed = exact | near | as_declared
    histogram = {name: int(np.count_nonzero(mask)) for name, mask in zip(BINS, (exact, near, tie, off, more))}
    with np.errstate(divide="ignore", invalid="ignore"):
        closeness = np.minimum(np.abs(out64 - real) / (0.5 + window), 1.0)
    ratio = np.where(exact, 0.0, np.where(allowed, closeness, 1.0 + steps))
    worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    failing = ~allowed
    passed = not failing.any()
    message = ""
    if not passed:
        message = (f"{int(np.count_nonzero(failing))} of {out64.size} elements off by steps the declared rounding "
                   f"{rounding} does not give ({', '.join(f'{n} {c}' for n, c in histogram.items())}); worst at "
                   f"{tuple(int(i) for i in worst)}: {float(out64[worst])!r} vs {float(expected[worst])!r} "
                   f"(exact {float(real[worst])!r})")
    elif histogram["exact"] < out64.size:
        message = (f"{out64.size - histogram['exact']} of {out64.size} elements one step or more from the spec's "
                   f"rounding, as allowed ({', '.join(f'{n} {c}' for n, c in histogram.items() if c)})")
    return StepComparison(passed, histogram, int(np.count_nonzero(as_declared & ~exact)), int(steps.max()),
                          float(ratio[worst]), tuple(int(i) for i in worst), float(out64[worst]),
                          float(expected[worst]), message)
