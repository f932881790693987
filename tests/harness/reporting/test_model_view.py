"""The model view: a run of --model keeps its layers in models.json, and summary.md and report.html give a verdict
per model and backend and one row per layer by depth, counting identical layers as many times as the model has
them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from convparity.harness.cli import main
from convparity.harness.reporting.model_view import model_views
from tests.harness import stub_readers
from tests.harness.running import faulty_backends


@pytest.fixture
def model_run(monkeypatch, tmp_path):
    monkeypatch.setenv("CONVPARITY_EXTRA_PLUGINS", f"{stub_readers.__name__},{faulty_backends.__name__}")
    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")
    out = tmp_path / "run"
    # test-wrong-shape returns a wrong y on oc3 (conv_b, conv_c) and declares no post-ops (conv_d is unsupported)
    code = main(["run", "-b", "reference", "-b", "test-wrong-shape", "--model", "stub:small", "--dtype", "float32",
                 "-o", str(out)])
    return code, out


def test_verdicts_count_every_layer_and_name_those_that_do_not_agree(model_run):
    code, out = model_run
    assert code == 1  # the wrong shapes fail
    stored = json.loads((out / "models.json").read_text())
    assert [layer["names"] for layer in stored["models"][0]["layers"]] == [["conv_a"], ["conv_b", "pad_b"],
                                                                           ["conv_c"], ["conv_d"]]
    (view,) = model_views(out)
    assert view.verdicts() == [
        "Small on reference: 4/4 layers agree in float32",
        "Small on test-wrong-shape: 1/4 layers agree in float32; 2 fail: conv_b, conv_c; 1 unsupported: conv_d"]
    table = view.table()
    assert list(table["layers"]) == ["conv_a", "conv_b, conv_c", "conv_d"]
    assert list(table["count"]) == ["x1", "x2", "x1"]
    assert list(table["test-wrong-shape float32"].str.split().str[0]) == ["pass", "fail", "unsupported"]
    assert table["reference float32"].str.startswith("pass").all()


def test_summary_and_report_show_the_model_view(model_run):
    _, out = model_run
    summary = (out / "summary.md").read_text()
    assert "## Models\n" in summary and "### Small (stub:small)" in summary
    # Markdown escapes the names' underscores
    assert "- Small on test-wrong-shape: 1/4 layers agree in float32; 2 fail: conv\\_b, conv\\_c" in summary
    page = (out / "report.html").read_text()
    assert "<h2>Models</h2>" in page and "Small on reference: 4/4 layers agree in float32" in page
    assert page.index("<h2>Models</h2>") < page.index("<h2>Non-passing rows, by cause</h2>")


def test_the_view_is_rebuilt_from_run_json_without_models_json(model_run):
    _, out = model_run
    (out / "models.json").unlink()
    (out / "summary.md").unlink()
    assert main(["report", str(out)]) == 0
    assert "Small on reference: 4/4 layers agree in float32" in (out / "summary.md").read_text()


def test_a_run_without_models_has_no_model_view(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")
    out = tmp_path / "run"
    assert main(["run", "-b", "reference", "--case", "mb1ic2ih5oc2kh3", "--dtype", "float32", "-o", str(out)]) == 0
    assert "## Models" not in (out / "summary.md").read_text() and model_views(out) == []


def test_a_quantized_layer_counts_in_its_own_data_types_and_a_float_one_in_the_runs(monkeypatch, tmp_path):
    """A model with a quantized layer (its types fixed) and a float one, run in float32: the float layer counts in
    float32 only, the quantized one in its data types only (neither is 'not run' in the other's column)."""
    from convparity import sweep
    from convparity.harness.cases.attributes import Quantization
    from convparity.harness.cases.models import Model, ModelLayer
    from convparity.harness.cases.spec import ConvSpec

    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")
    float_spec = ConvSpec(batch=1, in_channels=2, out_channels=2, input_size=(5,), kernel_size=(3,))
    quantized = float_spec.replace(dtype="uint8:int8:uint8", quantization=Quantization(
        x_scale=float(np.float32(0.0078424895)), w_scale=0.25, y_scale=float(np.float32(0.0104))))
    model = Model("mixed.onnx", "Mixed", "stub", (ModelLayer(("q",), quantized, 0, fixed_dtype=True),
                                                   ModelLayer(("f",), float_spec, 1)))
    out = tmp_path / "run"
    sweep(backends=["reference"], dtypes=["float32"], models=[model], out=out)
    (view,) = model_views(out)
    assert view.verdicts() == ["Mixed on reference: 1/1 of 2 layers agree in float32",
                               "Mixed on reference: 1/1 of 2 layers agree in uint8:int8:uint8 (compared: y)"]
