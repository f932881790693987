"""Make the misbehaving test backends loadable, here and in the workers the runner spawns."""

from __future__ import annotations

import pytest

from convparity.harness.running import tasks
from tests.harness.running import faulty_backends


@pytest.fixture
def faulty_plugins(monkeypatch):
    """CONVPARITY_EXTRA_PLUGINS names the faulty backends (get_manager follows the variables); the
    in-process backend cache is rebuilt around the test."""
    monkeypatch.setenv("CONVPARITY_EXTRA_PLUGINS", faulty_backends.__name__)
    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")
    tasks._backend.cache_clear()
    yield
    tasks._backend.cache_clear()
