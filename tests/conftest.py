"""For every test: a cache folder of the session's own (learned costs and compile caches never touch the user's)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _own_cache_home(tmp_path_factory):
    """XDG_CACHE_HOME in a temporary folder for the whole session (workers inherit it)."""
    folder = tmp_path_factory.mktemp("cache-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(folder))
        yield folder
