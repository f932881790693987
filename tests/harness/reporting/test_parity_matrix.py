"""The parity matrix: status counts, worst err_ratio and colour band per backend x dtype x tensor."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from convparity.harness.reporting.matrix import BANDS, bands, format_ratio
from convparity.harness.reporting.summaries import write_reports
from convparity.harness.vocabulary import TENSORS
from tests.harness.reporting.mixed import MATRIX, ROWS, UNAVAILABLE, VERSIONS
from tests.harness.reporting.runs import write_run


@pytest.mark.parametrize(("worst", "bad_rows", "declared_rows", "band"), [
    (0.0, 0, 0, "exact"),
    (1e-300, 0, 0, "tight"),
    (0.0999, 0, 0, "tight"),
    (0.1, 0, 0, "near"),
    (0.5, 0, 0, "near"),
    (1.0, 0, 0, "near"),
    (1.0000001, 0, 0, "fail"),
    (math.inf, 0, 0, "fail"),
    (math.nan, 0, 0, "none"),
    (math.nan, 1, 0, "fail"),
    (0.0, 2, 0, "fail"),
    (7.0, 0, 1, "known"),  # an xfail row's ratio above 1 is the declared deviation, not a fail
    (0.3, 0, 1, "known"),  # an xpass row
    (7.0, 1, 1, "fail"),  # a fail beside an xfail is still a fail
])
def test_band_thresholds(worst, bad_rows, declared_rows, band):
    assert bands(pd.Series([worst]), pd.Series([bad_rows]), pd.Series([declared_rows])).tolist() == [band]


def test_bands_have_distinct_colours_and_markers():
    assert len({b.colour for b in BANDS}) == len({b.marker for b in BANDS}) == len(BANDS) == 6


@pytest.mark.parametrize(("value", "text"), [(math.nan, "–"), (math.inf, "inf"), (0.0, "0"), (0.0999, "0.1"),
                                             (1e-7, "1e-07"), (3.5, "3.5"), (9.96, "10"), (190.4, "190"),
                                             (9999.4, "9999"), (12345.0, "1.2e+04")])
def test_format_ratio(value, text):
    assert format_ratio(value) == text


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory):
    directory = write_run(tmp_path_factory.mktemp("runs") / "mixed", ROWS, VERSIONS, unavailable=UNAVAILABLE)
    write_reports(directory)
    return directory


def test_summary_csv_counts_every_status(mixed_run):
    summary = pd.read_csv(mixed_run / "summary.csv", keep_default_na=False)
    summary = summary.set_index(["backend", "dtype", "tensor"])
    # alpha float16 y: c1 error, c2 pass 0.0999; beta float16 dw: c2 timeout; gamma db: c1 reference-error.
    assert summary.loc[("alpha", "float16", "y"), ["rows", "pass", "error", "fail"]].tolist() == [2, 1, 1, 0]
    assert summary.loc[("beta", "float16", "dw"), ["rows", "timeout", "pass"]].tolist() == [1, 1, 0]
    assert summary.loc[("gamma", "float32", "db"), ["rows", "reference-error", "worst_err_ratio"]].tolist() == [
        1, 1, ""]
    assert ("beta", "float16", "db") not in summary.index
    assert summary["rows"].sum() == len(ROWS.strip().splitlines()) == 32


def test_summary_csv_bands_match_hand_worked_matrix(mixed_run):
    summary = pd.read_csv(mixed_run / "summary.csv").set_index(["backend", "dtype", "tensor"])
    for (backend, dtype), cells in MATRIX.items():
        for tensor, cell in zip(TENSORS, cells, strict=True):
            if cell is not None:
                assert summary.loc[(backend, dtype, tensor), "band"] == cell[2], (backend, dtype, tensor)


def _markdown_cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_summary_md_opens_with_the_matrix(mixed_run):
    lines = (mixed_run / "summary.md").read_text().splitlines()
    assert lines[0] == "# convparity parity matrix: mixed" and lines[1] == ""
    assert _markdown_cells(lines[2]) == ["backend", "dtype", "y", "dx", "dw", "db"]
    assert set(lines[3]) == {"|", "-"}
    markers = {b.name: b.marker for b in BANDS}
    expected = [
        [backend, dtype] + ["—" if c is None else f"{markers[c[2]]} {c[0]} · {c[1]}" for c in cells]
        for (backend, dtype), cells in MATRIX.items()
    ]
    assert [_markdown_cells(line) for line in lines[4:4 + len(MATRIX)]] == expected
    assert lines[4 + len(MATRIX)] == ""


def test_summary_md_columns_line_up_in_a_terminal(mixed_run):
    import unicodedata

    def width(text):
        return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)

    lines = (mixed_run / "summary.md").read_text().splitlines()[2:4 + len(MATRIX)]
    assert len({width(line) for line in lines}) == 1
    header_bars, rule_bars = ([i for i, ch in enumerate(line) if ch == "|"] for line in lines[:2])
    assert header_bars == rule_bars and len(rule_bars) == 7
