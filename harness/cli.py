"""The `convparity` command line: backends, grids, run, cases, merge, report, compare, explain, search,
triage, new-backend.

Argument parsing only: every command calls one public function of the harness.
Exit codes: 0 all good, 1 some row is fail/error/crash/timeout (compare: some key regressed; with
--strict also xpass; search and triage: a new finding), 2 bad input or an unusable folder (one line on
stderr), 3 only the reference side failed, 130/143 interrupted by SIGINT/SIGTERM (every finished row kept).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from convparity.harness.backends.manager import PluginError, get_manager
from convparity.harness.cases.descriptor import DescriptorError, parse_case
from convparity.harness.cases.grids import GridError
from convparity.harness.cases.spec import DTYPES
from convparity.harness.running.interrupts import Interrupted, signals_as_interrupts


class UsageError(ValueError):
    """Bad command-line input: reported as one line and exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2, like every other bad input."""

    def error(self, message: str):  # type: ignore[override]
        print(f"convparity: error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def tolerance_factor(text: str) -> float:
    """A finite factor > 0: a negative or infinite one would pass every row, NaN would fail every row."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def _backend(name: str):
    """The registered backend `name`, or a UsageError naming the known ones (or why it is broken)."""
    manager = get_manager()
    backends = manager.backends()
    if name not in backends:
        why = f": {manager.broken[name]}" if name in manager.broken else f" (known: {', '.join(backends) or 'none'})"
        raise UsageError(f"unknown backend {name!r}{why}")
    return backends[name]


def _dtypes(names: list[str] | None) -> tuple[str, ...]:
    names = names or ["float64", "float32"]
    for name in names:
        if name not in DTYPES:
            raise UsageError(f"unknown dtype {name!r} (known: {', '.join(DTYPES)})")
    return tuple(dict.fromkeys(names))


def cmd_backends(args: argparse.Namespace) -> int:
    from convparity.harness.backends.manager import PluginSelection
    from convparity.harness.running.executor import LocalProcessExecutor
    from convparity.harness.running.tasks import DescribeBackend

    manager = get_manager()
    names = list(manager.backends())
    described: dict[str, list[str]] = {}
    with LocalProcessExecutor(2) as executor:  # each backend in a worker of its own (see DescribeBackend)
        for name in names:
            executor.submit(DescribeBackend(name, PluginSelection.from_environment()), name, 600.0)
        for _ in names:
            outcome = executor.next_outcome()
            described[outcome.tag] = outcome.value if not outcome.failure else [
                f"broken: describing it ended in {outcome.failure}: {outcome.message}"]
    for name in names:
        state, *members = described[name]
        print(f"{name:24} {state}")
        if args.limits:
            for member in members:
                print(f"{'':24}   - {member}")
    for name, reason in manager.broken.items():
        print(f"{name:24} broken: {reason}")
    return 0


def cmd_grids(args: argparse.Namespace) -> int:
    for name, grid in get_manager().grids().items():
        print(f"{name:16} {len(grid.cases()):5d} cases  {grid.description}")
    return 0


def _selection_arguments(args: argparse.Namespace) -> dict:
    return dict(grids=args.grid or (), cases=args.case or (), batch_files=args.batch or (), bias=args.bias,
                random=args.random, seed=args.seed or 0)


def _placement_arguments(args: argparse.Namespace) -> dict:
    """--executor, --scheduler and --compile-cache as sweep()/resume() keywords (UsageError when they clash)."""
    from convparity.harness.running.launch import ExecutorChoice, ExecutorChoiceError

    given = {}
    if args.executor or args.scheduler:
        try:
            given["executor"] = ExecutorChoice(args.executor or "local", args.scheduler)
        except ExecutorChoiceError as error:
            raise UsageError(str(error)) from None
    if args.compile_cache is not None:
        given["compile_cache"] = args.compile_cache
    return given


