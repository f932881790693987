"""`convparity triage RUN_DIR`: a sweep's failures grouped by cause, with rules and repro scripts."""

from __future__ import annotations

import argparse
from pathlib import Path

from convparity.harness import api
from convparity.harness.search.findings import summary_text


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("triage", help="group the failures of a run by cause, with rules and repro scripts")
    parser.add_argument("directory", metavar="RUN_DIR")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    found = api.triage(directory)
    print(summary_text(found, directory))
    print(f"report:   {directory / 'report.html'}")
    return 1 if any(not f.known for f in found) else 0
