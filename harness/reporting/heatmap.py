"""Heatmaps of the worst err_ratio over pairs of spec axes: where a backend's errors grow.

One figure per backend, one panel per pair in PANELS: reduction length K (power-of-2 bins) against
dtype, and largest kernel extent against largest stride. A cell shows the worst err_ratio of the
compared rows that fall in it (any tensor): of its pass and fail rows, unless they all pass and a row a
declared deviation covers (xfail, xpass) is worse: then the cell is hatched purple (the parity matrix's
"known" colour) and shows that row's ratio, so a known deviation never looks like a failure. Cells with
no compared rows stay grey. Colour is log10(err_ratio) on a logarithmic bar from LOG_LOW to LOG_HIGH
(beyond them the ends' colours), green below 1 (passing), yellow at 1, red above. Every cell prints its
value in at most five characters (`cell_label`), so labels fit their cells however large the ratio; the
legend under the panels explains grey and hatched cells. Drawn with matplotlib's object API on the Agg
canvas (no pyplot). The results are aggregated with pandas first, so drawing cost depends on the grid,
not the row count.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from convparity.harness.reporting.matrix import BAND_BY_NAME, PASS_AT_MOST
from convparity.harness.vocabulary import DTYPES

LOG_LOW, LOG_HIGH = -4.0, 2.0
CELL_INCHES = (0.5, 0.34)  # width, height of one heatmap cell
MARGIN_INCHES = (0.95, 1.0, 1.25, 1.35, 0.4)  # left, between panels, colour bar, bottom (legend), top
EMPTY = BAND_BY_NAME["none"].colour
DECLARED = BAND_BY_NAME["known"].colour
COLOURS = matplotlib.colormaps["RdYlGn_r"].with_extremes(bad=EMPTY)


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
    """The rows that carry an err_ratio (pass, fail, xfail, xpass) and a positive reduction length."""
    return results[results["err_ratio"].notna() & (results["reduction"] > 0)]


def worst_grid(compared: pd.DataFrame, rows: Axis, columns: Axis) -> pd.DataFrame:
    """Worst err_ratio per (row value, column value), both sorted; absent combinations are NaN."""
    keys = [rows.values(compared).rename("row"), columns.values(compared).rename("column")]
    worst = compared["err_ratio"].groupby(keys, observed=True).max()
    return worst.unstack("column").sort_index().sort_index(axis=1)


def declared_of(compared: pd.DataFrame) -> pd.Series:
    """Whether each row is covered by a declared deviation: the digest's `declared`, else from `status`."""
    if "declared" in compared:
        return compared["declared"].astype(bool)
    if "status" in compared:
        return compared["status"].isin(["xfail", "xpass"])
    return pd.Series(False, index=compared.index)


