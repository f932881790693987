"""Shards: every case in exactly one shard, balanced by expected cost; shards merged equal an unsharded
run; mixtures, gaps and repeats are refused; an interrupted shard resumes as the same shard."""

from __future__ import annotations

import json
import shutil

import pytest

from convparity import sweep
from convparity.harness.api import resume
from convparity.harness.cases.builtin_grids import default, resnet50, smoke
from convparity.harness.cases.selection import expand
from convparity.harness.cli import main
from convparity.harness.results import KEY, RESULTS_FILE, read_results
from convparity.harness.running import run_folder, run_logs
from convparity.harness.running.merge import MergeError, merge
from convparity.harness.running.shards import Shard, ShardError, assign, shard_cases, shard_costs
from tests.harness.running.test_sweep import DESCRIPTORS

BACKENDS = ("jax", "keras", "reference", "tensorflow", "torch")
OPTIONS = dict(backends=["reference", "test-raise", "test-wrong-shape", "test-missing"], cases=DESCRIPTORS,
               grids=["edge"], bias="both", dtypes=["float64", "float32"], jobs=1)


def rows(path):
    frame = read_results(path).drop(columns="seconds").sort_values(list(KEY)).reset_index(drop=True)
    return frame.astype(str).to_dict("records")


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_every_case_falls_to_exactly_one_shard_and_shards_are_balanced(count):
    cases = list(expand(default(), ("float64", "float32", "float16")))
    keys = [(c.spec.descriptor, c.spec.bias, c.spec.dtype) for c in cases]
    parts = [list(shard_cases(iter(cases), Shard(index, count), BACKENDS)) for index in range(1, count + 1)]
    got = [(c.spec.descriptor, c.spec.bias, c.spec.dtype) for part in parts for c in part]
    assert sorted(got) == sorted(keys) and len(set(got)) == len(keys)
    for part in parts:  # each shard keeps the stream's order
        positions = [keys.index((c.spec.descriptor, c.spec.bias, c.spec.dtype)) for c in part]
        assert positions == sorted(positions)
    costs = shard_costs(BACKENDS)
    loads = [sum(costs.expected_item_seconds(c.spec, BACKENDS) for c in part) for part in parts]
    largest = max(costs.expected_item_seconds(c.spec, BACKENDS) for c in cases)
    assert max(loads) - min(loads) <= largest + 1e-9  # list scheduling: within one item of each other
    # the same stream gives the same assignment again
    assert [i for i, _ in assign(iter(cases), count, BACKENDS)] == [i for i, _ in assign(iter(cases), count, BACKENDS)]


def test_shards_balance_expected_time_not_the_number_of_cases():
    # ResNet-50's layers cost up to ~60x a smoke case: the shard that takes them takes fewer cases
    cases = list(expand([*resnet50(), *smoke()], ("float32",)))
    assigned = list(assign(iter(cases), 2, ("torch",)))
    counts = [sum(1 for index, _ in assigned if index == k) for k in (1, 2)]
    costs = shard_costs(("torch",))
    loads = [sum(costs.expected_item_seconds(c.spec, ("torch",)) for index, c in assigned if index == k)
             for k in (1, 2)]
    assert abs(loads[0] - loads[1]) <= max(costs.expected_item_seconds(c.spec, ("torch",)) for c in cases)
    assert max(counts) >= 2 * min(counts)


@pytest.mark.parametrize("text, message", [("0/3", "between 1 and N"), ("4/3", "between 1 and N"),
                                           ("1-3", "K/N"), ("a/b", "K/N"), ("", "K/N")])
def test_bad_shards_are_refused_with_the_option_named(text, message):
    with pytest.raises(ShardError, match=message):
        Shard.parse(text)


