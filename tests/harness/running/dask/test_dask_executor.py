"""DaskExecutor on a real LocalCluster: crash, timeout and error are outcomes of the task alone, a dying
Dask worker is one crash and no retry, settings travel with the task, and declared resources route
tasks to the workers that offer them."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

pytest.importorskip("distributed", reason="dask.distributed is not installed (pip install 'convparity[dask]')")

from distributed import wait  # noqa: E402

from convparity.harness.backends.manager import PluginSelection  # noqa: E402
from convparity.harness.running.dask_executor import DaskExecutor, connect  # noqa: E402
from convparity.harness.running.placement import WorkerSetup  # noqa: E402
from tests.harness.running.sample_tasks import (  # noqa: E402
    Abort,
    Divide,
    Environment,
    KillParent,
    ParentPid,
    Pid,
    Ranked,
    Sleep,
    Unpicklable,
)


def outcomes(executor, count):
    return {o.tag: o for o in (executor.next_outcome() for _ in range(count))}


def workers(client) -> dict[str, int]:
    """Worker address -> pid of every worker of the cluster."""
    return client.run(os.getpid)


def test_crash_timeout_and_error_are_outcomes_and_no_dask_worker_dies(scheduler):
    with DaskExecutor(connect(scheduler)) as executor:
        before = workers(executor.client)
        executor.submit(Pid("p"), "before")
        executor.submit(Abort("p"), "abort")
        executor.submit(Sleep("p", 60), "hang", timeout=1.0)
        executor.submit(Divide("p"), "raise")
        executor.submit(Unpicklable("p"), "unpicklable")
        got = outcomes(executor, 5)
        executor.submit(Pid("p"), "after")
        got.update(outcomes(executor, 1))
        after = workers(executor.client)
        timing = executor.timing()["p"]
    assert got["abort"].failure == "crash" and "SIGABRT" in got["abort"].message
    assert "convparity-workers.log on " in got["abort"].message
    assert got["hang"].failure == "timeout" and "1 s" in got["hang"].message and got["hang"].seconds >= 1.0
    assert got["raise"].failure == "error"
    assert got["raise"].message.startswith("ZeroDivisionError: division by zero (at ")
    assert got["unpicklable"].failure == "error" and "could not be sent back" in got["unpicklable"].message
    assert got["before"].failure == got["after"].failure == ""
    # the tasks ran in child processes, never in a Dask worker, and every Dask worker is still the same process
    assert got["before"].value not in before.values() and got["after"].value not in after.values()
    assert after == before
    assert timing["tasks"] == 6 and timing["failures"] == 4 and timing["workers"] >= 3


def test_a_dying_dask_worker_is_one_crash_and_not_retried(cluster):
    with DaskExecutor(connect(cluster.scheduler_address)) as executor:
        before = workers(executor.client)
        executor.submit(KillParent("p"), "killer")
        killed = executor.next_outcome()
        assert killed.failure == "crash" and "not retried" in killed.message
        # allowed_failures=0: the scheduler gave up at the first death instead of trying another worker
        deadline = time.monotonic() + 60
        while len(workers(executor.client)) < len(before) and time.monotonic() < deadline:
            time.sleep(0.5)  # the nanny restarts the dead worker
        after = workers(executor.client)
        assert len(set(before.values()) - set(after.values())) == 1  # one worker died, only one
        executor.submit(Pid("p"), "next")
        assert executor.next_outcome().failure == ""


def test_settings_travel_with_the_task_not_the_workers_environment(scheduler, monkeypatch):
    # The cluster's workers were started without these; the task's setup carries them to its child.
    environment = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "CONVPARITY_TEST_SETTING": "sent"}
    setup = WorkerSetup(None, PluginSelection(), "off", fixed=tuple(environment.items()))
    with DaskExecutor(connect(scheduler)) as executor:
        executor.submit(Environment("p", tuple(environment), setup), "env")
        got = executor.next_outcome()
    assert got.value == environment


def test_urgent_and_long_tasks_have_the_higher_dask_priority(scheduler):
    with DaskExecutor(connect(scheduler)) as executor:
        for name, seconds, urgency in (("short", 0.1, 0), ("long", 5.0, 0), ("urgent", 0.01, 1), ("none", 0.0, 0)):
            executor.submit(Ranked("p", name, seconds, urgency), name)
        keys = {tag: key for key, (tag, _, _) in executor._pending.items()}
        wait([future for _, _, future in executor._pending.values()])  # every task known to the scheduler
        priorities = executor.client.run_on_scheduler(
            lambda dask_scheduler: {key: dask_scheduler.tasks[key].priority[0] for key in keys.values()
                                    if key in dask_scheduler.tasks})
        [executor.next_outcome() for _ in range(4)]
    # Dask stores -priority first in its sort key: the smaller, the earlier
    assert sorted(keys, key=lambda tag: priorities[keys[tag]]) == ["urgent", "long", "short", "none"]


@pytest.fixture
def gpu_worker(scheduler):
    """One more worker on the shared cluster, started as on a cluster (`dask worker`), offering GPU=1."""
    process = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", scheduler, "--no-nanny",
                                "--nthreads", "1", "--resources", "GPU=1", "--name", "gpu"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = connect(scheduler)
    deadline = time.monotonic() + 60
    while not any(w.get("resources") for w in client.scheduler_info(n_workers=-1)["workers"].values()):
        assert time.monotonic() < deadline, "the GPU worker did not join"
        time.sleep(0.2)
    yield process.pid
    client.retire_workers(names=["gpu"], close_workers=True)
    client.close()
    process.wait(30)


def test_declared_resources_route_tasks_to_workers_that_offer_them(gpu_worker, scheduler):
    resources = {"gpu-pool": {"GPU": 1}, "tpu-pool": {"TPU": 1}}
    with DaskExecutor(connect(scheduler), resources=resources) as executor:
        for number in range(4):
            executor.submit(ParentPid("gpu-pool"), ("gpu", number))
        executor.submit(ParentPid("tpu-pool"), ("tpu", 0))
        got = outcomes(executor, 5)
        notes = executor.notes
    assert {got["gpu", n].value for n in range(4)} == {gpu_worker}
    assert got["tpu", 0].failure == ""  # nobody offers a TPU: it ran on some worker, and that is noted
    assert notes == ["tpu-pool: no worker offers {'TPU': 1}; its tasks run on any worker"]


@pytest.mark.parametrize(("content", "fragment"), [
    ("garbage {", "is not a Dask scheduler file"), ("", "is not a Dask scheduler file"),
    (b"\x00\xff\xfe binary", "is not a Dask scheduler file"), ('{"type": "Scheduler"}', "names no scheduler"),
    ('{"address": 5}', "names no scheduler"),
])
def test_a_bad_scheduler_file_is_one_line_and_leaves_no_folder(tmp_path, capsys, content, fragment):
    from convparity.harness.cli import main

    path = tmp_path / "scheduler.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / "run"
    assert main(["run", "-b", "reference", "--case", "mb1ic1iw4oc1kw2", "-o", str(out), "--executor", "dask",
                 "--scheduler", str(path)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("convparity: error: ") and fragment in line and not out.exists()


def test_a_scheduler_without_workers_fails_within_the_startup_timeout(tmp_path, capsys):
    from distributed import LocalCluster

    from convparity.harness.cli import main

    empty = LocalCluster(n_workers=0, processes=False, dashboard_address=None)
    try:
        started = time.perf_counter()
        assert main(["run", "-b", "reference", "--case", "mb1ic1iw4oc1kw2", "-o", str(tmp_path / "run"),
                     "--executor", "dask", "--scheduler", empty.scheduler_address, "--startup-timeout", "3"]) == 2
        assert time.perf_counter() - started < 60
    finally:
        empty.close()
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"the Dask scheduler {empty.scheduler_address} has no worker (none joined within 3 s)" in line
