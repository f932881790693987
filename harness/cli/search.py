"""`convparity search`: hunt for disagreements, shrink each, group them by cause; or `--resume DIR`."""

from __future__ import annotations

import argparse
import sys

from convparity.harness import api
from convparity.harness.cli import options
from convparity.harness.search.findings import summary_text


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "search", help="hunt for disagreements: explore, shrink each to a minimal case, group by cause",
        description="Explore the spec space (convolutions and transposed ones, ranks 1-3, groups, depthwise, even "
        "and non-square kernels, stride, asymmetric and negative padding, dilation, output_padding, bias on and "
        "off, every --dtype), favouring cases that failed or came close to the bound; run every new way of "
        "failing again (flaky?), shrink it to a local minimum and try it on small integer values; group "
        "failures (wrong numbers, errors, crashes and hangs) by cause with the broadest rule over spec features, "
        "checked on fresh cases on both sides. Writes results.csv, reruns.csv, findings.csv, findings.md, "
        "repro/<group>.py and report.html. Run again with the same -o, it continues an unfinished search. Exit 1 "
        "while an undeclared failure is reported (new, or seen before and still there).")
    options.backend_options(parser)
    group = parser.add_argument_group("the hunt (saved in run.json)")
    setattr(group, options.FIXED_BY_THE_RUN, True)
    options.dtype_option(group)
    group.add_argument("--budget", type=options.positive_int, help="cases to explore (default 100; shrinking and "
                       "checks come on top)")
    group.add_argument("--minutes", type=options.positive_seconds, help="the whole search's time instead of a number "
                       "of cases: exploring, shrinking, checking and writing end by then (the split is printed)")
    group.add_argument("--seed", type=int, default=0, help="seed of the search and the inputs (default 0)")
    group.add_argument("--known-findings", action="append", metavar="DIR", help="earlier findings to replay first "
                       "(a search or triage folder, or a folder of them such as reports/; repeat): one still failing "
                       "is not hunted again, one that passes now is reported as fixed")
    options.model_options(group)
    options.setting_options(parser)
    options.output_option(parser, "reports/<time>-search")
    options.placement_options(parser)
    parser.add_argument("--resume", metavar="DIR", help="continue the interrupted search in DIR with its own "
                        "settings (only the options under 'where it runs' may be given with it)")
    parser.set_defaults(handler=handle, parser=parser)


def handle(args: argparse.Namespace) -> int:
    placement = options.placement(args)
    if args.resume:
        options.refuse_fixed_on_resume(args.parser, args, "search")
        result = api.resume_search(args.resume, jobs=args.jobs, log=sys.stderr, **placement)
    else:
        if not args.backend:
            raise options.UsageError("give the backends to search with -b NAME (or -b all)")
        if args.budget is not None and args.minutes is not None:
            raise options.UsageError("give --budget or --minutes, not both")
        result = api.search(backends=args.backend, dtypes=options.dtypes(args), budget=args.budget,
                            minutes=args.minutes, seed=args.seed, jobs=args.jobs or 1, out=args.output,
                            known_findings=args.known_findings or (), log=sys.stderr,
                            **options.models(args, weights=False), **options.settings(args),
                            **placement)
    for name, reason in result.unavailable.items():
        print(f"convparity: backend {name} is unavailable, it ran nothing: {reason}", file=sys.stderr)
    print(summary_text(result.findings, result.path))
    if (result.path / "report.html").is_file():
        print(f"report:   {result.path / 'report.html'}")
    return result.exit_code()
