"""A backend and its -unfused twin side by side: which cases both compared, and where their verdicts differ."""

from __future__ import annotations

import pandas as pd

from convparity.harness.reporting.pairs import pair_part, pair_tables, pairs, pairs_markdown, pairs_section


def _rows(backend: str, statuses: dict[str, str]) -> list[dict]:
    return [dict(case=case, bias=True, dtype="float32", tensor="y", backend=backend, status=status,
                 err_ratio=0.5 if status == "pass" else 3.0) for case, status in statuses.items()]


def test_pairs_are_a_backend_and_its_unfused_twin():
    assert pairs(["onnxruntime", "onnxruntime-unfused", "torch", "jax-unfused", "x-unfused-unfused"]) == [
        ("onnxruntime", "onnxruntime-unfused")]


def test_verdicts_side_by_side():
    rows = pd.DataFrame(_rows("fusing", {"a": "pass", "b": "fail", "c": "pass", "d": "unsupported"})
                        + _rows("fusing-unfused", {"a": "pass", "b": "pass", "c": "pass", "d": "pass"})
                        + _rows("other", {"a": "fail"}))
    backend_pairs = pairs(rows["backend"])
    part = pair_part(rows, backend_pairs)
    assert set(part["backend"]) == {"fusing", "fusing-unfused"}
    counts, differences = pair_tables([part.iloc[:3], part.iloc[3:]], backend_pairs)  # two chunks
    assert counts.to_dict("records") == [dict(fused="fusing", unfused="fusing-unfused", dtype="float32", tensor="y",
                                              agree=2, differ=1)]  # d: unsupported on one side, not compared
    assert differences[["case", "status_fused", "status_unfused"]].values.tolist() == [["b", "fail", "pass"]]
    assert "Cases whose verdicts differ" in pairs_section(counts, differences)
    assert pairs_markdown(counts).splitlines()[-1] == "- fusing and fusing-unfused: 2 verdicts agree, 1 differ"
    assert pairs_section(counts.iloc[:0], differences.iloc[:0]) == ""
