"""The `convparity` command line: backends, grids, run, report, compare, explain.

Exit codes: 0 all good, 1 some row is fail/error/crash/timeout (compare: some key regressed), 2 bad input
(one line on stderr).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from harness.backends.manager import PluginError, get_manager
from harness.cases.descriptor import Case, DescriptorError, parse_case
from harness.cases.grids import GridError, dedupe, random_cases, read_batch_file, read_toml_grid
from harness.cases.spec import DTYPES
from harness.results import RESULTS_FILE


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


def _backends(names: list[str]) -> dict:
    available = get_manager().backends()
    if not names or names == ["all"]:
        return available
    unknown = [n for n in names if n not in available]
    if unknown:
        raise UsageError(f"unknown backend {unknown[0]!r} (known: {', '.join(available) or 'none'})")
    return {n: available[n] for n in dict.fromkeys(names)}


def _dtypes(names: list[str] | None) -> tuple[str, ...]:
    names = names or ["float64", "float32"]
    for name in names:
        if name not in DTYPES:
            raise UsageError(f"unknown dtype {name!r} (known: {', '.join(DTYPES)})")
    return tuple(dict.fromkeys(names))


def collect_cases(args: argparse.Namespace) -> list[Case]:
    """Cases from -g (named grid, TOML file or batch file), --batch, --case and --random, deduplicated."""
    grids = get_manager().grids()
    cases: list[Case] = []
    for grid in args.grid or []:
        if grid in grids:
            cases += grids[grid].cases()
        elif Path(grid).is_file():
            cases += read_toml_grid(grid)[1] if grid.endswith(".toml") else read_batch_file(grid)
        else:
            raise UsageError(f"unknown grid {grid!r}: not a named grid ({', '.join(grids)}) nor a file")
    for path in args.batch or []:
        cases += read_batch_file(path)
    biases = {"on": [True], "off": [False], "both": [True, False]}[args.bias]
    for text in args.case or []:
        cases += [parse_case(text, bias=bias) for bias in biases]
    if args.random:
        cases += random_cases(args.random, args.seed)
    if not cases:
        raise UsageError("no cases: give -g GRID, --case DESC, --batch FILE or --random N")
    return dedupe(cases)


def cmd_backends(args: argparse.Namespace) -> int:
    for name, backend in get_manager().backends().items():
        reason = backend.availability()
        print(f"{name:24} {'unavailable: ' + reason if reason else backend.version()}")
        if args.limits:
            for limit in getattr(backend, "limits", ()):
                print(f"{'':24}   - {limit.condition}: {limit.reason}")
    return 0


def cmd_grids(args: argparse.Namespace) -> int:
    for name, grid in get_manager().grids().items():
        print(f"{name:16} {len(grid.cases()):5d} cases  {grid.description}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import dataclasses
    import os

    from harness.reporting.summaries import write_reports
    from harness.results import BAD_STATUSES, ResultsWriter, read_results
    from harness.running import run_folder
    from harness.running.executor import WORKER_ENVIRONMENT, LocalProcessExecutor
    from harness.running.progress import SweepProgress
    from harness.running.runner import expand, plan, run_sweep
    from harness.settings import RunSettings

    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"-j/--jobs must be at least 1, got {args.jobs}")
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    if args.resume:
        from_run_json = ("backend", "grid", "case", "batch", "random", "dtype", "output", "seed", "timeout",
                         "tolerance_factor")
        given = [name for name in from_run_json if getattr(args, name) not in (None, 0)]
        if given:
            raise UsageError(f"--resume takes the run's settings from {Path(args.resume) / run_folder.RUN_FILE}; "
                             f"drop --{given[0].replace('_', '-')} (only -j may be given)")
        out = Path(args.resume)
        settings = run_folder.read_settings(out)
        settings = dataclasses.replace(settings, jobs=args.jobs or settings.jobs)
        cases = run_folder.read_cases(out)
        done = run_folder.repair_results(out)
    else:
        args.seed = args.seed or 0
        settings = RunSettings(backends=tuple(_backends(args.backend or [])), dtypes=_dtypes(args.dtype),
                               grids=tuple(args.grid or []), seed=args.seed, timeout=args.timeout or 300.0,
                               jobs=args.jobs or 1,
                               tolerance_factor=1.0 if args.tolerance_factor is None else args.tolerance_factor)
        grid_cases = collect_cases(args)
        cases = expand(grid_cases, settings.dtypes)
        out = Path(args.output) if args.output else run_folder.default_run_dir(Path("reports"), settings.grids)
        run_folder.create(out)
        run_folder.write_metadata(out, settings, {}, cases=len(grid_cases), worker_environment={
            name: os.environ.get(name, value) for name, value in WORKER_ENVIRONMENT.items()})
        run_folder.write_cases(out, cases)
        done = set()
    items = plan(cases, settings.backends, done)
    started = time.perf_counter()
    writer = ResultsWriter(out)
    progress = SweepProgress(total=len(cases), done=len(cases) - len(items))

    def write(rows):
        writer.write(rows)
        progress.advance(rows)

    try:
        with LocalProcessExecutor(settings.jobs, log=out / "workers.log") as executor, progress:
            run_sweep(items, settings, executor, write,
                      on_versions=lambda versions: run_folder.write_metadata(out, settings, versions))
    except KeyboardInterrupt:
        print(f"convparity: interrupted; continue with: convparity run --resume {out}", file=sys.stderr)
        return 130
    finally:
        writer.close()
        run_folder.finish(out, started)
    summary = write_reports(out)
    results = read_results(out)
    print(summary.to_string(index=False))
    if args.resume:
        print(f"resumed: {len(cases) - len(items)} of {len(cases)} case x dtype were done before")
    print(f"results: {out / 'results.csv'}")
    return 1 if results["status"].isin(BAD_STATUSES).any() else 0


def cmd_report(args: argparse.Namespace) -> int:
    from harness.reporting.summaries import write_reports
    from harness.running import run_folder

    directory = Path(args.directory)
    run_folder.read_metadata(directory)
    if not (directory / RESULTS_FILE).is_file():
        raise UsageError(f"{directory} has no {RESULTS_FILE}: the run wrote no rows yet")
    print(write_reports(directory).to_string(index=False))
    print(f"report: {directory / 'report.html'}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.reporting import compare_runs as run_compare

    try:
        thresholds = run_compare.Thresholds(run_compare.parse_factor(args.threshold), args.floor)
    except ValueError as error:
        raise UsageError(str(error)) from None
    old, new = Path(args.old), Path(args.new)
    out = Path(args.out) if args.out else Path(f"compare-{old.resolve().name}-vs-{new.resolve().name}.csv")
    if not out.parent.is_dir():
        raise UsageError(f"--out: folder {out.parent} does not exist")
    comparison = run_compare.compare_runs(old, new, thresholds)
    print(run_compare.summary_text(comparison, out))
    print(f"comparison: {run_compare.write_csv(comparison, out)}")
    if args.html:
        print(f"html: {run_compare.write_html(comparison, out.with_suffix('.html'))}")
    return 1 if comparison.regressed else 0


def cmd_explain(args: argparse.Namespace) -> int:
    from harness.cases.inputs import make_inputs
    from harness.evaluation.bound import compare_tensor
    from harness.evaluation.verdict import reference
    from harness.running.tasks import Status, run_case

    (dtype,) = _dtypes([args.dtype])
    backend = next(iter(_backends([args.backend]).values()))
    spec = parse_case(args.descriptor, dtype=dtype, bias=not args.no_bias).spec
    print(f"case     {spec.descriptor}  bias={spec.bias} dtype={dtype} seed={args.seed}")
    print(f"shapes   x {spec.x_shape}  w {spec.w_shape}  y {spec.y_shape}  padding {spec.padding}")
    reason = backend.availability()
    if reason:
        print(f"{backend.name}: unavailable: {reason}")
        return 0
    ran = run_case(backend, spec, args.seed)  # the same checks as a sweep's worker, in this process
    if isinstance(ran, Status):
        print(f"{backend.name}: {ran.status}: {ran.message}")
        return 1 if ran.status == "error" else 0
    ref = reference(spec, make_inputs(spec, args.seed))
    bad = False
    for tensor, out in zip(("y", "dx", "dw", "db"), ran.outputs):
        if tensor not in ref.values:
            continue
        if out is None:
            print(f"{tensor:3} unsupported (backend computes no {tensor})")
            continue
        result = compare_tensor(tensor, np.asarray(out), ref.values[tensor], ref.magnitudes[tensor],
                                reduction=spec.reductions[tensor], dtype=dtype,
                                accumulation=ran.accumulation,
                                tolerance_factor=args.tolerance_factor)
        bad |= not result.passed
        print(f"{tensor:3} {'pass' if result.passed else 'FAIL'}  err_ratio {result.err_ratio:.3g}  "
              f"max_abs {result.max_abs_err:.3g}  max_rel {result.max_rel_err:.3g}  allclose {result.allclose}")
        if result.worst_index is not None:
            at = result.worst_index
            print(f"    worst at {at}: {backend.name} {result.worst_value!r}  reference {result.worst_reference!r}  "
                  f"magnitude {float(ref.magnitudes[tensor][at])!r}  K={spec.reductions[tensor]}")
        if result.message:
            print(f"    {result.message}")
    return 1 if bad else 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="convparity", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    backends = sub.add_parser("backends", help="list backends, their versions or why they are unavailable")
    backends.add_argument("--limits", action="store_true", help="also list each backend's declared limits")
    sub.add_parser("grids", help="list named grids")

    run = sub.add_parser("run", help="run cases on backends and write a report folder")
    run.add_argument("-b", "--backend", action="append", help="backend name (repeat; 'all' for every one)")
    run.add_argument("-g", "--grid", action="append", help="named grid, TOML grid file or batch file (repeat)")
    run.add_argument("--case", action="append", help="one benchdnn descriptor (repeat)")
    run.add_argument("--batch", action="append", help="benchdnn batch file (repeat)")
    run.add_argument("--random", type=int, default=0, metavar="N", help="N random cases (drawn with --seed)")
    run.add_argument("--bias", choices=("on", "off", "both"), default="on", help="bias for --case cases")
    run.add_argument("--dtype", action="append", help=f"one of {', '.join(DTYPES)} (repeat; default float64, float32)")
    run.add_argument("-o", "--output", help="run folder (default reports/<time>-<grids>)")
    run.add_argument("-j", "--jobs", type=int, help="tasks at once, each a backend running a case or the "
                     "reference checking one: N cores busy at most (default 1)")
    run.add_argument("--timeout", type=float, help="seconds one case may take on a backend before it is a timeout "
                     "(default 300)")
    run.add_argument("--seed", type=int, help="seed of the inputs and of --random (default 0)")
    run.add_argument("--tolerance-factor", type=tolerance_factor, help="scale the error bound (default 1)")
    run.add_argument("--resume", metavar="DIR", help="continue the interrupted run in DIR with its own settings "
                     "(only -j may be given with it)")

    report = sub.add_parser("report", help="rewrite summary.csv, summary.md and report.html of a run folder")
    report.add_argument("directory")

    compare = sub.add_parser(
        "compare", help="what changed between two runs; exit 1 on a regression",
        description="Join two runs on (case, bias, dtype, backend, tensor). A regression is pass or "
        "unsupported becoming fail/error/crash/timeout; a fix is fail/error/crash/timeout becoming pass; "
        "worse is err_ratio > THRESHOLD x the old one and > FLOOR.")
    compare.add_argument("old", metavar="OLD_DIR")
    compare.add_argument("new", metavar="NEW_DIR")
    compare.add_argument("--threshold", default="2x", help="err_ratio growth that counts as worse (2x)")
    compare.add_argument("--floor", type=float, default=0.01,
                         help="a grown err_ratio counts only above this value (0.01)")
    compare.add_argument("--out", help="CSV of every joined row (default compare-OLD-vs-NEW.csv here)")
    compare.add_argument("--html", action="store_true", help="also write it as HTML beside the CSV")

    explain = sub.add_parser("explain", help="one case in detail: every tensor and its worst element")
    explain.add_argument("descriptor")
    explain.add_argument("-b", "--backend", required=True)
    explain.add_argument("--dtype", default="float32")
    explain.add_argument("--seed", type=int, default=0)
    explain.add_argument("--no-bias", action="store_true")
    explain.add_argument("--tolerance-factor", type=tolerance_factor, default=1.0)
    return parser


COMMANDS = {"backends": cmd_backends, "grids": cmd_grids, "run": cmd_run, "report": cmd_report,
            "compare": cmd_compare,
            "explain": cmd_explain}


def main(argv: list[str] | None = None) -> int:
    from harness.running.run_folder import RunFolderError

    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (UsageError, DescriptorError, GridError, RunFolderError, PluginError) as error:
        print(f"convparity: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
