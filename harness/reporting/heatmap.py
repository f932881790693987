"""Heatmaps of the worst err_ratio over pairs of spec axes: where a backend's errors grow.

One figure per backend, one panel per pair in PANELS: reduction length K (power-of-2 bins) against
dtype, and largest kernel extent against largest stride. A cell is the worst err_ratio of the compared
rows (pass or fail, any tensor) that fall in it; cells with no compared rows stay grey. Colour is
log10(err_ratio) clipped to [LOG_LOW, LOG_HIGH], green below 1 (passing), yellow at 1, red above;
every cell also prints its value. Drawn with matplotlib's object API on the Agg canvas (no pyplot).
The results are aggregated with pandas first, so drawing cost depends on the grid, not the row count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from convparity.harness.reporting.matrix import PASS_AT_MOST, format_ratio
from convparity.harness.vocabulary import DTYPES

LOG_LOW, LOG_HIGH = -4.0, 2.0
CELL_INCHES = (0.46, 0.34)  # width, height of one heatmap cell
MARGIN_INCHES = (0.95, 1.0, 1.25, 0.9, 0.45)  # left, between panels, colour bar, bottom, top
COLOURS = matplotlib.colormaps["RdYlGn_r"].with_extremes(bad="#e4e7eb")


@dataclass(frozen=True)
class Axis:
    """A spec axis: its label, each row's value (sortable), and how a value is printed."""

    label: str
    values: Callable[[pd.DataFrame], pd.Series]
    tick: Callable[[object], str] = str


def _largest_extent(column: pd.Series) -> pd.Series:
    """'3x5' -> 5: the largest entry of a per-dimension column (computed once per distinct value)."""
    largest = {v: max(int(p) for p in v.split("x")) for v in column.dropna().unique()}
    return column.map(largest)


def _power_of_two_floor(column: pd.Series) -> pd.Series:
    """K -> the largest power of two <= K (K >= 1)."""
    floors = np.exp2(np.floor(np.log2(column.to_numpy(dtype=float))))
    return pd.Series(floors.astype(np.int64), index=column.index)


def _short_count(value: object) -> str:
    """1536 -> '1.5k', 2**20 -> '1M'."""
    number = int(value)  # type: ignore[call-overload]
    for size, suffix in ((1 << 20, "M"), (1 << 10, "k")):
        if number >= size:
            return f"{number / size:.3g}{suffix}"
    return str(number)


def _dtype_order(frame: pd.DataFrame) -> pd.Series:
    known = [d for d in DTYPES if d in set(frame["dtype"])]
    others = sorted(set(frame["dtype"]) - set(known))
    return pd.Series(pd.Categorical(frame["dtype"], categories=known + others), index=frame.index)


AXES = {
    "dtype": Axis("dtype", _dtype_order),
    "reduction": Axis("reduction length K (power-of-2 bins)", lambda f: _power_of_two_floor(f["reduction"]),
                      _short_count),
    "kernel": Axis("kernel size (largest dim)", lambda f: _largest_extent(f["kernel_size"])),
    "stride": Axis("stride (largest dim)", lambda f: _largest_extent(f["stride"])),
}
PANELS = (("dtype", "reduction"), ("stride", "kernel"))


def compared_rows(results: pd.DataFrame) -> pd.DataFrame:
    """The rows that carry an err_ratio (pass and fail) and a positive reduction length."""
    return results[results["err_ratio"].notna() & (results["reduction"] > 0)]


def worst_grid(compared: pd.DataFrame, rows: Axis, columns: Axis) -> pd.DataFrame:
    """Worst err_ratio per (row value, column value), both sorted; absent combinations are NaN."""
    keys = [rows.values(compared).rename("row"), columns.values(compared).rename("column")]
    worst = compared["err_ratio"].groupby(keys, observed=True).max()
    return worst.unstack("column").sort_index().sort_index(axis=1)


def _draw(ax, grid: pd.DataFrame, rows: Axis, columns: Axis, tensors: str):
    """One annotated heatmap on `ax`, titled with the tensors it covers; returns the image for the colour bar.

    Each value is printed in black or white, whichever reads better on its cell's colour.
    """
    values = grid.to_numpy(dtype=float)
    with np.errstate(divide="ignore"):
        shade = np.clip(np.log10(values), LOG_LOW, LOG_HIGH)  # NaN stays NaN and shows grey
    norm = TwoSlopeNorm(vcenter=np.log10(PASS_AT_MOST), vmin=LOG_LOW, vmax=LOG_HIGH)
    image = ax.imshow(np.ma.masked_invalid(shade), cmap=COLOURS, aspect="auto", interpolation="nearest", norm=norm)
    ax.set_title(f"worst of tensors {tensors}", fontsize=9)
    ax.set_xticks(range(grid.shape[1]), [columns.tick(c) for c in grid.columns], rotation=45, ha="right")
    ax.set_yticks(range(grid.shape[0]), [rows.tick(r) for r in grid.index])
    ax.set_xlabel(columns.label)
    ax.set_ylabel(rows.label)
    for (i, j), value in np.ndenumerate(values):
        if not np.isnan(value):
            red, green, blue, _ = COLOURS(norm(shade[i, j]))
            dark = 0.2126 * red + 0.7152 * green + 0.0722 * blue < 0.45  # relative luminance of the cell
            ax.text(j, i, format_ratio(value), ha="center", va="center", fontsize=7, color="white" if dark else "black",
                    fontweight="bold" if value > PASS_AT_MOST else "normal")
    return image


def backend_figure(backend: str, compared: pd.DataFrame) -> Figure:
    """Figure of one backend's compared rows: a heatmap per PANELS pair and one colour bar.

    Margins are fixed in inches (tick labels, axis labels, colour bar) rather than computed by a layout
    engine, which would measure every label and cost more than drawing.
    """
    grids = [(worst_grid(compared, AXES[r], AXES[c]), AXES[r], AXES[c]) for r, c in PANELS]
    tensors = ", ".join(t for t in ("y", "dx", "dw", "db") if t in set(compared["tensor"]))
    widths = [max(grid.shape[1], 2) * CELL_INCHES[0] for grid, _, _ in grids]
    height = max(grid.shape[0] for grid, _, _ in grids) * CELL_INCHES[1] + 0.6
    left, gap, bar_space, bottom, top = MARGIN_INCHES
    figure_size = (left + sum(widths) + gap * (len(grids) - 1) + bar_space, bottom + height + top)
    figure = Figure(figsize=figure_size)
    frame_width, frame_height = figure_size
    spec = figure.add_gridspec(1, len(grids), width_ratios=widths, wspace=gap / (sum(widths) / len(grids)),
                               left=left / frame_width, right=1 - bar_space / frame_width,
                               bottom=bottom / frame_height, top=1 - top / frame_height)
    images = [_draw(figure.add_subplot(spec[0, i]), grid, rows, columns, tensors)
              for i, (grid, rows, columns) in enumerate(grids)]
    bar_left = 1 - (bar_space - 0.2) / frame_width
    bar_axes = figure.add_axes((bar_left, bottom / frame_height, 0.15 / frame_width, height / frame_height))
    bar = figure.colorbar(images[-1], cax=bar_axes)
    ticks = [float(t) for t in range(int(LOG_LOW), int(LOG_HIGH) + 1)]
    bar.set_ticks(ticks, labels=[f"{10.0 ** t:g}" for t in ticks])
    bar.set_label("worst err_ratio (≤ 1 passes)")
    figure.suptitle(f"{backend}: worst err_ratio", y=1 - 0.12 / frame_height, va="top")
    return figure
