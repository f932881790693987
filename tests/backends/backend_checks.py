"""Shared by the backend tests: extra specs, disagreements with the reference, a smoke sweep via the CLI.

The contract suite (harness.testing.contract_suite) covers the smoke grid; these specs add what it does not reach:
negative padding (crops) on either side and in every rank, large one-sided pads with stride and
dilation, grouped 3-D convolutions, and depthwise with a channel multiplier and no bias.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from harness import cli
from harness.backends.contract import Backend
from harness.cases.spec import ConvSpec
from harness.evaluation.verdict import evaluate_case
from harness.results import read_results

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


def check_usable_in_own_tox_env(backend: Backend, env_name: str) -> None:
    """In the tox environment made for it (TOX_ENV_NAME), a backend must be usable.

    Elsewhere an unavailable backend makes the contract suite skip, with the reason; in its own
    environment that would be a run that tests nothing, so there the reason fails the test instead.
    """
    if os.environ.get("TOX_ENV_NAME") == env_name:
        reason = backend.availability()
        assert reason is None, f"{backend.name} is unavailable in its tox env {env_name}: {reason}"
