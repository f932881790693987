"""Reading models in workers of the reader's own: the layers come back, the reader never runs in this process, and
whatever goes wrong is one line naming the source (a refusal, an exception, a dead worker, no reader)."""

from __future__ import annotations

import os

import pytest

import convparity
from convparity.harness.cases.models import ModelError, ReadOptions
from convparity.harness.cli import main
from convparity.harness.running.model_reading import read_models
from tests.harness import stub_readers


@pytest.fixture
def stub_plugins(monkeypatch):
    monkeypatch.setenv("CONVPARITY_EXTRA_PLUGINS", stub_readers.__name__)
    monkeypatch.setenv("CONVPARITY_PLUGINS", "reference")


def test_a_model_is_read_in_a_worker_with_the_options_given(stub_plugins):
    pid, small = read_models(["stub:pid", "stub:small", "stub:pid"], ReadOptions.of(["x=3"]))
    assert small.layers == stub_readers.small(batch=3)
    assert pid.notes[0].startswith("read in process ") and pid.notes[0] != f"read in process {os.getpid()}"


def test_the_library_call_returns_the_model(stub_plugins):
    model = convparity.cases_from_model("stub:small")
    assert [g.count for g in model.groups()] == [1, 2, 1] and model.title == "Small"


@pytest.mark.parametrize(("source", "message"), [
    ("stub:refuse", r"^model 'stub:refuse': layer 'conv_x': kernel_size is not known$"),
    ("stub:raise", r"^model 'stub:raise': the stub reader raised RuntimeError: the stub reader is broken on purpose "
                   r"\(at .*stub_readers.py:\d+\)$"),
    ("stub:abort", r"^model 'stub:abort': the stub reader's worker ended in crash: worker \d+ killed by SIGABRT"),
    ("stub:empty", r"^model 'stub:empty': the stub reader found no convolution in it$"),
    ("nothing.xyz", r"^model 'nothing.xyz': no model reader reads it \(readers: .*stub: stub:NAME"),
])
def test_every_failure_is_one_line_naming_the_source(stub_plugins, source, message):
    with pytest.raises(ModelError, match=message):
        read_models([source])


def test_cases_lists_the_layers_with_names_and_counts(stub_plugins, capsys):
    assert main(["cases", "--model", "stub:small", "--dtype", "float32"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "model Small (stub:small, read by stub): 4 convolution layers, 3 distinct"
    assert [line.split("\t")[:2] for line in lines[1:4]] == [["  x1", "conv_a"], ["  x2", "conv_b, conv_c"],
                                                              ["  x1", "conv_d"]]
    assert lines[4] == "Small: 4 layers in 3 cases" and lines[-1] == "3 cases"


def test_bad_model_options_exit_2_with_one_line(stub_plugins, capsys):
    assert main(["cases", "-g", "smoke", "--input-shape", "x=1x2"]) == 2
    assert capsys.readouterr().err == "convparity: error: --input-shape goes with --model SOURCE\n"
    assert main(["cases", "--model", "stub:refuse"]) == 2
    assert capsys.readouterr().err.startswith("convparity: error: model 'stub:refuse': layer 'conv_x'")


def test_no_epilogues_lists_the_convolutions_alone(stub_plugins, capsys):
    assert main(["cases", "--model", "stub:small", "--no-epilogues", "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert "--attr-post-ops" not in out and "note: epilogues left out (--no-epilogues)" in out
    assert main(["cases", "-g", "smoke", "--no-epilogues"]) == 2
    assert capsys.readouterr().err == "convparity: error: --no-epilogues goes with --model SOURCE\n"
