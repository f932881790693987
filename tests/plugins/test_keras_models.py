"""The Keras model reader: every convolution layer Keras builds for its applications (counted here from the models
Keras builds), and on a saved .keras model with every kind of layer, geometry that computes what Keras computes."""

from __future__ import annotations

import os

import numpy as np
import pytest

from convparity.harness.cases.models import ModelReadError, ReadOptions
from convparity.harness.evaluation.reference import reference_options
from convparity.harness.running.model_reading import read_models
from convparity.reference_impl import conv_forward, conv_transpose_forward
from convparity.reference_impl.post_ops import PostOp
from tests.plugins.conftest import framework_module

pytestmark = pytest.mark.framework("keras")

APPLICATIONS = {"ResNet50": 53, "MobileNetV2": 52, "EfficientNetB0": 81, "ConvNeXtTiny": 22}


def keras():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    return framework_module("keras")


def keras_count(model) -> int:
    """The convolution layers of a Keras model, nested models included (a separable layer is two)."""
    layers = keras().layers
    count = 0
    for layer in model.layers:
        if isinstance(layer, keras().Model):
            count += keras_count(layer)
        elif isinstance(layer, (layers.SeparableConv1D, layers.SeparableConv2D)):
            count += 2
        elif isinstance(layer, (layers.Conv1D, layers.Conv2D, layers.Conv3D, layers.DepthwiseConv1D,
                                layers.DepthwiseConv2D, layers.Conv1DTranspose, layers.Conv2DTranspose,
                                layers.Conv3DTranspose)):
            count += 1
    return count


def test_every_convolution_keras_builds_for_its_applications():
    models = read_models([f"keras:{name}" for name in APPLICATIONS])
    for (name, expected), model in zip(APPLICATIONS.items(), models):
        built = keras_count(getattr(keras().applications, name)(weights=None))
        assert len(model.layers) == built == expected, name
        assert sum(group.count for group in model.groups()) == expected
    resnet, mobilenet = models[0], models[1]
    assert len(resnet.groups()) == 20
    chains = {layer.spec.post_ops for layer in resnet.layers}
    batchnorm = PostOp("batchnorm", alpha=1.001e-5)
    assert chains == {(batchnorm, PostOp("relu")), (batchnorm, PostOp("sum"), PostOp("relu"))}
    assert resnet.layers[0].names == ("conv1_conv", "conv1_pad")  # the ZeroPadding2D before it, folded
    depthwise = [layer for layer in mobilenet.layers if layer.spec.groups > 1]
    assert len(depthwise) == 17 and all(layer.spec.groups == layer.spec.in_channels for layer in depthwise)


def saved_model(path):
    """A functional model with every kind of layer, saved as .keras."""
    k = keras()
    layers = k.layers
    image = k.Input((11, 10, 3))
    x = layers.Conv2D(8, 4, strides=2, padding="same", name="same_even")(image)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.ReLU(max_value=6.0, name="relu6")(x)
    x = layers.ZeroPadding2D(((0, 1), (2, 0)), name="zero_pad")(x)
    x = layers.DepthwiseConv2D(3, dilation_rate=2, name="depthwise")(x)
    x = layers.SeparableConv2D(8, 3, padding="same", activation="swish", name="separable")(x)
    y = layers.Conv2D(8, 1, name="pointwise")(x)
    x = layers.Add(name="residual")([y, x])
    x = layers.Conv2DTranspose(4, 3, strides=2, padding="same", name="transposed")(x)
    sequence = k.Input((16, 3))
    z = layers.Conv1D(4, 3, dilation_rate=2, padding="causal", name="causal")(sequence)
    model = k.Model([image, sequence], [x, z])
    model.save(path)
    return model


KERNELS = {"same_even": "conv", "depthwise": "depthwise", "pointwise": "conv", "transposed": "transposed",
           "causal": "conv"}


def torch_layout(layer, kind: str) -> np.ndarray:
    """A Keras kernel in convparity's layout: (out, in/groups, *k), transposed (in, out/groups, *k)."""
    kernel = np.asarray(layer.kernel, dtype=np.float64)
    rank = kernel.ndim - 2
    if kind == "depthwise":
        return kernel.reshape(*kernel.shape[:rank], -1).transpose(rank, *range(rank))[:, None]
    return kernel.transpose(rank + 1, rank, *range(rank))


