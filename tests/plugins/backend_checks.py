"""Shared by the backend tests: extra specs, disagreements with the reference, a smoke sweep via the CLI.

The contract suite (convparity.harness.testing.contract_suite) covers the smoke grid; these specs add what it
does not reach:
negative padding (crops) on either side and in every rank, large one-sided pads with stride and
dilation, grouped 3-D convolutions, and depthwise with a channel multiplier and no bias. TRANSPOSED_SPECS
are transposed convolutions in every rank: PyTorch's padding with output_padding, asymmetric crops, negative
pads (bias-only positions), output_padding at and above the stride, TensorFlow's "same", groups, dilation.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from convparity.harness import cli
from convparity.harness.backends.contract import Backend
from convparity.harness.cases.descriptor import parse_case
from convparity.harness.cases.inputs import make_inputs
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.evaluation.bound import compare_tensor
from convparity.harness.evaluation.reference import reference
from convparity.harness.evaluation.verdict import Ran, evaluate_case
from convparity.harness.results import read_results
from convparity.harness.vocabulary import numpy_dtype

SEED = 7

EXTRA_SPECS = (
    ConvSpec(batch=2, in_channels=3, out_channels=2, input_size=(12,), kernel_size=(3,), padding=((-2, -1),)),
    ConvSpec(batch=2, in_channels=2, out_channels=4, input_size=(7, 8), kernel_size=(3, 2), stride=(1, 2),
             padding=((-1, 2), (1, -2)), groups=2),
    ConvSpec(batch=1, in_channels=4, out_channels=2, input_size=(5, 6, 4), kernel_size=(2, 2, 2), dilation=(1, 2, 1),
             padding=((-1, 0), (0, -1), (1, 1)), groups=2),
    ConvSpec(batch=2, in_channels=3, out_channels=6, input_size=(9, 10), kernel_size=(3, 3), stride=2, dilation=2,
             padding=((3, 0), (0, 2)), groups=3, bias=False),
    ConvSpec(batch=3, in_channels=2, out_channels=3, input_size=(6, 5, 7), kernel_size=(3, 1, 2), stride=(2, 1, 3),
             padding=((2, 1), (0, 0), (1, 3))),
)

TRANSPOSED_SPECS = (
    # PyTorch's ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1): out (8, 10).
    ConvSpec(batch=2, in_channels=4, out_channels=6, input_size=(4, 5), kernel_size=(3, 3), stride=2, padding=1,
             output_padding=1, transposed=True),
    # Grouped, an asymmetric crop of the start (no output_padding below the stride makes it symmetric):
    # out (5 - 1) * 2 + 4 - 2 = 10.
    ConvSpec(batch=2, in_channels=4, out_channels=6, input_size=(5,), kernel_size=(4,), stride=2,
             padding=((2, 0),), groups=2, transposed=True),
    # Grouped 3-D with dilation, a negative start pad (a bias-only position), an end crop, output_padding:
    # out (7, 11, 2).
    ConvSpec(batch=1, in_channels=3, out_channels=6, input_size=(3, 4, 3), kernel_size=(2, 3, 1), stride=(2, 1, 1),
             dilation=(1, 2, 1), padding=((-1, 1), (0, -2), (1, 0)), output_padding=(1, 1, 0), groups=3,
             transposed=True),
    # output_padding 2 >= stride 1, below the dilation 3 (PyTorch's second rule): out 5 * 1 + 7 + 2 = 14.
    ConvSpec(batch=2, in_channels=2, out_channels=3, input_size=(6,), kernel_size=(3,), dilation=3, output_padding=2,
             bias=False, transposed=True),
    # TensorFlow's and Keras' "same": out i * s = (8, 10), the odd crop at the end.
    ConvSpec(batch=2, in_channels=3, out_channels=5, input_size=(4, 5), kernel_size=(3, 2), stride=2, padding="same",
             transposed=True),
    # Stride larger than the kernel (positions no input reaches) and output_padding past them: out (13, 8).
    ConvSpec(batch=2, in_channels=3, out_channels=2, input_size=(4, 3), kernel_size=(2, 1), stride=3,
             output_padding=(2, 1), transposed=True),
)


def disagreements(backend: Backend, specs: tuple[ConvSpec, ...], dtype: str) -> list[str]:
    """One line per row of `specs` (cast to `dtype`) that neither passes nor is unsupported, through the
    one evaluation path (so a declared deviation reads xfail and is listed too)."""
    problems = []
    for spec in (s.replace(dtype=dtype) for s in specs):
        _, rows = evaluate_case(backend, spec, seed=SEED)
        problems += [f"{row.case} {dtype} {row.tensor}: {row.status} ratio {row.err_ratio:.3g} {row.message}"
                     for row in rows if row.status not in ("pass", "unsupported")]
    return problems


def smoke_sweep(backend_name: str, output: Path, dtypes: tuple[str, ...] = ()) -> tuple[int, pd.DataFrame]:
    """`convparity run -b NAME -g smoke` into `output` (float64 and float32 unless `dtypes`): (exit code, results)."""
    dtype_options = [word for dtype in dtypes for word in ("--dtype", dtype)]
    code = cli.main(["run", "-b", backend_name, "-g", "smoke", "-o", str(output), *dtype_options])
    return code, read_results(output)


# The convolution 1 + 2**-14 (x = w = (1, 2**-7), two channels, a 1-wide kernel) with bias -1: exactly 2**-14.
# A backend that rounds the convolution to float16/bfloat16 before adding the bias gets 1 - 1 = 0.
CANCELLING = ConvSpec(batch=1, in_channels=2, out_channels=1, input_size=(1,), kernel_size=(1,))


def bias_after_rounding(backend: Backend, dtype: str) -> float:
    """The backend's y for CANCELLING in `dtype`: 0.0 when it adds the bias after rounding, 2**-14 when before."""
    spec = CANCELLING.replace(dtype=dtype)
    cast = numpy_dtype(dtype)
    x = np.array([[[1.0], [2.0**-7]]]).astype(cast)
    b = np.array([-1.0]).astype(cast)
    y = backend.run(spec, x, x.reshape(spec.w_shape), b, np.ones(spec.y_shape).astype(cast))[0]
    return float(np.asarray(y, dtype=np.float64).item())


