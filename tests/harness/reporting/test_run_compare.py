"""Comparing two runs: regressions, fixes, grown err_ratio, one-sided keys, versions side by side."""

from __future__ import annotations

import pandas as pd
import pytest

from convparity.harness.cli import main
from convparity.harness.reporting.compare_runs import Thresholds, compare_runs, parse_factor
from tests.harness.reporting.pages import find_table, parse_page, table_rows
from tests.harness.reporting.runs import write_run

OLD = """
c1 T float32 alpha y  pass 0.2
c1 T float32 alpha dx unsupported - alpha refuses it
c1 T float32 alpha dw fail 1.5 bad
c1 T float32 alpha db pass 0.1
c2 F float32 alpha y  pass 0.1
c2 F float32 alpha dx pass 0
c2 F float32 alpha dw pass 0
c3 T float32 alpha y  fail 2 bad
c3 T float32 alpha dx pass 0.5
c3 T float32 alpha dw reference-error - the reference failed: MemoryError
c3 T float32 alpha db error - ValueError: boom
c4 F float32 alpha y  pass 0.3
c1 T float16 beta y  pass 0.4
c1 T float16 beta dx fail inf nan values
c5 T float32 beta y  xfail 3 known deviation: declared
c5 T float32 beta dx pass 0.1
"""
NEW = """
c1 T float32 alpha y  fail 4 worse than the bound
c1 T float32 alpha dx error - RuntimeError: now it tries
c1 T float32 alpha dw pass 0.3
c1 T float32 alpha db pass 0.3
c2 F float32 alpha y  pass 0.15
c2 F float32 alpha dx pass 0.005
c2 F float32 alpha dw pass 0.02
c3 T float32 alpha y  fail 10 bad
c3 T float32 alpha dx unsupported - dropped
c3 T float32 alpha dw fail 3 bad
c3 T float32 alpha db crash - signal 11
c3 F float32 alpha y  pass 0.2
c1 T float16 beta y  pass 0.2
c1 T float16 beta dx fail inf nan values
c5 T float32 beta y  fail 3 no longer covered by the declaration
c5 T float32 beta dx reference-error - the reference failed: MemoryError
"""
# (case, bias, dtype, backend, tensor) -> change, worked out by hand from the module docstring's rules.
EXPECTED = {
    ("c1", True, "float32", "alpha", "y"): "regression",     # pass -> fail
    ("c1", True, "float32", "alpha", "dx"): "regression",    # unsupported -> error
    ("c1", True, "float32", "alpha", "dw"): "fix",           # fail -> pass
    ("c1", True, "float32", "alpha", "db"): "worse",         # 0.1 -> 0.3: 3x > 2x and 0.3 > 0.01
    ("c2", False, "float32", "alpha", "y"): "same",          # 0.1 -> 0.15: 1.5x
    ("c2", False, "float32", "alpha", "dx"): "same",         # 0 -> 0.005: under the 0.01 floor
    ("c2", False, "float32", "alpha", "dw"): "worse",        # 0 -> 0.02: above the floor
    ("c3", True, "float32", "alpha", "y"): "worse",          # fail 2 -> fail 10
    ("c3", True, "float32", "alpha", "dx"): "changed",       # pass -> unsupported
    ("c3", True, "float32", "alpha", "dw"): "changed",       # reference-error -> fail: the old run proved nothing
    ("c3", True, "float32", "alpha", "db"): "changed",       # error -> crash
    ("c4", False, "float32", "alpha", "y"): "only_old",
    ("c3", False, "float32", "alpha", "y"): "only_new",      # same case, other bias: another key
    ("c1", True, "float16", "beta", "y"): "same",            # 0.4 -> 0.2: better
    ("c1", True, "float16", "beta", "dx"): "same",           # fail inf -> fail inf
    ("c5", True, "float32", "beta", "y"): "regression",      # xfail -> fail: the declaration no longer covers it
    ("c5", True, "float32", "beta", "dx"): "changed",        # pass -> reference-error: never the backend's fault
}
KEY = ["case", "bias", "dtype", "backend", "tensor"]


