"""Option groups shared by several commands, each added by one function, so that no option is written twice.

Groups are argparse argument groups (they show under their own heading in --help). A group's options
marked `fixed_by_the_run` decide a run's rows and are saved in its run.json: `--resume` refuses them,
and the list of what it refuses is read off the parser (`fixed_options`), never written out.
"""

from __future__ import annotations

import argparse
import math

from convparity.harness.errors import ConvparityError
from convparity.harness.vocabulary import DATA_TYPES, DTYPES, check_dtype

FIXED_BY_THE_RUN = "fixed_by_the_run"  # a group attribute: its options are refused with --resume


class UsageError(ConvparityError, ValueError):
    """Bad command-line input: reported as one line and exit code 2."""


def tolerance_factor(text: str) -> float:
    """A finite factor > 0: a negative or infinite one would pass every row, NaN would fail every row."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def _fixed(group: argparse._ArgumentGroup) -> argparse._ArgumentGroup:
    setattr(group, FIXED_BY_THE_RUN, True)
    return group


def backend_options(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    group = _fixed(parser.add_argument_group("backends"))
    group.add_argument("-b", "--backend", action="append", required=required,
                       help="backend name (repeat; 'all' for every registered one)")


def dtype_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--dtype", action="append", type=dtype_name, metavar="DTYPE",
                        help=f"one of {', '.join(DTYPES)}, or another data type or benchdnn's SRC:WEI:DST of "
                             f"{', '.join(DATA_TYPES)} (repeat; default float64, float32)")


def dtype_name(text: str) -> str:
    """A --dtype value, canonical (argparse names the option when it is none)."""
    try:
        return check_dtype(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("dtype ")) from None


def case_options(parser: argparse.ArgumentParser) -> None:
    """The options that select cases: `run` and `cases` share them."""
    group = _fixed(parser.add_argument_group("cases"))
    group.add_argument("-g", "--grid", action="append", help="named grid, TOML grid file or batch file (repeat)")
    group.add_argument("--case", action="append", help="one benchdnn descriptor (repeat)")
    group.add_argument("--batch", action="append", help="benchdnn batch file, read as benchdnn's conv driver reads it, "
                       "or its deconv driver after deconv: (deconv:FILE) (repeat); its --dt, --dir, --attr-post-ops, "
                       "... decide each case's dtype, bias, tensors and attributes")
    group.add_argument("--random", type=int, default=0, metavar="N", help="N random cases (drawn with --seed)")
    model_options(group)
    group.add_argument("--bias", choices=("on", "off", "both"), default="on",
                       help="bias for --case cases (default on)")
    dtype_option(group)
    group.add_argument("--seed", type=int, help="seed of the inputs and of --random (default 0)")
    group.add_argument("--max-cases", type=positive_int,
                       help="refuse a selection of more cases than this (default 1000000)")


def model_options(group: argparse._ArgumentGroup) -> None:
    """--model, --input-shape and --no-epilogues: `run`, `cases` and `search` share them."""
    group.add_argument("--model", action="append", metavar="SOURCE", help="every convolution of a model, one case "
                       "per distinct layer (repeat): a model file or name one of the model readers reads "
                       "(`convparity cases --model SOURCE` lists its layers)")
    group.add_argument("--input-shape", action="append", metavar="NAME=DIMS", help="the shape of a model input, "
                       "e.g. input=1x3x224x224, for a symbolic or unknown one (repeat)")
    group.add_argument("--no-epilogues", action="store_true", help="each model layer's convolution alone, without "
                       "the batchnorm, activation and residual add its graph fuses (for backends that compute no "
                       "post-ops)")
    group.add_argument("--weights", action="store_true", help="the model's own weights (and a quantized layer's "
                       "per-channel w scales) instead of drawn ones, where its reader has them (the README says "
                       "which do): each layer is then a case of its own; a run keeps them in its folder (run and "
                       "cases only)")


def setting_options(parser: argparse.ArgumentParser) -> None:
    """Timeouts and the tolerance: saved in run.json, so fixed for a resume."""
    group = _fixed(parser.add_argument_group("settings (saved in run.json)"))
    group.add_argument("--timeout", type=positive_seconds, help="seconds one backend may take on one case before "
                       "it is a timeout (default 300; framework start-up and the reference have their own)")
    group.add_argument("--startup-timeout", type=positive_seconds, help="seconds a backend's worker may take to "
                       "start, framework imports included (default 900)")
    group.add_argument("--reference-timeout", type=positive_seconds, help="seconds the reference may take on one "
                       "case (default 1800); past it the case's rows read reference-error")
    group.add_argument("--tolerance-factor", type=tolerance_factor, help="scale the error bound (default 1)")


def perf_option(parser: argparse.ArgumentParser) -> None:
    """--perf: saved in run.json (a resume times the rest of the cases too)."""
    group = _fixed(parser.add_argument_group("speed (saved in run.json)"))
    group.add_argument("--perf", action="store_true",
                       help="also time every case that passes on a backend: its run after warm-up, with repeats "
                       "(min, median, spread, GFLOP/s); time on an idle machine, with -j at most its cores")


def placement_options(parser: argparse.ArgumentParser) -> None:
    """Where and how fast it runs: changes no row, so a resume may change them."""
    group = parser.add_argument_group("where it runs (may change on --resume)")
    group.add_argument("-j", "--jobs", type=positive_int, help="tasks at once, each a backend running a case or the "
                       "reference checking one: N cores busy at most (default 1)")
    group.add_argument("--executor", choices=("local", "dask"), help="where tasks run: local worker processes "
                       "(default) or a Dask cluster (a LocalCluster of -j workers unless --scheduler names one)")
    group.add_argument("--scheduler", metavar="ADDRESS|FILE", help="with --executor dask: the scheduler of an "
                       "existing cluster, tcp://HOST:PORT or a scheduler file")
    group.add_argument("--compile-cache", metavar="DIR|off", help="where the backends' frameworks keep compiled "
                       "programs between runs (default: ~/.cache/convparity/compile); 'off' compiles afresh")


def output_option(parser: argparse.ArgumentParser, default: str) -> None:
    group = _fixed(parser.add_argument_group("output"))
    group.add_argument("-o", "--output", help=f"output folder (default {default})")


def shard_option(parser: argparse.ArgumentParser) -> None:
    group = _fixed(parser.add_argument_group("shards"))
    group.add_argument("--shard", metavar="K/N", help="run only shard K of N (balanced by expected time); join the N "
                       "run folders with: convparity merge OUT DIR...")


def fixed_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The options of `parser`'s fixed groups that `args` gives a value other than their default (their first
    spelling), in the parser's order."""
    given = []
    for group in parser._action_groups:
        if not getattr(group, FIXED_BY_THE_RUN, False):
            continue
        for action in group._group_actions:
            if getattr(args, action.dest, None) != action.default:
                given.append(action.option_strings[0])
    return given


