"""The one base of every failure convparity reports as a line of text, and how an exception is put in words.

`ConvparityError` carries the exit code the command line returns for it (2: bad input or an unusable
folder, unless a subclass says otherwise); `convparity.harness.cli.main` catches it once and prints
its message alone, never a traceback. Every error the harness raises for a user's input, a folder, a
setting or a plugin derives from it (most also from ValueError or TypeError, as before).
This module imports nothing of convparity.
"""

from __future__ import annotations

import traceback


class ConvparityError(Exception):
    """A failure reported as one line: `str(error)`, and `exit_code` for the command line."""

    exit_code: int = 2
    prefix: str = "error: "  # printed after "convparity: " and before the message


def describe_exception(error: BaseException) -> str:
    """"Type: message (at file:line)" with the innermost frame, on one line."""
    last = traceback.extract_tb(error.__traceback__)[-1:]
    where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
    message = " ".join(str(error).split())
    return f"{type(error).__name__}: {message}{where}"
