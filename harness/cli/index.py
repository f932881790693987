"""`convparity index [DIR ...] [-o OUT]`: one page linking run folders (a job of several runs, or all runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

from convparity.harness.reporting.index_page import INDEX_HTML, write_index
from convparity.harness.running.run_folder import RUN_FILE


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("index", help="write one index.html linking run folders, newest first",
                                 description="DIR: a run folder, or a folder holding run folders (default reports).")
    parser.add_argument("folders", nargs="*", metavar="DIR", default=["reports"])
    parser.add_argument("-o", "--output", help="the page to write (default DIR/index.html for one folder of runs, "
                        "else ./index.html)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    folders = [Path(f) for f in args.folders]
    if args.output:
        out = Path(args.output)
    elif len(folders) == 1 and not (folders[0] / RUN_FILE).is_file():
        out = folders[0] / INDEX_HTML
    else:
        out = Path(INDEX_HTML)
    print(f"index: {write_index(folders, out)}")
    return 0
