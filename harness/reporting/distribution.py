"""The err_ratio distribution: how close to the bound each backend x dtype x tensor runs, before it fails.

Compared rows (pass, fail, xfail, xpass) are counted per (backend, dtype, tensor, bin, kind):
- bins of err_ratio: exactly 0, up to 1e-4, then half-decades up to 100 (each holds (low, high]: above
  1e-4 up to 3.2e-4, ..., above 32 up to 100), then beyond 100 (infinite included); ratios up to 1 pass,
  so the bin just above 1 holds the first failing ones;
- kind: `pass` (pass rows), `fail` (fail rows), `declared` (xfail and xpass: a declared deviation).
Counts add up over chunks of rows, so a run of any size is counted in bounded memory.

`histograms_html` draws each backend's counts as a table (dtypes down, tensors across) of small
stacked bar charts in plain HTML and CSS: no figure to render, sharp at any zoom.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from convparity.harness.reporting import html_page
from convparity.harness.vocabulary import DTYPES, TENSORS

KEYS = ["backend", "dtype", "tensor", "bin", "kind"]
KINDS = ("pass", "fail", "declared")
EDGES = tuple(10.0 ** (k / 2) for k in range(-8, 5))  # 1e-4, 3.2e-4, ..., 100


def _short(value: float) -> str:
    """1e-4 -> '1e-4', 3.16e-4 -> '3.2e-4', 0.0316 -> '0.032', 100 -> '100'."""
    if value < 0.01:
        exponent = math.floor(math.log10(value))
        return f"{value / 10 ** exponent:.2g}e{exponent}"
    return f"{value:.2g}" if value < 100 else f"{value:.0f}"


LABELS = ("0", "≤1e-4", *(f"{_short(low)}–{_short(high)}" for low, high in zip(EDGES, EDGES[1:])), ">100")
FIRST_FAILING_BIN = 2 + EDGES.index(1.0)
BAR_PIXELS = 36


def bin_of(ratios: np.ndarray) -> np.ndarray:
    """The bin index (into LABELS) of each err_ratio."""
    bins = np.searchsorted(np.asarray(EDGES), ratios, side="left") + 1
    return np.where(ratios == 0, 0, bins)


def ratio_counts(rows: pd.DataFrame | None, *, folded: bool = False) -> pd.DataFrame:
    """Counts per KEYS of the compared rows of `rows` (results rows), or, `folded`, of stacked counts."""
    if rows is None or rows.empty:
        return pd.DataFrame(columns=KEYS + ["rows"])
    if folded:
        return rows.groupby(KEYS, observed=True)["rows"].sum().reset_index()
    compared = rows[rows["status"].isin(["pass", "fail", "xfail", "xpass"]) & rows["err_ratio"].notna()]
    kinds = compared["status"].map({"pass": "pass", "fail": "fail", "xfail": "declared", "xpass": "declared"})
    keyed = compared[["backend", "dtype", "tensor"]].assign(
        bin=bin_of(compared["err_ratio"].to_numpy(float)), kind=kinds.to_numpy())
    return keyed.groupby(KEYS, observed=True).size().rename("rows").reset_index()


def _bar(counts: dict[tuple[int, str], int], tallest: int) -> str:
    """One cell's bar chart: a column per bin, its kinds stacked (fail on top), heights relative to `tallest`."""
    columns = []
    for index, label in enumerate(LABELS):
        segments, words = [], []
        for kind in KINDS:
            count = counts.get((index, kind), 0)
            if count:
                pixels = max(2, math.ceil(BAR_PIXELS * count / tallest))
                segments.append(f'<span class="seg {kind}" style="height:{pixels}px"></span>')
                words.append(f"{count} {kind}")
        title = f"err_ratio {label}: " + (", ".join(words) or "no rows")
        edge = " bound" if index == FIRST_FAILING_BIN else ""
        columns.append(f'<span class="bin{edge}" title="{html_page.text(title)}">{"".join(reversed(segments))}'
                       "</span>")
    return f'<div class="hist">{"".join(columns)}</div>'


def histograms_html(counts: pd.DataFrame) -> str:
    """Per backend, a table of bar charts (dtypes down, tensors across); empty text without counts."""
    if counts.empty:
        return ""
    parts = []
    for backend, rows in counts.groupby("backend", sort=True, observed=True):
        tallest = int(rows.groupby(["dtype", "tensor", "bin"], observed=True)["rows"].sum().max())
        dtypes = [d for d in DTYPES if d in set(rows["dtype"])] + sorted(set(rows["dtype"]) - set(DTYPES))
        tensors = [t for t in TENSORS if t in set(rows["tensor"])]
        cells: dict[tuple[str, str], dict[tuple[int, str], int]] = {(d, t): {} for d in dtypes for t in tensors}
        for dtype, tensor, index, kind, count in rows[KEYS[1:] + ["rows"]].itertuples(index=False):
            cells[(dtype, tensor)][(int(index), kind)] = int(count)
        head = "".join(f"<th>{html_page.text(t)}</th>" for t in tensors)
        body = "".join(
            f"<tr><th>{html_page.text(d)}</th>"
            + "".join(f"<td>{_bar(cells[(d, t)], tallest) if cells[(d, t)] else '—'}</td>" for t in tensors)
            + "</tr>" for d in dtypes)
        parts.append(f"<h3>{html_page.text(backend)}</h3>\n<table class=\"dataframe histograms\"><thead><tr>"
                     f"<th>dtype</th>{head}</tr></thead><tbody>{body}</tbody></table>")
    axis = " · ".join(html_page.text(label) for label in LABELS)
    legend = ('<p class="legend"><span class="swatch pass"></span> pass <span class="swatch fail"></span> fail '
              '<span class="swatch declared"></span> declared deviation (xfail/xpass) · the dashed line is the '
              f"bound (err_ratio 1: bins to its right fail) · bins, left to right: {axis} · bar heights share one "
              "scale per backend; hover a bar for its counts</p>")
    return legend + "\n" + "\n".join(parts)