def cmd_run(args: argparse.Namespace) -> int:
    from convparity.harness.running import run_folder
    from convparity.harness.running.dask_executor import DaskUnavailable
    from convparity.harness.running.shards import Shard, ShardError
    from convparity.harness.running.sweep import resume, sweep

    placement = _placement_arguments(args)
    try:
        if args.resume:
            given = [option for option, value in (
                ("-b", args.backend), ("-g", args.grid), ("--case", args.case), ("--batch", args.batch),
                ("--random", args.random), ("--bias", args.bias != "on"), ("--dtype", args.dtype),
                ("-o", args.output), ("--seed", args.seed is not None), ("--timeout", args.timeout),
                ("--startup-timeout", args.startup_timeout), ("--reference-timeout", args.reference_timeout),
                ("--tolerance-factor", args.tolerance_factor), ("--max-cases", args.max_cases),
                ("--shard", args.shard)) if value]
            if given:
                raise UsageError(f"--resume takes the run's settings from {Path(args.resume) / run_folder.RUN_FILE}; "
                                 f"{given[0]} would be ignored: drop it (only -j, --strict, --executor, --scheduler "
                                 "and --compile-cache may be given)")
            run = resume(args.resume, jobs=args.jobs, progress=True, **placement)
        else:
            settings = {name: value for name, value in (
                ("timeout", args.timeout), ("startup_timeout", args.startup_timeout),
                ("reference_timeout", args.reference_timeout), ("tolerance_factor", args.tolerance_factor),
                ("max_cases", args.max_cases)) if value is not None}
            try:
                shard = Shard.parse(args.shard) if args.shard else None
            except ShardError as error:
                raise UsageError(str(error)) from None
            run = sweep(backends=args.backend, dtypes=args.dtype or ("float64", "float32"), jobs=args.jobs or 1,
                        out=args.output, progress=True, shard=shard, **_selection_arguments(args), **settings,
                        **placement)
    except DaskUnavailable as error:
        raise UsageError(str(error)) from None
    try:
        for name, reason in run.unavailable.items():
            print(f"convparity: backend {name} is unavailable, it ran nothing: {reason}", file=sys.stderr)
        print(run.summary.to_string(index=False))
    except (Interrupted, KeyboardInterrupt) as error:
        run_folder.mark_interrupted(run.path)
        print(f"convparity: interrupted while writing the reports; every row is kept; write them with: "
              f"convparity report {run.path}", file=sys.stderr)
        return getattr(error, "exit_code", 130)
    if run.resumed_items:
        print(f"resumed: {run.resumed_items} case x dtype were drawn before"
              + (f"; dropped {run.dropped_duplicates} duplicate rows" if run.dropped_duplicates else ""))
    print(f"results: {run.path / 'results.csv'}")
    print(f"report:  {run.path / 'report.html'}")
    return run.exit_code(strict=args.strict)


