"""Right blame under every fault (issue 21, the running side): what fails before the backend's own call is never the
backend's row; a resume checks that its backends are the same; merges refuse gaps and repeats; every wait is bounded;
every bad input is one line, exit 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from convparity.harness.cli import main
from convparity.harness.results import RESULTS_FILE, read_results
from convparity.harness.running import run_folder, run_logs
from convparity.harness.running.shards import Shard
from convparity.plugin import hookimpl
from tests.harness.running import faulty_backends
from tests.stub_backend import StubBackend

SMOKE = ["-b", "reference", "-g", "smoke", "--dtype", "float32"]


def one_line(capsys, fragment: str) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convparity: "), lines
    assert fragment in lines[0], lines[0]
    return lines[0]


def edit_record(path, **changes) -> None:
    record = json.loads((path / "run.json").read_text())
    record.update(changes)
    (path / "run.json").write_text(json.dumps(record))


@pytest.fixture
def interrupted_run(tmp_path, monkeypatch):
    """A run of reference and test-slow, cut after half its rows and marked interrupted."""
    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")
    monkeypatch.setenv("CONVPARITY_EXTRA_PLUGINS", faulty_backends.__name__)
    out = tmp_path / "run"
    assert main(["run", *SMOKE, "-b", "test-slow", "-o", str(out)]) == 0
    lines = (out / RESULTS_FILE).read_text().splitlines(keepends=True)
    (out / RESULTS_FILE).write_text("".join(lines[: len(lines) // 2]))
    edit_record(out, status="interrupted")
    return out


def test_a_resume_whose_backend_is_no_longer_registered_is_refused(interrupted_run, monkeypatch, capsys):
    before = (interrupted_run / RESULTS_FILE).read_text()
    monkeypatch.delenv("CONVPARITY_EXTRA_PLUGINS")  # test-slow's plugin is gone
    assert main(["run", "--resume", str(interrupted_run)]) == 2
    one_line(capsys, "ran backend 'test-slow', which is not registered here")
    assert (interrupted_run / RESULTS_FILE).read_text() == before  # no error row charged to it


def test_a_resume_at_another_backend_version_is_refused_unless_a_new_segment_is_asked(interrupted_run, capsys):
    edit_record(interrupted_run, backend_versions={"reference": "convparity 0.0.1 (numpy 1.0)",
                                                   "test-slow": "faulty 1.0"})
    rows_before = len(read_results(interrupted_run))
    assert main(["run", "--resume", str(interrupted_run)]) == 2
    line = one_line(capsys, "ran it at convparity 0.0.1 (numpy 1.0): its rows would mix two versions")
    assert f"convparity run --resume {interrupted_run} --new-segment" in line
    assert len(read_results(interrupted_run)) <= rows_before  # no row added (a case cut half way is dropped)
    assert main(["run", "--resume", str(interrupted_run), "--new-segment"]) == 0
    record = run_folder.read_record(interrupted_run)
    (segment,) = record.segments
    assert segment.note.startswith("backend versions changed: reference convparity 0.0.1 (numpy 1.0) -> convparity ")
    assert record.status == "finished" and not read_results(interrupted_run)["status"].ne("pass").any()


@pytest.mark.parametrize("problem", ["a file", "read-only"])
def test_an_unusable_compile_cache_is_one_line_and_leaves_no_folder(tmp_path, monkeypatch, capsys, tmpfs, problem):
    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")
    if problem == "a file":
        cache = tmp_path / "cache"
        cache.write_text("not a folder")
    else:
        cache = tmpfs(1 << 20, read_only=True) / "cache"
    out = tmp_path / "run"
    assert main(["run", *SMOKE, "--compile-cache", str(cache), "-o", str(out)]) == 2
    one_line(capsys, "--compile-cache")
    assert not out.exists()  # nothing ran: the same -o can be given again


def test_inputs_too_large_for_this_machine_are_unsupported_here_not_the_backend_s_failure(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")
    out = tmp_path / "run"
    # x alone is 100000 x 64 x 56 x 56 float64 values: 150 GiB to draw
    assert main(["run", "-b", "reference", "--case", "mb100000ic64ih56oc64oh56kh3ph1", "--dtype", "float32",
                 "-o", str(out)]) == 0
    rows = read_results(out)
    assert set(rows["status"]) == {"unsupported"}
    # x and dy drawn in float64 (16 bytes a value with the cast): about 598 GiB
    assert rows["message"].str.fullmatch(r"this machine cannot hold the case: its inputs need about 598 GiB to draw, "
                                         r"more than the [0-9.]+ GiB available here").all()


class BadReason(StubBackend):
    def supports(self, spec):
        return 42


class SlowBackend(StubBackend):
    def availability(self):
        time.sleep(3600)


class RaisingBackend(StubBackend):
    def availability(self):
        raise RuntimeError("the driver is gone")


@hookimpl
def convparity_register_backends(register):
    register(BadReason("test-bad-reason"))
    register(SlowBackend("test-asleep"))
    register(RaisingBackend("test-raising"))


def test_supports_returning_no_reason_is_the_backends_error(monkeypatch):
    import convparity
    from convparity.harness.cases.spec import ConvSpec

    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")
    monkeypatch.setenv("CONVPARITY_EXTRA_PLUGINS", __name__)
    spec = ConvSpec(batch=1, in_channels=1, out_channels=1, input_size=(4,), kernel_size=(2,))
    _, rows = convparity.evaluate_case("test-bad-reason", spec)
    assert {row.status for row in rows} == {"error"}
    assert "supports() returned 42: it must return None or the reason it cannot run" in rows[0].message


@pytest.fixture
def shards(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")
    import convparity

    return [convparity.sweep(backends=["reference"], grids=["smoke"], dtypes=["float32"],
                             out=tmp_path / f"shard{k}", shard=Shard(k, 2)).path for k in (1, 2)]


def test_merge_refuses_a_shard_with_rows_cut_naming_it_and_both_counts(shards, tmp_path, capsys):
    path = shards[1] / RESULTS_FILE
    lines = path.read_text().splitlines(keepends=True)
    cut = min(57, len(lines) // 2)
    path.write_text("".join(lines[:-cut]))
    assert main(["merge", str(tmp_path / "merged"), *map(str, shards)]) == 2
    line = one_line(capsys, f"{shards[1]} (shard 2/2) is incomplete: results.csv has {len(lines) - 1 - cut} rows")
    assert f"asks for {len(lines) - 1}" in line and not (tmp_path / "merged").exists()
    assert not list(tmp_path.glob(".merged.merging-*"))


def test_merge_refuses_repeated_rows(shards, tmp_path, capsys):
    path = shards[0] / RESULTS_FILE
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines + lines[1:11]))
    assert main(["merge", str(tmp_path / "merged"), *map(str, shards)]) == 2
    one_line(capsys, f"{shards[0]} (shard 1/2) holds 10 repeated row(s)")


def test_a_damaged_shard_is_named_as_the_shard_s_file(shards, tmp_path, capsys):
    path = shards[0] / RESULTS_FILE
    path.write_text(path.read_text() + 'g1mb2,"broken\n')
    assert main(["merge", str(tmp_path / "merged"), *map(str, shards)]) == 2
    one_line(capsys, f"{path}")
    assert not (tmp_path / "merged").exists()


def test_merging_a_shard_still_running_says_so(shards, tmp_path, capsys):
    edit_record(shards[1], status="running")
    from convparity.harness.running.folder_lock import lock

    with lock(shards[1]):
        assert main(["merge", str(tmp_path / "merged"), *map(str, shards)]) == 2
    one_line(capsys, "is still being written: merge the shards once it has finished")


@pytest.mark.parametrize(("field", "value", "fragment"), [
    ("seconds", "ten", "seconds must be a number of seconds >= 0, got 'ten'"),
    ("timing", [1, 2], "timing must be per pool, an object of numbers, got [1, 2]"),
    ("max_cases", "many", "max_cases must be a positive integer or null, got 'many'"),
    ("schema_version", 99, "was written by a newer convparity (record version 99"),
])
def test_hand_edited_records_are_one_line_at_resume_report_and_merge(shards, tmp_path, capsys, field, value,
                                                                     fragment):
    edit_record(shards[0], **{field: value, "status": "interrupted"})
    for command in (["run", "--resume", str(shards[0])], ["report", str(shards[0])],
                    ["merge", str(tmp_path / "merged"), *map(str, shards)]):
        assert main(command) == 2
        one_line(capsys, fragment)
    assert json.loads((shards[0] / "run.json").read_text())["status"] == "interrupted"  # left as it was


@pytest.mark.parametrize("count", ["1000000000", "99999999999999999999"])
def test_a_huge_shard_count_runs_at_once(tmp_path, monkeypatch, count):
    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")
    started = time.perf_counter()
    assert main(["run", *SMOKE, "--shard", f"1/{count}", "-o", str(tmp_path / "run")]) == 0
    assert run_logs.count_cases(tmp_path / "run") == 1  # one case in shard 1 of more shards than cases
    assert time.perf_counter() - started < 120  # a bound on a hang, not a speed target


@pytest.mark.parametrize("kind", ["fifo", "symlink loop", "folder"])
def test_batch_files_that_are_no_regular_file_are_one_line(tmp_path, capsys, kind):
    path = tmp_path / "layers.txt"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink loop":
        (tmp_path / "other").symlink_to(path)
        path.symlink_to(tmp_path / "other")
    else:
        path.mkdir()
    assert main(["cases", "--batch", str(path)]) == 2
    one_line(capsys, str(path))


def test_a_huge_name_in_a_batch_file_gives_a_short_message(tmp_path, capsys):
    path = tmp_path / "layers.txt"
    for text in ('mb2ic3ih5oc4kh3n"' + "A" * 10000 + '\u202e"\n', "mb2ic3ih5oc4kh3" + "Z" * 10000 + "\n"):
        path.write_text(text)
        assert main(["cases", "--batch", str(path)]) == 2
        assert len(one_line(capsys, "characters]")) < 600


def test_cases_csv_is_protected_against_spreadsheet_formulas(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")
    out = tmp_path / "run"
    assert main(["run", "-b", "reference", "--case", 'mb1ic1iw4oc1kw2n"=HYPERLINK(1)"', "--dtype", "float32",
                 "-o", str(out)]) == 0
    assert ",'=HYPERLINK(1)," in (out / run_logs.CASES_FILE).read_text()
    assert [case.name for case in run_logs.read_cases(out)] == ["=HYPERLINK(1)"]


@pytest.mark.parametrize(("arguments", "fragment"), [
    (["a" * 300], "is 300 characters long: at most 60"),
    (["demo", "--dir", "INSIDE"], "is inside convparity's own template folder"),
])
def test_new_backend_refuses_in_one_line(capsys, arguments, fragment):
    from convparity.harness.plugin_template.render import TEMPLATE

    arguments = [str(TEMPLATE / "project" / "x") if a == "INSIDE" else a for a in arguments]
    assert main(["new-backend", *arguments]) == 2
    one_line(capsys, fragment)
    assert not (TEMPLATE / "project" / "x").exists()


def test_new_backend_on_a_full_disk_leaves_no_half_package(tmpfs, capsys):
    point = tmpfs(8 << 10)
    assert main(["new-backend", "demo", "--dir", str(point / "pkg")]) == 2
    one_line(capsys, "cannot write the package")
    assert not (point / "pkg").exists()


@pytest.mark.parametrize(("command", "fragment"), [
    (["explain", "mb1ic1iw4oc1kw2", "-b", "test-asleep", "--startup-timeout", "2"], "did not start within 2 s"),
    (["explain", "mb1ic1iw4oc1kw2", "-b", "test-raising"], "RuntimeError: the driver is gone"),
])
def test_explain_is_bounded_and_one_line(monkeypatch, capsys, command, fragment):
    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")
    monkeypatch.setenv("CONVPARITY_EXTRA_PLUGINS", __name__)
    started = time.perf_counter()
    assert main(command) == 2
    one_line(capsys, fragment)
    assert time.perf_counter() - started < 120


def test_backends_lists_a_backend_that_hangs_as_broken_within_its_timeout(monkeypatch, capsys):
    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")
    monkeypatch.setenv("CONVPARITY_EXTRA_PLUGINS", __name__)
    assert main(["backends", "--timeout", "3"]) == 0
    listed = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "broken: describing it ended in timeout" in listed["test-asleep"]
    assert "RuntimeError: the driver is gone" in listed["test-raising"]
    assert listed["reference"].split()[1] == "convparity"


def test_an_interrupt_while_the_command_is_still_being_imported_is_one_line(tmp_path):
    """SIGINT at once: whatever the command was doing (importing itself, or later), one line and 130."""
    for delay in (0.0, 0.05, 0.15, 0.3):
        process = subprocess.Popen([sys.executable, "-m", "convparity", "grids"], stderr=subprocess.PIPE,
                                   stdout=subprocess.DEVNULL, text=True, cwd=tmp_path)
        time.sleep(delay)
        process.send_signal(2)
        _, stderr = process.communicate(timeout=60)
        if "init_import_site" in stderr:  # CPython's own start-up (site) took the signal: no convparity code ran yet
            continue
        assert "Traceback" not in stderr, (delay, stderr)
        # 130 with one line; -2 when the signal came before Python itself was up (nothing printed); 0 when done
        assert process.returncode in (0, 130, -2), (delay, process.returncode, stderr)
        assert process.returncode != 130 or stderr.strip().splitlines() == ["convparity: interrupted"]


def test_a_run_into_a_folder_left_by_a_refused_start_works(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")
    out = tmp_path / "run"
    assert main(["run", *SMOKE, "--compile-cache", str(shutil.which("sh")), "-o", str(out)]) == 2
    capsys.readouterr()
    assert main(["run", *SMOKE, "-o", str(out)]) == 0
