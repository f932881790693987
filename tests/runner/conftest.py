"""Make the misbehaving test backends loadable, here and in the workers the runner spawns."""

from __future__ import annotations

import pytest

from harness import tasks
from harness.plugin_manager import get_manager
from tests.runner import faulty_backends


@pytest.fixture
def faulty_plugins(monkeypatch):
    """CONVPARITY_EXTRA_PLUGINS names the faulty backends; the plugin caches are rebuilt around the test."""
    monkeypatch.setenv("CONVPARITY_EXTRA_PLUGINS", faulty_backends.__name__)
    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")
    get_manager.cache_clear()
    tasks._backend.cache_clear()
    yield
    get_manager.cache_clear()
    tasks._backend.cache_clear()
