"""The chunked digest of results.csv gives the reports exactly what reading every row at once gives."""

from __future__ import annotations

import pandas as pd

from convparity.harness.reporting.digest import digest_results
from convparity.harness.reporting.heatmap import compared_rows
from convparity.harness.reporting.matrix import summarize
from convparity.harness.results import read_results
from tests.harness.reporting.mixed import ROWS, UNAVAILABLE, VERSIONS
from tests.harness.reporting.runs import write_run


def test_chunks_of_three_rows_give_the_summary_of_all_rows(tmp_path):
    directory = write_run(tmp_path / "mixed", ROWS, VERSIONS, unavailable=UNAVAILABLE)
    rows = read_results(directory)
    digest = digest_results(directory, chunk_rows=3)
    pd.testing.assert_frame_equal(digest.summary, summarize(rows))
    assert digest.rows == len(rows) == 32
    assert digest.status_counts == rows["status"].value_counts().to_dict()
    # heatmap cells: the worst ratio per (backend, dtype, tensor) equals the worst of the rows themselves
    worst_cells = digest.heatmap_cells.groupby(["backend", "dtype", "tensor"])["err_ratio"].max()
    worst_rows = compared_rows(rows).groupby(["backend", "dtype", "tensor"], observed=True)["err_ratio"].max()
    pd.testing.assert_series_equal(worst_cells, worst_rows, check_names=False, check_index_type=False)


def test_non_passing_rows_are_capped_per_status_and_the_rest_counted(tmp_path):
    directory = write_run(tmp_path / "mixed", ROWS, VERSIONS)
    digest = digest_results(directory, chunk_rows=5, kept_per_status=2)
    kept = digest.non_passing["status"].value_counts().to_dict()
    # error 4, unsupported 4, fail 3, timeout 3 rows in the run; xfail, xpass, reference-error 1 each
    assert kept == {"error": 2, "unsupported": 2, "fail": 2, "timeout": 2, "xfail": 1, "xpass": 1,
                    "reference-error": 1}
    assert digest.left_out == {"error": 2, "unsupported": 2, "fail": 1, "timeout": 1}