def shown_grid(compared: pd.DataFrame, rows: Axis, columns: Axis) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(value, declared) per cell, as the module docstring says: the worst pass/fail ratio, or the worst
    declared one where the pass/fail rows all pass (or there are none) and it is worse."""
    declared = declared_of(compared)
    full = worst_grid(compared, rows, columns)
    own = worst_grid(compared[~declared], rows, columns).reindex_like(full)
    known = worst_grid(compared[declared], rows, columns).reindex_like(full)
    use_known = known.notna() & (own.isna() | ((own <= PASS_AT_MOST) & (known > own)))
    return own.where(~use_known, known), use_known


def cell_label(value: float) -> str:
    """A ratio in at most five characters: 0, inf, 3e-5, 0.012, 3.5, 12, 999, 3e17."""
    if value == 0 or math.isinf(value):
        return "0" if value == 0 else "inf"
    if 0.01 <= value < 999.5:
        return f"{value:.2g}" if value < 10 else f"{value:.0f}"
    exponent = math.floor(math.log10(value))
    mantissa = round(value / 10 ** exponent)
    if mantissa == 10:
        mantissa, exponent = 1, exponent + 1
    return f"{mantissa}e{exponent}"


def _draw(ax, grid: pd.DataFrame, declared: pd.DataFrame, rows: Axis, columns: Axis, title: str):
    """One annotated heatmap on `ax`; returns the image for the colour bar.

    Each value is printed in black or white, whichever reads better on its cell's colour; declared cells
    are painted over, hatched, in the "known" colour.
    """
    values = grid.to_numpy(dtype=float)
    with np.errstate(divide="ignore"):
        shade = np.clip(np.log10(values), LOG_LOW, LOG_HIGH)  # NaN stays NaN and shows grey
    norm = TwoSlopeNorm(vcenter=np.log10(PASS_AT_MOST), vmin=LOG_LOW, vmax=LOG_HIGH)
    image = ax.imshow(np.ma.masked_invalid(shade), cmap=COLOURS, aspect="auto", interpolation="nearest", norm=norm)
    known = declared.to_numpy(dtype=bool)
    for i, j in zip(*np.nonzero(known)):
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=DECLARED, edgecolor="#7a5cc2", hatch="///",
                               linewidth=0))
    ax.set_title(title, fontsize=9)
    ax.set_xticks(range(grid.shape[1]), [columns.tick(c) for c in grid.columns], rotation=45, ha="right")
    ax.set_yticks(range(grid.shape[0]), [rows.tick(r) for r in grid.index])
    ax.set_xlabel(columns.label)
    ax.set_ylabel(rows.label)
    for (i, j), value in np.ndenumerate(values):
        if not np.isnan(value):
            red, green, blue, _ = COLOURS(norm(shade[i, j]))
            dark = 0.2126 * red + 0.7152 * green + 0.0722 * blue < 0.45 and not known[i, j]  # relative luminance
            ax.text(j, i, cell_label(value), ha="center", va="center", fontsize=7, color="white" if dark else "black",
                    fontweight="bold" if value > PASS_AT_MOST and not known[i, j] else "normal",
                    backgroundcolor=DECLARED if known[i, j] else "none")
    return image


def backend_figure(backend: str, compared: pd.DataFrame) -> Figure:
    """Figure of one backend's compared rows: a heatmap per PANELS pair and one colour bar.

    Margins are fixed in inches (tick labels, axis labels, colour bar) rather than computed by a layout
    engine, which would measure every label and cost more than drawing.
    """
    grids = [(*shown_grid(compared, AXES[r], AXES[c]), AXES[r], AXES[c]) for r, c in PANELS]
    tensors = ", ".join(t for t in ("y", "dx", "dw", "db") if t in set(compared["tensor"]))
    widths = [max(grid.shape[1], 3) * CELL_INCHES[0] for grid, *_ in grids]
    height = max(grid.shape[0] for grid, *_ in grids) * CELL_INCHES[1] + 0.6
    left, gap, bar_space, bottom, top = MARGIN_INCHES
    figure_size = (left + sum(widths) + gap * (len(grids) - 1) + bar_space, bottom + height + top)
    figure = Figure(figsize=figure_size)
    frame_width, frame_height = figure_size
    spec = figure.add_gridspec(1, len(grids), width_ratios=widths, wspace=gap / (sum(widths) / len(grids)),
                               left=left / frame_width, right=1 - bar_space / frame_width,
                               bottom=bottom / frame_height, top=1 - top / frame_height)
    images = [_draw(figure.add_subplot(spec[0, i]), grid, declared, rows, columns, f"worst of tensors {tensors}")
              for i, (grid, declared, rows, columns) in enumerate(grids)]
    bar_left = 1 - (bar_space - 0.2) / frame_width
    bar_axes = figure.add_axes((bar_left, bottom / frame_height, 0.15 / frame_width, height / frame_height))
    bar = figure.colorbar(images[-1], cax=bar_axes)
    ticks = [float(t) for t in range(int(LOG_LOW), int(LOG_HIGH) + 1)]
    labels = [cell_label(10.0 ** t) for t in ticks]
    labels[0], labels[-1] = "≤" + labels[0], "≥" + labels[-1]
    bar.set_ticks(ticks, labels=labels)
    bar.ax.tick_params(labelsize=8)
    bar.set_label("err_ratio, log scale (≤ 1 passes)", fontsize=8)
    figure.legend(handles=[Patch(facecolor=EMPTY, edgecolor="#999999", label="no compared rows"),
                           Patch(facecolor=DECLARED, edgecolor="#7a5cc2", hatch="///",
                                 label="worst is a declared deviation (xfail/xpass), the rest pass")],
                  loc="lower left", bbox_to_anchor=(left / frame_width, 0.05 / frame_height), ncols=2, fontsize=8,
                  frameon=False, borderaxespad=0)
    return figure
