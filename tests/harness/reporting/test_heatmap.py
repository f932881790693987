"""Heatmap data: worst err_ratio per pair of spec axes, aggregated before drawing."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg

from convparity.harness.reporting.heatmap import (
    AXES,
    DECLARED,
    backend_figure,
    cell_label,
    compared_rows,
    shown_grid,
    worst_grid,
)
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
    assert len(labels) == 9 and "3.5" in labels and "2e-3" in labels


def test_zero_and_infinite_ratios_draw(tmp_path):
    rows = pd.DataFrame({"dtype": ["float32"] * 3, "reduction": [1, 2, 4], "err_ratio": [0.0, math.inf, 0.5],
                         "kernel_size": ["1", "2", "3"], "stride": ["1", "1", "1"], "tensor": ["y", "dw", "y"]})
    figure = backend_figure("edge", rows)
    assert [t.get_text() for t in figure.axes[0].texts] == ["0", "inf", "0.5"]
    assert figure.axes[0].get_title() == "worst of tensors y, dw"
    # the infinite ratio sits on the darkest red: printed in white; 0.5, on a light cell, in black
    colours = [t.get_color() for t in figure.axes[0].texts]
    assert colours[1] == "white" and colours[2] == "black"


def test_cell_labels_are_five_characters_at_most():
    values = [0, math.inf, 3e-5, 0.0123, 0.0999, 3.5, 12.4, 998, 1000, 2.8e17, 9.6e17, 1e-300]
    labels = [cell_label(v) for v in values]
    assert labels == ["0", "inf", "3e-5", "0.012", "0.1", "3.5", "12", "998", "1e3", "3e17", "1e18", "1e-300"]
    assert max(len(label) for label in labels[:-1]) <= 5


def _declared_rows() -> pd.DataFrame:
    # stride 1: a failing row (4.0) beats a declared one (9.0) -> red, its own value; stride 2: every own row
    # passes (0.5) and a declared one is worse (2.8e17) -> hatched, the declared value; stride 3: declared only.
    return pd.DataFrame({
        "dtype": ["float32"] * 6, "reduction": [8] * 6, "tensor": ["y"] * 6,
        "kernel_size": ["3"] * 6, "stride": ["1", "1", "2", "2", "3", "3"],
        "status": ["fail", "xfail", "pass", "xfail", "xpass", "xfail"],
        "err_ratio": [4.0, 9.0, 0.5, 2.8e17, 0.25, 3.0],
    })


def test_declared_deviations_are_shown_apart_from_failures():
    value, declared = shown_grid(_declared_rows(), AXES["stride"], AXES["kernel"])
    assert value[3].tolist() == [4.0, 2.8e17, 3.0]
    assert declared[3].tolist() == [False, True, True]


def test_hatched_cells_labels_inside_cells_and_no_overlapping_text():
    figure = backend_figure("keras", _declared_rows())
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    panel = figure.axes[1]  # stride x kernel
    hatched = [patch for patch in panel.patches if patch.get_hatch()]
    assert len(hatched) == 2 and all(tuple(patch.get_facecolor()[:3]) == tuple(
        int(DECLARED[i:i + 2], 16) / 255 for i in (1, 3, 5)) for patch in hatched)
    assert [t.get_text() for t in panel.texts] == ["4", "3e17", "3"]
    # every cell label lies inside its cell
    width, height = (panel.transData.transform((1, 0)) - panel.transData.transform((0, 0)))[0], abs(
        (panel.transData.transform((0, 1)) - panel.transData.transform((0, 0)))[1])
    for text in figure.axes[0].texts + panel.texts:
        box = text.get_window_extent(renderer)
        assert box.width < width and box.height < height, (text.get_text(), box.width, width)
    # titles, axis labels, tick labels, the colour bar's labels and the legend never overlap one another
    boxes = []
    for ax in figure.axes:
        items = [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.get_xticklabels(), *ax.get_yticklabels()]
        boxes += [(item.get_text(), item.get_window_extent(renderer)) for item in items if item.get_text()]
    boxes += [("legend", legend.get_window_extent(renderer)) for legend in figure.legends]
    boxes += [(text.get_text(), text.get_window_extent(renderer)) for text in figure.texts]  # a suptitle, if any
    frame = figure.bbox
    for index, (name, box) in enumerate(boxes):
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1, name
        for other, other_box in boxes[index + 1:]:
            assert not box.overlaps(other_box), (name, other)
