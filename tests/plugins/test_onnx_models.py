"""The ONNX model reader on files PyTorch exports: the layers read are exactly the module's (found here from the
module itself, by forward hooks), and each read layer, run through the reference with the file's weights, gives
what onnxruntime computes for that node of the file; quantized exports keep their data types and scales; bad input
is one line naming the field."""

from __future__ import annotations

import numpy as np
import pytest

import convparity
from convparity.harness.cases.inputs import InputStyle, make_inputs
from convparity.harness.cases.models import ModelError, ModelReadError, ReadOptions
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.evaluation.reference import reference_options
from convparity.reference_impl import conv_forward, conv_transpose_forward
from convparity.reference_impl.post_ops import PostOp, chain_forward
from tests.plugins.conftest import framework_module

pytestmark = pytest.mark.framework("torch")

BATCH, SIZE = 2, (40, 36)
# The pads the module's forward applies with F.pad before a layer, per spatial dim (before, after).
EXPLICIT_PADS = {"asym": ((0, 3), (1, 1)), "same": ((1, 2), (1, 2))}


def module():
    """Depthwise + dilated, asymmetric padding (F.pad), padding that becomes SAME_UPPER, a transposed layer,
    conv + batchnorm + relu, a 1-D layer; each layer's epilogue as the module writes it."""
    torch = framework_module("torch")
    nn, F = torch.nn, torch.nn.functional

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(16)
            self.dw = nn.Conv2d(16, 16, 3, padding=2, dilation=2, groups=16)
            self.asym = nn.Conv2d(16, 24, (3, 2))
            self.same = nn.Conv2d(24, 24, 4, groups=4, bias=False)
            self.up = nn.ConvTranspose2d(24, 8, 4, stride=2, padding=1, output_padding=1, groups=2)
            self.c1 = nn.Conv1d(8, 4, 5, stride=3)

        def forward(self, x):
            x = F.relu(self.bn(self.stem(x)))
            x = F.relu6(self.dw(x))
            x = self.asym(F.pad(x, (1, 1, 0, 3)))
            x = self.same(F.pad(x, (1, 2, 1, 2)))
            x = self.up(x)
            return torch.sigmoid(self.c1(x.flatten(2)))

    torch.manual_seed(0)
    net = Net().eval()
    with torch.no_grad():  # batchnorm statistics that are not the identity
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
        net.bn.weight.uniform_(0.5, 1.5)
    return net


EPILOGUES = {"stem": (PostOp("batchnorm", alpha=1e-5), PostOp("relu")), "dw": (PostOp("clip", alpha=0, beta=6),),
             "c1": (PostOp("logistic"),)}


