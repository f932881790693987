"""`convparity search` with real workers (-j 2) and `convparity triage` of its folder, through the CLI."""

from __future__ import annotations

import json

import pytest

from convparity.harness.cli import main
from convparity.harness.results import read_results
from convparity.harness.search.findings import read_findings


def test_search_with_workers_then_triage(planted_plugins, tmp_path, capsys):
    out = tmp_path / "hunt"
    code = main(["search", "-b", "planted-zero-db", "-b", "reference", "--budget", "12", "-j", "2", "--seed", "1",
                 "--dtype", "float32", "-o", str(out)])
    printed = capsys.readouterr()
    assert code == 1, printed.err
    assert "NEW   db fail: bias  [g1mb1ic1iw1oc1ow1kw1sw1pw0dw0 float32 bias on]" in printed.out
    assert "convparity search: shrinking: planted-zero-db" in printed.err
    (finding,) = read_findings(out).itertuples()
    assert (finding.rule, finding.local_minimum, finding.known) == ("bias", "yes", False)
    metadata = json.loads((out / "run.json").read_text())
    assert metadata["status"] == "finished" and metadata["settings"]["jobs"] == 2
    search = metadata["search"]
    assert search["budget"] == 12 and search["findings"] == 1 and search["first_finding_seconds"] > 0
    assert search["evaluations"]["explore"] == 24  # 12 cases on two backends
    results = read_results(out)
    assert set(results["backend"]) == {"planted-zero-db", "reference"}
    assert set(results[results["backend"] == "reference"]["status"]) == {"pass"}
    assert (out / "workers.log").exists() and (out / "report.html").exists()

    # a search's findings are its own, checked on fresh cases: triage refuses to replace them
    before = (out / "findings.csv").read_text()
    assert main(["triage", str(out)]) == 2
    assert "holds a search" in capsys.readouterr().err and (out / "findings.csv").read_text() == before


@pytest.mark.parametrize("arguments, message", [
    (["--budget", "3", "--minutes", "1"], "give --budget or --minutes, not both"),
    (["--budget", "0"], "argument --budget: must be a whole number >= 1"),
    (["--dtype", "float8"], "argument --dtype: must be one of float64"),
])
def test_bad_search_arguments_are_one_line(planted_plugins, tmp_path, capsys, arguments, message):
    assert main(["search", "-b", "reference", "-o", str(tmp_path / "x"), *arguments]) == 2
    assert message in capsys.readouterr().err


def test_triage_of_a_folder_that_is_no_run(tmp_path, capsys):
    assert main(["triage", str(tmp_path)]) == 2
    assert "is not a convparity run folder" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