def cmd_merge(args: argparse.Namespace) -> int:
    from convparity.harness.running.merge import merge

    merged = merge(args.out, args.shards)
    print(f"merged {merged.shards} shards: {merged.cases} case x dtype, {merged.rows} rows")
    print(f"results: {merged.path / 'results.csv'}")
    print(f"report:  {merged.path / 'report.html'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from convparity.harness.reporting.summaries import write_reports
    from convparity.harness.running import run_folder

    directory = Path(args.directory)
    run_folder.read_metadata(directory)
    print(write_reports(directory).to_string(index=False))
    print(f"report: {directory / 'report.html'}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from convparity.harness.reporting import compare_runs as run_compare

    try:
        thresholds = run_compare.Thresholds(run_compare.parse_factor(args.threshold), args.floor)
    except ValueError as error:
        raise UsageError(str(error)) from None
    old, new = Path(args.old), Path(args.new)
    out = Path(args.out) if args.out else new / f"compare-{old.resolve().name}.csv"
    if not out.parent.is_dir():
        raise UsageError(f"--out: folder {out.parent} does not exist")
    comparison = run_compare.compare_runs(old, new, thresholds)
    print(run_compare.summary_text(comparison, out))
    print(f"comparison: {run_compare.write_csv(comparison, out)}")
    print(f"html:       {run_compare.write_html(comparison, out.with_suffix('.html'))}")
    return 1 if comparison.regressed else 0


def cmd_explain(args: argparse.Namespace) -> int:
    from convparity.harness.evaluation.explain import explain

    (dtype,) = _dtypes([args.dtype])
    backend = _backend(args.backend)
    spec = parse_case(args.descriptor, dtype=dtype, bias=args.bias == "on").spec
    return explain(backend, spec, seed=args.seed, tolerance_factor=args.tolerance_factor, out=sys.stdout)


def _case_options(parser: argparse.ArgumentParser) -> None:
    """The options that select cases: `run` and `cases` share them."""
    parser.add_argument("-g", "--grid", action="append", help="named grid, TOML grid file or batch file (repeat)")
    parser.add_argument("--case", action="append", help="one benchdnn descriptor (repeat)")
    parser.add_argument("--batch", action="append", help="benchdnn batch file, read as benchdnn reads it (repeat); "
                        "its --dt, --dir, ... decide each case's dtype, bias and tensors")
    parser.add_argument("--random", type=int, default=0, metavar="N", help="N random cases (drawn with --seed)")
    parser.add_argument("--bias", choices=("on", "off", "both"), default="on",
                        help="bias for --case cases (default on)")
    parser.add_argument("--dtype", action="append", help=f"one of {', '.join(DTYPES)} (repeat; default float64, "
                        "float32); batch file cases keep their own")
    parser.add_argument("--seed", type=int, help="seed of the inputs and of --random (default 0)")
    parser.add_argument("--max-cases", type=int, help="refuse a selection of more cases than this (default 1000000)")


def cmd_cases(args: argparse.Namespace) -> int:
    from convparity.harness.cases.selection import DEFAULT_MAX_CASES, CaseSelection

    selection = CaseSelection(**_selection_arguments(args))
    limit = DEFAULT_MAX_CASES if args.max_cases is None else args.max_cases
    for line in selection.describe(_dtypes(args.dtype), limit):
        print(line)
    return 0


def cmd_new_backend(args: argparse.Namespace) -> int:
    from convparity.harness.plugin_template.render import new_backend

    path = new_backend(args.name, directory=args.dir, framework=args.framework)
    print(f"created {path}; next:")
    print(f"  pip install -e '{path}[test]'")
    print(f"  cd {path} && pytest   # the contract suite")
    print("  convparity backends   # lists the new backend")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from convparity.harness.search.findings import summary_text
    from convparity.harness.search.search import search

    if args.budget is not None and args.minutes is not None:
        raise UsageError("give --budget or --minutes, not both")
    settings = {name: value for name, value in (
        ("timeout", args.timeout), ("startup_timeout", args.startup_timeout),
        ("reference_timeout", args.reference_timeout), ("tolerance_factor", args.tolerance_factor))
        if value is not None}
    result = search(backends=args.backend, dtypes=_dtypes(args.dtype), budget=args.budget, minutes=args.minutes,
                    seed=args.seed, jobs=args.jobs, out=args.output, log=sys.stderr, **settings)
    for name, reason in result.unavailable.items():
        print(f"convparity: backend {name} is unavailable, it ran nothing: {reason}", file=sys.stderr)
    print(summary_text(result.findings, result.path))
    print(f"report:   {result.path / 'report.html'}")
    return result.exit_code()


def cmd_triage(args: argparse.Namespace) -> int:
    from convparity.harness.search.findings import summary_text
    from convparity.harness.search.triage import triage

    directory = Path(args.directory)
    found = triage(directory)
    print(summary_text(found, directory))
    print(f"report:   {directory / 'report.html'}")
    return 1 if any(not f.known for f in found) else 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="convparity", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    backends = sub.add_parser("backends", help="list backends, their versions or why they are unavailable")
    backends.add_argument("--limits", action="store_true", help="also list each backend's declared limits")
    sub.add_parser("grids", help="list named grids")

    run = sub.add_parser("run", help="run cases on backends and write a report folder")
    run.add_argument("-b", "--backend", action="append", help="backend name (repeat; 'all' for every available one)")
    _case_options(run)
    run.add_argument("-o", "--output", help="run folder (default reports/<time>-<grids>)")
    run.add_argument("-j", "--jobs", type=int, help="tasks at once, each a backend running a case or the "
                     "reference checking one: N cores busy at most (default 1)")
    run.add_argument("--timeout", type=float, help="seconds one backend may take on one case before it is a "
                     "timeout (default 300; framework start-up and the reference have their own)")
    run.add_argument("--startup-timeout", type=float, help="seconds a backend's worker may take to start, "
                     "framework imports included (default 900)")
    run.add_argument("--reference-timeout", type=float, help="seconds the reference may take on one case "
                     "(default 1800); past it the case's rows read reference-error")
    run.add_argument("--tolerance-factor", type=tolerance_factor, help="scale the error bound (default 1)")
    run.add_argument("--strict", action="store_true", help="exit 1 when a declared deviation no longer happens (xpass)")
    run.add_argument("--resume", metavar="DIR", help="continue the interrupted run in DIR with its own settings "
                     "(only -j, --strict, --executor, --scheduler and --compile-cache may be given with it)")
    run.add_argument("--executor", choices=("local", "dask"), help="where tasks run: local worker processes "
                     "(default) or a Dask cluster (a LocalCluster of -j workers unless --scheduler names one)")
    run.add_argument("--scheduler", metavar="ADDRESS|FILE", help="with --executor dask: the scheduler of an "
                     "existing cluster, tcp://HOST:PORT or a scheduler file")
    run.add_argument("--shard", metavar="K/N", help="run only shard K of N (balanced by expected time); "
                     "join the N run folders with: convparity merge OUT DIR...")
    run.add_argument("--compile-cache", metavar="DIR|off", help="where JAX, TensorFlow, TorchInductor and tinygrad "
                     "keep compiled programs between runs (default: ~/.cache/convparity/compile); "
                     "'off' compiles afresh")

    merge = sub.add_parser("merge", help="join the run folders of a sweep's shards (run --shard K/N) into one")
    merge.add_argument("out", metavar="OUT", help="the merged run folder (new)")
    merge.add_argument("shards", metavar="DIR", nargs="+", help="every shard's run folder")

    cases = sub.add_parser("cases", help="list what a run with these options executes: each case (descriptor, "
                           "dtype, bias, tensors), the count, and what batch files skip or ignore")
    _case_options(cases)

    report = sub.add_parser("report", help="rewrite summary.csv, summary.md and report.html of a run folder")
    report.add_argument("directory")

    compare = sub.add_parser(
        "compare", help="what changed between two runs; exit 1 on a regression",
        description="Join two runs on (case, bias, dtype, backend, tensor). A regression is pass, xfail or "
        "unsupported becoming fail/error/crash/timeout; a fix is fail/error/crash/timeout becoming pass; "
        "worse is err_ratio > THRESHOLD x the old one and > FLOOR. reference-error rows are never regressions.")
    compare.add_argument("old", metavar="OLD_DIR")
    compare.add_argument("new", metavar="NEW_DIR")
    compare.add_argument("--threshold", default="2x", help="err_ratio growth that counts as worse (2x)")
    compare.add_argument("--floor", type=float, default=0.01,
                         help="a grown err_ratio counts only above this value (0.01)")
    compare.add_argument("--out", help="CSV of every joined row; HTML beside it (default NEW_DIR/compare-OLD.csv)")

    explain = sub.add_parser("explain", help="one case in detail: every tensor and its worst element")
    explain.add_argument("descriptor")
    explain.add_argument("-b", "--backend", required=True)
    explain.add_argument("--dtype", default="float32")
    explain.add_argument("--seed", type=int, default=0)
    explain.add_argument("--bias", choices=("on", "off"), default="on")
    explain.add_argument("--tolerance-factor", type=tolerance_factor, default=1.0)

    new = sub.add_parser("new-backend", help="create a backend plugin package convparity-NAME from the template",
                         description="Render the plugin template into a package convparity-NAME: the backend "
                         "(a NumPy convolution to replace with your framework's), its limits and known "
                         "deviations, the contract suite as its tests, tox.ini, a README and a CI workflow.")
    new.add_argument("name", metavar="NAME", help="backend name: lower-case letters, digits and dashes")
    new.add_argument("--dir", help="folder to create, absent or empty (default ./convparity-NAME)")
    new.add_argument("--framework", metavar="PKG", help="the framework's PyPI package the backend wraps "
                     "(a dependency, imported by availability())")

    search = sub.add_parser(
        "search", help="hunt for disagreements: explore, shrink each to a minimal case, group by cause",
        description="Explore the spec space (ranks 1-3, groups, depthwise, even and non-square kernels, stride, "
        "asymmetric and negative padding, dilation, bias on and off, every --dtype), favouring cases that failed or "
        "came close to the bound; shrink every new way of failing to a local minimum; group failures by cause with "
        "the simplest rule over spec features, checked on fresh cases. Writes results.csv, findings.csv, findings.md, "
        "repro/<group>.py and report.html. Exit 1 when a new finding (not a declared deviation) is reported.")
    search.add_argument("-b", "--backend", action="append", required=True, help="backend name (repeat; 'all')")
    search.add_argument("--dtype", action="append", help=f"one of {', '.join(DTYPES)} (repeat; default float64, "
                        "float32)")
    search.add_argument("--budget", type=int, help="cases to explore (default 100; shrinking and checks come on top)")
    search.add_argument("--minutes", type=float, help="explore for this long instead of a number of cases")
    search.add_argument("--seed", type=int, default=0, help="seed of the search and the inputs (default 0)")
    search.add_argument("-j", "--jobs", type=int, default=1, help="tasks at once, as for run (default 1)")
    search.add_argument("-o", "--output", help="output folder (default reports/<time>-search)")
    search.add_argument("--timeout", type=float, help="seconds one backend may take on one case (default 300)")
    search.add_argument("--startup-timeout", type=float, help="seconds a backend's worker may take to start")
    search.add_argument("--reference-timeout", type=float, help="seconds the reference may take on one case")
    search.add_argument("--tolerance-factor", type=tolerance_factor, help="scale the error bound (default 1)")

    triage = sub.add_parser("triage", help="group the failures of a run by cause, with rules and repro scripts")
    triage.add_argument("directory", metavar="RUN_DIR")
    return parser


COMMANDS = {"backends": cmd_backends, "grids": cmd_grids, "run": cmd_run, "cases": cmd_cases, "merge": cmd_merge,
            "report": cmd_report, "compare": cmd_compare, "explain": cmd_explain, "search": cmd_search,
            "triage": cmd_triage, "new-backend": cmd_new_backend}


def main(argv: list[str] | None = None) -> int:
    from convparity.harness.backends.contract import BackendContractError
    from convparity.harness.plugin_template.render import TemplateError
    from convparity.harness.results import ResultsError
    from convparity.harness.running.run_folder import RunFolderError
    from convparity.harness.running.sweep import SweepError, SweepInterrupted
    from convparity.harness.settings import SettingsError

    with signals_as_interrupts():
        try:
            args = build_parser().parse_args(argv)
            return COMMANDS[args.command](args)
        except (UsageError, DescriptorError, GridError, RunFolderError, PluginError, SweepError, SettingsError,
                ResultsError, BackendContractError, TemplateError) as error:
            print(f"convparity: error: {error}", file=sys.stderr)
            return 2
        except SweepInterrupted as interrupted:
            print(f"convparity: {interrupted}", file=sys.stderr)
            return interrupted.exit_code
        except (Interrupted, KeyboardInterrupt) as interrupted:
            print("convparity: interrupted", file=sys.stderr)
            return getattr(interrupted, "exit_code", 130)


if __name__ == "__main__":
    sys.exit(main())
