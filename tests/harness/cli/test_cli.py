"""The command line: bad input is one line and exit 2; a run writes tidy results pandas reads back."""

from __future__ import annotations

import subprocess
import sys

import pytest

from convparity.harness.cases.descriptor import parse_descriptor
from convparity.harness.cli import main
from convparity.harness.results import COLUMNS, read_results


def run_cli(*args, cwd=None):
    env_cmd = [sys.executable, "-m", "convparity", *args]
    return subprocess.run(env_cmd, capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={**__import__("os").environ, "CONVPARITY_PLUGINS": "reference"})


def one_error_line(result, fragment):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("convparity: error: ") and fragment in lines[0], lines[0]


def test_unknown_backend(tmp_path):
    one_error_line(run_cli("run", "-b", "nope", "-g", "smoke", "-o", str(tmp_path / "r")),
                   "unknown backend 'nope' (known: reference)")


def test_malformed_descriptor_points_at_token(tmp_path):
    one_error_line(run_cli("run", "-b", "reference", "--case", "mb2ic3ih5kx3", "-o", str(tmp_path / "r")),
                   "unknown key 'kx' at position 9 (mb2ic3ih5>>kx3<<)")


def test_invalid_toml_gives_its_line(tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text("[[product]]\nin_channels = [1\n")
    one_error_line(run_cli("run", "-b", "reference", "-g", str(grid), "-o", str(tmp_path / "r")), "line 2")


def test_unknown_dtype_and_grid(tmp_path):
    one_error_line(run_cli("run", "-b", "reference", "-g", "smoke", "--dtype", "float8", "-o", str(tmp_path / "r")),
                   "argument --dtype: must be one of float64")
    one_error_line(run_cli("run", "-b", "reference", "-g", "smok", "-o", str(tmp_path / "r")),
                   "unknown grid 'smok'")


def test_output_folder_that_is_a_file_or_holds_a_run(tmp_path):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    one_error_line(run_cli("run", "-b", "reference", "-g", "smoke", "-o", str(target)), "is a file")
    full = tmp_path / "full"
    full.mkdir()
    (full / "results.csv").write_text("keep me")
    one_error_line(run_cli("run", "-b", "reference", "-g", "smoke", "-o", str(full)), "is not empty")
    assert (full / "results.csv").read_text() == "keep me"


def test_run_writes_tidy_results_with_dtypes(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")
    batch = tmp_path / "layers.txt"
    batch.write_text('mb2ic3ih5iw7oc4oh2ow3kh3kw3sh2sw2n"blog"\n--dt=bf16 g2ic4iw9oc2kw3pw1n"grouped"\n')
    out = tmp_path / "run"
    code = main(["run", "-b", "reference", "--batch", str(batch), "--case", "ic1id3oc1kd2", "--bias", "both",
                 "--dtype", "float32", "--dtype", "bfloat16", "-o", str(out)])
    assert code == 0
    frame = read_results(out)
    assert tuple(frame.columns) == COLUMNS
    # The descriptor in 2 dtypes x 2 biases: tensors 4 with bias, 3 without. Batch file cases keep the dtype
    # their --dt gives them (f32 by default), whatever the run's dtypes.
    descriptor = frame[frame["case"].str.startswith("g1mb2ic1id3")]
    assert len(descriptor) == 2 * (len(parse_descriptor("ic1id3oc1kd2").tensors) + 3)
    assert set(frame.loc[frame["name"] == "blog", "dtype"]) == {"float32"}
    assert set(frame.loc[frame["name"] == "grouped", "dtype"]) == {"bfloat16"}
    assert set(frame["status"]) == {"pass"}
    assert str(frame["err_ratio"].dtype) == "float64" and str(frame["bias"].dtype) == "bool"
    assert str(frame["batch"].dtype) == "int64" and str(frame["case"].dtype) == "string"
    assert set(frame.loc[frame["name"] == "blog", "output_size"]) == {"2x3"}
    assert (out / "summary.csv").exists() and (out / "summary.md").exists() and (out / "run.json").exists()


def test_explain_prints_every_tensor(capsys, monkeypatch):
    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")
    assert main(["explain", "mb2ic3ih5iw7oc4oh2ow3kh3kw3sh2sw2", "-b", "reference", "--dtype", "float16"]) == 0
    out = capsys.readouterr().out
    for tensor in ("y ", "dx ", "dw ", "db "):
        assert f"\n{tensor}" in out
    assert "worst at" in out


def test_explain_draws_the_inputs_in_the_style_given(capsys, monkeypatch):
    """A repro command of a case evaluated on small integers says so, and explain draws them again."""
    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")
    assert main(["explain", "mb1ic2iw3oc2kw2", "-b", "reference", "--inputs", "integers:1"]) == 0
    out = capsys.readouterr().out
    assert "inputs=integers:1" in out and "\ny   pass" in out
    assert main(["explain", "mb1ic2iw3oc2kw2", "-b", "reference", "--inputs", "integers"]) == 2
    assert "expected 'uniform', 'saturating', 'integers:K'" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["backends"], ["grids"], ["backends", "--limits"]])
