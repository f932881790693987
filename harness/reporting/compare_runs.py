"""Compare two runs (a framework upgrade, a new kernel, another machine): what changed from OLD to NEW.

Rows are joined on convparity.harness.results.KEY = (case, bias, dtype, backend, tensor, inputs: how the values
were drawn, "" for the default, a model layer's weights by model and file name: results.comparable_inputs); a key
written twice in one run (a resumed case) counts once, with its last row.
Every joined key gets one change, the first of these that applies:

    only_old    the key is in OLD only
    only_new    the key is in NEW only
    regression  OLD pass, xfail or unsupported -> NEW fail / error / crash / timeout. unsupported -> bad
                counts: the backend now accepts a case it used to refuse and gets it wrong, a new wrong
                answer; xfail -> fail: a declared deviation no longer covers what fails. Only when both
                runs have the same settings (seed, tolerance factor, dtypes, grids); otherwise such keys
                are `changed` and the summary says why. reference-error, on either side, is never a
                regression: the reference failed, not the backend
    fix         OLD fail / error / crash / timeout -> NEW pass
    worse       err_ratio grew beyond the threshold: new > growth * old and new > floor; the floor keeps
                noise among near-zero ratios (0 -> 1e-6) out. Applies whatever the statuses (pass -> pass,
                fail -> fail). Ratios are compared against the unscaled bound (err_ratio x the run's
                tolerance factor), so a run with another --tolerance-factor is not "worse" only because
                its bound changed
    changed     any other status change: pass -> unsupported, fail -> error, anything <-> reference-error, ...
    same        none of the above

Speed (runs with --perf): a case timed on a backend in both runs is `slower` when its new median time
exceeds the old one by more than the spread either run measured, and at least SPEED_NOISE (the
repeatability of timings on an idle machine: benchmarks/perf_repeatability.py); that is a column of its
own (`slowdown`, `slower`) beside the change, shown and counted apart. It does not change the exit code.

`convparity compare` prints the settings that differ between the runs, a summary, writes every joined
key to a CSV (bias as on/off, as everywhere) and an HTML page (in the NEW run's folder unless told
otherwise) and exits 1 when any key is a regression. Backend versions of both runs are shown side by side.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from convparity.harness.files import RunFolderError, atomic_write
from convparity.harness.reporting import html_page
from convparity.harness.reporting.matrix import format_ratio
from convparity.harness.reporting.speed import seconds_text
from convparity.harness.results import KEY, RESULTS_FILE, bias_word, comparable_inputs, read_results
from convparity.harness.running.run_folder import read_record
from convparity.harness.running.run_record import RunRecord
from convparity.harness.vocabulary import BAD_STATUSES, tensor_key

# Settings under which the same key can get another status: differing, no key is called a regression.
# (Other settings that differ, grids, dtypes, backends, only change which keys exist.)
ROW_DECIDING = {"seed", "tolerance_factor"}
CHANGES = ("regression", "fix", "worse", "changed", "only_old", "only_new", "same")
DESCRIPTIONS = {
    "regression": "pass, xfail or unsupported became fail/error/crash/timeout",
    "fix": "fail/error/crash/timeout became pass",
    "worse": "err_ratio grew beyond the threshold",
    "changed": "other status changes",
    "only_old": "in the old run only",
    "only_new": "in the new run only",
    "same": "no change worth showing",
}
SIDE_COLUMNS = ["status", "err_ratio", "backend_version", "message", "perf_median_s", "perf_spread"]
COLUMNS = ["change", "backend", "dtype", "bias", "tensor", "case", "name", "status_old", "status_new",
           "err_ratio_old", "err_ratio_new", "growth", "backend_version_old", "backend_version_new",
           "message_old", "message_new", "perf_median_s_old", "perf_median_s_new", "slowdown", "slower", "repro"]
SPEED_NOISE = 0.10
SHOWN = ["backend", "dtype", "bias", "tensor", "status_old", "status_new", "err_ratio_old", "err_ratio_new",
         "case"]
VERSIONS = ["backend_version_old", "backend_version_new"]
_FACTOR = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*[xX]?\s*")


@dataclass(frozen=True)
class Thresholds:
    """When a grown err_ratio counts as `worse`: new > growth * old and new > floor."""

    growth: float = 2.0
    floor: float = 0.01

    def __post_init__(self) -> None:
        if not (math.isfinite(self.growth) and self.growth >= 1):
            raise ValueError(f"threshold must be a finite factor >= 1 (like 2x), got {self.growth!r}")
        if not (math.isfinite(self.floor) and self.floor >= 0):
            raise ValueError(f"floor must be a finite err_ratio >= 0, got {self.floor!r}")


def parse_factor(text: str) -> float:
    """'2x', '2', '1.5X' -> the factor; anything else is a ValueError naming the threshold."""
    match = _FACTOR.fullmatch(text)
    if not match:
        raise ValueError(f"threshold must be a factor like 2x or 1.5, got {text!r}")
    return float(match.group(1))


@dataclass(frozen=True)
class RunComparison:
    """Two runs joined: one row per key (COLUMNS), and each backend's version in both runs."""

    old: Path
    new: Path
    thresholds: Thresholds
    rows: pd.DataFrame
    versions: pd.DataFrame
    differences: dict[str, tuple]

    def counts(self) -> pd.Series:
        """Keys per change, in CHANGES order (zeros included)."""
        return self.rows["change"].value_counts().reindex(list(CHANGES), fill_value=0)

    @property
    def regressed(self) -> bool:
        return bool((self.rows["change"] == "regression").any())


