"""`convparity cases`: what a run with these options would execute, and what its batch files leave out."""

from __future__ import annotations

import argparse

from convparity.harness.cases.selection import DEFAULT_MAX_CASES, CaseSelection
from convparity.harness.cli import options


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("cases", help="list what a run with these options executes: each case (descriptor, "
                                 "dtype, bias, tensors), the count, and what batch files skip or ignore")
    options.case_options(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    selection = CaseSelection(**options.selection(args))
    limit = DEFAULT_MAX_CASES if args.max_cases is None else args.max_cases
    for line in selection.describe(options.dtypes(args), limit):
        print(line)
    return 0
