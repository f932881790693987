"""`convparity report DIR` and the end of `convparity run` write summary.csv, summary.md and report.html."""

from __future__ import annotations

import os
import subprocess
import sys

from convparity.harness.cli import main
from tests.harness.reporting.mixed import ROWS, UNAVAILABLE, VERSIONS
from tests.harness.reporting.pages import parse_page
from tests.harness.reporting.runs import write_run


def test_report_command_writes_every_report(tmp_path, capsys):
    directory = write_run(tmp_path / "mixed", ROWS, VERSIONS, unavailable=UNAVAILABLE)
    assert main(["report", str(directory)]) == 0
    assert capsys.readouterr().out.strip().endswith(f"report: {directory / 'report.html'}")
    for name in ("summary.csv", "summary.md", "report.html"):
        assert (directory / name).stat().st_size > 0
    parse_page((directory / "report.html").read_text(encoding="utf-8"))


def test_report_command_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error == f"convparity: error: {tmp_path} is not a convparity run folder (no run.json)"


def test_run_ends_with_the_html_report(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "convparity", "run", "-b", "reference", "--case", "mb1ic2ih5oc3kh3",
               "--dtype", "float32", "-o", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "CONVPARITY_PLUGINS": "reference"})
    assert result.returncode == 0, result.stderr
    page = parse_page((out / "report.html").read_text(encoding="utf-8"))
    assert [img.get("alt") for img in page.iter("img")] == ["reference heatmaps"]
    lines = (out / "summary.md").read_text().splitlines()
    header, row = ([cell.strip() for cell in line.split("|")[1:-1]] for line in (lines[2], lines[4]))
    assert header == ["backend", "dtype", "y", "dx", "dw", "db"]
    assert row[:2] == ["reference", "float32"]
    assert [cell.split()[1] for cell in row[2:]] == ["1/0/0"] * 4  # one case, bias on: every tensor passes
