"""`convparity run`: cases on backends, rows into a run folder, reports written; or `--resume DIR`."""

from __future__ import annotations

import argparse
import sys

from convparity.harness import api
from convparity.harness.cli import options
from convparity.harness.running.shards import Shard


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("run", help="run cases on backends and write a report folder")
    options.backend_options(parser)
    options.case_options(parser)
    options.setting_options(parser)
    options.perf_option(parser)
    options.output_option(parser, "reports/<time>-<grids>")
    options.shard_option(parser)
    options.placement_options(parser)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a declared deviation no longer happens "
                        "(xpass)")
    parser.add_argument("--resume", metavar="DIR", help="continue the interrupted run in DIR with its own settings "
                        "(only the options under 'where it runs' and --strict may be given with it)")
    parser.add_argument("--new-segment", action="store_true", help="with --resume: go on even where a backend's "
                        "version changed, as a new segment of the run (run.json records it)")
    parser.set_defaults(handler=handle, parser=parser)


def handle(args: argparse.Namespace) -> int:
    placement = options.placement(args)
    if args.resume:
        options.refuse_fixed_on_resume(args.parser, args, "run")
        run = api.resume(args.resume, jobs=args.jobs, progress=True, new_segment=args.new_segment, **placement)
    else:
        if args.new_segment:
            raise options.UsageError("--new-segment goes with --resume DIR only")
        shard = Shard.parse(args.shard) if args.shard else None
        extra = {"max_cases": args.max_cases} if args.max_cases is not None else {}
        run = api.sweep(backends=args.backend, dtypes=options.dtypes(args), jobs=args.jobs or 1, out=args.output,
                        progress=True, shard=shard, perf=args.perf, **options.selection(args),
                        **options.models(args), **options.settings(args), **extra, **placement)
    for name, reason in run.unavailable.items():
        print(f"convparity: backend {name} is unavailable, it ran nothing: {reason}", file=sys.stderr)
    print(run.summary.to_string(index=False))
    if run.resumed_items:
        print(f"resumed: {run.resumed_items} case x dtype were drawn before"
              + (f"; dropped {run.dropped_duplicates} duplicate rows" if run.dropped_duplicates else ""))
    print(f"results: {run.path / 'results.csv'}")
    print(f"report:  {run.path / 'report.html'}")
    return run.exit_code(strict=args.strict)