def tapped(model, by_name) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{layer: (its input, its output)} of the KERNELS layers on one random input, channels first, in float64 (a
    folded ZeroPadding layer's input for the layer it is folded into)."""
    k = keras()
    inputs = {name: (by_name[name].names[-1] if name == "depthwise" else name) for name in KERNELS}
    taps = k.Model(model.inputs, [model.get_layer(inputs[n]).input for n in KERNELS]
                   + [model.get_layer(n).output for n in KERNELS])
    rng = np.random.default_rng(0)
    feed = [rng.uniform(-1, 1, (1, 11, 10, 3)).astype(np.float32), rng.uniform(-1, 1, (1, 16, 3)).astype(np.float32)]
    values = [np.moveaxis(np.asarray(v, dtype=np.float64), -1, 1) for v in taps(feed)]
    return {name: (values[i], values[i + len(KERNELS)]) for i, name in enumerate(KERNELS)}


def test_a_saved_model_reads_to_layers_that_compute_what_keras_computes(tmp_path):
    from convparity.plugins.keras_models import read_keras

    path = tmp_path / "every_kind.keras"
    model = saved_model(str(path))
    read = read_keras(str(path), ReadOptions())
    names = [layer.name for layer in read.layers]
    assert names == ["same_even", "depthwise", "separable/depthwise", "separable/pointwise", "pointwise",
                     "transposed", "causal"]
    by_name = {layer.name: layer for layer in read.layers}
    assert by_name["same_even"].spec.post_ops == (PostOp("batchnorm", alpha=1e-3), PostOp("clip", alpha=0, beta=6))
    assert by_name["depthwise"].names == ("depthwise", "zero_pad")
    assert by_name["separable/pointwise"].spec.post_ops == (PostOp("swish", alpha=1),)
    assert by_name["pointwise"].spec.post_ops == (PostOp("sum"),)
    assert by_name["causal"].spec.padding == ((4, 0),)
    probes = {name: model.get_layer(name) for name in KERNELS}
    for name, (x, y) in tapped(model, by_name).items():
        spec = by_name[name].spec
        forward = conv_transpose_forward if spec.transposed else conv_forward
        bias = np.asarray(probes[name].bias, dtype=np.float64) if spec.bias else None
        computed = forward(x, torch_layout(probes[name], KERNELS[name]), bias, **reference_options(spec))
        np.testing.assert_allclose(computed, y, rtol=1e-4, atol=1e-5, err_msg=name)


def test_bad_sources_are_named():
    from convparity.plugins.keras_models import read_keras

    with pytest.raises(ModelReadError, match=r"^unknown Keras application 'ResNet51' \(keras.applications has "):
        read_keras("keras:ResNet51", ReadOptions())
    with pytest.raises(ModelReadError, match=r"^no such file: nowhere.keras$"):
        read_keras("nowhere.keras", ReadOptions())
    small = read_keras("keras:MobileNetV2", ReadOptions.of(["input=2x96x96x3"]))
    assert small.layers[0].spec.batch == 2 and small.layers[0].spec.input_size == (96, 96)


def test_with_weights_each_layer_read_computes_what_keras_computes_with_the_files_own(tmp_path):
    """--weights on a .keras file: each layer's case, drawn with the weights the reader wrote (kernels turned into
    convparity's layout by the reader, not by this test), computes through the reference what Keras computes for
    that layer; an application built with weights=None has none of its own."""
    from convparity.harness.cases.inputs import make_inputs
    from convparity.plugins.keras_models import read_keras

    path = tmp_path / "every_kind.keras"
    model = saved_model(str(path))
    read = read_keras(str(path), ReadOptions.of(None, tmp_path / "weights"))
    by_name = {layer.name: layer for layer in read.layers}
    assert all(layer.weights.startswith(str(tmp_path / "weights")) for layer in read.layers)
    assert len(read.groups()) == len(read.layers)
    for name, (x, y) in tapped(model, by_name).items():
        group = next(g for g in read.groups() if g.names == (name,))
        own = make_inputs(group.spec, 0, group.case.inputs)
        forward = conv_transpose_forward if group.spec.transposed else conv_forward
        computed = forward(x, own.w.astype(np.float64), None if own.b is None else own.b.astype(np.float64),
                           **reference_options(group.spec))
        np.testing.assert_allclose(computed, y, rtol=1e-4, atol=1e-5, err_msg=name)
    separable = next(g for g in read.groups() if g.names == ("separable/depthwise",))
    assert make_inputs(separable.spec, 0, separable.case.inputs).w.shape == separable.spec.w_shape
    application = read_keras("keras:MobileNetV2", ReadOptions.of(None, tmp_path / "none"))
    assert not any(layer.weights for layer in application.layers)
