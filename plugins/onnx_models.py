"""Model reader for ONNX files (`--model model.onnx`): every Conv, ConvTranspose, QLinearConv and ConvInteger node,
and every QDQ convolution (a Conv fed by DequantizeLinear), with what the graph does right after it.

Shapes come from `onnx.shape_inference` after the graph inputs are fixed: a symbolic dimension needs
`--input-shape NAME=DIMS` (the large initializers are set aside during inference, which otherwise serializes
them all). Padding follows the ONNX operators: `auto_pad` SAME_UPPER (the odd pad at the end), SAME_LOWER (at
the beginning), VALID, or `pads` (all beginnings, then all ends); a ConvTranspose's `output_shape` sets its pads
as onnxruntime computes them; a zero-valued constant Pad node before a Conv (what exporters write for asymmetric
or "same" padding) is folded into its padding and named with it.

The epilogue: while a convolution's output has one consumer, the consumer is read as a post-op when it is
BatchNormalization (inference), an activation (Relu, LeakyRelu, Clip, Sigmoid, Tanh, Elu, HardSigmoid,
HardSwish, Softplus, Mish, Gelu, PRelu, Abs, Exp, Log, Sqrt, Round), x * Sigmoid(x) or x * HardSigmoid(x)
(swish, hardswish), an Add of a tensor of the output's shape (a residual: sum) or a broadcast
Add/Sub/Mul/Div/Max/Min (binary post-ops, their operand drawn like any).

Quantized models: a QLinearConv is its data types (x:w:y), scales and zero points; a ConvInteger its data types
with an int32 output and zero points; a QDQ convolution the types and scales of its DequantizeLinear inputs, its
post-ops, and the QuantizeLinear that ends its chain (else a float32 output). Scales given per channel are
drawn per channel (convparity's per_channel), a note says so.

Weights (`--weights`): each layer's weight initializer (a quantized layer's codes, and its per-channel w_scale) and
bias, as the model holds them, are written with `write_weights`; a layer whose weights are computed at run time
(not constants) keeps drawn ones, with a note.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections import defaultdict
from typing import Any, Literal

from convparity.plugin import (
    PER_CHANNEL,
    ConvSpec,
    Model,
    ModelLayer,
    ModelReadError,
    PostOp,
    Quantization,
    ReadOptions,
    hookimpl,
    write_weights,
)

CONV_OPS = ("Conv", "ConvTranspose", "QLinearConv", "ConvInteger")
# Convolutions written by onnxruntime's graph optimizer into saved models: not ONNX, and hardware specific.
FOREIGN_CONVS = ("FusedConv", "NhwcConv", "Conv", "QLinearConv", "NhwcFusedConv", "ConvTransposeWithDynamicPads")
ELEMENT_TYPES = {1: "float32", 11: "float64", 10: "float16", 16: "bfloat16", 2: "uint8", 3: "int8", 6: "int32"}
SET_ASIDE_BYTES = 4096  # initializers larger than this are given to shape inference as typed inputs


def _attributes(node) -> dict[str, Any]:
    """A node's attributes; floats (stored as float32) in their shortest decimal form (1e-05, not
    9.99999974e-06), which is what the model's author wrote."""
    from onnx import helper

    found = {}
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, float):
            value = _shortest(value)
        found[attribute.name] = value
    return found


def _shortest(value: float) -> float:
    """The shortest decimal that rounds to the same float32 as `value`."""
    import numpy as np

    single = np.float32(value)
    for digits in range(1, 10):
        if np.float32(f"{value:.{digits}g}") == single:
            return float(f"{value:.{digits}g}")
    return float(value)


def _node_name(node) -> str:
    return node.name or f"{node.op_type}:{node.output[0]}"