@pytest.fixture
def runs(tmp_path):
    old = write_run(tmp_path / "old", OLD, {"alpha": "1.0", "beta": "2.5"})
    new = write_run(tmp_path / "new", NEW, {"alpha": "1.1", "beta": "2.5", "delta": "3.0"})
    return old, new


def _changes(comparison):
    return {tuple(k): c for *k, c in comparison.rows[KEY + ["change"]].itertuples(index=False)}


def test_every_key_classified(runs):
    comparison = compare_runs(*runs)
    assert _changes(comparison) == EXPECTED
    assert comparison.counts().to_dict() == {"regression": 3, "fix": 1, "worse": 3, "changed": 4,
                                             "only_old": 1, "only_new": 1, "same": 4}
    assert comparison.regressed


def test_rows_sorted_by_change_and_carry_both_sides(runs):
    rows = compare_runs(*runs).rows.set_index(KEY)
    assert list(rows["change"])[:4] == ["regression", "regression", "regression", "fix"]
    regression = rows.loc[("c1", True, "float32", "alpha", "y")]
    assert (regression["status_old"], regression["status_new"]) == ("pass", "fail")
    assert regression[["err_ratio_old", "err_ratio_new", "growth"]].tolist() == [0.2, 4.0, 20.0]
    assert (regression["backend_version_old"], regression["backend_version_new"]) == ("1.0", "1.1")
    assert regression["message_new"] == "worse than the bound"
    assert regression["repro"] == "convparity explain c1 -b alpha --dtype float32 --bias on"
    only_old = rows.loc[("c4", False, "float32", "alpha", "y")]
    assert pd.isna(only_old["status_new"]) and only_old["repro"].endswith("--bias off")


def test_threshold_and_floor_are_options(runs):
    wide = _changes(compare_runs(*runs, Thresholds(growth=4.0)))
    assert wide[("c1", True, "float32", "alpha", "db")] == "same"       # 3x is under 4x
    assert wide[("c3", True, "float32", "alpha", "y")] == "worse"       # 5x
    high_floor = _changes(compare_runs(*runs, Thresholds(floor=0.05)))
    assert high_floor[("c2", False, "float32", "alpha", "dw")] == "same"  # 0.02 is under the floor
    assert high_floor[("c1", True, "float32", "alpha", "db")] == "worse"


def test_versions_side_by_side(runs):
    versions = compare_runs(*runs).versions
    assert versions.to_dict("records") == [
        {"backend": "alpha", "old": "1.0", "new": "1.1", "changed": True},
        {"backend": "beta", "old": "2.5", "new": "2.5", "changed": False},
        {"backend": "delta", "old": "(not in run)", "new": "3.0", "changed": True},
    ]


def test_resumed_key_counts_once_with_its_last_row(tmp_path):
    old = write_run(tmp_path / "old", "c1 T float32 alpha y fail 3 first try\nc1 T float32 alpha y pass 0.2",
                    {"alpha": "1"})
    new = write_run(tmp_path / "new", "c1 T float32 alpha y pass 0.25", {"alpha": "1"})
    comparison = compare_runs(old, new)
    assert len(comparison.rows) == 1 and comparison.rows.loc[0, "change"] == "same"


@pytest.mark.parametrize(("text", "factor"), [("2x", 2.0), ("1.5", 1.5), (" 3X ", 3.0), ("1e1x", 10.0)])
def test_parse_factor(text, factor):
    assert parse_factor(text) == factor


@pytest.mark.parametrize("text", ["x2", "2xx", "", "two", "-2x"])
def test_parse_factor_rejects(text):
    with pytest.raises(ValueError, match="threshold"):
        parse_factor(text)


@pytest.mark.parametrize(("growth", "floor", "field"), [
    (0.5, 0.01, "threshold"), (float("inf"), 0.01, "threshold"),
    (2.0, -1.0, "floor"), (2.0, float("nan"), "floor"),
])
def test_thresholds_validate(growth, floor, field):
    with pytest.raises(ValueError, match=field):
        Thresholds(growth, floor)


