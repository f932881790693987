"""`convparity compare OLD NEW`: what changed between two runs; exit 1 on a regression."""

from __future__ import annotations

import argparse
from pathlib import Path

from convparity.harness.cli.options import UsageError
from convparity.harness.reporting import compare_runs as run_compare


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "compare", help="what changed between two runs; exit 1 on a regression",
        description="Join two runs on (case, bias, dtype, backend, tensor). A regression is pass, xfail or "
        "unsupported becoming fail/error/crash/timeout; a fix is fail/error/crash/timeout becoming pass; "
        "worse is err_ratio > THRESHOLD x the old one and > FLOOR. reference-error rows are never regressions.")
    parser.add_argument("old", metavar="OLD_DIR")
    parser.add_argument("new", metavar="NEW_DIR")
    parser.add_argument("--threshold", default="2x", help="err_ratio growth that counts as worse (2x)")
    parser.add_argument("--floor", type=float, default=0.01, help="a grown err_ratio counts only above this value "
                        "(0.01)")
    parser.add_argument("--out", help="CSV of every joined row; HTML beside it (default NEW_DIR/compare-OLD.csv)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    try:
        thresholds = run_compare.Thresholds(run_compare.parse_factor(args.threshold), args.floor)
    except ValueError as error:
        raise UsageError(str(error)) from None
    old, new = Path(args.old), Path(args.new)
    out = Path(args.out) if args.out else new / f"compare-{old.resolve().name}.csv"
    if not out.parent.is_dir():
        raise UsageError(f"--out: folder {out.parent} does not exist")
    comparison = run_compare.compare_runs(old, new, thresholds)
    print(run_compare.summary_text(comparison, out))
    print(f"comparison: {run_compare.write_csv(comparison, out)}")
    print(f"html:       {run_compare.write_html(comparison, out.with_suffix('.html'))}")
    return 1 if comparison.regressed else 0
