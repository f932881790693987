"""The err_ratio distribution: how close to the bound each backend x dtype x tensor runs, before it fails.

Compared rows (pass, fail, xfail, xpass) are counted per (backend, dtype, tensor, bin, kind):
- bins of err_ratio: exactly 0, up to 1e-4, then half-decades up to 100 (each holds (low, high]: above
  1e-4 up to 3.2e-4, ..., above 32 up to 100), then beyond 100 (infinite included); ratios up to 1 pass,
  so the bin just above 1 holds the first failing ones;
- kind: `pass` (pass rows), `fail` (fail rows), `declared` (xfail and xpass: a declared deviation).
Counts add up over chunks of rows, so a run of any size is counted in bounded memory.

Integer outputs (quantized convolutions, judged in quantization steps: the rows whose `steps` is set) are
also counted by their `max_steps`, the most steps an element is from the exact result (bins STEP_LABELS),
so a backend that is one step off everywhere shows apart from one that is exact.

`histograms_html` draws each backend's counts as a table (dtypes down, tensors across) of small
stacked bar charts in plain HTML and CSS: no figure to render, sharp at any zoom.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from convparity.harness.reporting import html_page
from convparity.harness.vocabulary import DTYPES, in_tensor_order

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


STEP_EDGES = (0, 1, 2, 4, 8)
STEP_LABELS = ("0", "1", "2", "3–4", "5–8", ">8")


def step_bin_of(steps: np.ndarray) -> np.ndarray:
    """The bin index (into STEP_LABELS) of each max_steps."""
    return np.searchsorted(np.asarray(STEP_EDGES), steps, side="left")


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
    return _counted(compared, bin_of(compared["err_ratio"].to_numpy(float)))


def step_counts(rows: pd.DataFrame | None, *, folded: bool = False) -> pd.DataFrame:
    """Counts per KEYS of the integer rows of `rows` by their max_steps bin (or, `folded`, of stacked counts)."""
    if rows is None or rows.empty or (not folded and "steps" not in rows):
        return pd.DataFrame(columns=KEYS + ["rows"])
    if folded:
        return rows.groupby(KEYS, observed=True)["rows"].sum().reset_index()
    integer = rows[rows["status"].isin(["pass", "fail", "xfail", "xpass"]) & (rows["steps"].fillna("") != "")]
    return _counted(integer, step_bin_of(integer["max_steps"].to_numpy(np.int64)))


def _counted(compared: pd.DataFrame, bins: np.ndarray) -> pd.DataFrame:
    kinds = compared["status"].map({"pass": "pass", "fail": "fail", "xfail": "declared", "xpass": "declared"})
    keyed = compared[["backend", "dtype", "tensor"]].assign(bin=bins, kind=kinds.to_numpy())
    return keyed.groupby(KEYS, observed=True).size().rename("rows").reset_index()


def _bar(counts: dict[tuple[int, str], int], tallest: int, labels: tuple[str, ...], measure: str,
         bound: int | None) -> str:
    """One cell's bar chart: a column per bin, its kinds stacked (fail on top), heights relative to `tallest`."""
    columns = []
    for index, label in enumerate(labels):
        segments, words = [], []
        for kind in KINDS:
            count = counts.get((index, kind), 0)
            if count:
                pixels = max(2, math.ceil(BAR_PIXELS * count / tallest))
                segments.append(f'<span class="seg {kind}" style="height:{pixels}px"></span>')
                words.append(f"{count} {kind}")
        title = f"{measure} {label}: " + (", ".join(words) or "no rows")
        edge = " bound" if index == bound else ""
        columns.append(f'<span class="bin{edge}" title="{html_page.text(title)}">{"".join(reversed(segments))}'
                       "</span>")
    return f'<div class="hist">{"".join(columns)}</div>'


def histograms_html(counts: pd.DataFrame, *, steps: bool = False) -> str:
    """Per backend, a table of bar charts (dtypes down, tensors across) of err_ratio counts (`ratio_counts`), or
    with `steps` of max_steps counts (`step_counts`); empty text without counts."""
    if counts.empty:
        return ""
    labels, measure, bound = (STEP_LABELS, "max_steps", None) if steps else (LABELS, "err_ratio", FIRST_FAILING_BIN)
    parts = []
    for backend, rows in counts.groupby("backend", sort=True, observed=True):
        tallest = int(rows.groupby(["dtype", "tensor", "bin"], observed=True)["rows"].sum().max())
        dtypes = [d for d in DTYPES if d in set(rows["dtype"])] + sorted(set(rows["dtype"]) - set(DTYPES))
        tensors = in_tensor_order(rows["tensor"])
        cells: dict[tuple[str, str], dict[tuple[int, str], int]] = {(d, t): {} for d in dtypes for t in tensors}
        for dtype, tensor, index, kind, count in rows[KEYS[1:] + ["rows"]].itertuples(index=False):
            cells[(dtype, tensor)][(int(index), kind)] = int(count)
        head = "".join(f"<th>{html_page.text(t)}</th>" for t in tensors)
        body = "".join(
            f"<tr><th>{html_page.text(d)}</th>"
            + "".join(f"<td>{_bar(cells[(d, t)], tallest, labels, measure, bound) if cells[(d, t)] else '—'}</td>"
                      for t in tensors)
            + "</tr>" for d in dtypes)
        parts.append(f"<h3>{html_page.text(backend)}</h3>\n<table class=\"dataframe histograms\"><thead><tr>"
                     f"<th>dtype</th>{head}</tr></thead><tbody>{body}</tbody></table>")
    axis = " · ".join(html_page.text(label) for label in labels)
    what = ("the most quantization steps an element is from the exact result" if steps else
            "the dashed line is the bound (err_ratio 1: bins to its right fail)")
    legend = ('<p class="legend"><span class="swatch pass"></span> pass <span class="swatch fail"></span> fail '
              f'<span class="swatch declared"></span> declared deviation (xfail/xpass) · {what} · bins, left to '
              f"right: {axis} · bar heights share one scale per backend; hover a bar for its counts</p>")
    return legend + "\n" + "\n".join(parts)
