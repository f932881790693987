"""results.csv across versions: a file written before the speed columns existed reads with them empty."""

from __future__ import annotations

import csv
import math

from convparity.harness.results import (
    COLUMNS,
    FIRST_COLUMNS,
    PERF_COLUMNS,
    RESULTS_FILE,
    ResultsWriter,
    Row,
    read_results,
)


def _row(**fields) -> Row:
    return Row(case="mb1ic2iw5oc2kw3", name="n", bias=True, dtype="float32", backend="b", backend_version="1",
               tensor="y", status="pass", err_ratio=0.25, reduction=6, **fields)


def test_the_speed_columns_come_last():
    assert COLUMNS == FIRST_COLUMNS + PERF_COLUMNS


def test_a_results_file_without_the_speed_columns_reads_with_them_empty(tmp_path):
    writer = ResultsWriter(tmp_path)
    writer.write([_row(perf_repeats=9, perf_median_s=0.002, gflops=1.5)])
    writer.close()
    path = tmp_path / RESULTS_FILE
    with path.open(newline="") as file:
        records = list(csv.reader(file))
    assert records[0] == list(COLUMNS) and records[1][COLUMNS.index("perf_repeats")] == "9"
    with path.open("w", newline="") as file:  # as an older convparity wrote it
        csv.writer(file).writerows(record[:len(FIRST_COLUMNS)] for record in records)
    (row,) = read_results(tmp_path).to_dict("records")
    assert row["err_ratio"] == 0.25 and row["reduction"] == 6 and row["bias"] is True
    assert row["perf_repeats"] == 0
    assert all(math.isnan(row[c]) for c in PERF_COLUMNS if c != "perf_repeats")
    assert list(read_results(tmp_path).columns) == list(COLUMNS)
    assert str(read_results(tmp_path)["perf_repeats"].dtype) == "int64"
