"""`triage`: a run shaped like the main job's Keras rows (the default grid in float64 and float32, where
Keras 3.15 adds a channels_first bias along the last axis when its size equals out_channels: 35 failing rows,
y and db in float64; db, and y when grouped, in float32) comes out as one group with that rule. Runs of
planted backends: the rules are checked on fresh cases (their evaluations apart from the run's), a hang is
a finding, a backend not installed here is said to be, and every script holds the run's tolerance factor."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

from convparity.harness.api import triage
from convparity.harness.backends.manager import get_manager
from convparity.harness.cases.selection import CaseSelection
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.cli import main
from convparity.harness.evaluation.verdict import evaluate_case, repro, status_rows
from convparity.harness.results import ResultsWriter, Row, read_results
from convparity.harness.running import run_folder
from convparity.harness.running.run_record import RunRecord
from convparity.harness.search.findings import read_findings
from convparity.harness.search.space import SpecSpace
from convparity.harness.settings import RunSettings
from convparity.plugins.reference_backend import ReferenceBackend
from tests.harness.search import planted_backends
from tests.harness.search.inline import InlineExecutor
from tests.harness.search.planted_backends import PlantedBackend
from tests.harness.search.test_planted import parse_check

DEVIATION = "keras.ops.add adds a channels_first bias along the last axis when its size equals out_channels"


def keras_rows(spec) -> list[Row]:
    """The rows Keras 3.15 gives: stride with dilation unsupported; the bias bug's tensors xfail."""
    base = {**Row.spec_columns(spec), "name": "", "backend": "keras", "backend_version": "3.15.1 (tensorflow 2.21.0)",
            "repro": repro(spec, "keras", 0)}
    if max(spec.stride) > 1 and max(spec.dilation) > 1:
        return [Row(**base, tensor=t, status="unsupported", message="not supported") for t in spec.tensors]
    hit = spec.bias and spec.output_size[-1] == spec.out_channels > 1
    fused = spec.dtype == "float32" and spec.groups == 1 and spec.rank <= 2  # TensorFlow's fusion fixes y
    failing = {"db"} | (set() if fused else {"y"}) if hit else set()
    return [Row(**base, tensor=t, status="xfail" if t in failing else "pass", err_ratio=1e14 if t in failing else 0.3,
                deviation=DEVIATION if t in failing else "") for t in spec.tensors]


def test_the_main_jobs_keras_rows_are_one_group(tmp_path):
    path = run_folder.create(tmp_path / "parity")
    settings = RunSettings(backends=("keras",), dtypes=("float64", "float32"), grids=("default",))
    run_folder.write_record(path, RunRecord("sweep", settings, CaseSelection(grids=("default",)), status="finished"))
    writer = ResultsWriter(path)
    failing = 0
    for case in get_manager().grids()["default"].cases():
        for dtype in settings.dtypes:
            rows = keras_rows(case.spec.replace(dtype=dtype))
            failing += sum(row.status == "xfail" for row in rows)
            writer.write(rows)
    writer.close()
    assert failing == 35

    (group,) = triage(path, check=False)
    assert (group.rule, group.known, group.tensors, group.dtype, group.bias) == (
        "bias and output_size[-1] == out_channels > 1", True, "y db", "float32 float64", "on")
    assert (group.status, group.rule_check) == ("declared", "not checked")
    assert group.cases_seen == 20 and group.rule_exceptions == 0 and group.local_minimum == "no"
    assert group.deviation == DEVIATION and group.minimal_dtype == "float64"  # the case that shows y and db
    assert read_findings(path)["group"].tolist() == ["keras-1"]
    assert (path / "repro" / "keras-1.py").is_file() and "<h2>Findings</h2>" in (path / "report.html").read_text()


def test_a_transposed_group_gets_a_script_and_its_explain_command(tmp_path):
    """A transposed case's script embeds its reference values like any other (a backend without a program runs
    through convparity's plugins)."""
    path = run_folder.create(tmp_path / "run")
    settings = RunSettings(backends=("other",), dtypes=("float32",))
    run_folder.write_record(path, RunRecord("sweep", settings, CaseSelection(random=1), status="finished"))
    writer = ResultsWriter(path)
    for size in range(2, 8):
        for transposed in (False, True):
            spec = ConvSpec(batch=1, in_channels=2, out_channels=2, input_size=(size,), kernel_size=(2,), stride=2,
                            transposed=transposed, bias=False)
            base = {**Row.spec_columns(spec), "name": "", "backend": "other", "backend_version": "1",
                    "repro": repro(spec, "other", 0)}
            writer.write([Row(**base, tensor=t, status="fail" if transposed else "pass", err_ratio=5.0)
                          for t in spec.tensors])
    writer.close()
    (group,) = triage(path)  # "other" is installed nowhere: its rule cannot be checked here, and says so
    assert (group.rule, group.repro_script, group.known) == ("transposed", "repro/other-1.py", False)
    assert group.rule_check == "not checked: backend other is unavailable here: no plugin installed here registers it"
    assert "explain deconv:" in group.repro
    script = (path / group.repro_script).read_text()
    compile(script, group.repro_script, "exec")
    assert "(case deconv:" in script.splitlines()[1] and "EXPECTED = {'y': np.array(" in script
    assert not (path / "triage").exists()  # nothing was run
    assert (path / "repro" / "other-1.md").read_text().startswith("## y and dx and dw of a 1-D transposed convolution")


