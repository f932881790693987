"""Compile caches on the real frameworks: a sweep stores what it compiled, a rerun of the same cases in
the opposite order loads it (entries are keyed by the case, not by what the process ran before), and
cached, uncached and cache-loading runs write the same rows (all but `seconds`)."""

from __future__ import annotations

import importlib.util

import pytest

from convparity import format_descriptor, sweep
from convparity.harness.cases.builtin_grids import smoke
from convparity.harness.results import KEY, read_results
from convparity.harness.running import run_folder

FRAMEWORK = {"jax": "jax", "tensorflow": "tensorflow", "keras": "keras"}


def rows(path):
    frame = read_results(path).drop(columns="seconds").sort_values(list(KEY)).reset_index(drop=True)
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
