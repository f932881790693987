"""results.csv across versions: a file written before the speed columns existed reads with them empty."""

from __future__ import annotations

import csv
import math

from convparity.harness.results import (
    COLUMNS,
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
    assert COLUMNS[-len(PERF_COLUMNS):] == PERF_COLUMNS


def test_a_results_file_without_the_speed_columns_reads_with_them_empty(tmp_path):
    writer = ResultsWriter(tmp_path)
    writer.write([_row(perf_repeats=9, perf_median_s=0.002, gflops=1.5)])
    writer.close()
    path = tmp_path / RESULTS_FILE
    with path.open(newline="") as file:
        records = list(csv.reader(file))
    assert records[0] == list(COLUMNS) and records[1][COLUMNS.index("perf_repeats")] == "9"
    older = [i for i, c in enumerate(COLUMNS) if c not in PERF_COLUMNS + ("post_ops", "quantization", "steps",
                                                                           "max_steps", "rounding")]
    with path.open("w", newline="") as file:  # as a convparity from before the speed and post-op columns wrote it
        csv.writer(file).writerows([record[i] for i in older] for record in records)
    (row,) = read_results(tmp_path).to_dict("records")
    assert row["err_ratio"] == 0.25 and row["reduction"] == 6 and row["bias"] is True
    assert row["perf_repeats"] == 0
    assert all(math.isnan(row[c]) for c in PERF_COLUMNS if c != "perf_repeats")
    assert list(read_results(tmp_path).columns) == list(COLUMNS)
    assert str(read_results(tmp_path)["perf_repeats"].dtype) == "int64"


def test_columns_out_of_order_or_unknown_or_missing_are_refused(tmp_path):
    import pytest

    from convparity.harness.results import ResultsError

    writer = ResultsWriter(tmp_path)
    writer.write([_row()])
    writer.close()
    path = tmp_path / RESULTS_FILE
    with path.open(newline="") as file:
        header, row = list(csv.reader(file))
    for change, why in (((1, 0), "in another order"), ((0, "colour"), "unknown colour"), ((None, "status"),
                                                                                              "missing status")):
        edited_header, edited_row = list(header), list(row)
        if change[0] is None:
            index = header.index(change[1])
            del edited_header[index], edited_row[index]
        elif isinstance(change[1], str):
            edited_header[0] = change[1]
        else:
            edited_header[0], edited_header[1] = edited_header[1], edited_header[0]
        with path.open("w", newline="") as file:
            csv.writer(file).writerows([edited_header, edited_row])
        with pytest.raises(ResultsError, match=why):
            read_results(tmp_path)
