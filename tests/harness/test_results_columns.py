"""results.csv written by an earlier version (before the post-op, quantization and step columns) still reads,
and a run resumed by this version rewrites it once with the new columns before appending."""

from __future__ import annotations

import csv

from convparity.harness.cases.spec import ConvSpec
from convparity.harness.results import COLUMNS, RESULTS_FILE, ResultsWriter, Row, read_results

ADDED = ("post_ops", "quantization", "steps", "max_steps", "rounding", "compile_seconds", "perf_repeats", "perf_min_s",
         "perf_median_s", "perf_spread", "gflops")
OLD_COLUMNS = [c for c in COLUMNS if c not in ADDED]


def _old_file(folder):
    spec = ConvSpec(batch=1, in_channels=2, out_channels=2, input_size=(5,), kernel_size=(3,))
    row = Row(**{**Row.spec_columns(spec), "name": "", "backend": "reference", "backend_version": "1",
                 "tensor": "y", "status": "pass", "err_ratio": 0.25})
    with open(folder / RESULTS_FILE, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(OLD_COLUMNS)
        writer.writerow(["on" if c == "bias" else "" if getattr(row, c) is None else getattr(row, c)
                         for c in OLD_COLUMNS])
    return row


def test_an_earlier_versions_results_read_with_the_new_columns_empty(tmp_path):
    _old_file(tmp_path)
    frame = read_results(tmp_path)
    assert list(frame.columns) == list(COLUMNS) and len(frame) == 1
    assert frame.loc[0, "err_ratio"] == 0.25 and frame.loc[0, "steps"] == "" and frame.loc[0, "max_steps"] == 0


def test_resuming_rewrites_the_file_once_then_appends(tmp_path):
    row = _old_file(tmp_path)
    writer = ResultsWriter(tmp_path)
    writer.write([row])
    writer.close()
    lines = (tmp_path / RESULTS_FILE).read_text().splitlines()
    assert lines[0].split(",") == list(COLUMNS) and len(lines) == 3
    frame = read_results(tmp_path)
    assert list(frame["err_ratio"]) == [0.25, 0.25]
