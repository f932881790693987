"""A real Dask LocalCluster shared by the tests of this folder (two single-threaded workers), and the
faulty backends. Each test module here skips itself where dask.distributed is not installed."""

from __future__ import annotations

import pytest

from convparity.harness.running.dask_executor import local_cluster
from tests.harness.running.conftest import faulty_plugins  # noqa: F401 - the fixture, for this folder's tests


@pytest.fixture(scope="session")
def cluster():
    """A LocalCluster as `convparity run --executor dask` starts it (allowed_failures=0), for the session."""
    started = local_cluster(2)
    yield started
    started.close()


@pytest.fixture
def scheduler(cluster) -> str:
    """The address of the shared cluster's scheduler, as --scheduler takes it."""
    return cluster.scheduler_address