def free_options(parser: argparse.ArgumentParser) -> list[str]:
    """The options of `parser` outside its fixed groups (those a resume may give), by their first spelling."""
    fixed = {id(action) for group in parser._action_groups if getattr(group, FIXED_BY_THE_RUN, False)
             for action in group._group_actions}
    return [action.option_strings[0] for action in parser._actions
            if action.option_strings and id(action) not in fixed and action.dest not in ("help", "resume")]


def refuse_fixed_on_resume(parser: argparse.ArgumentParser, args: argparse.Namespace, what: str) -> None:
    """UsageError naming the first option of a fixed group that `args` gives with --resume, and what may be given."""
    given = fixed_options(parser, args)
    if given:
        free = free_options(parser)
        raise UsageError(f"--resume takes the {what}'s settings from {args.resume}/run.json; {given[0]} would be "
                         f"ignored: drop it (only {', '.join(free[:-1])} and {free[-1]} may be given with it)")


def placement(args: argparse.Namespace) -> dict:
    """--executor, --scheduler and --compile-cache as keywords of sweep(), resume() and search()."""
    from convparity.harness.running.launch import ExecutorChoice, ExecutorChoiceError

    given: dict = {}
    if args.executor or args.scheduler:
        try:
            given["executor"] = ExecutorChoice(args.executor or "local", args.scheduler)
        except ExecutorChoiceError as error:
            raise UsageError(str(error)) from None
    if args.compile_cache is not None:
        given["compile_cache"] = args.compile_cache
    return given


def settings(args: argparse.Namespace) -> dict:
    """The settings options that were given, as keywords of sweep() and search()."""
    return {name: value for name, value in (
        ("timeout", args.timeout), ("startup_timeout", args.startup_timeout),
        ("reference_timeout", args.reference_timeout), ("tolerance_factor", args.tolerance_factor))
        if value is not None}


def selection(args: argparse.Namespace) -> dict:
    """The case options as keywords of sweep() and CaseSelection."""
    return dict(grids=args.grid or (), cases=args.case or (), batch_files=args.batch or (), bias=args.bias,
                random=args.random, seed=args.seed or 0)


def models(args: argparse.Namespace, *, weights: bool = True) -> dict:
    """--model, --input-shape, --no-epilogues and --weights as keywords of sweep() (search(): `weights` False, and
    --weights refused)."""
    given = [flag for flag, value in (("--input-shape", args.input_shape), ("--no-epilogues", args.no_epilogues),
                                      ("--weights", args.weights)) if value]
    if given and not args.model:
        raise UsageError(f"{given[0]} goes with --model SOURCE")
    if args.weights and not weights:
        raise UsageError("search takes no --weights: shrinking a case changes the shapes a layer's weights fit (run "
                         "the model with them: convparity run --model SOURCE --weights)")
    chosen = dict(models=tuple(args.model or ()), input_shapes=tuple(args.input_shape or ()),
                  epilogues=not args.no_epilogues)
    return {**chosen, "weights": bool(args.weights)} if weights else chosen


def dtypes(args: argparse.Namespace) -> tuple[str, ...]:
    return tuple(dict.fromkeys(args.dtype or ("float64", "float32")))
