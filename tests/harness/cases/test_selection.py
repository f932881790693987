"""What a run executes from batch files: cases keep their own dtype, repeated specs of one file merge their
tensors, and `convparity cases` lists exactly that."""

from __future__ import annotations

import pytest

from convparity.harness.cases.selection import CaseSelection, expand
from convparity.harness.cli import main


@pytest.fixture
def batch(tmp_path):
    # harness_conv_regression_general, "3d problem dispatching", then a FWD_B / BWD_WB pair, the pair with a
    # post-op (the --dir values stay in force: only --reset restores them), and with a fused depthwise one.
    path = tmp_path / "layers"
    path.write_text("--dir=FWD_D,BWD_D,BWD_W\n--dt=f32,bf16 g1ic16id1ih7iw8oc16od1oh7ow8kd3kh3kw3sd2sh1sw1pd1ph1pw1\n"
                    '--reset --dir=FWD_B,BWD_WB --skip-impl=ref mb1ic4iw9oc4kw3n"fwd_and_bwd"\n'
                    "--attr-post-ops=relu mb1ic4iw9oc4kw3\n--attr-post-ops=dw:k3s1p1 mb1ic4iw9oc4kw3\n")
    return path


def run_cases(selection: CaseSelection, dtypes: tuple[str, ...]):
    return [(c.spec.rank, c.spec.dtype, c.spec.bias, c.tensors, c.name) for c in expand(selection.stream()[1], dtypes)]


def test_repeated_specs_merge_their_tensors_and_batch_cases_keep_their_dtype(batch):
    selection = CaseSelection(batch_files=(str(batch),), cases=("mb1ic4iw9oc4kw3",))
    assert run_cases(selection, ("float64",)) == [
        (3, "float32", False, ("y", "dx", "dw"), ""),  # FWD_D, BWD_D and BWD_W of one spec: one case
        (3, "bfloat16", False, ("y", "dx", "dw"), ""),
        (1, "float32", True, ("y", "dw", "db"), "fwd_and_bwd"),  # FWD_B and BWD_WB
        (1, "float32", True, ("y", "dw", "db"), ""),  # the same with a fused relu (and its gradient)
        (1, "float64", True, ("y", "dx", "dw", "db"), ""),  # --case: in the run's dtypes, every tensor
    ]
    summary = selection.batch_summaries()[str(batch)]
    assert {k: summary[k] for k in ("problems", "computed", "cases", "skipped")} == {
        "problems": 12, "computed": 10, "cases": 4, "skipped": 2}


def test_a_descriptor_and_a_batch_case_of_the_same_spec_are_both_kept(batch):
    # the --case is a placeholder for the run's dtypes, the batch case is float32 of its own: both run
    selection = CaseSelection(batch_files=(str(batch),), cases=("mb1ic4iw9oc4kw3",))
    assert [c.spec.dtype for c in expand(selection.stream()[1], ("float32",))] == [
        "float32", "bfloat16", "float32", "float32", "float32"]


def test_cases_command_lists_descriptor_dtype_bias_tensors_and_counts(batch, capsys):
    assert main(["cases", "--batch", str(batch), "--case", "mb1ic4iw9oc4kw3", "--dtype", "float16"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "g1mb2ic16id1ih7iw8oc16od1oh7ow8kd3kh3kw3sd2sh1sw1pd1ph1pw1dd0dh0dw0\tfloat32\tbias=off\ty,dx,dw"
    assert lines[2] == 'g1mb1ic4iw9oc4ow7kw3sw1pw0dw0n"fwd_and_bwd"\tfloat32\tbias=on\ty,dw,db'
    assert lines[3] == "--attr-post-ops=relu g1mb1ic4iw9oc4ow7kw3sw1pw0dw0\tfloat32\tbias=on\ty,dw,db"
    assert lines[4] == "g1mb1ic4iw9oc4ow7kw3sw1pw0dw0\tfloat16\tbias=on\ty,dx,dw,db"
    assert lines[5] == "5 cases"
    assert lines[6] == f"{batch}: 12 benchdnn problems read, 10 computed as 4 cases, 2 skipped"
    assert lines[7].startswith("  skipped 2: the fused depthwise post-op (dw) is a second convolution")
    assert "layers:5: --attr-post-ops=dw:k3s1p1" in lines[7]
    assert lines[8] == "  ignored --skip-impl x1: chooses oneDNN's implementation"


def test_run_json_records_each_batch_files_counts(batch, tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")
    out = tmp_path / "run"
    assert main(["run", "-b", "reference", "--batch", str(batch), "-o", str(out)]) == 0
    recorded = json.loads((out / "run.json").read_text())["batch_files"][str(batch)]
    assert (recorded["problems"], recorded["skipped"]) == (12, 2)
    assert recorded["ignored_options"]["--skip-impl"]["tokens"] == 1


@pytest.mark.parametrize("text", ["mb2ic3ih5oc3kh3pd1", "mb2ic3ih5oc3kh3sd2", "mb2ic3oc3kh3", "ic3ih5oc3kh3 junk"])
def test_a_malformed_descriptor_is_one_error_line(text, capsys):
    assert main(["cases", "--case", text]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("convparity: error: descriptor") and "Traceback" not in err[0]


def test_a_batch_file_error_is_one_error_line(tmp_path, capsys):
    path = tmp_path / "bad"
    path.write_text("ic3iw5oc3kw3\n--dir=UP ic3iw5oc3kw3\n")
    assert main(["cases", "--batch", str(path)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"convparity: error: {path}:2: --dir=UP: unknown value 'UP'")


def test_a_batch_file_after_deconv_is_read_by_the_deconv_driver(tmp_path, capsys):
    path = tmp_path / "up"
    path.write_text("mb2ic8ih4oc4kh4sh2ph1\n")
    assert main(["cases", "--batch", f"deconv:{path}", "--batch", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("deconv:g1mb2ic8ih4iw4oc4oh8ow8kh4kw4sh2sw2ph1pw1")
    assert lines[1].startswith("g1mb2ic8ih4")
