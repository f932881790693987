"""An executor that runs a sweep's tasks in this process: the same tasks and verdicts, no workers to start."""

from __future__ import annotations

import os
from collections import deque

from convparity.harness.errors import describe_exception
from convparity.harness.running.executor import Outcome
from tests.harness.search.planted_backends import SIMULATE, Simulated


class InlineExecutor:
    """The Executor seam served in this process, one task at a time (no workers to start: fast tests).

    A task that raises ends as an `error` outcome, as in a worker. The planted backends' hangs and crashes
    (tests/harness/search/planted_backends.py) are simulated while it runs: they raise `Simulated`, which
    ends the task with the outcome a worker would give (timeout or crash). `interrupt_after`: raise
    KeyboardInterrupt when that many tasks have ended (a Ctrl-C at a chosen moment).
    """

    def __init__(self, interrupt_after: int | None = None) -> None:
        self.queue: deque = deque()
        self.ended = 0
        self.interrupt_after = interrupt_after

    def submit(self, task, tag, timeout=None) -> None:
        self.queue.append((task, tag, timeout))

    def next_outcome(self) -> Outcome:
        if self.interrupt_after is not None and self.ended >= self.interrupt_after:
            self.interrupt_after = None
            raise KeyboardInterrupt
        task, tag, timeout = self.queue.popleft()
        self.ended += 1
        previous = os.environ.get(SIMULATE)
        os.environ[SIMULATE] = "1"
        try:
            return Outcome(tag, value=task())
        except Simulated as fault:
            message = f"timed out after {timeout:g} s" if fault.failure == "timeout" else "killed by SIGSEGV"
            return Outcome(tag, failure=fault.failure, message=message, seconds=timeout or 0.0)
        except Exception as error:  # noqa: BLE001 - what a worker reports
            return Outcome(tag, failure="error", message=describe_exception(error))
        finally:
            if previous is None:
                os.environ.pop(SIMULATE, None)
            else:
                os.environ[SIMULATE] = previous

    def close(self) -> None:
        self.queue.clear()

    def timing(self) -> dict:
        return {}