def test_listings(command):
    result = run_cli(*command)
    assert result.returncode == 0 and result.stdout.strip(), result.stderr


@pytest.mark.parametrize("factor", ["-1", "0", "inf", "nan", "two"])
def test_tolerance_factor_must_be_finite_and_positive(tmp_path, factor):
    # a negative or infinite factor would pass every row; NaN would fail every row
    one_error_line(run_cli("run", "-b", "reference", "-g", "smoke", "--tolerance-factor", factor,
                           "-o", str(tmp_path / "r")), "--tolerance-factor: must be")


def test_report_on_a_folder_without_rows_or_with_a_damaged_run_json(tmp_path):
    (tmp_path / "run.json").write_text('{"settings": {"backends": ["reference"], "dtypes": ["float32"]}}')
    one_error_line(run_cli("report", str(tmp_path)), "results.csv does not exist: the run wrote no rows yet")
    (tmp_path / "run.json").write_text('{"settings": {}}')
    one_error_line(run_cli("report", str(tmp_path)), "run.json: missing setting 'backends'")
    (tmp_path / "run.json").write_text('{"sett')
    one_error_line(run_cli("report", str(tmp_path)), "run.json is damaged")


def test_repro_carries_a_non_default_tolerance_factor():
    from convparity.harness.cases.spec import ConvSpec
    from convparity.harness.evaluation.verdict import repro

    spec = ConvSpec(batch=1, in_channels=1, out_channels=1, input_size=(4,), kernel_size=(2,), bias=False)
    assert repro(spec, "torch", 3) == (
        "convparity explain g1mb1ic1iw4oc1ow3kw2sw1pw0dw0 -b torch --dtype float32 --seed 3 --bias off")
    assert repro(spec, "torch", 3, 2.5).endswith("--bias off --tolerance-factor 2.5")


def test_deconv_descriptors_run_and_explain(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")
    out = tmp_path / "run"
    assert main(["run", "-b", "reference", "--case", "deconv:ic4ih3oc2kh3sh2ph1oh6", "--case", "ic4ih3oc2kh3sh2ph1",
                 "--dtype", "float32", "-o", str(out)]) == 0
    frame = read_results(out)
    assert set(frame["op"]) == {"conv", "deconv"} and set(frame["status"]) == {"pass"}
    deconv = frame[frame["op"] == "deconv"]
    assert set(deconv["case"]) == {"deconv:g1mb2ic4ih3iw3oc2oh6ow6kh3kw3sh2sw2ph1pw1dh0dw0"}
    assert set(deconv["output_padding"]) == {"1x1"} and set(deconv["output_size"]) == {"6x6"}
    assert set(frame.loc[frame["op"] == "conv", "output_padding"]) == {"0x0"}
    assert deconv["repro"].str.startswith("convparity explain deconv:g1mb2").all()
    capsys.readouterr()
    assert main(["explain", "deconv:ic4ih3oc2kh3sh2ph1oh6", "-b", "reference"]) == 0
    assert "w (4, 2, 3, 3)  y (2, 2, 6, 6)  padding ((1, 1), (1, 1))  output_padding (1, 1)" in capsys.readouterr().out


def test_grids_lists_the_transposed_grids():
    listing = run_cli("grids").stdout
    assert any(line.split()[:1] == ["transposed"] for line in listing.splitlines())
    assert any(line.split()[:1] == ["decoders"] for line in listing.splitlines())


def test_backends_of_one_plugin_module_share_their_workers(monkeypatch, capsys):
    from convparity.harness.backends.manager import get_manager
    from convparity.harness.cli.backends import worker_groups
    from tests.harness.running import faulty_backends

    monkeypatch.setenv("CONVPARITY_EXTRA_PLUGINS", faulty_backends.__name__)
    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")

    backends = get_manager().backends()
    groups = worker_groups(backends)
    faulty = [name for name, backend in backends.items() if type(backend).__module__ == faulty_backends.__name__]
    assert len(faulty) > 5 and {groups[name] for name in faulty} == {faulty[0]}
    assert groups["reference"] == "reference"
    assert main(["backends"]) == 0
    out = capsys.readouterr()
    assert len(out.out.splitlines()) == len(backends) + len(get_manager().broken) and not out.err
