"""SIGINT and SIGTERM as one clean stop: the first raises `Interrupted`, any later one is ignored.

So a second Ctrl-C while rows are being saved or run.json is being written cannot cut the clean-up
short or print a traceback. The exit code follows the shell's convention: 130 for SIGINT, 143 for SIGTERM.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


class Interrupted(BaseException):
    """Raised in the main thread by the first SIGINT or SIGTERM; `exit_code` is 128 + the signal number."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(signal.Signals(signal_number).name)
        self.exit_code = 128 + signal_number


@contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """Within the block, the first SIGINT/SIGTERM raises Interrupted and later ones are ignored."""
    watched = (signal.SIGINT, signal.SIGTERM)
    previous = {number: signal.getsignal(number) for number in watched}

    def stop(number: int, frame: object) -> None:
        for other in watched:
            signal.signal(other, signal.SIG_IGN)
        raise Interrupted(number)

    for number in watched:
        signal.signal(number, stop)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
