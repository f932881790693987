"""`convparity grids`: the named grids every plugin registers, with their case counts."""

from __future__ import annotations

import argparse

from convparity.harness.backends.manager import get_manager


def register(commands: argparse._SubParsersAction) -> None:
    commands.add_parser("grids", help="list named grids").set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    for name, grid in get_manager().grids().items():
        print(f"{name:16} {len(grid.cases()):5d} cases  {grid.description}")
    return 0
