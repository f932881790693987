"""Compile caches and worker variables of the jax, tensorflow and keras plugins.

Without a framework: each plugin's `cache_environment` gives its framework's cache a folder of its own per
framework version, never overriding a user's own cache variables (their other flags kept), and "off" (None)
turns the cache off whatever is set; `thread_environment` gives the framework's own thread variables; neither
imports a framework. On the real frameworks: a sweep stores what it compiled, a rerun of the same cases in the
opposite order loads it (entries are keyed by the case, not by what the process ran before), and cached,
uncached and cache-loading runs write the same rows (all but `seconds`)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from convparity import format_descriptor, sweep
from convparity.harness.backends.manager import PluginSelection
from convparity.harness.cases.builtin_grids import smoke
from convparity.harness.results import KEY, PERF_COLUMNS, read_results
from convparity.harness.running import compile_cache, run_folder
from convparity.harness.running.placement import WorkerSetup
from convparity.plugins import jax_backend, tensorflow_backend
from convparity.plugins.jax_backend import JaxBackend
from convparity.plugins.keras_backend import KerasBackend
from convparity.plugins.tensorflow_backend import TensorFlowBackend

JAX, TENSORFLOW, KERAS = JaxBackend(), TensorFlowBackend(), KerasBackend()


@pytest.fixture
def installed(monkeypatch):
    """jax and tensorflow (which keras compiles with) installed at version 1.2.3, as their metadata says."""
    for plugin in (jax_backend, tensorflow_backend):
        monkeypatch.setattr(plugin, "installed_version", lambda *names: "1.2.3")


def test_a_folder_gives_each_framework_its_folder_and_thresholds(installed, tmp_path):
    assert JAX.cache_environment(tmp_path, {}) == {
        "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax-1.2.3"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }
    tensorflow = {"TF_XLA_FLAGS": f"--tf_xla_persistent_cache_directory={tmp_path / 'tensorflow-1.2.3'}"}
    assert TENSORFLOW.cache_environment(tmp_path, {}) == tensorflow
    assert KERAS.cache_environment(tmp_path, {}) == tensorflow  # Keras compiles through TensorFlow's XLA
    assert not any(tmp_path.iterdir())  # the frameworks make the folders when they store something


def test_default_is_under_the_users_cache_folder_and_off_turns_every_cache_off(installed, tmp_path):
    selection = PluginSelection(("jax", "keras", "tensorflow"))
    machine = tmp_path / "convparity" / "compile" / compile_cache.machine_fingerprint()
    found = WorkerSetup("jax", selection, "default").environment({"XDG_CACHE_HOME": str(tmp_path)})
    assert found["JAX_COMPILATION_CACHE_DIR"] == str(machine / "jax-1.2.3")
    found = WorkerSetup("keras", selection, "default").environment({"XDG_CACHE_HOME": str(tmp_path)})
    assert found["TF_XLA_FLAGS"] == f"--tf_xla_persistent_cache_directory={machine / 'tensorflow-1.2.3'}"
    # TensorFlow keeps nothing on disk unless its flag asks; JAX must be told not to
    assert JAX.cache_environment(None, {}) == {"JAX_ENABLE_COMPILATION_CACHE": "false"}
    assert TENSORFLOW.cache_environment(None, {}) == KERAS.cache_environment(None, {}) == {}


def test_a_users_own_cache_variables_win_over_a_folder(installed, tmp_path):
    mine = {"TF_XLA_FLAGS": "--tf_xla_auto_jit=2 --tf_xla_persistent_cache_directory=/mine",
            "JAX_COMPILATION_CACHE_DIR": "/mine"}
    for backend in (JAX, TENSORFLOW, KERAS):
        assert backend.cache_environment(tmp_path, mine) == {}, backend.name
    assert JAX.cache_environment(tmp_path, {"JAX_ENABLE_COMPILATION_CACHE": "true"}) == {}


def test_a_users_other_settings_are_kept_beside_the_folder(installed, tmp_path):
    current = {"TF_XLA_FLAGS": "--tf_xla_auto_jit=2", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "5"}
    folder = tmp_path / "tensorflow-1.2.3"
    for backend in (TENSORFLOW, KERAS):
        assert backend.cache_environment(tmp_path, current) == {
            "TF_XLA_FLAGS": f"--tf_xla_auto_jit=2 --tf_xla_persistent_cache_directory={folder}"}
    found = JAX.cache_environment(tmp_path, current)
    assert "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in found  # the user's 5 s stands
    assert found["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] == "0" and "JAX_COMPILATION_CACHE_DIR" in found


def test_off_wins_over_a_users_own_cache_variables(installed):
    mine = {"TF_XLA_FLAGS": "--tf_xla_auto_jit=2 --tf_xla_persistent_cache_directory=/mine",
            "JAX_COMPILATION_CACHE_DIR": "/mine"}
    assert JAX.cache_environment(None, mine) == {"JAX_ENABLE_COMPILATION_CACHE": "false"}
    for backend in (TENSORFLOW, KERAS):
        assert backend.cache_environment(None, mine) == {"TF_XLA_FLAGS": "--tf_xla_auto_jit=2"}, backend.name


def test_nothing_for_frameworks_not_installed(monkeypatch, tmp_path):
    for plugin in (jax_backend, tensorflow_backend):
        monkeypatch.setattr(plugin, "installed_version", lambda *names: None)
    for backend in (JAX, TENSORFLOW, KERAS):
        assert backend.cache_environment(tmp_path, {}) == {} == backend.cache_environment(None, {}), backend.name


def test_thread_variables_are_the_frameworks_own_and_a_users_win(installed):
    assert TENSORFLOW.thread_environment(1) == KERAS.thread_environment(1) == {"TF_NUM_INTRAOP_THREADS": "1"}
    assert TENSORFLOW.thread_environment(3) == {"TF_NUM_INTRAOP_THREADS": "3"}
    # XLA's CPU client sizes its Eigen pool by the cores, whatever OMP_NUM_THREADS says
    assert JAX.thread_environment(1) == {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"}
    assert JAX.thread_environment(2) == {}
    selection = PluginSelection(("jax", "keras", "tensorflow"))
    found = WorkerSetup("jax", selection, "off").environment({})
    assert found["XLA_FLAGS"] == "--xla_cpu_multi_thread_eigen=false" and found["OMP_NUM_THREADS"] == "1"
    assert WorkerSetup("jax", selection, "off").environment({"XLA_FLAGS": "--mine"})["XLA_FLAGS"] == "--mine"
    assert WorkerSetup("keras", selection, "off").environment({})["TF_NUM_INTRAOP_THREADS"] == "1"


def test_worker_variables_and_compile_time_import_no_framework(tmp_path):
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from convparity.plugins.jax_backend import JaxBackend\n"
        "from convparity.plugins.keras_backend import KerasBackend\n"
        "from convparity.plugins.tensorflow_backend import TensorFlowBackend\n"
        "for backend in (JaxBackend(), KerasBackend(), TensorFlowBackend()):\n"
        "    backend.cache_environment(Path('/tmp/x'), {}), backend.cache_environment(None, {})\n"
        "    backend.thread_environment(1)\n"
        "print(JaxBackend().compile_seconds())\n"
        "print(sorted({'jax', 'keras', 'tensorflow'} & set(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["0.0", "[]"]

FRAMEWORK = {"jax": "jax", "tensorflow": "tensorflow", "keras": "keras"}


def rows(path):
    """The rows without their timings (seconds, compile seconds): what a cache must not change."""
    frame = read_results(path).drop(columns=["seconds", *PERF_COLUMNS]).sort_values(list(KEY)).reset_index(drop=True)
    return frame.astype(str).to_dict("records")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "tensorflow", "keras"])
def test_a_rerun_loads_what_the_first_run_compiled_and_rows_do_not_change(backend, tmp_path, monkeypatch):
    if importlib.util.find_spec(FRAMEWORK[backend]) is None:
        pytest.skip(f"{FRAMEWORK[backend]} is not installed")
    for name in ("JAX_COMPILATION_CACHE_DIR", "TF_XLA_FLAGS"):  # the test's own folder, not the user's
        monkeypatch.delenv(name, raising=False)
    cache = tmp_path / "cache"
    descriptors = [format_descriptor(case.spec, case.name) for case in smoke()]
    options = dict(backends=[backend], dtypes=["float32"], jobs=1)
    first = sweep(**options, cases=descriptors, out=tmp_path / "first", compile_cache=str(cache))
    stored = sorted(p for p in cache.rglob("*") if p.is_file())
    assert stored, f"{backend} stored nothing in {cache}"
    second = sweep(**options, cases=descriptors[::-1], out=tmp_path / "second", compile_cache=str(cache))
    assert sorted(p for p in cache.rglob("*") if p.is_file()) == stored  # nothing compiled anew
    uncached = sweep(**options, cases=descriptors, out=tmp_path / "uncached", compile_cache="off")
    assert rows(first.path) == rows(second.path) == rows(uncached.path)
    timing = [run_folder.read_record(run.path).timing[f"backend:{backend}"] for run in (first, second)]
    if backend == "jax":  # JAX says how long it compiled: a cache hit is a load, not a compile
        assert timing[0]["compile_measured"] and timing[1]["compile_seconds"] < 0.7 * timing[0]["compile_seconds"]
