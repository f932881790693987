"""index.html: one page linking every run of a job, newest first, with relative links."""

from __future__ import annotations

import json

from convparity.harness.cli import main
from tests.harness.reporting.mixed import ROWS, VERSIONS
from tests.harness.reporting.pages import find_table, parse_page, table_rows
from tests.harness.reporting.runs import write_run


def test_one_page_links_both_runs_of_a_job(tmp_path, capsys):
    reports = tmp_path / "reports"
    first = write_run(reports / "20260102-030405-default", ROWS, VERSIONS)
    second = write_run(reports / "20260102-031000-smoke", ROWS.replace("alpha", "beta"), {"beta": "2.5"})
    record = json.loads((second / "run.json").read_text())
    (second / "run.json").write_text(json.dumps({**record, "started": "2026-01-02T03:10:00+00:00"}))
    assert main(["report", str(first)]) == 0
    (reports / "not-a-run").mkdir()
    capsys.readouterr()
    assert main(["index", str(reports)]) == 0
    assert capsys.readouterr().out.strip() == f"index: {reports / 'index.html'}"
    page = parse_page((reports / "index.html").read_text(encoding="utf-8"))
    rows = table_rows(find_table(page, "run"))
    assert [row[0] for row in rows] == ["20260102-031000-smoke", "20260102-030405-default"]  # newest first
    links = {a.text: a.get("href") for a in page.iter("a")}
    assert links["20260102-030405-default"] == "20260102-030405-default/report.html"
    assert "20260102-031000-smoke" not in links  # its reports are not written yet: named, not linked
    assert rows[1][8].startswith("15 pass, 3 fail, 1 xfail")
    assert rows[0][8] == "no reports yet (convparity report DIR)"


def test_no_run_is_one_line(tmp_path, capsys):
    assert main(["index", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"convparity: error: no run folder (a folder with run.json) in or under {tmp_path}")
