"""The err_ratio distribution: rows counted per backend, dtype, tensor, ratio bin and kind, in chunks."""

from __future__ import annotations

import pandas as pd

from convparity.harness.reporting.digest import digest_results
from convparity.harness.reporting.distribution import LABELS, bin_of, histograms_html, ratio_counts
from convparity.harness.results import read_results
from tests.harness.reporting.mixed import ROWS, UNAVAILABLE, VERSIONS
from tests.harness.reporting.pages import parse_page
from tests.harness.reporting.runs import write_run


def test_bins_hold_up_to_their_upper_edge():
    import numpy as np

    ratios = np.array([0, 1e-5, 1e-4, 2e-4, 0.99, 1.0, 1.0000001, 100, 101, np.inf])
    assert [LABELS[b] for b in bin_of(ratios)] == [
        "0", "≤1e-4", "≤1e-4", "1e-4–3.2e-4", "0.32–1", "0.32–1", "1–3.2", "32–100", ">100", ">100"]


def test_counts_per_kind_and_chunks_add_up(tmp_path):
    directory = write_run(tmp_path / "mixed", ROWS, VERSIONS, unavailable=UNAVAILABLE)
    counts = ratio_counts(read_results(directory))
    alpha_y = counts[(counts["backend"] == "alpha") & (counts["dtype"] == "float32") & (counts["tensor"] == "y")]
    # alpha float32 y: c1 0 (pass), c2 3.5 (fail), c3 0.09 (pass)
    assert sorted((LABELS[b], k, n) for b, k, n in alpha_y[["bin", "kind", "rows"]].itertuples(index=False)) == [
        ("0", "pass", 1), ("0.032–0.1", "pass", 1), ("3.2–10", "fail", 1)]
    gamma = counts[counts["backend"] == "gamma"].set_index("tensor")
    assert gamma.loc["y", "kind"] == "declared" and gamma.loc["dw", "kind"] == "declared"  # xfail and xpass
    assert counts["rows"].sum() == 15 + 3 + 1 + 1  # pass, fail, xfail, xpass rows
    chunked = digest_results(directory, chunk_rows=3).distribution
    key = ["backend", "dtype", "tensor", "bin", "kind"]
    pd.testing.assert_frame_equal(chunked.sort_values(key).reset_index(drop=True),
                                  counts.sort_values(key).reset_index(drop=True), check_dtype=False)


def test_histograms_are_bars_with_counts_in_their_titles(tmp_path):
    directory = write_run(tmp_path / "mixed", ROWS, VERSIONS)
    page = parse_page(f"<div>{histograms_html(ratio_counts(read_results(directory)))}</div>")
    charts = page.findall(".//div[@class='hist']")
    # per backend x dtype x tensor with compared rows: alpha 4 + 3 (float16 db has none), beta 4, gamma 3
    assert len(charts) == 14
    titles = [span.get("title") for span in page.iter("span") if span.get("title", "").endswith("1 fail")]
    assert "err_ratio 3.2–10: 1 fail" in titles
    assert all(len(chart.findall("span")) == len(LABELS) for chart in charts)


def test_integer_outputs_are_counted_by_their_steps(tmp_path):
    from convparity.harness.reporting.distribution import STEP_LABELS, step_counts
    from convparity.harness.results import ResultsWriter, Row

    def row(case: str, max_steps: int, status: str = "pass") -> Row:
        return Row(case=case, name="", bias=False, dtype="uint8:int8:uint8", backend="q", backend_version="1",
                   tensor="y", status=status, err_ratio=0.1 if status == "pass" else 3.0, reduction=9,
                   steps=f"exact 9, near-tie 0, tie 0, off-tie 0, more {int(max_steps > 1)}", max_steps=max_steps)

    float_row = Row(case="f", name="", bias=False, dtype="float32", backend="q", backend_version="1", tensor="y",
                    status="pass", err_ratio=0.2, reduction=9)
    writer = ResultsWriter(tmp_path)
    writer.write([row("a", 0), row("b", 0), row("c", 1), row("d", 3), row("e", 20, "fail"), float_row])
    writer.close()
    (tmp_path / "run.json").write_text('{"settings": {"backends": ["q"], "dtypes": ["float32"]}}')
    counts = step_counts(read_results(tmp_path))
    got = {(STEP_LABELS[b], k): n for b, k, n in counts[["bin", "kind", "rows"]].itertuples(index=False)}
    assert got == {("0", "pass"): 2, ("1", "pass"): 1, ("3–4", "pass"): 1, (">8", "fail"): 1}  # the float row: none
    digest = digest_results(tmp_path, chunk_rows=2)
    assert digest.step_distribution["rows"].sum() == 5
    page = parse_page(f"<div>{histograms_html(digest.step_distribution, steps=True)}</div>")
    assert "max_steps >8: 1 fail" in [span.get("title") for span in page.iter("span")]
