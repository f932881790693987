"""The `convparity` command's entry point: an interrupt while convparity itself is still being imported is one line,
exit 130, like an interrupt at any later moment (harness.cli.main handles those)."""

from __future__ import annotations

import sys


def main() -> int:
    try:
        from convparity.harness.cli import main as command_line
    except KeyboardInterrupt:
        print("convparity: interrupted", file=sys.stderr)
        return 130
    return command_line()
