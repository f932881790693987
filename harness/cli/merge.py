"""`convparity merge OUT DIR...`: the shards of a sweep joined into one run folder."""

from __future__ import annotations

import argparse

from convparity.harness import api


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("merge", help="join the run folders of a sweep's shards (run --shard K/N) into one")
    parser.add_argument("out", metavar="OUT", help="the merged run folder (new)")
    parser.add_argument("shards", metavar="DIR", nargs="+", help="every shard's run folder")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    merged = api.merge(args.out, args.shards)
    print(f"merged {merged.shards} shards: {merged.cases} case x dtype, {merged.rows} rows")
    print(f"results: {merged.path / 'results.csv'}")
    print(f"report:  {merged.path / 'report.html'}")
    return 0
