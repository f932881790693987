"""`triage` of a run shaped like the main job's Keras rows: the default grid in float64 and float32, where
Keras 3.15 adds a channels_first bias along the last axis when its size equals out_channels. Its 35 failing
rows (y and db in float64; db, and y when grouped, in float32) come out as one group with that rule."""

from __future__ import annotations

from convparity.harness.api import triage
from convparity.harness.backends.manager import get_manager
from convparity.harness.cases.selection import CaseSelection
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.evaluation.verdict import repro
from convparity.harness.results import ResultsWriter, Row
from convparity.harness.running import run_folder
from convparity.harness.running.run_record import RunRecord
from convparity.harness.search.findings import read_findings
from convparity.harness.settings import RunSettings

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

    (group,) = triage(path)
    assert (group.rule, group.known, group.tensors, group.dtype, group.bias) == (
        "bias and output_size[-1] == out_channels > 1", True, "y db", "float32 float64", "on")
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
    (group,) = triage(path)
    assert (group.rule, group.repro_script, group.known) == ("transposed", "repro/other-1.py", False)
    assert "explain deconv:" in group.repro
    script = (path / group.repro_script).read_text()
    compile(script, group.repro_script, "exec")
    assert "'case': 'deconv:" in script and "EXPECTED = {'y': np.array(" in script
    assert (path / "repro" / "other-1.md").read_text().startswith("## y and dx and dw of a 1-D transposed convolution")
