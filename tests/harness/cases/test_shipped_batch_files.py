"""oneDNN's batch files that the docs use ship with convparity (with the license) and are found by name."""

from __future__ import annotations

from pathlib import Path

from convparity.harness.cases.batch_file import SHIPPED, find_batch_file, shipped_batch_files
from convparity.harness.cli import main

README = Path(__file__).resolve().parents[3] / "README.md"


def test_every_batch_file_the_readme_names_is_shipped_with_license_and_attribution():
    named = {word for line in README.read_text().splitlines() if "--batch " in line
             for word in [line.split("--batch ", 1)[1].split()[0]] if not word.endswith(".txt") and "FILE" not in word}
    assert named and named <= set(shipped_batch_files())
    for folder in {path.parent for path in shipped_batch_files().values()}:
        assert "Apache License" in (folder / "LICENSE").read_text()
        assert "commit" in (folder / "README.md").read_text()


def test_a_bare_name_finds_the_shipped_file_and_a_file_of_yours_wins(tmp_path, monkeypatch):
    shipped = find_batch_file("harness_conv_regression_general")
    assert shipped is not None and shipped.parent.parent == SHIPPED
    monkeypatch.chdir(tmp_path)
    (tmp_path / "harness_conv_regression_general").write_text("mb1ic2iw5oc2kw3\n")
    assert find_batch_file("harness_conv_regression_general") == Path("harness_conv_regression_general")
    assert find_batch_file("elsewhere/harness_conv_regression_general") is None


def test_the_shipped_file_skips_only_the_fused_depthwise_post_op(capsys):
    assert main(["cases", "--batch", "harness_conv_regression_general"]) == 0
    lines = capsys.readouterr().out.splitlines()
    summary = next(i for i, line in enumerate(lines) if "benchdnn problems read" in line)
    assert lines[summary].endswith("163 benchdnn problems read, 159 computed as 146 cases, 4 skipped")
    assert lines[summary + 1].startswith("  skipped 4: the fused depthwise post-op (dw) is a second convolution")


def test_cases_says_when_skip_reasons_count_a_problem_twice(tmp_path, capsys):
    path = tmp_path / "twice"
    path.write_text("--attr-fpmath=bf16 --attr-dropout=0.5 ic4ih6oc4kh3 ic4ih8oc4kh3\n--reset ic4ih6oc4kh3\n")
    assert main(["cases", "--batch", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    summary = next(i for i, line in enumerate(lines) if "benchdnn problems read" in line)
    assert lines[summary].endswith("3 benchdnn problems read, 1 computed as 1 cases, 2 skipped")
    assert lines[summary + 1] == ("  (a problem skipped for several reasons counts under each: the 2 skipped "
                                  "problems add up to 4 below)")


def test_an_unknown_batch_name_is_one_line(capsys):
    assert main(["cases", "--batch", "no_such_batch"]) == 2
    assert capsys.readouterr().err.strip() == ("convparity: error: no batch file 'no_such_batch': no such file, nor "
                                               "a shipped one of that name (harness_conv_regression_general)")