def module_layers(net) -> dict[str, ConvSpec]:
    """The module's convolutions as specs, from its own attributes and the inputs its forward gives them."""
    torch = framework_module("torch")
    found: dict[str, ConvSpec] = {}

    def hook(name):
        def record(layer, args):
            x = args[0]
            rank = x.dim() - 2
            pads = EXPLICIT_PADS.get(name, ((0, 0),) * rank)
            size = tuple(s - lo - hi for s, (lo, hi) in zip(x.shape[2:], pads))
            padding = tuple((p + lo, p + hi) for p, (lo, hi) in zip(layer.padding, pads))
            transposed = isinstance(layer, torch.nn.ConvTranspose2d)
            found[name] = ConvSpec(batch=x.shape[0], in_channels=layer.in_channels, out_channels=layer.out_channels,
                                   input_size=size, kernel_size=layer.kernel_size, stride=layer.stride,
                                   padding=padding, dilation=layer.dilation, groups=layer.groups,
                                   bias=layer.bias is not None, transposed=transposed,
                                   output_padding=layer.output_padding if transposed else 0,
                                   post_ops=EPILOGUES.get(name, ()))
        return record

    for name, layer in net.named_children():
        if isinstance(layer, torch.nn.modules.conv._ConvNd):
            layer.register_forward_pre_hook(hook(name))
    with torch.no_grad():
        net(torch.randn(BATCH, 3, *SIZE))
    return found


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(the module, the ONNX file it exports with its batchnorm kept, the same file with the pad before `same`
    written as auto_pad SAME_UPPER)."""
    torch, onnx = framework_module("torch"), framework_module("onnx")
    net = module()
    folder = tmp_path_factory.mktemp("onnx")
    path = folder / "net.onnx"
    torch.onnx.export(net, (torch.randn(BATCH, 3, *SIZE),), str(path), dynamo=False, opset_version=17,
                      input_names=["input"], dynamic_axes={"input": {0: "batch"}},
                      training=torch.onnx.TrainingMode.PRESERVE)
    model = onnx.load(str(path))
    conv = next(n for n in model.graph.node if n.name == "/same/Conv")
    pad = next(n for n in model.graph.node if n.output[0] == conv.input[0])
    assert pad.op_type == "Pad"
    conv.input[0] = pad.input[0]
    model.graph.node.remove(pad)
    del conv.attribute[:]
    conv.attribute.extend([onnx.helper.make_attribute("auto_pad", "SAME_UPPER"),
                           onnx.helper.make_attribute("group", 4), onnx.helper.make_attribute("kernel_shape", [4, 4])])
    same_upper = folder / "same_upper.onnx"
    onnx.save(model, str(same_upper))
    return net, path, same_upper


def read(path, **shapes):
    from convparity.plugins.onnx_models import read_onnx

    return read_onnx(str(path), ReadOptions.of(shapes or {"input": (BATCH, 3, *SIZE)}))


def layer_names(model) -> list[str]:
    return [layer.name.split("/")[1] for layer in model.layers]


@pytest.mark.parametrize("variant", ["exported", "same_upper"])
def test_the_file_has_exactly_the_module_layers(exported, variant):
    net, path, same_upper = exported
    model = read(path if variant == "exported" else same_upper)
    expected = module_layers(net)
    assert layer_names(model) == list(expected)  # the order the module runs them
    assert {name: layer.spec for name, layer in zip(layer_names(model), model.layers)} == expected
    assert [layer.depth for layer in model.layers] == list(range(len(expected)))
    folded = {layer.name for layer in model.layers if any("Pad" in name for name in layer.names[1:])}
    assert folded == ({"/asym/Conv", "/same/Conv"} if variant == "exported" else {"/asym/Conv"})
    assert model.layers[0].names == ("/stem/Conv", "/bn/BatchNormalization", "/Relu")  # what its epilogue fuses


def test_each_layer_read_computes_what_onnxruntime_computes_for_its_node(exported):
    """The read spec through the reference, on the node's own input and the file's weights, against onnxruntime's
    output of the node (and of its chain for conv + batchnorm + relu): padding, auto_pad and folding checked by
    values."""
    onnx, ort = framework_module("onnx"), framework_module("onnxruntime")
    _, _, path = exported
    model = read(path)
    proto = onnx.load(str(path))
    nodes = {node.name: node for node in proto.graph.node}
    producer = {output: node for node in proto.graph.node for output in node.output}
    weights = {t.name: onnx.numpy_helper.to_array(t).astype(np.float64) for t in proto.graph.initializer}
    wanted = []
    for layer in model.layers:
        node = nodes[layer.name]
        x = node.input[0]
        if any("Pad" in name for name in layer.names[1:]):
            x = producer[x].input[0]
        end = nodes[layer.names[-1]].output[0] if layer.spec.post_ops else node.output[0]
        wanted.append((layer, node, x, node.output[0], end))
    names = list(dict.fromkeys(n for _, _, x, y, end in wanted for n in (x, y, end)))
    del proto.graph.output[:]
    proto.graph.output.extend([onnx.helper.make_empty_tensor_value_info(n) for n in names])
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = np.random.default_rng(1).uniform(-1, 1, (BATCH, 3, *SIZE)).astype(np.float32)
    values = dict(zip(names, session.run(names, {"input": feed})))
    checked = 0
    for layer, node, x, y, end in wanted:
        spec = layer.spec
        w = weights[node.input[1]]
        b = weights[node.input[2]] if len(node.input) > 2 and node.input[2] else None
        forward = conv_transpose_forward if spec.transposed else conv_forward
        c = forward(values[x].astype(np.float64), w, b, **reference_options(spec))
        np.testing.assert_allclose(c, values[y], rtol=1e-4, atol=1e-4, err_msg=layer.name)
        if spec.post_ops:
            operands = []
            for op in spec.post_ops:
                if op.kind == "batchnorm":
                    bn = nodes[next(n for n in layer.names if "BatchNormalization" in n)]
                    gamma, beta, mean, var = (weights[name] for name in bn.input[1:5])
                    operands.append(np.stack([mean, var, gamma, beta]))
                else:
                    operands.append(None)
            chained = chain_forward(c, spec.post_ops, operands).output
            np.testing.assert_allclose(chained, values[end], rtol=1e-4, atol=1e-4, err_msg=layer.name)
        checked += 1
    assert checked == 6


def test_a_symbolic_input_needs_its_shape(exported):
    _, path, _ = exported
    with pytest.raises(ModelReadError, match=r"^input 'input' has symbolic dims batchx3x40x36: give them with "
                                             r"--input-shape input=DIMS, e.g. input=1x3x40x36 \(no input is named 'x'; "
                                             r"inputs: input\)$"):
        read(path, x=(1, 3, 40, 36))
    with pytest.raises(ModelReadError, match="dim 1 is 3 in the model, 4 given"):
        read(path, input=(1, 4, 40, 36))


def test_the_library_call_reads_in_a_worker_and_names_bad_input(exported, tmp_path):
    _, path, _ = exported
    model = convparity.cases_from_model(str(path), input_shapes=["input=1x3x40x36"])
    assert len(model.layers) == 6 and model.layers[0].spec.batch == 1 and model.title == "net"
    with pytest.raises(ModelError, match=r"^model '.*missing.onnx': no such file: .*missing.onnx$"):
        convparity.cases_from_model(str(tmp_path / "missing.onnx"))


def test_an_optimizer_operator_is_refused_by_name(tmp_path):
    onnx = framework_module("onnx")
    helper = onnx.helper
    node = helper.make_node("FusedConv", ["X", "W"], ["Y"], domain="com.microsoft", activation="Relu", name="fused")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", 1, [1, 2, 5, 5])],
                              [helper.make_tensor_value_info("Y", 1, None)],
                              [helper.make_tensor("W", 1, [2, 2, 3, 3], [0.0] * 36)])
    path = tmp_path / "fused.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                      helper.make_opsetid("com.microsoft", 1)]), str(path))
    with pytest.raises(ModelReadError, match="node 'fused': com.microsoft.FusedConv is an operator of onnxruntime's "
                                             "optimizer, not ONNX"):
        read(path, X=(1, 2, 5, 5))


@pytest.fixture(scope="module")
def quantized(exported, tmp_path_factory):
    """The exported module quantized by onnxruntime: QLinearConv (QOperator), QDQ, and ConvInteger (dynamic)."""
    quantization = framework_module("onnxruntime.quantization")
    onnx = framework_module("onnx")
    _, path, _ = exported
    folder = tmp_path_factory.mktemp("quantized")
    fixed = onnx.load(str(path))
    fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value = BATCH
    float_path = folder / "fixed.onnx"
    onnx.save(fixed, str(float_path))
    rng = np.random.default_rng(0)

    class Calibration(quantization.CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"input": rng.uniform(-1, 1, (BATCH, 3, *SIZE)).astype(np.float32)}
                                 for _ in range(2)])

        def get_next(self):
            return next(self.batches, None)

    files = {}
    for form in ("QOperator", "QDQ"):
        files[form] = folder / f"{form}.onnx"
        quantization.quantize_static(str(float_path), str(files[form]), Calibration(),
                                     quant_format=getattr(quantization.QuantFormat, form), per_channel=True,
                                     weight_type=quantization.QuantType.QInt8,
                                     activation_type=quantization.QuantType.QUInt8, op_types_to_quantize=["Conv"])
    files["dynamic"] = folder / "dynamic.onnx"
    quantization.quantize_dynamic(str(float_path), str(files["dynamic"]), weight_type=quantization.QuantType.QUInt8,
                                  op_types_to_quantize=["Conv"])
    return files


def test_quantized_convolutions_keep_their_types_and_scales(quantized):
    qoperator = read(quantized["QOperator"])
    converted = [layer for layer in qoperator.layers if layer.fixed_dtype]
    assert converted, "onnxruntime quantized no Conv"
    for layer in converted:
        spec = layer.spec
        assert spec.dtype == "uint8:int8:uint8" and spec.quantized
        q = spec.quantization
        assert isinstance(q.x_scale, float) and isinstance(q.y_scale, float) and q.w_zero_point == 0
        assert q.w_scale == "per_channel" or spec.out_channels == 1
        assert "w_scale is per channel" in layer.note
    qdq = read(quantized["QDQ"])
    quantized_qdq = [layer for layer in qdq.layers if layer.fixed_dtype]
    assert len(quantized_qdq) == len(converted)
    assert {layer.spec.data_types[:2] for layer in quantized_qdq} == {("uint8", "int8")}
    dynamic = read(quantized["dynamic"])
    integer = [layer for layer in dynamic.layers if layer.fixed_dtype]
    assert integer and all(layer.spec.dtype == "uint8:uint8:int32" and not layer.spec.bias for layer in integer)
    assert all("x_zero_point is computed at run time (DynamicQuantizeLinear): taken as 0" in layer.note
               for layer in integer)


def test_a_quantized_layer_runs_on_the_reference(quantized):
    layer = next(layer for layer in read(quantized["QOperator"]).layers if layer.fixed_dtype)
    result, rows = convparity.evaluate_case("reference", layer.spec)
    assert [row.status for row in rows] == ["pass"]


def test_with_weights_each_layer_is_drawn_with_the_modules_own_parameters(exported, tmp_path):
    """--weights: every layer's w and b are the module's parameters (compared with the module, not the file), each
    layer a case of its own; x and dy are the usual draws."""
    from convparity.plugins.onnx_models import read_onnx

    net, path, _ = exported
    model = read_onnx(str(path), ReadOptions.of({"input": (BATCH, 3, *SIZE)}, tmp_path / "weights"))
    assert len(model.groups()) == len(model.layers)
    children = dict(net.named_children())
    for group, name in zip(model.groups(), layer_names(model)):
        assert group.weights.startswith(str(tmp_path / "weights"))
        inputs = make_inputs(group.spec, 0, group.case.inputs)
        layer = children[name]
        np.testing.assert_array_equal(inputs.w, layer.weight.detach().numpy())
        if layer.bias is None:
            assert inputs.b is None
        else:
            np.testing.assert_array_equal(inputs.b, layer.bias.detach().numpy())
        np.testing.assert_array_equal(inputs.x, make_inputs(group.spec, 0).x)


def test_with_weights_a_quantized_layer_gets_its_codes_and_per_channel_scales(exported, quantized, tmp_path):
    """The QLinearConv layers' own int8 codes and per-channel w scales: codes x scale are the module's weights to
    half a step, and they reach the top of the int8 range, where drawn codes (+-4) never go."""
    from convparity.plugins.onnx_models import read_onnx

    net = exported[0]
    by_shape = {tuple(child.weight.shape): child for child in net.children() if hasattr(child, "weight")
                and child.weight is not None and child.weight.dim() > 2}
    model = read_onnx(str(quantized["QOperator"]), ReadOptions.of(None, tmp_path / "weights"))
    layers = [layer for layer in model.layers if layer.fixed_dtype and layer.spec.quantization.w_scale == "per_channel"]
    assert layers
    for layer in layers:
        inputs = make_inputs(layer.spec, 0, InputStyle("weights", source=layer.weights))
        scale = np.asarray(inputs.quantization["w_scale"], dtype=np.float64)
        assert inputs.w.dtype == np.int8 and scale.shape == (layer.spec.out_channels,)
        weight = by_shape[inputs.w.shape].weight.detach().numpy().astype(np.float64)
        steps = scale.reshape(-1, *[1] * (weight.ndim - 1))
        assert np.all(np.abs(inputs.w * steps - weight) <= steps / 2 * (1 + 1e-6)), layer.name
        assert np.abs(inputs.w.astype(int)).max() == 127 and np.abs(make_inputs(layer.spec, 0).w.astype(int)).max() <= 4


def test_a_models_own_weights_show_fbgemms_depthwise_saturation_that_drawn_ones_hide(tmp_path):
    """A depthwise QLinearConv whose int8 weights sit near +-127 and whose x zero point is 128 (what a trained,
    quantized network has): with drawn weights (codes within +-4) FBGEMM is right; with the model's own its
    depthwise kernel's saturating int16 pairs show (torch-quantized-fbgemm's declared deviation)."""
    onnx = framework_module("onnx")
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    channels = 8
    rng = np.random.default_rng(0)
    w = rng.integers(100, 128, (channels, 1, 3, 3)) * rng.choice([-1, 1], (channels, 1, 3, 3))
    constants = [numpy_helper.from_array(np.float32(0.02), "xs"), numpy_helper.from_array(np.uint8(128), "xz"),
                 numpy_helper.from_array(w.astype(np.int8), "w"),
                 numpy_helper.from_array(np.full(channels, 0.01, np.float32), "ws"),
                 numpy_helper.from_array(np.zeros(channels, np.int8), "wz"),
                 numpy_helper.from_array(np.float32(0.5), "ys"), numpy_helper.from_array(np.uint8(128), "yz")]
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"], group=channels,
                            kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="dw")
    shape = [1, channels, 12, 12]
    graph = helper.make_graph([node], "dwq", [helper.make_tensor_value_info("x", onnx.TensorProto.UINT8, shape)],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.UINT8, shape)], constants)
    path = tmp_path / "dwq.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    statuses = {}
    for weights in (False, True):
        run = convparity.sweep(backends=["reference", "torch-quantized-fbgemm"], models=[str(path)], weights=weights,
                               out=tmp_path / f"weights-{weights}")
        rows = convparity.read_results(run.path)
        statuses[weights] = dict(zip(rows["backend"], rows["status"]))
    assert statuses[False] == {"reference": "pass", "torch-quantized-fbgemm": "pass"}
    assert statuses[True]["reference"] == "pass" and statuses[True]["torch-quantized-fbgemm"] in ("xfail", "fail")
