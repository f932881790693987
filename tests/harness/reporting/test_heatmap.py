"""Heatmap data: worst err_ratio per pair of spec axes, aggregated before drawing."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from convparity.harness.reporting.heatmap import AXES, backend_figure, compared_rows, worst_grid
from convparity.harness.results import read_results
from tests.harness.reporting.mixed import ROWS, UNAVAILABLE, VERSIONS
from tests.harness.reporting.runs import write_run

nan = math.nan


def _alpha(tmp_path):
    results = read_results(write_run(tmp_path / "mixed", ROWS, VERSIONS, unavailable=UNAVAILABLE))
    return compared_rows(results[results["backend"] == "alpha"])


def test_only_compared_rows_count(tmp_path):
    # alpha: 11 float32 rows of which 1 unsupported, 7 float16 rows of which 4 error.
    assert len(_alpha(tmp_path)) == 13


def test_reduction_length_against_dtype(tmp_path):
    grid = worst_grid(_alpha(tmp_path), AXES["dtype"], AXES["reduction"])
    # K per row (runs.SPECS) to the power of two below: 37->32, 72->64, 128, 4, 8, 61->32, 120->64, 18->16.
    assert list(grid.index) == ["float32", "float16"]
    assert list(grid.columns) == [4, 8, 16, 32, 64, 128]
    expected = [[3.5, 0.01, 1.0, 0.09, 0.1, 0.5],
                [0.0999, 0.002, nan, 0.03, nan, nan]]
    np.testing.assert_array_equal(grid.to_numpy(), expected)


def test_kernel_against_stride(tmp_path):
    grid = worst_grid(_alpha(tmp_path), AXES["stride"], AXES["kernel"])
    # c1 3x3 stride 1x1 (worst 0.5); c2 1x1 stride 2x2 (3.5); c3 5x3 stride 1x2 -> kernel 5, stride 2 (1.0).
    assert list(grid.index) == [1, 2] and list(grid.columns) == [1, 3, 5]
    np.testing.assert_array_equal(grid.to_numpy(), [[nan, 0.5, nan], [3.5, nan, 1.0]])


def test_reduction_ticks_are_short():
    ticks = [AXES["reduction"].tick(k) for k in (1, 512, 1024, 1536, 1 << 20)]
    assert ticks == ["1", "512", "1k", "1.5k", "1M"]


def test_figure_has_one_panel_per_axis_pair_and_a_colour_bar(tmp_path):
    figure = backend_figure("alpha", _alpha(tmp_path))
    heatmaps = [ax for ax in figure.axes if ax.get_images()]
    assert [ax.get_xlabel() for ax in heatmaps] == [AXES["reduction"].label, AXES["kernel"].label]
    assert len(figure.axes) == 3
    labels = [t.get_text() for t in heatmaps[0].texts]
    assert len(labels) == 9 and "3.5" in labels and "0.002" in labels


def test_zero_and_infinite_ratios_draw(tmp_path):
    rows = pd.DataFrame({"dtype": ["float32"] * 3, "reduction": [1, 2, 4], "err_ratio": [0.0, math.inf, 0.5],
                         "kernel_size": ["1", "2", "3"], "stride": ["1", "1", "1"], "tensor": ["y", "dw", "y"]})
    figure = backend_figure("edge", rows)
    assert [t.get_text() for t in figure.axes[0].texts] == ["0", "inf", "0.5"]
    assert figure.axes[0].get_title() == "worst of tensors y, dw"
    # the infinite ratio sits on the darkest red: printed in white; 0.5, on a light cell, in black
    colours = [t.get_color() for t in figure.axes[0].texts]
    assert colours[1] == "white" and colours[2] == "black"
