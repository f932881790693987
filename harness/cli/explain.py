"""`convparity explain DESC -b BACKEND`: one case in detail, every tensor and its worst element."""

from __future__ import annotations

import argparse
import sys

from convparity.harness.backends.manager import get_manager
from convparity.harness.cases.descriptor import parse_case
from convparity.harness.cases.inputs import UNIFORM, InputStyle
from convparity.harness.cli import options
from convparity.harness.evaluation.explain import explain
from convparity.harness.vocabulary import DTYPES


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("explain", help="one case in detail: every tensor and its worst element")
    parser.add_argument("descriptor")
    parser.add_argument("-b", "--backend", required=True)
    parser.add_argument("--dtype", default="float32", choices=DTYPES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bias", choices=("on", "off"), default="on")
    parser.add_argument("--tolerance-factor", type=options.tolerance_factor, default=1.0)
    parser.add_argument("--inputs", type=input_style, default=UNIFORM, metavar="STYLE",
                        help="how the values are drawn: uniform (default) or integers:K (whole numbers in [-K, K])")
    parser.set_defaults(handler=handle)


def input_style(text: str) -> InputStyle:
    try:
        return InputStyle.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def handle(args: argparse.Namespace) -> int:
    manager = get_manager()
    backends = manager.backends()
    if args.backend not in backends:
        why = (f": {manager.broken[args.backend]}" if args.backend in manager.broken
               else f" (known: {', '.join(backends) or 'none'})")
        raise options.UsageError(f"unknown backend {args.backend!r}{why}")
    spec = parse_case(args.descriptor, dtype=args.dtype, bias=args.bias == "on").spec
    return explain(backends[args.backend], spec, seed=args.seed, tolerance_factor=args.tolerance_factor,
                   inputs=args.inputs, out=sys.stdout)