def _load(directory: Path) -> tuple[pd.DataFrame, RunRecord]:
    record = read_record(directory)
    if not (directory / RESULTS_FILE).is_file():
        raise RunFolderError(f"{directory} has no {RESULTS_FILE}")
    rows = read_results(directory)
    rows["inputs"] = rows["inputs"].map(comparable_inputs).astype("string")
    return rows.drop_duplicates(list(KEY), keep="last"), record


def classify(joined: pd.DataFrame, thresholds: Thresholds, comparable: bool = True,
             factors: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """The change of every joined key (see the module docstring); `joined` has the _old/_new columns.
    `comparable`: whether both runs had the same row-deciding settings (else nothing is a regression);
    `factors`: the old and new runs' tolerance factors (ratios are compared against the unscaled bound)."""
    old, new = joined["status_old"], joined["status_new"]
    ratio_old = joined["err_ratio_old"].to_numpy(dtype=float) * factors[0]
    ratio_new = joined["err_ratio_new"].to_numpy(dtype=float) * factors[1]
    only_old = new.isna().to_numpy(dtype=bool)
    only_new = old.isna().to_numpy(dtype=bool)
    with np.errstate(invalid="ignore"):
        grew = (ratio_new > thresholds.growth * ratio_old) & (ratio_new > thresholds.floor)
    conditions = [
        only_old,
        only_new,
        (old.isin(["pass", "xfail", "unsupported"]) & new.isin(BAD_STATUSES)).to_numpy(dtype=bool, na_value=False)
        & comparable,
        (old.isin(BAD_STATUSES) & (new == "pass")).to_numpy(dtype=bool, na_value=False),
        grew,
        (old != new).to_numpy(dtype=bool, na_value=False),
    ]
    changes = ["only_old", "only_new", "regression", "fix", "worse", "changed"]
    return np.select(conditions, changes, default="same")


def speed_change(joined: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(new median / old median, whether that is slower beyond the measured spread and SPEED_NOISE) per key;
    NaN and False where either run has no timing."""
    with np.errstate(divide="ignore", invalid="ignore"):
        slowdown = joined["perf_median_s_new"] / joined["perf_median_s_old"]
    noise = np.fmax(np.fmax(joined["perf_spread_old"].fillna(0), joined["perf_spread_new"].fillna(0)), SPEED_NOISE)
    return slowdown, (slowdown > 1 + noise).fillna(False).astype(bool)


def version_table(old: RunRecord, new: RunRecord) -> pd.DataFrame:
    """backend, old version, new version, changed: from both runs' run.json ('' = unavailable there)."""
    old_versions, new_versions = old.backend_versions, new.backend_versions
    backends = sorted(set(old_versions) | set(new_versions))
    table = pd.DataFrame({
        "backend": backends,
        "old": [old_versions.get(b, "(not in run)") or "unavailable" for b in backends],
        "new": [new_versions.get(b, "(not in run)") or "unavailable" for b in backends],
    })
    return table.assign(changed=table["old"] != table["new"])


def compare_runs(
    old_dir: str | Path, new_dir: str | Path, thresholds: Thresholds | None = None
) -> RunComparison:
    """Join two run folders on KEY and classify every key; RunFolderError if either is not a run."""
    thresholds = thresholds or Thresholds()
    old_dir, new_dir = Path(old_dir), Path(new_dir)
    (old, old_meta), (new, new_meta) = _load(old_dir), _load(new_dir)
    differences = settings_differences(old_meta, new_meta)
    keep = list(KEY) + SIDE_COLUMNS + ["name", "repro"]
    joined = old[keep].merge(new[keep], on=list(KEY), how="outer", suffixes=("_old", "_new"), sort=False)
    factors = (old_meta.settings.tolerance_factor, new_meta.settings.tolerance_factor)
    joined["change"] = classify(joined, thresholds, comparable=not set(differences) & ROW_DECIDING, factors=factors)
    with np.errstate(divide="ignore", invalid="ignore"):
        joined["growth"] = (joined["err_ratio_new"] * factors[1]) / (joined["err_ratio_old"] * factors[0])
    joined["slowdown"], joined["slower"] = speed_change(joined)
    joined["name"] = joined["name_new"].fillna(joined["name_old"])
    joined["repro"] = joined["repro_new"].fillna(joined["repro_old"])
    joined = joined.assign(_change=joined["change"].map({c: i for i, c in enumerate(CHANGES)}),
                           _tensor=joined["tensor"].map(lambda t: tensor_key(t)))
    rows = joined.sort_values(["_change", "backend", "dtype", "case", "bias", "_tensor"], kind="stable")
    rows = rows[COLUMNS].reset_index(drop=True)
    return RunComparison(old_dir, new_dir, thresholds, rows, version_table(old_meta, new_meta), differences)


def settings_differences(old: RunRecord, new: RunRecord) -> dict[str, tuple]:
    """The row-deciding settings (seed, tolerance factor, dtypes, grids, backends) that differ: {name: (old, new)}."""
    return old.settings.differences(new.settings)


def _readable(rows: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """`columns` of `rows` with ratios as text and '–' for the side a one-sided key lacks."""
    shown = rows[columns].astype(object).fillna("–")
    if "bias" in columns:
        shown["bias"] = rows["bias"].map(bias_word)
    return shown.assign(err_ratio_old=rows["err_ratio_old"].map(format_ratio),
                        err_ratio_new=rows["err_ratio_new"].map(format_ratio))


def summary_text(comparison: RunComparison, csv_path: Path | None = None, limit: int = 20) -> str:
    """The printed summary: versions side by side, keys per change, the first `limit` keys of each change."""
    t = comparison.thresholds
    counts = comparison.counts()
    lines = [f"old: {comparison.old}\nnew: {comparison.new}"]
    if comparison.differences:
        deciding = set(comparison.differences) & ROW_DECIDING
        lines.append("settings that differ:\n" + "\n".join(
            f"  {name}: {old!r} -> {new!r}" for name, (old, new) in comparison.differences.items())
            + (f"\n  {', '.join(sorted(deciding))} decide statuses: no key is called a regression" if deciding else ""))
    lines += [
        "backend versions:\n" + comparison.versions.to_string(index=False),
        f"{len(comparison.rows)} keys: " + ", ".join(f"{counts[c]} {c}" for c in CHANGES)
        + f"  (worse: err_ratio > {t.growth:g}x old and > {t.floor:g})",
    ]
    slower = comparison.rows[comparison.rows["slower"]]
    if len(slower):
        cases = slower.drop_duplicates(["case", "bias", "dtype", "backend"])
        slow = cases[["backend", "dtype", "case"]].assign(
            old=cases["perf_median_s_old"].map(seconds_text), new=cases["perf_median_s_new"].map(seconds_text),
            slowdown=cases["slowdown"].map(lambda v: f"{v:.2f}x"))
        lines.append(f"slower ({len(cases)} case x backend: median time grew beyond the measured spread and "
                     f"{SPEED_NOISE:.0%}):\n" + slow.head(limit).to_string(index=False))
    for change in CHANGES[:-1]:
        chosen = comparison.rows[comparison.rows["change"] == change]
        if chosen.empty:
            continue
        where = f" in {csv_path}" if csv_path else ""
        more = f"\n  ... {len(chosen) - limit} more{where}" if len(chosen) > limit else ""
        table = _readable(chosen.head(limit), SHOWN).to_string(index=False)
        if change == "regression":
            table += "\nrepro:\n" + "\n".join("  " + chosen["repro"].head(limit).drop_duplicates())
        lines.append(f"{change} ({len(chosen)}: {DESCRIPTIONS[change]}):\n{table}{more}")
    return "\n\n".join(lines)


def write_csv(comparison: RunComparison, path: Path) -> Path:
    """Every joined key with its change, both statuses, ratios, versions, messages and timings, and the repro;
    bias as on/off, as in results.csv."""
    rows = comparison.rows.assign(bias=comparison.rows["bias"].map(bias_word))
    return atomic_write(path, lambda file: rows.to_csv(file, index=False))


def render_html(comparison: RunComparison) -> str:
    """A self-contained page: versions side by side, keys per change, a table per change."""
    t = comparison.thresholds
    counts = comparison.counts().rename_axis("change").reset_index(name="keys")
    counts["meaning"] = counts["change"].map(DESCRIPTIONS)
    parts = [
        f"<p>old: <code>{html_page.text(comparison.old)}</code><br/>"
        f"new: <code>{html_page.text(comparison.new)}</code><br/>"
        f"worse means err_ratio &gt; {t.growth:g}x the old one and &gt; {t.floor:g}.</p>",
        "<h2>Settings that differ</h2>\n" + (html_page.table(pd.DataFrame(
            [(name, repr(old), repr(new)) for name, (old, new) in comparison.differences.items()],
            columns=["setting", "old", "new"]))
            + ("<p>Seed or tolerance factor differ: no key is called a regression.</p>"
               if set(comparison.differences) & ROW_DECIDING else "")
            if comparison.differences else "<p>None.</p>"),
        "<h2>Backend versions</h2>\n" + html_page.table(comparison.versions),
        "<h2>Changes</h2>\n" + html_page.table(counts),
    ]
    slower = comparison.rows[comparison.rows["slower"]].drop_duplicates(["case", "bias", "dtype", "backend"])
    if len(slower):
        slow = slower[["backend", "dtype", "case"]].assign(
            bias=slower["bias"].map(bias_word), old=slower["perf_median_s_old"].map(seconds_text),
            new=slower["perf_median_s_new"].map(seconds_text), slowdown=slower["slowdown"].map(lambda v: f"{v:.2f}x"))
        parts.append(html_page.details(f"slower ({len(slower)} case x backend): median time grew beyond the measured "
                                       f"spread and {SPEED_NOISE:.0%}", html_page.table(slow), opened=True))
    for change in CHANGES[:-1]:
        chosen = comparison.rows[comparison.rows["change"] == change]
        if len(chosen):
            shown = _readable(chosen, SHOWN + VERSIONS).assign(
                case=html_page.code(chosen["case"]), repro=html_page.code(chosen["repro"]),
                message=chosen["message_new"].fillna(chosen["message_old"]))
            table = html_page.table(shown, markup_columns=("case", "repro"))
            parts.append(html_page.details(f"{change} ({len(chosen)}): {DESCRIPTIONS[change]}", table,
                                           opened=change in ("regression", "fix", "worse")))
    title = f"convparity compare: {comparison.old.name} -> {comparison.new.name}"
    return html_page.document(title, "\n".join(parts))


def write_html(comparison: RunComparison, path: Path) -> Path:
    page = render_html(comparison)
    return atomic_write(path, lambda file: file.write(page))
