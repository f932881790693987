"""An executor that runs a sweep's tasks in this process: the same tasks and verdicts, no workers to start."""

from __future__ import annotations

from collections import deque

from convparity.harness.errors import describe_exception
from convparity.harness.running.executor import Outcome


class InlineExecutor:
    """The Executor seam served in this process, one task at a time (no workers to start: fast tests).

    A task that raises ends as an `error` outcome, as in a worker; crashes and timeouts cannot happen here.
    """

    def __init__(self) -> None:
        self.queue: deque = deque()

    def submit(self, task, tag, timeout=None) -> None:
        self.queue.append((task, tag))

    def next_outcome(self) -> Outcome:
        task, tag = self.queue.popleft()
        try:
            return Outcome(tag, value=task())
        except Exception as error:  # noqa: BLE001 - what a worker reports
            return Outcome(tag, failure="error", message=describe_exception(error))

    def close(self) -> None:
        self.queue.clear()

    def timing(self) -> dict:
        return {}
