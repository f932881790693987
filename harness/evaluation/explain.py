"""`convparity explain`: one case on one backend, every tensor's verdict and its worst element, in words.

The verdict comes from convparity.harness.evaluation.verdict.evaluate_case, the same path a sweep's workers take.
"""

from __future__ import annotations

import math
from typing import TextIO

from convparity.harness.backends.contract import Backend
from convparity.harness.cases.inputs import UNIFORM, InputStyle, make_inputs
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.evaluation.verdict import Ran, evaluate_case, reference
from convparity.harness.results import bias_word
from convparity.harness.vocabulary import BAD_STATUSES


def explain(backend: Backend, spec: ConvSpec, *, seed: int, tolerance_factor: float, out: TextIO,
            inputs: InputStyle = UNIFORM) -> int:
    """Print the case and every tensor's row; 1 when a row is a backend failure, else 0."""
    drawn = "" if inputs.is_default else f" inputs={inputs.text}"
    print(f"case     {spec.descriptor}  bias={bias_word(spec.bias)} dtype={spec.dtype} seed={seed}{drawn}", file=out)
    extra = f"  output_padding {spec.output_padding}" if spec.transposed else ""
    print(f"shapes   x {spec.x_shape}  w {spec.w_shape}  y {spec.y_shape}  padding {spec.padding}{extra}", file=out)
    reason = backend.availability()
    if reason:
        print(f"{backend.name}: unavailable: {reason}", file=out)
        return 0
    result, rows = evaluate_case(backend, spec, seed=seed, tolerance_factor=tolerance_factor, inputs=inputs)
    if isinstance(result, Ran):
        print(f"bound    accumulation {result.accumulation}, tolerance factor {tolerance_factor:g}", file=out)
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
            print(f"    worst at {index}: {backend.name} {row.worst_value!r}  reference {row.worst_reference!r}  "
                  f"magnitude {float(magnitudes[row.tensor][index])!r}  K={row.reduction}", file=out)
        if row.message:
            print(f"    {row.message}", file=out)
        if row.deviation:
            print(f"    declared: {row.deviation}", file=out)
    return 1 if any(row.status in BAD_STATUSES for row in rows) else 0
