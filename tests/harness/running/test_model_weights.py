"""A model's own weights (`--model SOURCE --weights`): each layer is a case of its own, drawn with the weights its
reader wrote into the run folder, so a bug that depends on them (a kernel that saturates on a large weight) shows on
the layer that has one and nowhere else; the rows say how they were drawn, the model view keeps the layers apart,
and a resume reads the files again."""

from __future__ import annotations

import json

import numpy as np
import pytest

from convparity import sweep
from convparity.harness.cases.inputs import InputStyle, make_inputs
from convparity.harness.cases.models import read_models
from convparity.harness.cli import main
from convparity.harness.reporting.model_view import model_views
from convparity.harness.results import read_results
from convparity.harness.running.sweep import SweepError
from tests.harness import stub_readers
from tests.harness.running import faulty_backends

RUN = ["run", "-b", "reference", "-b", "test-clipped-weights", "--model", "stub:small", "--dtype", "float32"]


@pytest.fixture
def plugins(monkeypatch):
    monkeypatch.setenv("CONVPARITY_EXTRA_PLUGINS", f"{stub_readers.__name__},{faulty_backends.__name__}")
    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")


def test_drawn_weights_hide_the_clipping_the_models_own_show_on_its_layer(plugins, tmp_path):
    assert main([*RUN, "-o", str(tmp_path / "drawn")]) == 0  # drawn weights stay far below the clip
    assert main([*RUN, "--weights", "-o", str(tmp_path / "own")]) == 1
    (view,) = model_views(tmp_path / "own")
    assert view.verdicts() == ["Small on reference: 4/4 layers agree in float32",
                               "Small on test-clipped-weights: 2/4 layers agree in float32; 1 fail: conv_c; "
                               "1 unsupported: conv_d"]  # it declares no post-ops: conv_d's relu
    assert list(view.table()["layers"]) == ["conv_a", "conv_b", "conv_c", "conv_d"]  # each with its own weights
    rows = read_results(tmp_path / "own")
    failing = rows[rows["status"] == "fail"]
    assert set(failing["name"]) == {"conv_c"} and set(failing["backend"]) == {"test-clipped-weights"}
    assert set(failing["tensor"]) >= {"y", "dx"}  # dw of a clipped weight is still right
    stored = json.loads((tmp_path / "own" / "models.json").read_text())["models"][0]["layers"]
    files = [layer["weights"] for layer in stored]
    assert all(path.startswith(str(tmp_path / "own" / "weights")) for path in files)
    assert set(rows["inputs"]) == {f"weights:{path}" for path in files}
    assert "--inputs weights:" in failing["repro"].iloc[0]


def test_the_case_is_drawn_with_the_files_weights_and_the_usual_x_and_dy(plugins, tmp_path):
    main([*RUN, "--weights", "-o", str(tmp_path / "own")])
    (model,) = read_models(tmp_path / "own")
    group = next(g for g in model.groups() if g.names == ("conv_c",))
    drawn, own = make_inputs(group.spec, 0), make_inputs(group.spec, 0, group.case.inputs)
    with np.load(group.weights) as stored:
        np.testing.assert_array_equal(own.w, stored["w"].astype(np.float32))
        np.testing.assert_array_equal(own.b, stored["b"].astype(np.float32))
    assert own.w.max() == stub_readers.OUTLIER
    np.testing.assert_array_equal(own.x, drawn.x)
    np.testing.assert_array_equal(own.dy, drawn.dy)


def test_a_resume_reads_the_weights_again_and_keeps_the_layers_apart(plugins, tmp_path):
    out = tmp_path / "own"
    main([*RUN, "--weights", "-o", str(out)])
    whole = (out / "results.csv").read_text().splitlines()
    before = _verdicts(out)
    kept = [line for line in whole if ",conv_c," not in line]  # conv_c's rows lost, as an interruption would lose
    (out / "results.csv").write_text("\n".join(kept) + "\n")
    record = json.loads((out / "run.json").read_text())
    record["status"] = "interrupted"
    (out / "run.json").write_text(json.dumps(record))
    assert main(["run", "--resume", str(out)]) == 1
    assert len((out / "results.csv").read_text().splitlines()) == len(whole)  # conv_b (same spec) not run again
    assert _verdicts(out) == before  # conv_c again, with its own weights: failing on test-clipped-weights


def _verdicts(out) -> list[tuple]:
    rows = read_results(out)
    return sorted(zip(rows["name"], rows["backend"], rows["tensor"], rows["status"],
                      rows["err_ratio"].round(6).fillna(-1.0), rows["inputs"]))




def test_bad_weights_files_and_misplaced_flags_are_named(plugins, tmp_path, capsys):
    spec = conv_b_spec()
    path = tmp_path / "bad.npz"
    np.savez(path, w=np.zeros((1, 1, 1, 1)))
    with pytest.raises(ValueError, match=r"weights .*bad.npz: w has the shape \(1, 1, 1, 1\), the case needs "
                                         r"\(3, 2, 3, 3\)"):
        make_inputs(spec, 0, InputStyle("weights", source=str(path)))
    np.savez(path, w=np.zeros(spec.w_shape))
    with pytest.raises(ValueError, match=r"bad.npz: no array 'b' in it \(it has w\)"):
        make_inputs(spec, 0, InputStyle("weights", source=str(path)))
    with pytest.raises(ValueError, match=r"weights .*missing.npz: cannot be read"):
        make_inputs(spec, 0, InputStyle("weights", source=str(tmp_path / "missing.npz")))
    assert InputStyle.parse(f"weights:{path}") == InputStyle("weights", source=str(path))
    assert main(["run", "-b", "reference", "-g", "smoke", "--weights"]) == 2
    assert "--weights goes with --model SOURCE" in capsys.readouterr().err
    assert main(["search", "-b", "reference", "--model", "stub:small", "--weights", "--budget", "4"]) == 2
    assert "search takes no --weights" in capsys.readouterr().err
    with pytest.raises(SweepError, match=r"^weights: the models' own weights need models"):
        sweep(backends=["reference"], cases=["mb1ic2ih5oc2kh3"], weights=True, out=tmp_path / "none")
    assert not (tmp_path / "none").exists()


def conv_b_spec():
    """conv_b's spec (oc3, with a bias)."""
    return next(layer.spec for layer in stub_readers.small() if layer.name == "conv_b")


def test_two_runs_with_their_own_copies_of_the_weights_compare_layer_by_layer(plugins, tmp_path):
    main([*RUN, "--weights", "-o", str(tmp_path / "one")])
    main([*RUN, "--weights", "-o", str(tmp_path / "two")])
    from convparity.harness.reporting.compare_runs import compare_runs

    rows = compare_runs(tmp_path / "one", tmp_path / "two").rows
    assert len(rows) == len(read_results(tmp_path / "one"))  # every key joined: none only_old or only_new
    assert set(rows["change"]) == {"same"}
