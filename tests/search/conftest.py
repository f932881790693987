"""The planted-bug backends, loadable here and in any worker; an executor that runs tasks in this process."""

from __future__ import annotations

from collections import deque

import pytest

from harness.running import tasks
from harness.running.executor import Outcome, describe_exception
from tests.search import planted_backends


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


@pytest.fixture
def planted_plugins(monkeypatch):
    """CONVPARITY_EXTRA_PLUGINS names the planted backends (reference still loads); caches rebuilt around the test."""
    monkeypatch.setenv("CONVPARITY_EXTRA_PLUGINS", planted_backends.__name__)
    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")
    tasks._backend.cache_clear()
    yield
    tasks._backend.cache_clear()
