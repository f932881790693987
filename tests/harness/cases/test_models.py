"""Models as cases: identical layers group into one case with their count, the layers travel as JSON and back, and
a case selection with models draws one case per distinct layer (and survives run.json)."""

from __future__ import annotations

import numpy as np
import pytest

from convparity.harness.cases.attributes import Quantization
from convparity.harness.cases.grids import GridError
from convparity.harness.cases.models import (
    Model,
    ModelError,
    ModelLayer,
    ReadOptions,
    parse_input_shape,
    read_models,
    write_models,
)
from convparity.harness.cases.selection import CaseSelection
from convparity.harness.cases.spec import ConvSpec
from convparity.reference_impl.post_ops import PostOp
from tests.harness.stub_readers import small


def model() -> Model:
    return Model("stub:small", "Small", "stub", small(batch=2))


def test_identical_layers_are_one_case_with_their_count_in_the_order_they_run():
    shuffled = Model("s", "S", "stub", tuple(reversed(small())))
    groups = shuffled.groups()
    assert [g.names for g in groups] == [("conv_a",), ("conv_b", "conv_c"), ("conv_d",)]
    assert [g.count for g in groups] == [1, 2, 1]
    assert sum(g.count for g in groups) == len(shuffled.layers) == 4
    assert [case.name for case in shuffled.cases()] == ["conv_a", "conv_b (x2)", "conv_d"]
    assert shuffled.cases()[2].spec.post_ops == (PostOp("relu"),)


def test_a_quantized_layer_keeps_its_data_types_and_is_not_grouped_with_a_float_one():
    spec = ConvSpec(batch=1, in_channels=4, out_channels=4, input_size=(6, 6), kernel_size=(1, 1),
                    dtype="uint8:int8:uint8")
    float_spec = spec.replace(dtype="float32")
    layers = (ModelLayer(("q",), spec, 0, fixed_dtype=True, note="w_scale is per channel"),
              ModelLayer(("f",), float_spec, 1))
    q, f = Model("m.onnx", "M", "onnx", layers).groups()
    assert q.case.fixed_dtype and q.spec.dtype == "uint8:int8:uint8" and q.notes == ("w_scale is per channel",)
    assert not f.case.fixed_dtype


def test_layers_round_trip_through_json(tmp_path):
    original = model()
    assert Model.from_json(original.to_json()) == original
    write_models(tmp_path, [original])
    assert read_models(tmp_path) == [original]
    assert read_models(tmp_path / "elsewhere") == []


def test_a_quantized_layer_with_a_models_float32_scales_survives_its_descriptor(tmp_path):
    """A reader gives the scales a model stores (float32 values, as float64: 0.007842489518225193); the layer's
    descriptor, and so models.json, run.json and results.csv, must read back as the very same spec, or the model
    view and a resume would not find its rows."""
    scale = float(np.float32(0.0078424895))
    spec = ConvSpec(batch=1, in_channels=2, out_channels=2, input_size=(4,), kernel_size=(1,), dtype="uint8:int8:uint8",
                    quantization=Quantization(x_scale=scale, w_scale="per_channel", y_scale=float(np.float32(0.0104))))
    layer = ModelLayer(("conv",), spec, 0, fixed_dtype=True, weights=str(tmp_path / "conv.npz"))
    again = ModelLayer.from_json(layer.to_json(), "layer")
    assert again == layer and again.spec.descriptor == spec.descriptor
    assert np.float32(again.spec.quantization.x_scale) == np.float32(scale)


def test_a_damaged_models_file_is_named(tmp_path):
    (tmp_path / "models.json").write_text('{"models": [{"source": "x", "title": "X", "reader": "r", '
                                          '"layers": [{"names": ["a"], "case": "mb1ic2oc2kh9", "dtype": "float32", '
                                          '"bias": true}]}]}')
    with pytest.raises(ModelError, match=r"models.json model 0 .x. layer 0: descriptor .*must be positive"):
        read_models(tmp_path)


def test_describe_lists_names_counts_and_descriptors():
    lines = list(model().describe())
    assert lines[0].startswith("model Small (stub:small, read by stub): 4 convolution layers, 3 distinct")
    assert lines[2].split("\t")[:2] == ["  x2", "conv_b, conv_c"]
    assert lines[3].endswith("--attr-post-ops=relu g1mb2ic2ih5iw5oc4oh5ow5kh3kw3sh1sw1ph1pw1dh0dw0")
    assert lines[-1] == "Small: 4 layers in 3 cases"


@pytest.mark.parametrize(("text", "message"), [
    ("1x3x224x224", "write NAME=DIMS"), ("x=1x3xfour", "whole numbers"), ("x=1x0x2", "at least 1"),
    ("=1x2", "write NAME=DIMS")])
def test_bad_input_shapes_are_named(text, message):
    with pytest.raises(ModelError, match=message):
        parse_input_shape(text)


def test_input_shapes():
    assert parse_input_shape("input.1=1x3x224x224") == ("input.1", (1, 3, 224, 224))
    assert ReadOptions.of(["x=2x3", "y=4"]).shapes == {"x": (2, 3), "y": (4,)}
    with pytest.raises(ModelError, match="twice"):
        ReadOptions.of(["x=2", "x=3"])


def test_a_selection_of_a_model_draws_each_distinct_layer_once_and_survives_its_record():
    selection = CaseSelection(models=(model(),))
    size, stream = selection.stream()
    cases = list(stream)
    assert size == 3 and [c.name for c in cases] == ["conv_a", "conv_b (x2)", "conv_d"]
    again = CaseSelection.from_json(selection.to_json())
    assert again == selection
    assert "models" not in CaseSelection(grids=("smoke",)).to_json()  # records without models stay as they were
    described = list(selection.describe(("float32",)))
    assert described[0].startswith("model Small") and described[-1] == "3 cases"


def test_a_damaged_model_in_a_record_is_a_grid_error():
    stored = CaseSelection(models=(model(),)).to_json()
    stored["models"][0]["layers"][0]["case"] = "mb1ic2ih5oc2kh3 --oops"
    with pytest.raises(GridError, match="model 0"):
        CaseSelection.from_json(stored)


def test_without_epilogues_each_layer_is_its_convolution_alone():
    plain = model().without_epilogues()
    assert all(not layer.spec.post_ops for layer in plain.layers)
    assert [layer.names for layer in plain.layers] == [layer.names for layer in model().layers]
    assert plain.notes == ("epilogues left out (--no-epilogues): each layer's convolution alone",)
    assert plain.without_epilogues() == plain
