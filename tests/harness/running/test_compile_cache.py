"""Worker environments: the compile-cache setting resolved per machine, the thread variables, and each backend's own
variables (its `thread_environment` and `cache_environment`), never overriding what the user set; run.json and the
report show the time per backend. Each framework's own variables are tested with its plugin
(tests/plugins/test_cache_environments.py)."""

from __future__ import annotations

import re

import pytest

from convparity.harness.backends.manager import PluginSelection
from convparity.harness.reporting.timing import idle_line, timing_table
from convparity.harness.running import compile_cache
from convparity.harness.running.executor import PoolTiming
from convparity.harness.running.placement import THREAD_VARIABLES, WorkerSetup
from convparity.harness.running.run_record import RunRecord
from convparity.harness.settings import RunSettings, SettingsError
from convparity.plugin import hookimpl
from tests.stub_backend import StubBackend


class CachingBackend(StubBackend):
    """Declares a thread variable and a cache folder of its own, as a framework's plugin does."""

    def thread_environment(self, threads):
        return {"MYLIB_THREADS": str(threads)}

    def cache_environment(self, folder, current):
        if folder is None:
            return {"MYLIB_CACHE": "off"}
        return {} if "MYLIB_CACHE" in current else {"MYLIB_CACHE": str(folder / "mylib-1.2")}


@hookimpl
def convparity_register_backends(register):
    register(CachingBackend("caching"))


@pytest.fixture
def plugins(monkeypatch):
    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")
    monkeypatch.setenv("CONVPARITY_EXTRA_PLUGINS", __name__)
    return PluginSelection.from_environment()


def test_a_folder_setting_is_one_folder_per_machine(tmp_path):
    machine = compile_cache.machine_fingerprint()
    assert re.fullmatch(r"[0-9a-f]{12}", machine) and machine == compile_cache.machine_fingerprint()
    assert compile_cache.machine_folder(str(tmp_path)) == tmp_path / machine
    assert compile_cache.machine_folder("default", {"XDG_CACHE_HOME": str(tmp_path)}) == (
        tmp_path / "convparity" / "compile" / machine)
    assert compile_cache.machine_folder("off") is None
    assert not any(tmp_path.iterdir())  # the frameworks make the folders when they store something


def test_a_backends_worker_gets_its_own_variables_beside_the_thread_variables(plugins, tmp_path):
    found = WorkerSetup("caching", plugins, str(tmp_path)).environment({"PATH": "/bin"})
    assert found["PATH"] == "/bin" and all(found[name] == "1" for name in THREAD_VARIABLES)
    assert found["MYLIB_THREADS"] == "1"
    assert found["MYLIB_CACHE"] == str(tmp_path / compile_cache.machine_fingerprint() / "mylib-1.2")
    assert WorkerSetup("caching", plugins, "off").environment({})["MYLIB_CACHE"] == "off"


def test_a_users_own_variables_win(plugins, tmp_path):
    mine = {"OMP_NUM_THREADS": "4", "MYLIB_THREADS": "8", "MYLIB_CACHE": "/mine"}
    found = WorkerSetup("caching", plugins, str(tmp_path)).environment(mine)
    assert (found["OMP_NUM_THREADS"], found["MYLIB_THREADS"], found["MYLIB_CACHE"]) == ("4", "8", "/mine")


def test_the_reference_pool_gets_the_thread_variables_as_set_where_the_run_started(plugins, monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    setup = WorkerSetup.here(None, plugins, "default")  # resolved later, maybe on another machine
    monkeypatch.delenv("OPENBLAS_NUM_THREADS")
    found = setup.environment({})
    assert found["OPENBLAS_NUM_THREADS"] == "2" and found["OMP_NUM_THREADS"] == "1" and "MYLIB_CACHE" not in found


def test_the_setting_is_validated_and_changes_no_row():
    with pytest.raises(SettingsError, match="compile_cache"):
        RunSettings(backends=("reference",), dtypes=("float32",), compile_cache="")
    cached = RunSettings(backends=("reference",), dtypes=("float32",))
    assert cached.compile_cache == "default"
    assert cached.differences(RunSettings(backends=("reference",), dtypes=("float32",), compile_cache="off")) == {}
    assert RunSettings.from_json(cached.to_json()) == cached


def test_time_per_backend_from_run_json():
    timing = PoolTiming.add(
        {"backend:jax": {"tasks": 2, "seconds": 3.0, "compile_seconds": 2.0, "compile_measured": True,
                         "workers": 1, "startup_seconds": 4.0},
         "reference": {"tasks": 2, "seconds": 0.5, "workers": 1, "startup_seconds": 1.0}},
        {"backend:jax": {"run_seconds": 2.5}},
        {"backend:jax": {"tasks": 1, "seconds": 1.0, "failures": 1}})
    settings = RunSettings(backends=("jax",), dtypes=("float32",))
    record = RunRecord("sweep", settings, timing=timing, seconds=10.0, executor={"slots": 2})
    table = timing_table(record).set_index("pool")
    assert table.loc["jax", "tasks"] == 3 and table.loc["jax", "failures"] == 1
    assert table.loc["jax", "in workers (s)"] == 4.0 and table.loc["jax", "backend run (s)"] == 2.5
    assert table.loc["jax", "of which compile (s)"] == 2.0 and table.loc["jax", "harness (s)"] == 1.5
    assert table.loc["reference (evaluations)", "of which compile (s)"] == "n/a"
    assert table.loc["reference (evaluations)", "harness (s)"] == 0.5
    line = idle_line(record)
    assert line.startswith("10.0 s x 2 slots = 20.0 slot-seconds; workers busy 9.5 (48 %)")
    empty = RunRecord("sweep", settings)
    assert timing_table(empty).empty and idle_line(empty) == ""
