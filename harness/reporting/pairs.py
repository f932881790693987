"""A framework's fused and unfused backends side by side: where the same case gets different verdicts.

Fusion bugs show as a disagreement between two ways one framework computes a chain: a backend NAME and its
twin NAME-unfused (the same framework with its graph optimizations off) run the same cases, so for every
(case, bias, dtype, tensor) both compared, the pair either agrees (both pass, or both fail alike) or differs.
The reports show, per pair, dtype and tensor, how many cases agree and differ, and the cases that differ
with both verdicts and err_ratios (the first KEPT_DIFFERENCES).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from convparity.harness.inert_text import markdown
from convparity.harness.reporting import html_page
from convparity.harness.vocabulary import tensor_key

UNFUSED_SUFFIX = "-unfused"
KEPT_DIFFERENCES = 200
PAIR_COLUMNS = ["case", "bias", "dtype", "tensor", "backend", "status", "err_ratio"]
KEYS = ["case", "bias", "dtype", "tensor"]


def pairs(backends: Iterable[str]) -> list[tuple[str, str]]:
    """(NAME, NAME-unfused) for every backend whose unfused twin is among `backends`."""
    names = set(backends)
    return sorted((name, name + UNFUSED_SUFFIX) for name in names if name + UNFUSED_SUFFIX in names)


def pair_part(chunk: pd.DataFrame, backend_pairs: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """The few columns of a chunk's rows of paired backends (what `pair_tables` needs)."""
    members = {name for pair in backend_pairs for name in pair}
    return chunk.loc[chunk["backend"].isin(members), PAIR_COLUMNS]


def pair_tables(parts: Sequence[pd.DataFrame], backend_pairs: Sequence[tuple[str, str]],
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(counts, differences): per pair, dtype and tensor the cases both backends compared that agree and that
    differ; the differing cases themselves, first KEPT_DIFFERENCES per pair."""
    rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=PAIR_COLUMNS)
    counts, differences = [], []
    for fused, unfused in backend_pairs:
        left = rows[rows["backend"] == fused].drop(columns="backend")
        right = rows[rows["backend"] == unfused].drop(columns="backend")
        joined = left.merge(right, on=KEYS, suffixes=("_fused", "_unfused"))
        compared = joined[joined["status_fused"].isin(("pass", "fail", "xfail", "xpass"))
                          & joined["status_unfused"].isin(("pass", "fail", "xfail", "xpass"))]
        if compared.empty:
            continue
        differ = compared["status_fused"] != compared["status_unfused"]
        table = compared.assign(differ=differ).groupby(["dtype", "tensor"], observed=True)["differ"].agg(
            agree=lambda d: int((~d).sum()), differ=lambda d: int(d.sum())).reset_index()
        counts.append(table.assign(fused=fused, unfused=unfused))
        differences.append(compared[differ].head(KEPT_DIFFERENCES).assign(fused=fused, unfused=unfused))
    count_columns = ["fused", "unfused", "dtype", "tensor", "agree", "differ"]
    counted = pd.concat(counts, ignore_index=True)[count_columns] if counts else pd.DataFrame(columns=count_columns)
    counted = counted.sort_values(["fused", "dtype", "tensor"], key=lambda c: c.map(tensor_key) if c.name == "tensor"
                                  else c, kind="stable").reset_index(drop=True)
    difference_columns = ["fused", "unfused", "case", "bias", "dtype", "tensor", "status_fused", "err_ratio_fused",
                          "status_unfused", "err_ratio_unfused"]
    differing = (pd.concat(differences, ignore_index=True)[difference_columns] if differences
                 else pd.DataFrame(columns=difference_columns))
    return counted, differing


def pairs_section(counts: pd.DataFrame, differences: pd.DataFrame) -> str:
    """The HTML section (empty text without a pair)."""
    if counts.empty:
        return ""
    parts = ["<h2>Fused and unfused</h2>",
             "<p>Each backend beside its <code>-unfused</code> twin (the same framework, its graph optimizations off): "
             "cases both compared, by whether their verdicts agree.</p>", html_page.table(counts)]
    if len(differences):
        parts += ["<h3>Cases whose verdicts differ</h3>", html_page.table(differences)]
    return "\n".join(parts)


def pairs_markdown(counts: pd.DataFrame) -> str:
    """The summary.md lines (empty text without a pair)."""
    if counts.empty:
        return ""
    lines = ["## Fused and unfused", ""]
    for (fused, unfused), table in counts.groupby(["fused", "unfused"], sort=False):
        agree, differ = int(table["agree"].sum()), int(table["differ"].sum())
        lines.append(f"- {markdown(fused)} and {markdown(unfused)}: {agree} verdicts agree, {differ} differ")
    return "\n".join(lines) + "\n"
