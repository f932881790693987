"""The torch model reader: every convolution a module runs, read on the meta device, equals the module's own layers
(found here from its attributes and a real forward) and computes what the module computes; a model too big for
memory reads; bad input is one line naming the field."""

from __future__ import annotations

import numpy as np
import pytest

import convparity
from convparity.harness.cases.models import ModelError, ModelReadError, ReadOptions
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.evaluation.reference import reference_options
from convparity.reference_impl import conv_forward, conv_transpose_forward
from convparity.reference_impl.post_ops import PostOp
from tests.plugins import torch_zoo
from tests.plugins.conftest import framework_module

pytestmark = pytest.mark.framework("torch")

SHAPE = (2, 3, 20, 18)
ZOO = "torch:tests.plugins.torch_zoo"
EPILOGUES = {"stem": (PostOp("batchnorm", alpha=1e-3), PostOp("relu")), "dw": (PostOp("clip", alpha=0, beta=6),),
             "pw": (PostOp("swish", alpha=1), PostOp("sum")), "<model>": (PostOp("gelu_erf"),),
             "c1": (PostOp("logistic"),)}
FOLDED = {"asym": ((0, 3), (1, 1)), "same": ((1, 2), (1, 2))}  # F.pad's, and padding="same" with kernel 4


def read(source: str, shape=SHAPE):
    from convparity.plugins.torch_models import read_torch

    return read_torch(source, ReadOptions.of({"x": shape} if shape else None))


def module_layers():
    """(name, spec, input, weight, bias, output) of each convolution, from the module's attributes and a real
    forward on the CPU (forward hooks; the functional one by hand)."""
    torch = framework_module("torch")
    torch.manual_seed(0)
    net = torch_zoo.mixed().eval()
    found = []

    def record(name):
        def hook(layer, args, output):
            x = args[0]
            rank = x.dim() - 2
            transposed = isinstance(layer, torch.nn.ConvTranspose2d)
            explicit = FOLDED.get(name, ((0, 0),) * rank)
            symmetric = (0,) * rank if isinstance(layer.padding, str) else layer.padding
            size = tuple(s - lo - hi for s, (lo, hi) in zip(x.shape[2:], explicit)) if name == "asym" \
                else tuple(x.shape[2:])
            spec = ConvSpec(batch=x.shape[0], in_channels=layer.in_channels, out_channels=layer.out_channels,
                            input_size=size, kernel_size=layer.kernel_size, stride=layer.stride,
                            padding=tuple((p + lo, p + hi) for p, (lo, hi) in zip(symmetric, explicit)),
                            dilation=layer.dilation, groups=layer.groups, bias=layer.bias is not None,
                            transposed=transposed, output_padding=layer.output_padding if transposed else 0,
                            post_ops=EPILOGUES.get(name, ()))
            unpadded = x if name != "asym" else x[:, :, 0:size[0], 1:1 + size[1]]
            found.append((name, spec, unpadded, layer.weight, layer.bias, output))
        return hook

    for name, layer in net.named_children():
        if isinstance(layer, torch.nn.modules.conv._ConvNd):
            layer.register_forward_hook(record(name))
    functional = torch.nn.functional.conv2d
    captured = {}

    def conv2d(x, w, *args, **kwargs):
        out = functional(x, w, *args, **kwargs)
        captured.update(x=x, out=out)
        return out

    torch.nn.functional.conv2d = conv2d
    try:
        with torch.no_grad():
            net(torch.randn(SHAPE))
    finally:
        torch.nn.functional.conv2d = functional
    x = captured["x"]
    spec = ConvSpec(batch=2, in_channels=16, out_channels=8, input_size=tuple(x.shape[2:]), kernel_size=3,
                    padding=((0, 0), (1, 1)), bias=False, post_ops=EPILOGUES["<model>"])
    found.insert(5, ("<model>", spec, x, net.w_fn, None, captured["out"]))
    return found


def test_the_layers_read_on_the_meta_device_are_the_module_layers():
    model = read(f"{ZOO}:mixed")
    expected = module_layers()
    assert [layer.name for layer in model.layers] == [name for name, *_ in expected]
    assert [layer.spec for layer in model.layers] == [spec for _, spec, *_ in expected]
    assert [layer.depth for layer in model.layers] == list(range(9))
    assert model.layers[2].names == ("asym", "<model>:pad") and model.layers[5].names == ("<model>",)


def test_each_layer_read_computes_what_the_module_computes():
    for (name, _, x, w, b, out), layer in zip(module_layers(), read(f"{ZOO}:mixed").layers):
        forward = conv_transpose_forward if layer.spec.transposed else conv_forward
        as64 = [None if t is None else t.detach().double().numpy() for t in (x, w, b)]
        computed = forward(*as64, **reference_options(layer.spec))
        np.testing.assert_allclose(computed, out.double().numpy(), rtol=1e-5, atol=1e-5, err_msg=name)


def test_a_model_too_big_for_memory_reads_on_the_meta_device():
    model = read(f"{ZOO}:huge", (1, 4096, 8, 8))
    assert len(model.layers) == 50 and len(model.groups()) == 1 and model.groups()[0].count == 50


def test_a_factory_that_needs_values_while_it_builds_is_built_again_with_meta_parameters():
    model = read(f"{ZOO}:reads_values", (1, 3, 10, 10))
    assert [layer.name for layer in model.layers] == ["0", "3"]
    assert model.layers[0].spec.post_ops == (PostOp("relu"),)


@pytest.mark.parametrize(("source", "shape", "message"), [
    ("torch:tests.plugins.nowhere:f", SHAPE, r"module 'tests.plugins.nowhere' does not import: ModuleNotFoundError"),
    (f"{ZOO}:missing", SHAPE, r"module 'tests.plugins.torch_zoo' has no 'missing'"),
    (f"{ZOO}:not_a_module", SHAPE, r"the factory returned int, not an nn.Module"),
    (f"{ZOO}:mixed", None, r"give the model's input shape with --input-shape x=DIMS"),
    (f"{ZOO}:mixed", (2, 5, 20, 18), r"the model's forward on a meta tensor of shape 2x5x20x18 raised RuntimeError"),
    ("torch:tests.plugins.torch_zoo", SHAPE, r"write the factory as torch:package.module:function"),
])
def test_bad_input_is_named(source, shape, message):
    with pytest.raises(ModelReadError, match=message):
        read(source, shape)


def test_torchvision_says_when_it_does_not_import():
    if framework_module("importlib").util.find_spec("torchvision") is not None:
        pytest.skip("torchvision is installed here")
    with pytest.raises(ModelReadError, match=r"^torchvision does not import here \(ModuleNotFoundError: .*\); read "
                                             r"the model through a factory of your own instead"):
        read("torchvision:resnet50")


def test_the_library_call_reads_in_a_worker():
    model = convparity.cases_from_model(f"{ZOO}:mixed", input_shapes={"x": SHAPE})
    assert len(model.layers) == 9 and model.reader == "torch" and model.title == "mixed"
    with pytest.raises(ModelError, match=r"^model 'torch:tests.plugins.torch_zoo:mixed': give the model's input"):
        convparity.cases_from_model(f"{ZOO}:mixed")
