"""The fastest correct backend per case and per run, from the digest's timings."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from convparity.harness.reporting import speed


def _timings() -> pd.DataFrame:
    # case a: t 1 ms, j 2 ms, o (forward only, 1 tensor) 0.1 ms; case b: t 4 ms, j 2 ms.
    # case c: only the forward-only o was timed (t and j failed it): no fastest correct backend.
    lines = [("a", "t", 1e-3, 3), ("a", "j", 2e-3, 3), ("a", "o", 1e-4, 1), ("b", "t", 4e-3, 3), ("b", "j", 2e-3, 3),
             ("c", "o", 1e-4, 1)]
    return pd.DataFrame([{"case": case, "name": "", "bias": False, "dtype": "float32", "backend": backend,
                          "perf_median_s": median, "tensors": tensors, "rows": 3, "gflops": 1e-3 / median,
                          "seconds": 10 * median, "compile_seconds": math.nan if backend != "j" else 0.5}
                         for case, backend, median, tensors in lines])


def test_fastest_correct_backend_per_case_never_a_forward_only_one():
    cases = speed.per_case(_timings()).set_index("case")
    assert cases.loc["a", "fastest"] == "t" and cases.loc["a", "fastest_s"] == 1e-3  # o is faster on y alone
    assert cases.loc["b", "fastest"] == "j"
    assert cases.loc["a", "o"] == 1e-4 and math.isnan(cases.loc["b", "o"])
    assert cases.loc["c", "fastest"] == "" and math.isnan(cases.loc["c", "fastest_s"])


def test_per_backend_counts_and_geometric_mean_slowdown():
    table = speed.per_backend(_timings()).set_index("backend")
    assert table.loc["t", "cases"] == 2 and table.loc["t", "fastest_on"] == 1 and table.loc["j", "fastest_on"] == 1
    assert table.loc["o", "cases"] == 2
    assert table.loc["o", "fastest_on"] == 0 and math.isnan(table.loc["o", "vs_fastest"])
    assert table.loc["t", "vs_fastest"] == pytest.approx(math.sqrt(1 * 2))  # 1x on a, 2x on b
    assert table.loc["j", "vs_fastest"] == pytest.approx(math.sqrt(2 * 1))
    assert table.loc["j", "compile_s"] == 1.0 and math.isnan(table.loc["t", "compile_s"])


def test_seconds_for_people():
    assert [speed.seconds_text(v) for v in (0.000183, 0.0123, 2.5, math.nan)] == ["183 µs", "12.3 ms", "2.50 s", ""]
