"""`convparity search --model`: the model's distinct layers are evaluated first (in every dtype) and taken as leads;
a layer that fails is shrunk like any failure."""

from __future__ import annotations

import json

from convparity.harness.cli import main
from convparity.harness.results import read_results
from tests.harness import stub_readers
from tests.harness.search import planted_backends


def test_a_search_starts_from_the_model_layers(planted_plugins, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CONVPARITY_EXTRA_PLUGINS", f"{planted_backends.__name__},{stub_readers.__name__}")
    out = tmp_path / "hunt"
    code = main(["search", "-b", "planted-zero-db", "--budget", "2", "--model", "stub:small", "--dtype", "float32",
                 "-o", str(out)])
    printed = capsys.readouterr()
    assert code == 1, printed.err  # every layer has a bias: planted-zero-db's db fails
    assert "evaluated the models' 3 distinct layers; 1 failure(s) settled" in printed.err
    search = json.loads((out / "run.json").read_text())["search"]
    assert search["models"] == ["stub:small"] and len(search["seeds"]) == 3
    assert search["evaluations"]["model"] == 3
    layers = {layer.spec.descriptor for layer in stub_readers.small()}
    results = read_results(out)
    assert set(results[results["name"].str.startswith("search-model")]["case"]) == layers
    assert json.loads((out / "models.json").read_text())["models"][0]["title"] == "Small"