def planted_run(path, backends, specs, *, seed=0, tolerance_factor=1.0, hangs=()) -> list[Row]:
    """A finished sweep folder with the rows the planted backends give on `specs` (evaluated in this process;
    `hangs`: backends whose every case timed out)."""
    run_folder.create(path)
    settings = RunSettings(backends=tuple(backends), dtypes=tuple(dict.fromkeys(s.dtype for s in specs)), seed=seed,
                           tolerance_factor=tolerance_factor)
    run_folder.write_record(path, RunRecord("sweep", settings, CaseSelection(random=len(specs)), status="finished"))
    writer = ResultsWriter(path)
    rows = []
    for spec in specs:
        for name in backends:
            if name in hangs:
                rows += status_rows(spec, "", name, "planted 1.0", seed, "timeout", "timed out after 300 s")
            else:
                backend = ReferenceBackend() if name == "reference" else PlantedBackend(name)
                rows += evaluate_case(backend, spec, seed=seed, tolerance_factor=tolerance_factor)[1]
    writer.write(rows)
    writer.close()
    return rows


def test_triage_checks_its_rules_on_fresh_cases_apart_from_the_runs_rows(planted_plugins, tmp_path):
    rng = random.Random(8)
    specs = [SpecSpace(("float32", "float64")).draw(rng) for _ in range(40)]
    path = tmp_path / "run"
    planted_run(path, ["planted-groups", "planted-zero-db"], specs)
    before = (path / "results.csv").read_text()
    found = {f.backend: f for f in triage(path, executor=InlineExecutor())}
    assert set(found) == {"planted-groups", "planted-zero-db"}
    assert (found["planted-groups"].rule, found["planted-zero-db"].rule) == ("groups > 1", "bias")
    for finding in found.values():
        assert parse_check(finding.rule_check).held and parse_check(finding.rule_check).satisfying >= 4
        assert finding.reruns == "deterministic: failed this way in all 5 reruns"
        assert finding.minimal_inputs.startswith("integers:") and finding.local_minimum == "no"
    assert (path / "results.csv").read_text() == before  # the run's own rows are untouched
    fresh = read_results(path / "triage")
    assert len(fresh) > 0 and set(fresh["backend"]) <= {"planted-groups", "planted-zero-db"}
    assert (path / "triage" / "reruns.csv").is_file()


def test_triage_keeps_hangs_as_findings(planted_plugins, tmp_path):
    rng = random.Random(2)
    specs = [SpecSpace(("float32",)).draw(rng) for _ in range(12)]
    path = tmp_path / "run"
    planted_run(path, ["reference", "planted-slow"], specs, hangs={"planted-slow"})
    (finding,) = triage(path, check=False)
    assert (finding.backend, finding.kind, finding.rule, finding.status) == ("planted-slow", "timeout", "every case",
                                                                           "new")


def test_every_script_of_a_triage_holds_the_runs_tolerance_factor(planted_plugins, tmp_path):
    """planted-near is off by 0.6 of the bound: it passes at the default factor and fails at 0.3; triage of a run
    made with 0.3 reports it, and its script (with 0.3's allowed error) exits 1 while the bug is there."""
    specs = [ConvSpec(batch=1, in_channels=16, out_channels=2, input_size=(6,), kernel_size=(5,), dtype="float32",
                      bias=False).replace(input_size=(size,)) for size in (6, 7, 8, 9)]
    path = tmp_path / "run"
    rows = planted_run(path, ["planted-near"], specs, tolerance_factor=0.3)
    assert {row.status for row in rows if row.tensor == "y"} == {"fail"}
    assert all(0.3 * 1.5 < row.err_ratio for row in rows if row.tensor == "y")
    (finding,) = triage(path, executor=InlineExecutor())
    assert "--tolerance-factor 0.3" in finding.repro
    root = str(Path(__file__).resolve().parents[3])
    done = subprocess.run([sys.executable, str(path / finding.repro_script)], capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": root,
                                            "CONVPARITY_EXTRA_PLUGINS": planted_backends.__name__,
                                            "CONVPARITY_PLUGINS": "reference"})
    assert done.returncode == 1 and "still wrong: y" in done.stdout, done.stdout + done.stderr


def test_triage_prints_only_what_it_wrote(planted_plugins, tmp_path, capsys):
    specs = [ConvSpec(batch=1, in_channels=1, out_channels=1, input_size=(3,), kernel_size=(2,))]
    path = tmp_path / "run"
    planted_run(path, ["reference"], specs)
    assert main(["triage", str(path), "--no-check"]) == 0
    printed = capsys.readouterr().out
    assert "0 new finding(s)" in printed and "scripts:" not in printed and "findings:" in printed
