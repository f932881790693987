"""Earlier findings are replayed first, as Hypothesis replays its example database: one still failing is
reported as seen before (and not hunted again: its way of failing is not shrunk anew), one whose minimal
case passes now is reported as fixed; a folder of search folders works as a database."""

from __future__ import annotations

import io

import pytest

from convparity.harness.api import search
from convparity.harness.files import RunFolderError
from convparity.harness.search.findings import read_findings, summary_text
from tests.harness.search.inline import InlineExecutor
from tests.harness.search.planted_backends import FIXED

BACKENDS = ["planted-zero-db", "planted-groups"]


def test_earlier_findings_are_replayed_first(planted_plugins, tmp_path, monkeypatch):
    first = search(BACKENDS, budget=20, seed=1, out=tmp_path / "db" / "first", executor=InlineExecutor())
    assert {f.backend: f.status for f in first.findings} == {"planted-zero-db": "new", "planted-groups": "new"}

    monkeypatch.setenv(FIXED, "planted-groups")  # a release fixed the groups bug
    log = io.StringIO()
    second = search(BACKENDS, budget=20, seed=2, out=tmp_path / "second", executor=InlineExecutor(),
                    known_findings=[tmp_path / "db"], log=log)  # a folder of search folders
    found = {f.backend: f for f in second.findings}
    assert found["planted-zero-db"].status == "seen before"
    assert found["planted-zero-db"].earlier == f"{tmp_path / 'db' / 'first'} planted-zero-db-1"
    assert "shrinking: planted-zero-db" not in log.getvalue()  # known: not hunted again
    assert f"seen before, still fails: {tmp_path / 'db' / 'first'} planted-zero-db-1" in log.getvalue()
    fixed = found["planted-groups"]
    assert (fixed.status, fixed.rule, fixed.repro_script) == ("fixed", "groups > 1", "")
    assert fixed.rule_check == "fixed: its minimal case is pass now"
    assert second.exit_code() == 1  # a bug is still there
    summary = summary_text(second.findings, second.path)
    assert "earlier findings: 1 still failing, 1 fixed" in summary and "FIXED" in summary
    table = read_findings(second.path)
    assert sorted(table["status"]) == ["fixed", "seen before"]
    assert "Earlier findings: 1 still failing, 1 fixed." in (second.path / "findings.md").read_text()

    monkeypatch.setenv(FIXED, "planted-groups,planted-zero-db")  # both fixed: nothing left, exit 0
    third = search(BACKENDS, budget=10, seed=3, out=tmp_path / "third", executor=InlineExecutor(),
                   known_findings=[tmp_path / "db" / "first"])
    assert sorted(f.status for f in third.findings) == ["fixed", "fixed"] and third.exit_code() == 0


def test_a_folder_without_findings_is_refused_in_one_line(planted_plugins, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunFolderError, match="--known-findings .*empty: no findings.csv there nor in its folders"):
        search(["planted-zero-db"], budget=2, out=tmp_path / "hunt", executor=InlineExecutor(),
               known_findings=[tmp_path / "empty"])
    assert not (tmp_path / "hunt").exists()