def test_merged_shards_equal_an_unsharded_run(faulty_plugins, tmp_path, capsys):
    whole = sweep(**OPTIONS, out=tmp_path / "whole")
    shards = [sweep(**OPTIONS, out=tmp_path / f"shard{k}", shard=Shard(k, 3)) for k in (1, 2, 3)]
    sizes = [run_logs.count_cases(s.path) for s in shards]
    assert sum(sizes) == run_logs.count_cases(whole.path) and min(sizes) > 0
    # through the command line, shards given in any order
    assert main(["merge", str(tmp_path / "merged"), *(str(s.path) for s in reversed(shards))]) == 0
    assert "merged 3 shards" in capsys.readouterr().out
    merged = tmp_path / "merged"
    assert rows(merged) == rows(whole.path)
    record = run_folder.read_record(merged)
    assert record.status == "finished" and record.shard is None and record.kind == "merge"
    assert record.merged_from == [str(s.path) for s in shards]
    assert record.timing["reference"]["tasks"] == sum(
        run_folder.read_record(s.path).timing["reference"]["tasks"] for s in shards)
    assert len(whole.summary)  # writes the unsharded run's reports
    assert "Time per backend" in (merged / "report.html").read_text()
    assert (merged / "summary.csv").read_text() == (whole.path / "summary.csv").read_text()
    with pytest.raises(run_folder.RunFolderError, match="merge of shards"):
        resume(merged)


@pytest.fixture
def two_shards(faulty_plugins, tmp_path):
    options = dict(OPTIONS, grids=[], dtypes=["float32"])
    return [sweep(**options, out=tmp_path / f"shard{k}", shard=Shard(k, 2)).path for k in (1, 2)]


def edit_metadata(path, **changes):
    """Edit run.json by hand, as a user would."""
    record = json.loads((path / run_folder.RUN_FILE).read_text())
    record.update(changes)
    (path / run_folder.RUN_FILE).write_text(json.dumps(record))


def test_merge_refuses_mixtures_gaps_repeats_and_unfinished_shards(two_shards, tmp_path):
    first, second = two_shards
    with pytest.raises(MergeError, match="shard 2/2 missing"):
        merge(tmp_path / "m1", [first])
    with pytest.raises(MergeError, match="shard 1/2 is given twice"):
        merge(tmp_path / "m2", [first, first, second])
    assert not (tmp_path / "m1").exists() and not (tmp_path / "m2").exists()

    other = tmp_path / "other"
    shutil.copytree(second, other)
    settings = run_folder.read_record(other).settings.to_json()
    edit_metadata(other, settings={**settings, "seed": 7})
    with pytest.raises(MergeError, match="setting seed differs"):
        merge(tmp_path / "m3", [first, other])
    edit_metadata(other, settings=settings, backend_versions={"reference": "convparity 9.9"})
    with pytest.raises(MergeError, match="backend_versions differs"):
        merge(tmp_path / "m4", [first, other])
    edit_metadata(other, backend_versions=run_folder.read_record(second).backend_versions,
                  shard={"index": 2, "count": 3})
    with pytest.raises(MergeError, match="differently split"):
        merge(tmp_path / "m5", [first, other])
    edit_metadata(other, shard={"index": 2, "count": 2}, status="interrupted")
    with pytest.raises(MergeError, match=f"not finished: continue it with: convparity run --resume {other}"):
        merge(tmp_path / "m6", [first, other])
    edit_metadata(other, status="finished", shard=None)
    with pytest.raises(MergeError, match="is not a shard"):
        merge(tmp_path / "m7", [first, other])
    with pytest.raises(MergeError, match="must be a new folder"):
        merge(first, [first, second])
    # a selection that differs: a mixture too (the command line says so in one line, exit 2)
    edit_metadata(other, shard={"index": 2, "count": 2},
                  selection={**run_folder.read_record(other).selection.to_json(), "bias": "on"})
    assert main(["merge", str(tmp_path / "m8"), str(first), str(other)]) == 2


def test_an_interrupted_shard_resumes_as_the_same_shard(two_shards):
    first = two_shards[0]
    expected = rows(first)
    results = first / RESULTS_FILE
    lines = results.read_text().splitlines(keepends=True)
    results.write_text("".join(lines[: len(lines) // 2]))  # as if killed half way
    edit_metadata(first, status="interrupted")
    run = resume(first)
    assert rows(first) == expected and run.resumed_items == run_logs.count_cases(first)
    metadata = json.loads((first / run_folder.RUN_FILE).read_text())
    assert metadata["shard"] == {"index": 1, "count": 2} and metadata["status"] == "finished"


def test_resume_refuses_a_new_shard_option(tmp_path, capsys):
    assert main(["run", "--resume", str(tmp_path), "--shard", "1/2"]) == 2
    assert "--shard would be ignored" in capsys.readouterr().err
