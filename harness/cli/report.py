"""`convparity report DIR`: rewrite a run folder's summary.csv, summary.md and report.html."""

from __future__ import annotations

import argparse
from pathlib import Path

from convparity.harness import api
from convparity.harness.running import run_folder


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("report", help="rewrite summary.csv, summary.md and report.html of a run folder")
    parser.add_argument("directory")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    run_folder.read_record(directory)
    print(api.write_reports(directory).to_string(index=False))
    print(f"report: {directory / 'report.html'}")
    return 0
