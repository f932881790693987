"""Compile caches: the setting becomes per-framework variables for workers, in folders per machine and
framework version, never overriding a user's own; run.json and the report show time per backend."""

from __future__ import annotations

import re

import pytest
from convparity.harness.reporting.timing import idle_line, timing_table
from convparity.harness.running import compile_cache
from convparity.harness.running.executor import PoolTiming
from convparity.harness.settings import RunSettings, SettingsError


@pytest.fixture
def both_installed(monkeypatch):
    monkeypatch.setattr(compile_cache, "_installed_version", lambda *names: "1.2.3")


def test_a_folder_setting_gives_each_framework_its_folder_and_thresholds(both_installed, tmp_path):
    found = compile_cache.environment(str(tmp_path), current={})
    machine = compile_cache.machine_fingerprint()
    assert re.fullmatch(r"[0-9a-f]{12}", machine) and machine == compile_cache.machine_fingerprint()
    assert found == {
        "JAX_COMPILATION_CACHE_DIR": str(tmp_path / machine / "jax-1.2.3"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
        "TF_XLA_FLAGS": f"--tf_xla_persistent_cache_directory={tmp_path / machine / 'tensorflow-1.2.3'}",
        "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / machine / "torch-inductor-1.2.3"),
        "CACHEDB": str(tmp_path / machine / "tinygrad-1.2.3" / "cache.db"),
    }
    assert not any(tmp_path.iterdir())  # the frameworks make the folders when they store something


def test_default_is_under_the_users_cache_folder_and_off_turns_every_cache_off(both_installed, tmp_path):
    found = compile_cache.environment("default", current={"XDG_CACHE_HOME": str(tmp_path)})
    assert found["JAX_COMPILATION_CACHE_DIR"].startswith(str(tmp_path / "convparity" / "compile"))
    # TensorFlow keeps nothing on disk unless its flag asks; the others must be told not to
    assert compile_cache.environment("off", current={}) == {"JAX_ENABLE_COMPILATION_CACHE": "false",
                                                            "TORCHINDUCTOR_FORCE_DISABLE_CACHES": "1",
                                                            "CACHELEVEL": "0"}


def test_a_users_own_cache_variables_win_over_a_folder(both_installed, tmp_path):
    mine = {"TF_XLA_FLAGS": "--tf_xla_auto_jit=2 --tf_xla_persistent_cache_directory=/mine",
            "JAX_COMPILATION_CACHE_DIR": "/mine", "CACHEDB": "/mine.db", "TORCH_COMPILE_FORCE_DISABLE_CACHES": "1"}
    assert compile_cache.environment(str(tmp_path), current=mine) == {}


def test_a_users_other_settings_are_kept_beside_the_folder(both_installed, tmp_path):
    found = compile_cache.environment(str(tmp_path), current={"TF_XLA_FLAGS": "--tf_xla_auto_jit=2",
                                                               "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "5"})
    folder = tmp_path / compile_cache.machine_fingerprint() / "tensorflow-1.2.3"
    assert found["TF_XLA_FLAGS"] == f"--tf_xla_auto_jit=2 --tf_xla_persistent_cache_directory={folder}"
    assert "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in found  # the user's 5 s stands
    assert found["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] == "0" and "JAX_COMPILATION_CACHE_DIR" in found


def test_off_wins_over_a_users_own_cache_variables(both_installed):
    mine = {"TF_XLA_FLAGS": "--tf_xla_auto_jit=2 --tf_xla_persistent_cache_directory=/mine",
            "JAX_COMPILATION_CACHE_DIR": "/mine", "TORCHINDUCTOR_CACHE_DIR": "/mine", "CACHEDB": "/mine.db"}
    assert compile_cache.environment("off", current=mine) == {
        "JAX_ENABLE_COMPILATION_CACHE": "false", "TF_XLA_FLAGS": "--tf_xla_auto_jit=2",
        "TORCHINDUCTOR_FORCE_DISABLE_CACHES": "1", "CACHELEVEL": "0"}


def test_nothing_for_frameworks_not_installed(monkeypatch, tmp_path):
    monkeypatch.setattr(compile_cache, "_installed_version", lambda *names: None)
    assert compile_cache.environment(str(tmp_path), current={}) == {}


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
    table = timing_table({"timing": timing}).set_index("pool")
    assert table.loc["jax", "tasks"] == 3 and table.loc["jax", "failures"] == 1
    assert table.loc["jax", "in workers (s)"] == 4.0 and table.loc["jax", "backend run (s)"] == 2.5
    assert table.loc["jax", "of which compile (s)"] == 2.0 and table.loc["jax", "harness (s)"] == 1.5
    assert table.loc["reference (evaluations)", "of which compile (s)"] == "n/a"
    assert table.loc["reference (evaluations)", "harness (s)"] == 0.5
    line = idle_line({"timing": timing, "seconds": 10.0, "executor": {"slots": 2}})
    assert line.startswith("10.0 s x 2 slots = 20.0 slot-seconds; workers busy 9.5 (48 %)")
    assert timing_table({}).empty and idle_line({}) == ""
