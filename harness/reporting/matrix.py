"""The parity matrix: per backend x dtype x tensor, the count of every status and the worst err_ratio.

Each (backend, dtype, tensor) cell falls in one colour band, decided by its worst err_ratio (the
bound ratio of convparity.harness.evaluation.bound: <= 1 passes) and by whether any of its rows went bad:

    exact  worst err_ratio == 0: every compared element equals the float64 reference
    tight  0 < worst < 0.1: at least ten times inside the bound
    near   0.1 <= worst <= 1: passes, but within a factor ten of the bound
    known  nothing bad, but some rows fail as the backend declared (xfail), or a declaration went stale
           (xpass); the worst ratio then includes them
    fail   any row is fail / error / crash / timeout, whatever the ratio
    none   nothing was compared: every row is unsupported or reference-error

The HTML report colours cells with `Band.colour`; summary.md marks them with `Band.marker`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from convparity.harness.vocabulary import BAD_STATUSES, DTYPES, STATUSES, in_tensor_order, tensor_key

SUMMARY_KEYS = ["backend", "dtype", "tensor"]
TIGHT_BELOW = 0.1
PASS_AT_MOST = 1.0


@dataclass(frozen=True)
class Band:
    """A colour band of the worst err_ratio: its name, what it means, HTML colour, Markdown marker."""

    name: str
    meaning: str
    colour: str
    marker: str


BANDS = (
    Band("exact", "err_ratio = 0", "#9cd3ff", "🟦"),
    Band("tight", f"0 < err_ratio < {TIGHT_BELOW}", "#8ddb9a", "🟩"),
    Band("near", f"{TIGHT_BELOW} ≤ err_ratio ≤ {PASS_AT_MOST:g}", "#f5dd76", "🟨"),
    Band("known", "only declared deviations fail (xfail), or one went stale (xpass)", "#c9b6f2", "🟪"),
    Band("fail", f"any {'/'.join(BAD_STATUSES)} row", "#f28b82", "🟥"),
    Band("none", "nothing compared (all unsupported / reference-error)", "#e4e7eb", "⬜"),
)
BAND_BY_NAME = {band.name: band for band in BANDS}


def bands(worst: pd.Series, bad_rows: pd.Series, declared_rows: pd.Series) -> pd.Series:
    """The band name of every cell from its worst err_ratio (NaN: none compared), its count of bad rows
    (fail/error/crash/timeout) and of rows a declared deviation covers (xfail/xpass)."""
    conditions = [(bad_rows > 0) | (worst > PASS_AT_MOST) & (declared_rows == 0), declared_rows > 0, worst.isna(),
                  worst == 0, worst < TIGHT_BELOW]
    names = np.select(conditions, ["fail", "known", "none", "exact", "tight"], default="near")
    return pd.Series(names, index=worst.index, dtype="string")


def format_ratio(value: float) -> str:
    """err_ratio for people: '–' when missing, 'inf', '0', whole numbers from 10 to 9999, else two digits."""
    if pd.isna(value):
        return "–"
    if math.isinf(value):
        return "inf"
    if 10 <= value < 9999.5:
        return f"{value:.0f}"
    return "0" if value == 0 else f"{value:.2g}"


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Per backend x dtype x tensor: rows, a count column per status, worst_err_ratio and band.

    results: the rows of convparity.harness.results.read_results. Tensors come in y, dx, dw, db order.
    """
    return finish_summary(summary_parts(results))


def summary_parts(results: pd.DataFrame | None, *, folded: bool = False) -> pd.DataFrame:
    """The additive part of a summary: per SUMMARY_KEYS, a count column per status and worst_err_ratio.

    `results` are rows, or (`folded`) earlier parts stacked, which are combined (counts summed, worst
    kept), so a summary can be built from chunks of rows.
    """
    statuses = [str(s) for s in STATUSES]
    columns = SUMMARY_KEYS + statuses + ["worst_err_ratio"]
    if results is None or results.empty:
        return pd.DataFrame(columns=columns)
    if folded:
        aggregation: dict[str, str] = {**{s: "sum" for s in statuses}, "worst_err_ratio": "max"}
        return results.groupby(SUMMARY_KEYS, observed=True).agg(aggregation).reset_index()[columns]
    counts = (
        results.groupby(SUMMARY_KEYS + ["status"], observed=True).size().unstack("status", fill_value=0)
        .reindex(columns=statuses, fill_value=0)
    )
    worst = results.groupby(SUMMARY_KEYS, observed=True)["err_ratio"].max().rename("worst_err_ratio")
    return counts.join(worst).reset_index()[columns]


def finish_summary(parts: pd.DataFrame) -> pd.DataFrame:
    """The summary from its parts: rows and band per cell, cells in display order."""
    summary = summary_parts(parts, folded=True) if len(parts) else parts.copy()
    for status in STATUSES:
        summary[status] = summary[status].astype("int64")
    summary["worst_err_ratio"] = summary["worst_err_ratio"].astype(float)
    summary.insert(3, "rows", summary[list(STATUSES)].sum(axis=1).astype("int64"))
    summary["band"] = bands(summary["worst_err_ratio"], summary[list(BAD_STATUSES)].sum(axis=1),
                            summary[["xfail", "xpass"]].sum(axis=1))
    return summary.sort_values(SUMMARY_KEYS, key=_display_order, kind="stable").reset_index(drop=True)


def _display_order(column: pd.Series) -> pd.Series:
    """Sort key: dtypes widest first (DTYPES order), tensors y, dx, dw, db; anything else as text."""
    if column.name == "tensor":
        return column.map(tensor_key)
    if column.name != "dtype":
        return column
    return column.map({name: i for i, name in enumerate(DTYPES)}).fillna(len(DTYPES))


def counts_text(cell: pd.Series) -> str:
    """'pass/fail/unsupported' counts of one summary row, other non-zero statuses named: '20/1/3 +2 error'."""
    text = f"{cell['pass']}/{cell['fail']}/{cell['unsupported']}"
    others = [f"+{cell[s]} {s}" for s in STATUSES if s not in ("pass", "fail", "unsupported") and cell[s]]
    return " ".join([text, *others])


def parity_matrix(summary: pd.DataFrame, cell: Callable[[pd.Series], str]) -> pd.DataFrame:
    """The summary as a wide table: one row per (backend, dtype), one column per tensor present.

    `cell` renders one summary row; a tensor a (backend, dtype) has no rows for (db without bias) is None.
    """
    present = in_tensor_order(summary["tensor"])
    texts = summary.assign(cell=summary.apply(cell, axis=1) if len(summary) else [])
    wide = texts.pivot(index=["backend", "dtype"], columns="tensor", values="cell")
    rows = pd.MultiIndex.from_frame(summary[["backend", "dtype"]].drop_duplicates())
    wide = wide.reindex(index=rows, columns=present).astype(object)
    return wide.where(wide.notna(), None)
