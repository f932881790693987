"""`convparity explain DESC -b BACKEND`: one case in detail, every tensor and its worst element.

The case runs in a worker of the backend's own (its framework is imported there, not here), bounded by
--startup-timeout for the framework's imports and --timeout for the case: a backend that hangs is a timeout.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from convparity.harness.backends.manager import PluginSelection, get_manager
from convparity.harness.cases.descriptor import parse_case
from convparity.harness.cases.inputs import UNIFORM, InputStyle
from convparity.harness.cli import options
from convparity.harness.errors import ConvparityError
from convparity.harness.evaluation.explain import print_case, print_rows
from convparity.harness.running.local_executor import LocalProcessExecutor
from convparity.harness.running.placement import WorkerSetup
from convparity.harness.running.runner import WorkerStartError
from convparity.harness.running.tasks import ExplainCase, backend_pool
from convparity.harness.settings import DEFAULT_STARTUP_TIMEOUT, DEFAULT_TIMEOUT


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("explain", help="one case in detail: every tensor and its worst element")
    parser.add_argument("descriptor")
    parser.add_argument("-b", "--backend", required=True)
    parser.add_argument("--dtype", default="float32", type=options.dtype_name,
                        help="the case's dtype (default float32)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bias", choices=("on", "off"), default="on")
    parser.add_argument("--tolerance-factor", type=options.tolerance_factor, default=1.0)
    parser.add_argument("--inputs", type=input_style, default=UNIFORM, metavar="STYLE",
                        help="how the values are drawn: uniform (default) or integers:K (whole numbers from 1 to K "
                        "in magnitude, either sign), as a search's repro command says")
    parser.add_argument("--timeout", type=options.positive_seconds, default=DEFAULT_TIMEOUT,
                        help=f"seconds the backend may take on the case (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--startup-timeout", type=options.positive_seconds, default=DEFAULT_STARTUP_TIMEOUT,
                        help=f"seconds its worker may take to start (default {DEFAULT_STARTUP_TIMEOUT:g})")
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
    print_case(spec, args.seed, sys.stdout, args.inputs)
    plugins = PluginSelection.from_environment()
    task = ExplainCase(args.backend, spec, args.seed, args.tolerance_factor, plugins,
                       WorkerSetup.here(args.backend, plugins, "default"), args.inputs)
    with tempfile.TemporaryDirectory(prefix="convparity-explain-") as folder:
        log = Path(folder) / "workers.log"
        with LocalProcessExecutor(1, log=log, startup_timeout=args.startup_timeout) as executor:
            executor.submit(task, None, args.timeout)
            outcome = executor.next_outcome()
        said = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
    if outcome.failure == "start":
        raise WorkerStartError(backend_pool(args.backend), outcome.message)
    if outcome.failure in ("timeout", "crash"):
        print(f"{args.backend}: {outcome.failure}: {outcome.message}", file=sys.stdout)
        return 1
    if outcome.failure:
        raise ConvparityError(f"backend {args.backend!r} could not be asked about the case: {outcome.message}"
                              + (f" (its worker said: {said[0]})" if said else ""))
    explained = outcome.value
    if explained.unavailable:
        print(f"{args.backend}: unavailable: {explained.unavailable}")
        return 0
    return print_rows(spec, args.backend, explained.rows, seed=args.seed, accumulation=explained.accumulation,
                      tolerance_factor=args.tolerance_factor, out=sys.stdout, inputs=args.inputs)
