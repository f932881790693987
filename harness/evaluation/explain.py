"""`convparity explain`: one case on one backend, every tensor's verdict and its worst element, in words.

The verdict comes from harness.evaluation.verdict.evaluate_case, the same path a sweep's workers take. The
printing is here; where the evaluation runs is the caller's (the command line runs it in a worker of the
backend's own, under the start-up and case timeouts: harness.running.tasks.ExplainCase).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TextIO

from convparity.harness.cases.inputs import UNIFORM, InputStyle, make_inputs
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.evaluation.reference import reference
from convparity.harness.results import Row, bias_word
from convparity.harness.vocabulary import BAD_STATUSES


def print_case(spec: ConvSpec, seed: int, out: TextIO, inputs: InputStyle = UNIFORM) -> None:
    drawn = "" if inputs.is_default else f" inputs={inputs.text}"
    print(f"case     {spec.descriptor}  bias={bias_word(spec.bias)} dtype={spec.dtype} seed={seed}{drawn}", file=out)
    extra = f"  output_padding {spec.output_padding}" if spec.transposed else ""
    print(f"shapes   x {spec.x_shape}  w {spec.w_shape}  y {spec.y_shape}  padding {spec.padding}{extra}", file=out)


def print_rows(spec: ConvSpec, backend: str, rows: Sequence[Row], *, seed: int, accumulation: str | None,
               tolerance_factor: float, out: TextIO, inputs: InputStyle = UNIFORM) -> int:
    """Print every tensor's row (with its worst element's magnitude); 1 when a row is a backend failure, else 0."""
    if accumulation:
        print(f"bound    accumulation {accumulation}, tolerance factor {tolerance_factor:g}", file=out)
    magnitudes = None
    for row in rows:
        line = f"{row.tensor:3} {row.status}"
        if not math.isnan(row.err_ratio):
            line += (f"  err_ratio {row.err_ratio:.3g}  max_abs {row.max_abs_err:.3g}  max_rel {row.max_rel_err:.3g}"
                     f"  allclose {row.allclose}")
        print(line, file=out)
        if row.worst_index:
            if magnitudes is None:
                magnitudes = reference(spec, make_inputs(spec, seed, inputs)).magnitudes
            index = tuple(int(i) for i in row.worst_index.strip("()").split(",") if i.strip())
            magnitude = magnitudes.get(row.tensor)  # a plain convolution's tensors (a chain's bound is carried)
            print(f"    worst at {index}: {backend} {row.worst_value!r}  reference {row.worst_reference!r}"
                  + (f"  magnitude {float(magnitude[index])!r}" if magnitude is not None else "")
                  + f"  K={row.reduction}", file=out)
        if row.steps:
            print(f"    steps: {row.steps}  (max {row.max_steps}; declared rounding {row.rounding})", file=out)
        if row.message:
            print(f"    {row.message}", file=out)
        if row.deviation:
            print(f"    declared: {row.deviation}", file=out)
    return 1 if any(row.status in BAD_STATUSES for row in rows) else 0
