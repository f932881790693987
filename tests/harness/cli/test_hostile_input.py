"""Every hostile input is answered with one line and exit 2 (or a row status in a sweep), nothing lost;
verdicts cannot be gamed; names are inert in every file the reports write."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ElementTree

import pytest

from convparity.harness.backends.contract import BackendContractError, check_backend
from convparity.harness.backends.manager import PluginManager
from convparity.harness.cli import main
from convparity.harness.results import RESULTS_FILE, read_results
from convparity.harness.running import run_folder, run_logs
from tests.harness.running import faulty_backends
from tests.stub_backend import StubBackend

TINY = "mb1ic2iw5oc2kw3"


def one_line(capsys, fragment: str) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convparity: error: "), lines
    assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def finished_run(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "-b", "reference", "--case", TINY, "--case", "mb1ic2iw6oc2kw3", "--dtype", "float32",
                 "-o", str(out)]) == 0
    return out


@pytest.mark.parametrize(("suffix", "what"), [(".txt", "batch file"), (".toml", "grid file")])
def test_files_that_are_not_utf8(tmp_path, capsys, suffix, what):
    path = tmp_path / f"latin1{suffix}"
    path.write_bytes("# caf\xe9\nmb1ic2iw5oc2kw3\n".encode("latin-1"))
    assert main(["run", "-b", "reference", "-g", str(path), "-o", str(tmp_path / "r")]) == 2
    one_line(capsys, f"{what} {path} is not UTF-8 text: byte 0xe9 at offset 5")


@pytest.mark.parametrize(("descriptor", "fragment"), [
    ("ic99999999999999999999ih5oc1kh3", "beyond int64"),
    ("ic" + "9" * 5000 + "ih5oc1kh3", "5000-digit value"),
])
def test_sizes_no_spec_can_have(tmp_path, capsys, descriptor, fragment):
    out = tmp_path / "r"
    assert main(["run", "-b", "reference", "--case", descriptor, "-o", str(out)]) == 2
    assert len(one_line(capsys, fragment)) < 400  # a 5000-digit value is not printed back whole
    assert not out.exists()


@pytest.mark.parametrize("descriptor", ["ic2147483648ih5oc1kh3", "mb100000ic100000ih10000oc1kh3"])
def test_sizes_beyond_this_machine_run_as_unsupported_saying_what_they_need(tmp_path, descriptor):
    # benchdnn reads int64 sizes (shapes_large_conv): the spec is valid, this machine cannot draw its inputs
    out = tmp_path / "r"
    assert main(["run", "-b", "reference", "--case", descriptor, "--dtype", "float32", "-o", str(out)]) == 0
    rows = read_results(out)
    assert set(rows["status"]) == {"unsupported"} and rows["message"].str.contains("GiB to draw").all()


def test_damaged_cases_csv_on_resume(finished_run, capsys):
    path = finished_run / run_logs.CASES_FILE
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace(",on,", ",maybe,")
    path.write_text("".join(lines))
    record = json.loads((finished_run / run_folder.RUN_FILE).read_text())
    (finished_run / run_folder.RUN_FILE).write_text(json.dumps({**record, "status": "interrupted"}))
    assert main(["run", "--resume", str(finished_run)]) == 2
    one_line(capsys, f"{path}:3: bias must be on/off")


def test_damaged_results_row_on_report(finished_run, capsys):
    path = finished_run / RESULTS_FILE
    path.write_text(path.read_text().replace(",on,", ",yes,", 1))
    assert main(["report", str(finished_run)]) == 2
    one_line(capsys, f"{path} is damaged: column 'bias': 'yes' is none of 'on', 'off'")


def test_an_integer_beyond_int64_in_results_on_report(finished_run, capsys):
    path = finished_run / RESULTS_FILE
    header, first, *rest = path.read_text().splitlines(keepends=True)
    column = header.rstrip("\r\n").split(",").index("reduction")
    fields = next(csv.reader([first]))
    fields[column] = str(2**70)
    with path.open("w", newline="") as file:
        file.write(header)
        csv.writer(file).writerow(fields)
        file.write("".join(rest))
    assert main(["report", str(finished_run)]) == 2
    one_line(capsys, f"{path} is damaged: a whole number too large for its column (beyond 64-bit integers)")


@pytest.mark.parametrize(("edit", "fragment"), [
    ({"backends": ["reference", "reference"]}, "backends lists 'reference' twice"),
    ({"dtypes": "float32"}, "dtypes must be a list of names"),
    ({"jobs": -2}, "jobs must be at least 1"),
    ({"tolerance_factor": 0}, "tolerance_factor must be a finite number > 0"),
    ({"timeout": "soon"}, "timeout must be a finite number > 0"),
    ({"seed": 1.5}, "seed must be an integer"),
])
def test_hand_edited_run_json(finished_run, capsys, edit, fragment):
    path = finished_run / run_folder.RUN_FILE
    data = json.loads(path.read_text())
    data["settings"].update(edit)
    path.write_text(json.dumps(data))
    for command in (["report", str(finished_run)], ["run", "--resume", str(finished_run)]):
        assert main(command) == 2
        one_line(capsys, fragment)


def test_a_plugin_that_fails_to_import_leaves_the_others(tmp_path, monkeypatch, capsys):
    (tmp_path / "exploding_plugin.py").write_text("raise RuntimeError('boom at import')\n")
    info = tmp_path / "exploding_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: exploding-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[convparity]\nexploding = exploding_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    manager = PluginManager(only={"reference", "exploding"})
    assert list(manager.backends()) == ["reference"]
    assert manager.broken["exploding"] == ("plugin exploding_plugin failed to load: RuntimeError: boom at import")


@pytest.fixture
def broken_members(monkeypatch):
    monkeypatch.setenv("CONVPARITY_EXTRA_PLUGINS", faulty_backends.__name__)
    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")


def test_members_that_raise_in_backends_explain_and_run(broken_members, tmp_path, capsys):
    assert main(["backends"]) == 0
    listed = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "broken: availability() or version() raised RuntimeError: availability() is broken" in listed[
        "test-broken-availability"]
    assert "broken: availability() or version() raised RuntimeError: version() is broken" in listed[
        "test-broken-version"]
    assert listed["reference"].split()[1] == "convparity"

    assert main(["explain", TINY, "-b", "test-broken-supports"]) == 1
    assert "error  " not in capsys.readouterr().err  # printed as rows, not as a traceback

    out = tmp_path / "run"
    args = ["run", "--case", TINY, "--dtype", "float32", "-o", str(out)]
    for backend in ("reference", "test-broken-version", "test-broken-availability", "test-broken-supports"):
        args += ["-b", backend]
    assert main(args) == 1
    rows = read_results(out)
    statuses = rows.groupby("backend")["status"].agg(set).to_dict()
    assert statuses == {"reference": {"pass"}, "test-broken-version": {"error"},
                        "test-broken-availability": {"error"}, "test-broken-supports": {"error"}}
    messages = rows.groupby("backend")["message"].first()
    assert "supports() raised RuntimeError: supports() is broken on purpose" in messages["test-broken-supports"]
    assert "availability() is broken on purpose" in messages["test-broken-availability"]


def test_malformed_outputs_are_that_backends_alone(broken_members, tmp_path):
    """A structured array is an error of its backend in its own worker; float16 for float64 inputs fails."""
    out = tmp_path / "run"
    assert main(["run", "-b", "reference", "-b", "test-structured", "-b", "test-narrow", "--case", "mb1ic2iw5oc3kw3",
                 "--dtype", "float64", "-o", str(out)]) == 1
    rows = read_results(out).set_index(["backend", "tensor"])
    assert set(rows.loc["reference", "status"]) == {"pass"}
    assert set(rows.loc["test-structured", "status"]) == {"error"}
    assert "expected an array of floats" in rows.loc[("test-structured", "y"), "message"]
    assert set(rows.loc["test-narrow", "status"]) == {"fail"}
    assert rows.loc[("test-narrow", "dx"), "message"] == "dx returned as float16, narrower than the float64 inputs"
    assert set(rows["accumulation"].dropna()) <= {"float64", ""}


@pytest.mark.parametrize(("accumulation", "fragment"), [
    ({"float64": "float16"}, "declares float16 accumulation for float64 inputs: an accumulation may not be narrower"),
    ({"float32": "float12"}, "maps 'float32' to 'float12'"),
    (["float16"], "accumulation must be a mapping"),
])
def test_accumulation_declarations_cannot_widen_the_bound(accumulation, fragment):
    with pytest.raises(BackendContractError, match=fragment):
        check_backend(StubBackend("declares", accumulation=accumulation))


HOSTILE = '=HYPERLINK("http://evil.example")|<script>alert(1)</script>&'


def test_hostile_names_are_inert_in_every_file(tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text(f"[[case]]\ndescriptor = '{TINY}'\nname = '''{HOSTILE}'''\n")
    out = tmp_path / "run |<i>x"
    assert main(["run", "-b", "reference", "-g", str(grid), "--dtype", "float32", "-o", str(out)]) == 0
    with (out / RESULTS_FILE).open(newline="") as file:
        raw = list(csv.DictReader(file))
    assert {row["name"] for row in raw} == {"'" + HOSTILE}  # a spreadsheet sees text, not a formula
    assert set(read_results(out)["name"]) == {HOSTILE}  # and read_results gives the name back
    page = ElementTree.fromstring((out / "report.html").read_text())
    assert not list(page.iter("script")) and not list(page.iter("i"))
    assert "run |<i>x" in page.find("head/title").text
    for line in (out / "summary.md").read_text().splitlines():
        if line.startswith("|"):
            unescaped = line.replace("\\|", "").count("|")
            assert unescaped == (out / "summary.md").read_text().splitlines()[2].count("|") or unescaped > 3
    assert "<i>" not in (out / "summary.md").read_text()


@pytest.mark.parametrize("character", ["\x00", "\u202e", "\x1b"])
def test_control_characters_in_names_are_refused(tmp_path, capsys, character):
    grid = tmp_path / "grid.toml"
    grid.write_text(f'[[case]]\ndescriptor = "{TINY}"\nname = "a\\u{ord(character):04x}b"\n')
    assert main(["run", "-b", "reference", "-g", str(grid), "-o", str(tmp_path / "r")]) == 2
    one_line(capsys, f"control or bidirectional character U+{ord(character):04X}")
