"""The `convparity` command line: one module per command, each registering its own options (harness.cli.options
holds the groups several share) and calling one function of the harness (harness.api for the jobs).

Exit codes: 0 all good; 1 some row is fail/error/crash/timeout (compare: some key regressed; with
--strict also xpass; search and triage: a new finding); 2 bad input, an unusable folder or setting, or a
worker that cannot start (one line on stderr: every ConvparityError); 3 only the reference side failed;
130/143 interrupted by SIGINT/SIGTERM (every finished row kept).
"""

from __future__ import annotations

import argparse
import os
import sys

from convparity.harness.cli.options import UsageError
from convparity.harness.errors import ConvparityError
from convparity.harness.inert_text import one_line
from convparity.harness.running.interrupts import Interrupted, signals_as_interrupts

MESSAGE_LIMIT = 2000  # characters of an error message printed (they quote what they reject, abbreviated)
COMMANDS = ("backends", "grids", "run", "cases", "merge", "report", "index", "compare", "explain", "search",
            "triage", "new_backend")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is a UsageError: one line on stderr and exit code 2, like every other bad input."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = _Parser(prog="convparity", description="Checks that frameworks compute convolutions (y, dx, dw, db) "
                     "like a float64 reference.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"convparity.harness.cli.{name}").register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    with signals_as_interrupts():
        try:
            args = build_parser().parse_args(argv)
            return args.handler(args)
        except ConvparityError as error:
            print(f"convparity: {error.prefix}{one_line(error)[:MESSAGE_LIMIT]}", file=sys.stderr)
            return error.exit_code
        except (Interrupted, KeyboardInterrupt) as interrupted:
            print("convparity: interrupted", file=sys.stderr)
            return getattr(interrupted, "exit_code", 130)
        except BrokenPipeError:  # the reader of our output went away (`convparity cases ... | head`): not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so that flushing at exit is quiet
            return 0