def test_cli_regression_exits_1_and_writes_csv_and_html(runs, tmp_path, capsys):
    out = tmp_path / "cmp.csv"
    assert main(["compare", str(runs[0]), str(runs[1]), "--out", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "17 keys: 3 regression, 1 fix, 3 worse, 4 changed, 1 only_old, 1 only_new, 4 same" in printed
    # the two alpha regressions share one repro line
    assert ("\nrepro:\n  convparity explain c1 -b alpha --dtype float32 --bias on\n"
            "  convparity explain c5 -b beta --dtype float32 --bias on\n") in printed
    versions = printed.split("backend versions:\n")[1].split("\n\n")[0].splitlines()
    assert [line.split() for line in versions] == [
        ["backend", "old", "new", "changed"], ["alpha", "1.0", "1.1", "True"],
        ["beta", "2.5", "2.5", "False"], ["delta", "(not", "in", "run)", "3.0", "True"]]
    written = pd.read_csv(out)
    assert len(written) == 17 and written["change"].value_counts()["regression"] == 3
    assert {"backend_version_old", "backend_version_new", "repro"} <= set(written.columns)
    page = parse_page(out.with_suffix(".html").read_text(encoding="utf-8"))
    assert table_rows(find_table(page, "backend")) == [
        ["alpha", "1.0", "1.1", "True"], ["beta", "2.5", "2.5", "False"],
        ["delta", "(not in run)", "3.0", "True"]]
    summaries = [d.find("summary").text for d in page.iter("details")]
    assert summaries[:3] == ["regression (3): pass, xfail or unsupported became fail/error/crash/timeout",
                             "fix (1): fail/error/crash/timeout became pass",
                             "worse (3): err_ratio grew beyond the threshold"]
    regressions = table_rows(next(page.iter("details")).find("table"))
    assert [r[:6] for r in regressions] == [["alpha", "float32", "on", "y", "pass", "fail"],
                                            ["alpha", "float32", "on", "dx", "unsupported", "error"],
                                            ["beta", "float32", "on", "y", "xfail", "fail"]]


def test_cli_no_regression_exits_0(runs, tmp_path, capsys):
    out = tmp_path / "same.csv"
    assert main(["compare", str(runs[0]), str(runs[0]), "--out", str(out)]) == 0
    counts = "16 keys: 0 regression, 0 fix, 0 worse, 0 changed, 0 only_old, 0 only_new, 16 same"
    assert counts in capsys.readouterr().out
    assert out.with_suffix(".html").is_file()


def test_cli_writes_into_the_new_run_by_default(runs, capsys):
    assert main(["compare", str(runs[0]), str(runs[1])]) == 1
    assert (runs[1] / "compare-old.csv").is_file() and (runs[1] / "compare-old.html").is_file()


def test_differing_tolerance_is_said_and_calls_nothing_a_regression(tmp_path, capsys):
    old = write_run(tmp_path / "old", OLD, {"alpha": "1.0", "beta": "2.5"})
    new = write_run(tmp_path / "new", NEW, {"alpha": "1.1", "beta": "2.5"}, tolerance_factor=4.0, seed=8)
    assert main(["compare", str(old), str(new)]) == 0
    printed = capsys.readouterr().out
    assert "settings that differ:\n  seed: 7 -> 8\n  tolerance_factor: 1.0 -> 4.0\n" in printed
    assert "seed, tolerance_factor decide statuses: no key is called a regression" in printed
    changes = _changes(compare_runs(old, new))
    assert changes[("c1", True, "float32", "alpha", "dx")] == "changed"  # unsupported -> error, under another seed
    assert "regression" not in changes.values()


@pytest.mark.parametrize(("extra", "fragment"), [
    (["--threshold", "x2"], "threshold must be a factor like 2x"),
    (["--threshold", "0.5x"], "threshold must be a finite factor >= 1"),
    (["--floor", "-1"], "floor must be a finite err_ratio >= 0"),
    (["--out", "/nonexistent-folder/cmp.csv"], "--out: folder /nonexistent-folder does not exist"),
])
def test_cli_bad_options_exit_2(runs, extra, fragment, capsys):
    assert main(["compare", str(runs[0]), str(runs[1]), *extra]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("convparity: error: ") and fragment in error[0]


def test_cli_not_a_run_exits_2(runs, tmp_path, capsys):
    assert main(["compare", str(runs[0]), str(tmp_path / "missing"), "--out", str(tmp_path / "x.csv")]) == 2
    assert "is not a convparity run folder (no run.json)" in capsys.readouterr().err


def test_another_tolerance_factor_is_not_worse_by_itself(tmp_path):
    # the same errors judged with a bound 0.3 times as wide: every err_ratio is 1/0.3 times larger
    table = "c1 T float32 alpha y  pass 0.2\nc2 T float32 alpha y  pass 0.1\nc3 T float32 alpha y  pass 0.05"
    scaled = "c1 T float32 alpha y  fail 1.3333\nc2 T float32 alpha y  pass 0.3333\nc3 T float32 alpha y  pass 0.5"
    old = write_run(tmp_path / "old", table, {"alpha": "1.0"})
    new = write_run(tmp_path / "new", scaled, {"alpha": "1.0"}, tolerance_factor=0.3)
    changes = compare_runs(old, new).rows.set_index("case")
    # c1: pass -> fail only because the bound shrank: changed, never worse or a regression; c2: the same error;
    # c3: the error itself grew 3x (0.05 -> 0.15 of the unscaled bound): worse
    assert changes["change"].to_dict() == {"c1": "changed", "c2": "same", "c3": "worse"}
    assert changes.loc["c3", "growth"] == pytest.approx(3.0)


def test_csv_writes_bias_as_on_and_off(runs, tmp_path):
    out = tmp_path / "cmp.csv"
    assert main(["compare", str(runs[0]), str(runs[1]), "--out", str(out)]) == 1
    written = pd.read_csv(out, keep_default_na=False)
    assert set(written["bias"]) == {"on", "off"}


def test_speed_regressions_beyond_the_measured_spread(tmp_path, capsys):
    table = "c1 T float32 alpha y  pass 0.2\nc2 T float32 alpha y  pass 0.1\nc3 T float32 alpha y  pass 0.1" \
            "\nc4 T float32 alpha y  pass 0.1"
    # c1 1.5x slower, tight timings: slower; c2 1.05x: within the 10% noise; c3 1.5x but its timings spread 60%;
    # c4 is no longer timed (it fails): never a time, so never slower
    old = write_run(tmp_path / "old", table, {"alpha": "1.0"},
                    timings={("c1", "alpha"): (1e-3, 0.02), ("c2", "alpha"): (1e-3, 0.02), ("c3", "alpha"): (1e-3, 0.6),
                             ("c4", "alpha"): (1e-3, 0.02)})
    new = write_run(tmp_path / "new", table.replace("c4 T float32 alpha y  pass", "c4 T float32 alpha y  fail"),
                    {"alpha": "1.0"},
                    timings={("c1", "alpha"): (1.5e-3, 0.03), ("c2", "alpha"): (1.05e-3, 0.02),
                             ("c3", "alpha"): (1.5e-3, 0.1), ("c4", "alpha"): (9e-3, 0.02)})
    comparison = compare_runs(old, new)
    rows = comparison.rows.set_index("case")
    assert rows["slower"].to_dict() == {"c1": True, "c2": False, "c3": False, "c4": False}
    assert rows.loc["c1", "slowdown"] == pytest.approx(1.5) and pd.isna(rows.loc["c4", "perf_median_s_new"])
    assert main(["compare", str(old), str(new)]) == 1  # c4 regressed (pass -> fail); slower alone changes no exit code
    printed = capsys.readouterr().out
    assert "slower (1 case x backend: median time grew beyond the measured spread and 10%):" in printed
    assert "1.50x" in printed
