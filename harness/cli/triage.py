"""`convparity triage RUN_DIR`: a sweep's failures grouped by cause, with rules checked on fresh cases and repro
scripts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from convparity.harness import api
from convparity.harness.cli import options
from convparity.harness.search.findings import summary_text


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "triage", help="group the failures of a run by cause, with rules (checked on fresh cases) and repro scripts",
        description="Group the failures of a sweep (wrong numbers, errors, crashes and hangs) by cause, each with the "
        "broadest rule over spec features that says where it happens. Each rule is checked on fresh cases on both "
        "sides and each minimal case run again (flaky?) and tried on small integers, on the run's backends here "
        "(their evaluations go to RUN_DIR/triage/); --no-check skips that. Writes findings.csv, findings.md and "
        "repro/<group>.py into RUN_DIR and rewrites report.html.")
    parser.add_argument("directory", metavar="RUN_DIR")
    parser.add_argument("--no-check", action="store_true", help="group only: run nothing (rules 'not checked')")
    options.placement_options(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    found = api.triage(directory, check=not args.no_check, jobs=args.jobs, log=sys.stderr, **options.placement(args))
    print(summary_text(found, directory))
    if (directory / "report.html").is_file():
        print(f"report:   {directory / 'report.html'}")
    return 1 if any(f.status in ("new", "seen before") for f in found) else 0
