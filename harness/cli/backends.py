"""`convparity backends [--limits]`: every registered backend, its version or why it is unavailable.

Each plugin module's backends are described in a worker of their own (their framework is imported there, once
for all of them, never beside another module's: some pairs crash in one process), all at once on the
machine's cores, quietly (the workers' output goes to a temporary log), each bounded by the start-up timeout.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from convparity.harness.backends.manager import PluginSelection, get_manager
from convparity.harness.cli import options
from convparity.harness.running.local_executor import LocalProcessExecutor
from convparity.harness.running.placement import WorkerSetup
from convparity.harness.running.tasks import DescribeBackend
from convparity.harness.settings import DEFAULT_STARTUP_TIMEOUT, DEFAULT_TIMEOUT


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("backends", help="list backends, their versions or why they are unavailable")
    parser.add_argument("--limits", action="store_true", help="also list each backend's declared limits and known "
                        "deviations")
    parser.add_argument("--timeout", type=options.positive_seconds, default=DEFAULT_STARTUP_TIMEOUT + DEFAULT_TIMEOUT,
                        help="seconds one backend may take to be described, its framework's imports included "
                        "(default: the start-up timeout plus a case's)")
    parser.set_defaults(handler=handle)


def worker_groups(backends: Mapping[str, object]) -> dict[str, str]:
    """{backend: the first backend of its plugin module}: the backends of one module share workers (one import of
    their framework), those of different modules never do."""
    first: dict[str, str] = {}
    return {name: first.setdefault(type(backend).__module__, name) for name, backend in backends.items()}


def handle(args: argparse.Namespace) -> int:
    manager = get_manager()
    names = list(manager.backends())
    plugins = PluginSelection.from_environment()
    described: dict[str, list[str]] = {}
    group_of = worker_groups(manager.backends())
    slots = min(len(set(group_of.values())), os.cpu_count() or 1) or 1
    with tempfile.TemporaryDirectory(prefix="convparity-backends-") as folder, \
            LocalProcessExecutor(slots, log=Path(folder) / "workers.log") as ex:
        for name in names:
            group = group_of[name]
            ex.submit(DescribeBackend(name, plugins, WorkerSetup.here(group, plugins, "off"), group), name,
                      args.timeout)
        for _ in names:
            outcome = ex.next_outcome()
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