class _Graph:
    """A model after shape inference: producers, consumers, shapes, types and constant values."""

    def __init__(self, model, set_aside: dict) -> None:
        from onnx import numpy_helper

        self.model = model
        graph = model.graph
        self.initializers = {t.name: t for t in graph.initializer} | set_aside
        self.producer: dict[str, Any] = {}
        self.consumers: dict[str, list] = defaultdict(list)
        for node in graph.node:
            for output in node.output:
                self.producer[output] = node
            for name in node.input:
                if name:
                    self.consumers[name].append(node)
        self.outputs = {o.name for o in graph.output}
        self.types: dict[str, tuple[int, tuple[int | None, ...] | None]] = {}
        for info in [*graph.input, *graph.value_info, *graph.output]:
            tensor = info.type.tensor_type
            shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim) \
                if tensor.HasField("shape") else None
            self.types[info.name] = (tensor.elem_type, shape)
        for tensor in self.initializers.values():
            self.types[tensor.name] = (tensor.data_type, tuple(tensor.dims))
        self._numpy_helper = numpy_helper
        self._values: dict[str, Any] = {}

    def shape(self, name: str) -> tuple[int | None, ...] | None:
        return self.types.get(name, (0, None))[1]

    def element(self, name: str) -> str:
        return ELEMENT_TYPES.get(self.types.get(name, (0, None))[0], "")

    def known_shape(self, name: str, node) -> tuple[int, ...]:
        shape = self.shape(name)
        if shape is None or any(d is None or d < 1 for d in shape):
            raise ModelReadError(f"node {_node_name(node)!r}: the shape of {name!r} is unknown after shape inference "
                                 f"({shape}); fix the model's inputs with --input-shape NAME=DIMS")
        return shape  # type: ignore[return-value]

    def value(self, name: str):
        """The NumPy value of a constant tensor (an initializer, a Constant, or a small constant subgraph such as
        the pads an exporter computes), else None."""
        if not name:
            return None
        if name not in self._values:
            self._values[name] = self._evaluate(name)
        return self._values[name]

    def _evaluate(self, name: str):
        import numpy as np
        from onnx import TensorProto, helper

        if name in self.initializers:
            tensor = self.initializers[name]
            if tensor.data_location == TensorProto.EXTERNAL and not tensor.HasField("raw_data"):
                return None
            return self._numpy_helper.to_array(tensor)
        node = self.producer.get(name)
        if node is None:
            return None
        if node.op_type == "Constant":
            attributes = _attributes(node)
            if "value" in attributes:
                return self._numpy_helper.to_array(attributes["value"])
            for key in ("value_float", "value_int", "value_floats", "value_ints"):
                if key in attributes:
                    return np.array(attributes[key])
            return None
        if node.op_type == "Identity":
            return self.value(node.input[0])
        nodes: list = []
        feeds: dict[str, Any] = {}
        pending, seen = [name], set()
        while pending:
            tensor = pending.pop()
            if not tensor or tensor in seen:
                continue
            seen.add(tensor)
            producer = self.producer.get(tensor)
            if tensor in self.initializers or (producer is not None and producer.op_type == "Constant"):
                value = self.value(tensor)
                if value is None:
                    return None
                feeds[tensor] = value
                continue
            if producer is None or len(nodes) > 64:
                return None  # a graph input: not a constant
            if producer.op_type == "Shape":
                shape = self.shape(producer.input[0])
                if shape is None or None in shape:
                    return None
                attributes = _attributes(producer)
                feeds[tensor] = np.array(shape[attributes.get("start", 0):attributes.get("end", len(shape))],
                                         np.int64)
                continue
            nodes.append(producer)
            pending.extend(producer.input)
        from onnx.reference import ReferenceEvaluator

        order = [node for node in self.model.graph.node if any(node is chosen for chosen in nodes)]
        try:
            graph = helper.make_graph(order, "constant", [], [helper.make_empty_tensor_value_info(name)],
                                      [self._numpy_helper.from_array(np.asarray(v), k) for k, v in feeds.items()])
            outputs: Any = ReferenceEvaluator(helper.make_model(graph, opset_imports=self.model.opset_import)).run(
                None, {})
            return outputs[0]
        except Exception:  # noqa: BLE001 - not a subgraph the reference evaluator computes: not a constant here
            return None

    def scalar(self, name: str, node, what: str) -> float | None:
        value = self.value(name)
        if value is None:
            return None
        if value.size != 1:
            raise ModelReadError(f"node {_node_name(node)!r}: {what} must be one value, got shape {value.shape}")
        return _shortest(float(value.reshape(-1)[0]))