def narrow_accumulation_explains(backend: Backend, descriptor: str, dtype: str, tensors: tuple[str, ...]) -> None:
    """Each of `tensors` fails the default (float32-accumulation) bound, reads `xfail` as declared, and passes
    the bound for accumulation in `dtype` itself: its error is what summing in the narrow dtype gives."""
    spec = parse_case(descriptor, dtype=dtype).spec
    result, rows = evaluate_case(backend, spec, seed=0)
    assert isinstance(result, Ran)
    by_tensor = {row.tensor: row for row in rows}
    ref = reference(spec, make_inputs(spec, 0))
    for tensor in tensors:
        assert by_tensor[tensor].status == "xfail" and by_tensor[tensor].err_ratio > 1, by_tensor[tensor]
        out = result.outputs[tensor]
        narrow = compare_tensor(tensor, out, ref.values[tensor], ref.magnitudes[tensor],
                                reduction=spec.reductions[tensor], dtype=dtype, accumulation=dtype)
        assert narrow.passed, (tensor, narrow.err_ratio)


def check_usable_in_own_tox_env(backend: Backend, env_name: str) -> None:
    """In the tox environment made for it (TOX_ENV_NAME), a backend must be usable.

    Elsewhere an unavailable backend makes the contract suite skip, with the reason; in its own
    environment that would be a run that tests nothing, so there the reason fails the test instead.
    """
    if os.environ.get("TOX_ENV_NAME") == env_name:
        reason = backend.availability()
        assert reason is None, f"{backend.name} is unavailable in its tox env {env_name}: {reason}"
