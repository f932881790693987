"""`convparity cases`: what a run with these options would execute, and what its batch files leave out; with
`--model`, every layer of each model (names, multiplicity, descriptor) first."""

from __future__ import annotations

import argparse
import tempfile

from convparity.harness import api
from convparity.harness.cases.selection import DEFAULT_MAX_CASES, CaseSelection
from convparity.harness.cli import options


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("cases", help="list what a run with these options executes: each case (descriptor, "
                                 "dtype, bias, tensors), the count, what batch files skip or ignore, and each "
                                 "--model's layers with their names and counts")
    options.case_options(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    given = options.models(args)
    with tempfile.TemporaryDirectory(prefix="convparity-weights-") as folder:  # a listing keeps no weights
        models = api.read_models(given["models"], input_shapes=given["input_shapes"], epilogues=given["epilogues"],
                                 weights=folder if given["weights"] else None) if given["models"] else ()
        selection = CaseSelection(**options.selection(args), models=tuple(models))
        limit = DEFAULT_MAX_CASES if args.max_cases is None else args.max_cases
        for line in selection.describe(options.dtypes(args), limit):
            print(line)
    return 0