def _fix_inputs(model, options: ReadOptions) -> None:
    """Set the graph inputs' dims from --input-shape; ModelReadError naming an input left symbolic."""
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    given = options.shapes
    symbolic = []
    for entry in inputs:
        dims = entry.type.tensor_type.shape.dim
        if entry.name in given:
            shape = given[entry.name]
            if len(shape) != len(dims):
                raise ModelReadError(f"--input-shape {entry.name}: the model's input has {len(dims)} dims, "
                                     f"{len(shape)} given")
            for position, (dim, value) in enumerate(zip(dims, shape)):
                if dim.HasField("dim_value") and dim.dim_value != value:
                    raise ModelReadError(f"--input-shape {entry.name}: dim {position} is {dim.dim_value} in the model, "
                                         f"{value} given")
                dim.dim_value = value
        if any(not d.HasField("dim_value") for d in dims):
            shown = "x".join(str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?") for d in dims)
            example = "x".join(str(d.dim_value) if d.HasField("dim_value") else "1" for d in dims)
            symbolic.append((entry.name, shown, example))
    if symbolic:
        name, shown, example = symbolic[0]
        unknown = sorted(set(given) - {i.name for i in inputs})
        hint = f" (no input is named {', '.join(map(repr, unknown))}; inputs: " \
               f"{', '.join(i.name for i in inputs)})" if unknown else ""
        raise ModelReadError(f"input {name!r} has symbolic dims {shown}: give them with --input-shape {name}=DIMS, "
                             f"e.g. {name}={example}{hint}")
    del graph.value_info[:]  # inferred again with the fixed dims


def _infer(model):
    """The model with every shape inferred, and the initializers set aside during inference (by name).

    Exporters compute some operands that decide shapes (a Pad's pads, a Reshape's shape) with small subgraphs
    that shape inference does not evaluate: those are evaluated and made initializers, and shapes inferred again.
    """
    inferred, large = _infer_once(model)
    for _ in range(4):
        folded = _fold_shape_operands(_Graph(inferred, large))
        if not folded:
            break
        for index, position, tensor in folded:
            model.graph.node[index].input[position] = tensor.name
            model.graph.initializer.append(tensor)
        inferred, more = _infer_once(model)
        large.update(more)
    return inferred, large


SHAPE_OPERANDS = {"Pad": (1, 2, 3), "Reshape": (1,), "Slice": (1, 2, 3, 4), "Expand": (1,), "Tile": (1,),
                  "Unsqueeze": (1,), "Squeeze": (1,), "Resize": (1, 2, 3), "ConstantOfShape": (0,)}


def _fold_shape_operands(graph: _Graph) -> list:
    """(node index, input position, initializer) for each shape-deciding operand that a small constant subgraph
    computes: the node is to read the initializer (named after the operand) instead."""
    folded = []
    for index, node in enumerate(graph.model.graph.node):
        for position in SHAPE_OPERANDS.get(node.op_type, ()):
            if position >= len(node.input) or not node.input[position]:
                continue
            name = node.input[position]
            if name in graph.initializers:
                continue
            value = graph.value(name)
            if value is not None and value.size <= 64:
                folded.append((index, position, graph._numpy_helper.from_array(value, f"{name}:constant")))
    return folded


def _infer_once(model):
    from onnx import helper, shape_inference

    graph = model.graph
    large = {t.name: t for t in graph.initializer if t.ByteSize() > SET_ASIDE_BYTES}
    small = [t for t in graph.initializer if t.name not in large]
    listed = {i.name for i in graph.input}
    del graph.initializer[:]
    graph.initializer.extend(small)
    for tensor in large.values():
        if tensor.name not in listed:
            graph.input.append(helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
    try:
        inferred = shape_inference.infer_shapes(model, check_type=False, strict_mode=True, data_prop=True)
    except Exception as error:  # noqa: BLE001 - onnx raises several kinds; all mean the same to the user
        raise ModelReadError(f"shape inference failed: {' '.join(str(error).split())[:300]}") from None
    return inferred, large


def _same_pads(size: int, kernel: int, stride: int, dilation: int, lower: bool) -> tuple[int, int]:
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return (total - total // 2, total // 2) if lower else (total // 2, total - total // 2)


def _conv_pads(attributes, size, kernel, stride, dilation) -> tuple[tuple[int, int], ...]:
    auto_pad = attributes.get("auto_pad", "NOTSET")
    rank = len(size)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        return tuple(_same_pads(i, k, s, d, auto_pad == "SAME_LOWER") for i, k, s, d in
                     zip(size, kernel, stride, dilation))
    if auto_pad == "VALID":
        return ((0, 0),) * rank
    pads = list(attributes.get("pads") or [0] * (2 * rank))
    return tuple((pads[i], pads[i + rank]) for i in range(rank))


def _transposed_pads(attributes, size, kernel, stride, dilation, extra) -> tuple[tuple[int, int], ...]:
    """A ConvTranspose's pads: from output_shape (or SAME's out = i * s), split as onnxruntime splits them (the
    odd one at the end for SAME_UPPER, else at the beginning); VALID none; else `pads`."""
    rank = len(size)
    auto_pad = attributes.get("auto_pad", "NOTSET")
    shape = attributes.get("output_shape")
    if shape is not None and len(shape) == rank + 2:
        shape = shape[2:]
    if shape is None and auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        shape = [i * s for i, s in zip(size, stride)]
    if shape is not None:
        pairs = []
        for i, k, s, d, e, o in zip(size, kernel, stride, dilation, extra, shape):
            total = s * (i - 1) + e + (k - 1) * d + 1 - o
            pairs.append((total // 2, total - total // 2) if auto_pad == "SAME_UPPER" else
                         (total - total // 2, total // 2))
        return tuple(pairs)
    if auto_pad == "VALID":
        return ((0, 0),) * rank
    pads = list(attributes.get("pads") or [0] * (2 * rank))
    return tuple((pads[i], pads[i + rank]) for i in range(rank))


def _folded_pad(graph: _Graph, x: str):
    """(the Pad node's input, its spatial pairs, the node) when x is a zero constant Pad of spatial dims only."""
    import numpy as np

    node = graph.producer.get(x)
    if node is None or node.op_type != "Pad" or _attributes(node).get("mode", "constant") != "constant":
        return None
    attributes = _attributes(node)
    pads = graph.value(node.input[1]) if len(node.input) > 1 and node.input[1] else attributes.get("pads")
    if pads is None:
        return None
    pads = [int(p) for p in np.asarray(pads).reshape(-1)]
    fill = graph.value(node.input[2]) if len(node.input) > 2 and node.input[2] else attributes.get("value", 0.0)
    if fill is None or (np.size(fill) and float(np.asarray(fill).reshape(-1)[0]) != 0.0):
        return None
    shape = graph.shape(node.input[0])
    if shape is None:
        return None
    ndim = len(shape)
    axes = list(range(ndim))
    if len(node.input) > 3 and node.input[3]:
        given = graph.value(node.input[3])
        if given is None:
            return None
        axes = [int(a) % ndim for a in np.asarray(given).reshape(-1)]
    if len(pads) != 2 * len(axes):
        return None
    full = [[0, 0] for _ in range(ndim)]
    for j, axis in enumerate(axes):
        full[axis] = [pads[j], pads[j + len(axes)]]
    if any(full[0]) or any(full[1]) or any(p < 0 for pair in full for p in pair):
        return None
    return node.input[0], tuple((lo, hi) for lo, hi in full[2:]), node


def _mask(operand: tuple[int | None, ...] | None, y_shape: tuple[int, ...]) -> int | None:
    """The binary post-op mask of an operand broadcast to y (bit d: it spans y's dim d), None if it does not
    broadcast to y (or would make y larger)."""
    if operand is None or None in operand or len(operand) > len(y_shape):
        return None
    aligned = (1,) * (len(y_shape) - len(operand)) + tuple(operand)  # type: ignore[arg-type]
    mask = 0
    for dim, (size, full) in enumerate(zip(aligned, y_shape)):
        if size == full and full > 1:
            mask |= 1 << dim
        elif size != 1:
            return None
    return mask


ACTIVATIONS = {"Relu": "relu", "Sigmoid": "logistic", "Tanh": "tanh", "Mish": "mish", "Abs": "abs", "Exp": "exp",
               "Log": "log", "Sqrt": "sqrt", "Round": "round"}
BINARY = {"Add": "binary_add", "Sub": "binary_sub", "Mul": "binary_mul", "Div": "binary_div", "Max": "binary_max",
          "Min": "binary_min"}


def _step(graph: _Graph, node, current: str, y_shape: tuple[int, ...]) -> PostOp | None:
    """The post-op `node` applies to `current` (the chain so far), or None where the chain stops."""
    op, attributes = node.op_type, _attributes(node)
    if op in ACTIVATIONS:
        return PostOp(ACTIVATIONS[op])
    if op == "BatchNormalization" and node.input[0] == current and not attributes.get("training_mode", 0):
        return PostOp("batchnorm", alpha=attributes.get("epsilon", 1e-5))
    if op == "LeakyRelu":
        return PostOp("relu", alpha=attributes.get("alpha", 0.01))
    if op == "Elu":
        return PostOp("elu", alpha=attributes.get("alpha", 1.0))
    if op == "HardSigmoid":
        return PostOp("hardsigmoid", alpha=attributes.get("alpha", 0.2), beta=attributes.get("beta", 0.5))
    if op == "HardSwish":
        return PostOp("hardswish", alpha=1 / 6, beta=0.5)
    if op == "Softplus":
        return PostOp("soft_relu", alpha=1.0)
    if op == "Gelu":
        return PostOp("gelu_tanh" if attributes.get("approximate", "none") == "tanh" else "gelu_erf")
    if op == "Clip":
        low = graph.scalar(node.input[1], node, "Clip's min") if len(node.input) > 1 and node.input[1] else \
            attributes.get("min")
        high = graph.scalar(node.input[2], node, "Clip's max") if len(node.input) > 2 and node.input[2] else \
            attributes.get("max")
        if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
            return PostOp("clip", alpha=low, beta=high)
        if low == 0 and high is None:
            return PostOp("relu")
        return None
    if op == "PRelu":
        mask = _mask(graph.shape(node.input[1]), y_shape)
        return None if mask is None else PostOp("prelu", mask=mask)
    if op in BINARY and len(node.input) == 2 and current in node.input:
        other = node.input[1] if node.input[0] == current else node.input[0]
        if other == current or (op in ("Sub", "Div") and node.input[1] == current):
            return None  # x + x, or an operand minus / over the chain: no post-op computes those
        shape = graph.shape(other)
        if op == "Add" and shape is not None and tuple(shape) == tuple(y_shape):
            return PostOp("sum")
        mask = _mask(shape, y_shape)
        return None if mask is None else PostOp(BINARY[op], mask=mask)
    return None


def _epilogue(graph: _Graph, y: str, y_shape: tuple[int, ...]) -> tuple[list[PostOp], str, list[str]]:
    """(post-ops, the tensor the chain ends in, the nodes read) after output `y`."""
    chain: list[PostOp] = []
    read: list[str] = []
    current = y
    while current not in graph.outputs and len(chain) < 16:
        consumers = graph.consumers.get(current, [])
        if len(consumers) == 2:  # x * Sigmoid(x), x * HardSigmoid(x)
            kinds = {c.op_type: c for c in consumers}
            gate = kinds.get("Sigmoid") or kinds.get("HardSigmoid")
            multiply = kinds.get("Mul")
            if gate is not None and multiply is not None and gate.output[0] in multiply.input \
                    and len(graph.consumers.get(gate.output[0], [])) == 1:
                if gate.op_type == "Sigmoid":
                    chain.append(PostOp("swish", alpha=1.0))
                else:
                    attributes = _attributes(gate)
                    chain.append(PostOp("hardswish", alpha=attributes.get("alpha", 0.2),
                                        beta=attributes.get("beta", 0.5)))
                read += [_node_name(gate), _node_name(multiply)]
                current = multiply.output[0]
                continue
        if len(consumers) != 1:
            break
        step = _step(graph, consumers[0], current, y_shape)
        if step is None:
            break
        chain.append(step)
        read.append(_node_name(consumers[0]))
        current = consumers[0].output[0]
    return chain, current, read


def _float_type(graph: _Graph, name: str, node) -> str:
    dtype = graph.element(name)
    if dtype not in ("float32", "float64", "float16", "bfloat16"):
        raise ModelReadError(f"node {_node_name(node)!r}: input {name!r} has element type "
                             f"{dtype or graph.types.get(name, (0,))[0]}, not a float type convparity computes")
    return dtype


class _Scales:
    """Scales and zero points of one quantized layer, and what could not be carried over exactly."""

    def __init__(self, graph: _Graph, node) -> None:
        self.graph, self.node = graph, node
        self.notes: list[str] = []

    def scale(self, name: str, what: str) -> float | Literal["per_channel"]:
        import numpy as np

        value = self.graph.value(name)
        if value is None:
            raise ModelReadError(f"node {_node_name(self.node)!r}: {what} {name!r} is not a constant")
        flat = np.asarray(value, dtype=np.float64).reshape(-1)
        if flat.size > 1 and not np.all(flat == flat[0]):
            self.notes.append(f"{what} is per channel: drawn per channel (1/16 to 1/4), not the model's values")
            return PER_CHANNEL
        return float(flat[0])

    def zero_point(self, name: str, what: str) -> int:
        """One zero point (ONNX gives x and y one each; w's may differ per channel, which convparity does not
        compute: then 0, with a note)."""
        import numpy as np

        if not name:
            return 0
        value = self.graph.value(name)
        if value is None:
            producer = self.graph.producer.get(name)
            self.notes.append(f"{what} is computed at run time ({producer.op_type if producer else 'an input'}): "
                              "taken as 0")
            return 0
        flat = np.asarray(value).reshape(-1).astype(np.int64)
        if flat.size > 1 and not np.all(flat == flat[0]):
            self.notes.append(f"{what} differs per channel, which convparity does not compute: taken as 0")
            return 0
        return int(flat[0])


def _dequantized(graph: _Graph, name: str):
    node = graph.producer.get(name)
    return node if node is not None and node.op_type == "DequantizeLinear" else None


def _weights(graph: _Graph, node, w: str, bias: str, title: str, folder: str, depth: int, notes: list[str]) -> str:
    """The file of the layer's own weights (see the module docstring), or "" with a note where they are not
    constants. w, bias: the node's weight and bias inputs (the quantized codes' DequantizeLinear outputs for a QDQ
    convolution)."""
    import numpy as np

    w_scale = None
    if node.op_type == "QLinearConv":
        w_scale = graph.value(node.input[4])
    elif (dequantize := _dequantized(graph, w)) is not None:
        w, w_scale = dequantize.input[0], graph.value(dequantize.input[1])
    if bias and (dequantize := _dequantized(graph, bias)) is not None:
        bias = dequantize.input[0]
    values = graph.value(w), graph.value(bias) if bias else None
    if values[0] is None or (bias and values[1] is None):
        notes.append("its weights are computed at run time, not constants: drawn")
        return ""
    per_channel = w_scale is not None and np.asarray(w_scale).size > 1
    return write_weights(folder, title, _node_name(node), depth, w=values[0], b=values[1],
                         w_scale=np.asarray(w_scale, dtype=np.float64).reshape(-1) if per_channel else None)


def _layer(graph: _Graph, node, depth: int, title: str = "", weights: str = "") -> ModelLayer:
    """The convolution `node` as a layer; its own weights written to the folder `weights` (when given)."""
    op, attributes = node.op_type, _attributes(node)
    name = _node_name(node)
    if op == "QLinearConv":
        x, w, bias = node.input[0], node.input[3], node.input[8] if len(node.input) > 8 else ""
    else:
        x, w = node.input[0], node.input[1]
        bias = node.input[2] if op in ("Conv", "ConvTranspose") and len(node.input) > 2 else ""
    x_shape, w_shape = graph.known_shape(x, node), graph.known_shape(w, node)
    y_shape = graph.known_shape(node.output[0], node)
    rank = len(x_shape) - 2
    if not 1 <= rank <= 3:
        raise ModelReadError(f"node {name!r}: a {rank}-D convolution (convparity computes 1-D to 3-D ones)")
    groups = attributes.get("group", 1)
    kernel = tuple(attributes.get("kernel_shape") or w_shape[2:])
    stride = tuple(attributes.get("strides") or (1,) * rank)
    dilation = tuple(attributes.get("dilations") or (1,) * rank)
    size = tuple(x_shape[2:])
    names = [name]
    geometry: dict[str, Any] = dict(batch=x_shape[0], in_channels=x_shape[1], kernel_size=kernel, stride=stride,
                                    dilation=dilation, groups=groups, bias=bool(bias))
    if op == "ConvTranspose":
        extra = tuple(attributes.get("output_padding") or (0,) * rank)
        padding = _transposed_pads(attributes, size, kernel, stride, dilation, extra)
        geometry.update(out_channels=w_shape[1] * groups, transposed=True, output_padding=extra)
    else:
        padding = _conv_pads(attributes, size, kernel, stride, dilation)
        while (folded := _folded_pad(graph, x)) is not None:
            x, pairs, pad = folded
            padding = tuple((a + c, b + d) for (a, b), (c, d) in zip(padding, pairs))
            size = tuple(graph.known_shape(x, node)[2:])
            names.append(_node_name(pad))
        geometry.update(out_channels=w_shape[0])
    geometry.update(input_size=size, padding=padding)
    scales = _Scales(graph, node)
    chain: list[PostOp] = []
    quantization = Quantization()
    fixed = False
    if op == "QLinearConv":
        dtype = f"{graph.element(x)}:{graph.element(w)}:{graph.element(node.output[0])}"
        quantization = Quantization(
            x_scale=scales.scale(node.input[1], "x_scale"), w_scale=scales.scale(node.input[4], "w_scale"),
            y_scale=scales.scale(node.input[6], "y_scale"),
            x_zero_point=scales.zero_point(node.input[2], "x_zero_point"),
            w_zero_point=scales.zero_point(node.input[5], "w_zero_point"),
            y_zero_point=scales.zero_point(node.input[7], "y_zero_point"))
        fixed = True
    elif op == "ConvInteger":
        dtype = f"{graph.element(x)}:{graph.element(w)}:int32"
        quantization = Quantization(
            x_zero_point=scales.zero_point(node.input[2] if len(node.input) > 2 else "", "x_zero_point"),
            w_zero_point=scales.zero_point(node.input[3] if len(node.input) > 3 else "", "w_zero_point"))
        fixed = True
    elif (dx := _dequantized(graph, x)) is not None and (dw := _dequantized(graph, w)) is not None:
        chain, end, read = _epilogue(graph, node.output[0], y_shape)
        names += read
        consumers = graph.consumers.get(end, [])
        quantize = consumers[0] if len(consumers) == 1 and consumers[0].op_type == "QuantizeLinear" else None
        destination, y_zero = "float32", 0
        y_scale: float | Literal["per_channel"] = 1.0
        if quantize is not None:
            destination = graph.element(quantize.input[2]) if len(quantize.input) > 2 and quantize.input[2] \
                else "uint8"
            y_scale = scales.scale(quantize.input[1], "y_scale")
            y_zero = scales.zero_point(quantize.input[2] if len(quantize.input) > 2 else "", "y_zero_point")
            names.append(_node_name(quantize))
        dtype = f"{graph.element(dx.input[0])}:{graph.element(dw.input[0])}:{destination}"
        quantization = Quantization(
            x_scale=scales.scale(dx.input[1], "x_scale"), w_scale=scales.scale(dw.input[1], "w_scale"),
            y_scale=y_scale,
            x_zero_point=scales.zero_point(dx.input[2] if len(dx.input) > 2 else "", "x_zero_point"),
            w_zero_point=scales.zero_point(dw.input[2] if len(dw.input) > 2 else "", "w_zero_point"),
            y_zero_point=y_zero)
        if bias and _dequantized(graph, bias) is None:
            quantization = dataclasses.replace(quantization, bias_dtype="float32")
        fixed = True
    else:
        dtype = _float_type(graph, x, node)
        chain, _, read = _epilogue(graph, node.output[0], y_shape)
        names += read
    try:
        spec = ConvSpec(**geometry, dtype=dtype, post_ops=tuple(chain), quantization=quantization)
    except ValueError as error:
        raise ModelReadError(f"node {name!r}: {error}") from None
    if not spec.transposed and spec.output_size != tuple(y_shape[2:]):
        raise ModelReadError(f"node {name!r}: its padding gives an output of {spec.output_size}, shape inference "
                             f"says {tuple(y_shape[2:])}")
    weights_file = _weights(graph, node, w, bias, title, weights, depth, scales.notes) if weights else ""
    return ModelLayer(tuple(names), spec, depth, fixed, "; ".join(scales.notes), weights_file)


def read_onnx(source: str, options: ReadOptions) -> Model:
    import onnx

    if not os.path.isfile(source):
        raise ModelReadError(f"no such file: {source}")
    try:
        model = onnx.load(source, load_external_data=False)
    except Exception as error:  # noqa: BLE001 - a damaged or foreign file
        raise ModelReadError(f"not an ONNX model: {' '.join(str(error).split())[:200]}") from None
    _fix_inputs(model, options)
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx") and node.op_type in FOREIGN_CONVS:
            raise ModelReadError(f"node {_node_name(node)!r}: {node.domain}.{node.op_type} is an operator of "
                                 "onnxruntime's optimizer, not ONNX: read the model as exported, before onnxruntime "
                                 "optimizes it")
    inferred, set_aside = _infer(model)
    graph = _Graph(inferred, set_aside)
    layers = [node for node in inferred.graph.node if node.op_type in CONV_OPS and node.domain in ("", "ai.onnx")]
    notes = []
    if any(a.type in (5, 10) for node in inferred.graph.node for a in node.attribute
           if node.op_type in ("If", "Loop", "Scan")):
        notes.append("convolutions inside If/Loop/Scan subgraphs are not read")
    title = os.path.splitext(os.path.basename(source))[0]
    return Model(source, title, "onnx", tuple(_layer(graph, node, depth, title, options.weights)
                                              for depth, node in enumerate(layers)), tuple(notes))


class OnnxModelReader:
    name = "onnx"
    sources = "FILE.onnx"

    def claims(self, source: str) -> bool:
        return source.lower().endswith(".onnx")

    def read(self, source: str, options: ReadOptions) -> Model:
        return read_onnx(source, options)


@hookimpl
def convparity_register_model_readers(register):
    register(OnnxModelReader())
