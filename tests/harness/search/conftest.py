"""The planted-bug backends, loadable here and in any worker."""

from __future__ import annotations

import pytest

from convparity.harness.running import tasks
from tests.harness.search import planted_backends


@pytest.fixture
def planted_plugins(monkeypatch):
    """CONVPARITY_EXTRA_PLUGINS names the planted backends (reference still loads); caches rebuilt around the test."""
    monkeypatch.setenv("CONVPARITY_EXTRA_PLUGINS", planted_backends.__name__)
    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")
    tasks._backend.cache_clear()
    yield
    tasks._backend.cache_clear()
