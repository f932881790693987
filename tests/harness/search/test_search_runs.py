"""A search's folder: interrupted at any stage it keeps what it has and says how to go on; continued (with
--resume, or by the same command into the same -o) it ends with the very findings of an uninterrupted
search; a rerun into a folder of another search or of a sweep is refused in one line; a full disk while
findings are written leaves every file whole or absent and run.json not "running"; only files that were
written are printed."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from convparity.harness import files
from convparity.harness.api import resume_search, search
from convparity.harness.cli import main
from convparity.harness.files import RunFolderError
from convparity.harness.search.search import SearchInterrupted
from tests.harness.search.inline import InlineExecutor

BACKENDS = ["planted-groups-dilation", "planted-two-dx", "planted-zero-db"]
BUDGET = 24


def hunt(out, **kwargs):
    return search(BACKENDS, budget=BUDGET, seed=5, out=out, **kwargs)


def essentials(result):
    """What a search found, as a comparable list (the group name, status, rule, minimal case and more)."""
    return [(f.group, f.status, f.kind, f.tensors, f.rule, f.rule_check, f.minimal_case, f.minimal_dtype,
             f.minimal_bias, f.minimal_inputs, f.cases_seen, f.reruns) for f in result.findings]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        from tests.harness.search import planted_backends

        patch.setenv("CONVPARITY_EXTRA_PLUGINS", planted_backends.__name__)
        patch.setenv("CONVPARITY_PLUGINS", "reference")
        result = hunt(tmp_path_factory.mktemp("whole") / "run", executor=InlineExecutor())
    assert len(result.findings) == 4  # one, two and one causes
    return result


# tasks ended before the Ctrl-C: while exploring, while shrinking the first failure, while checking the rules
@pytest.mark.parametrize("stage, after", [("probe", 2), ("explore", 30), ("shrink", 100), ("check", 850)])
def test_an_interrupted_search_continued_finds_what_an_uninterrupted_one_does(planted_plugins, tmp_path,
                                                                           uninterrupted, stage, after):
    out = tmp_path / "hunt"
    with pytest.raises(SearchInterrupted) as caught:
        hunt(out, executor=InlineExecutor(interrupt_after=after))
    message = str(caught.value)
    if stage == "probe":  # before any case ran: nothing is kept, and the folder is free again
        assert message == f"interrupted before any case ran; {out} was not kept" and not out.exists()
        assert essentials(hunt(out, executor=InlineExecutor())) == essentials(uninterrupted)
        return
    assert f"every evaluation is kept in {out / 'results.csv'}" in message
    assert f"continue with: convparity search --resume {out}" in message
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    if stage != "explore":  # what it had, grouped, written before it stopped
        assert "the findings so far are in" in message
        assert "not checked: the search was interrupted" in (out / "findings.md").read_text()
    # the same command into the same folder continues it (as --resume does)
    again = hunt(out, executor=InlineExecutor())
    assert again.resumed and essentials(again) == essentials(uninterrupted)
    assert json.loads((out / "run.json").read_text())["status"] == "finished"


def test_resume_search_and_a_finished_search_run_again(planted_plugins, tmp_path, uninterrupted):
    out = tmp_path / "hunt"
    with pytest.raises(SearchInterrupted):
        hunt(out, executor=InlineExecutor(interrupt_after=300))
    assert essentials(resume_search(out, executor=InlineExecutor())) == essentials(uninterrupted)
    rows = (out / "results.csv").read_text()
    finished = hunt(out, executor=InlineExecutor())  # finished: its findings, nothing run again
    assert finished.resumed and finished.counts.total == 0 and essentials(finished) == essentials(uninterrupted)
    assert (out / "results.csv").read_text() == rows


def test_another_search_or_a_sweep_in_the_same_folder_is_refused_in_one_line(planted_plugins, tmp_path):
    out = tmp_path / "hunt"
    hunt(out, executor=InlineExecutor())
    with pytest.raises(RunFolderError, match=r"holds another search \(budget 24 there, 30 now\): continue it with: "
                                             rf"convparity search --resume {out}; or pick a new -o"):
        search(BACKENDS, budget=30, seed=5, out=out, executor=InlineExecutor())
    from convparity.harness.api import sweep

    run = sweep(["reference"], cases=["mb1ic1iw3oc1kw2"], out=tmp_path / "sweep")
    with pytest.raises(RunFolderError, match="holds a sweep, not a search: a run never overwrites another; pick a "
                                             "new -o") as caught:
        search(["reference"], budget=2, out=run.path, executor=InlineExecutor())
    assert "--resume" not in str(caught.value)


def test_a_full_disk_while_findings_are_written_leaves_whole_files_and_no_running_run(planted_plugins, tmp_path,
                                                                                       monkeypatch):
    """The disk fills up while the second repro script is written: no half script, no findings.csv naming
    scripts that are not there, run.json says interrupted, one line says what happened and how to go on."""
    real_open = open
    written = []

    def full_disk_open(path, *args, **kwargs):
        handle = real_open(path, *args, **kwargs)
        if ".py." in Path(path).name:  # a repro script's temporary file (harness.files.atomic_write)
            written.append(path)
            if len(written) == 2:
                handle.close()
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return handle

    monkeypatch.setattr(files, "open", full_disk_open, raising=False)
    out = tmp_path / "hunt"
    with pytest.raises(RunFolderError) as caught:
        hunt(out, executor=InlineExecutor())
    message = str(caught.value)
    assert "No space left on device" in message and f"convparity search --resume {out}" in message
    assert len(message.splitlines()) == 1
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    scripts = sorted((out / "repro").glob("*.py"))
    assert len(scripts) == 1 and not list((out / "repro").glob(".*tmp"))
    compile(scripts[0].read_text(), str(scripts[0]), "exec")  # whole
    assert not (out / "findings.csv").exists() and not (out / "findings.md").exists()
    monkeypatch.undo()
    assert len(resume_search(out, executor=InlineExecutor()).findings) == 4  # once the disk has room


def test_the_cli_resumes_and_prints_only_what_was_written(planted_plugins, tmp_path, capsys, monkeypatch):
    out = tmp_path / "hunt"
    assert main(["search", "-b", "reference", "--budget", "3", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "0 new finding(s)" in printed and "scripts:" not in printed and f"findings: {out / 'findings.md'}" in printed
    assert not (out / "repro").exists()
    assert main(["search", "--resume", str(out)]) == 0  # a finished search, continued: nothing more to do
    assert "0 new finding(s)" in capsys.readouterr().out
    assert main(["search", "--resume", str(out), "--budget", "4"]) == 2
    assert "--budget would be ignored" in capsys.readouterr().err
