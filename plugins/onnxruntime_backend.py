"""Backends `onnxruntime` and `onnxruntime-unfused`: an ONNX `Conv` (or `ConvTranspose`) node and its epilogue as
ONNX nodes, run by ONNX Runtime's CPU provider with graph optimizations on (ORT_ENABLE_ALL) and off (ORT_DISABLE_ALL).

Forward only: ONNX Runtime's inference sessions compute y, so dx, dw and db come back as None and
their rows read `unsupported` (onnxruntime-training is not used). The model has inputs x (N, C, *in), w
(O, C/groups, *k) and, with a bias, b (O,), in the spec's dtype; pads are ONNX's [before..., after...]. A
transposed spec is a `ConvTranspose` node with w (C, O/groups, *k), the same pads and its output_padding.

A post-op chain is built as the ONNX nodes a model exported from a framework holds after its convolution
(`onnxruntime_conv`'s docstring lists them), each operand a graph input (a sum's residual, a binary's src1,
prelu's slopes, batchnorm's four rows). At ORT_ENABLE_ALL, ONNX Runtime's graph transformers fuse part of
them into the convolution: Relu, LeakyRelu, Clip, Sigmoid, Tanh and HardSigmoid into a FusedConv (its
activation), an Add of a y-shaped tensor (a sum) and the activation after it into FusedConv's Z input, and
x * Sigmoid(alpha x) into QuickGelu; the others run as their own kernels. At ORT_DISABLE_ALL every node runs as
written, so the two backends side by side separate a fusion's error from a kernel's. (Folding batchnorm, a
per-channel Add or Mul into the weights needs constant weights: w is a graph input here, so those folds do not
happen.) In float16 ONNX Runtime's CPU provider casts each node without a float16 kernel to float32 and back.

The whole of it is `onnxruntime_conv` (the backend's program); one session per spec is built and reused.

Limits are probes, not guesses: each `Probe` is a tiny model showing one feature (a dtype, a
negative pad, a post-op kind); when ONNX Runtime refuses to build a session for it or to run it, its own error
text becomes the reason of a `Limit` covering every spec with that feature. A newer ONNX Runtime that adds,
say, a float64 Conv kernel drops that limit by itself. onnx and onnxruntime are imported lazily.

The quantized backends (QLinearConv, ConvInteger, QDQ graphs) are in `onnxruntime_quantized`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, lru_cache

import numpy as np

from convparity.plugin import (
    BackendCost,
    ConvSpec,
    Extras,
    Framework,
    Limit,
    Outputs,
    Probe,
    Program,
    dtype_probes,
    first_limit,
    hookimpl,
    numpy_dtype,
    probed_limits,
    program_arguments,
    tiny_spec,
)

ONNX = Framework("onnx", "onnxruntime")
ONNXRUNTIME = Framework("onnxruntime", "onnxruntime")
PROVIDER = "CPUExecutionProvider"
# Conv-22 and ConvTranspose-22 are the newest; they are the first to admit bfloat16 (onnxruntime_conv's opset).
# Gelu (approximate none/tanh) needs 20, Mish 18.
OPSET = 22
# The exceptions onnxruntime raises for a model it will not build a session for.
REFUSALS = ("Fail", "InvalidArgument", "InvalidGraph", "NotImplemented")
# session options' graph_optimization_level per program argument `optimization`.
LEVELS = {"all": "ORT_ENABLE_ALL", "disable": "ORT_DISABLE_ALL"}
# The post-op kinds onnxruntime_conv builds (benchdnn's aliases resolve to these before they reach it).
POST_OPS = ("relu", "clip", "elu", "gelu_erf", "gelu_tanh", "swish", "logistic", "tanh", "hardswish", "hardsigmoid",
            "mish", "soft_relu", "linear", "abs", "square", "sqrt", "exp", "log", "round", "pow", "sum",
            "binary_add", "binary_sub", "binary_mul", "binary_div", "binary_max", "binary_min", "prelu", "batchnorm")
# The kinds ORT_ENABLE_ALL fuses into the convolution (FusedConv's activation or Z input, QuickGelu after it); the
# tests read each from the optimized graph.
FUSED_AT_ENABLE_ALL = ("relu", "clip", "logistic", "tanh", "hardsigmoid", "sum", "swish")


def onnxruntime_conv(*, stride, padding, dilation, groups, dtype, bias, output_padding=None, x_shape, w_shape,
                     y_shape, post_ops=(), quantization=None, optimization="all", session_config=(),
                     optimized_model=None):
    """y = Conv(x, w[, b]) (ConvTranspose with output_padding), then the post-op chain as ONNX nodes, opset 22, in an
    ONNX Runtime session on the CPU execution provider at graph optimization level `optimization` ("all":
    ORT_ENABLE_ALL, "disable": ORT_DISABLE_ALL), with the session config entries `session_config` ((key, value)
    pairs). Forward only: step(x, w, b, dy, operands=(), quantization=None) -> (y, None, None, None).

    Each step of `post_ops` (kind, alpha, beta, scale, zero_point, mask) becomes: relu Relu (LeakyRelu for a slope
    alpha), clip Clip(alpha, beta), elu Elu, gelu_erf / gelu_tanh Gelu (approximate none / tanh), swish
    x * Sigmoid(alpha x), logistic Sigmoid, tanh Tanh, hardswish HardSwish (alpha 1/6, beta 1/2; else x *
    HardSigmoid(alpha, beta)), hardsigmoid HardSigmoid, mish Mish, soft_relu Softplus(alpha x) / alpha, linear
    alpha x + beta, abs Abs, square x * x, sqrt Sqrt, exp Exp, log Log, round Round, pow alpha * Pow(x, beta),
    sum x + scale (r - zero_point) (Add alone for scale 1, zero point 0), binary_* Add/Sub/Mul/Div/Max/Min, prelu
    PRelu, batchnorm BatchNormalization (inference). Operands are graph inputs post{k} (batchnorm:
    post{k}_mean, _var, _gamma, _beta); constants are initializers of the working float type.

    An integer dtype (SRC:WEI:DST of uint8 / int8) makes a QDQ graph, the form ONNX Runtime's quantization tool
    writes: x (codes, a graph input) -> DequantizeLinear, w and the bias as initializers -> DequantizeLinear (an
    int32 bias at scale x_scale * w_scale, computed in float32), Conv in float32, the chain, QuantizeLinear to y's
    type; per-channel scales and zero points are 1-D with `axis` (1 for x and y, 0 for w). Its scales arrive with
    the inputs (step's `quantization`: the six scales and zero points), so each call builds its session. A
    float bias (real units) goes to the Conv as it is. `optimized_model`: a path to write the graph ONNX Runtime
    runs after its optimizations (onnxruntime.SessionOptions.optimized_model_filepath)."""
    import os

    import numpy as np
    import onnx
    import onnxruntime
    from onnx import helper, numpy_helper

    types = {"float64": onnx.TensorProto.DOUBLE, "float32": onnx.TensorProto.FLOAT,
             "float16": onnx.TensorProto.FLOAT16, "bfloat16": onnx.TensorProto.BFLOAT16,
             "uint8": onnx.TensorProto.UINT8, "int8": onnx.TensorProto.INT8}
    source, weights, destination = dtype.split(":") if ":" in dtype else (dtype,) * 3
    quantized = source in ("uint8", "int8")
    element = types["float32" if quantized else destination]

    def build(q, w, b):
        """(model, feeds): feeds are (graph input, post-op index, batchnorm row or None) for the operands."""
        nodes, constants, feeds = [], [], []
        inputs = [helper.make_tensor_value_info("x", types[source], list(x_shape))]

        def constant(name, value, data_type=element):
            constants.append(helper.make_tensor(name, data_type, [], [float(value)]))
            return name

        def array(name, values):
            constants.append(numpy_helper.from_array(np.asarray(values), name))
            return name

        def operand(name, shape, index, row=None):
            inputs.append(helper.make_tensor_value_info(name, element, list(shape)))
            feeds.append((name, index, row))
            return name

        def node(op, operands, **attributes):
            name = f"v{len(nodes)}"
            nodes.append(helper.make_node(op, operands, [name], **attributes))
            return name

        if quantized:  # the six scales and zero points as 1-D (per channel) or scalar initializers
            def pair(tensor, data_type, channels):
                scale, zero_point = q[f"{tensor}_scale"], q[f"{tensor}_zero_point"]
                limits = np.iinfo(data_type)
                if np.any(np.asarray(zero_point) < limits.min) or np.any(np.asarray(zero_point) > limits.max):
                    raise ValueError(f"{tensor}_zero_point {np.asarray(zero_point).tolist()} does not fit {data_type}, "
                                     "its tensor's data type")
                if np.ndim(scale) == 0 and np.ndim(zero_point) == 0:
                    return np.float32(scale), np.asarray(zero_point, data_type), {}
                shape = (channels,)
                return (np.broadcast_to(np.float32(scale), shape).copy(),
                        np.broadcast_to(np.asarray(zero_point, data_type), shape).copy(),
                        {"axis": 1 if tensor in ("x", "y") else 0})

            x_scale, x_zero_point, x_axis = pair("x", source, x_shape[1])
            w_scale, w_zero_point, w_axis = pair("w", weights, w_shape[0])
            y_scale, y_zero_point, y_axis = pair("y", destination, y_shape[1])
            conv_inputs = [node("DequantizeLinear", ["x", array("x_scale", x_scale), array("x_zero_point",
                                                                                      x_zero_point)], **x_axis),
                           node("DequantizeLinear", [array("w", w), array("w_scale", w_scale),
                                                     array("w_zero_point", w_zero_point)], **w_axis)]
            if b is not None and b.dtype == np.int32:  # in accumulator steps: scale x_scale * w_scale, zero point 0
                bias_scale = (np.float32(q["x_scale"]) * w_scale).astype(np.float32)
                conv_inputs.append(node("DequantizeLinear", [array("b", b), array("b_scale", bias_scale),
                                                             array("b_zero_point", np.zeros_like(bias_scale,
                                                                                                 np.int32))],
                                        **w_axis))
            elif b is not None:
                conv_inputs.append(array("b", b.astype(np.float32)))
        else:
            shapes = {"x": x_shape, "w": w_shape, "b": y_shape[1:2]}
            conv_inputs = ["x", "w", "b"] if bias else ["x", "w"]
            inputs = [helper.make_tensor_value_info(name, element, list(shapes[name])) for name in conv_inputs]
        extra = {} if output_padding is None else {"output_padding": list(output_padding)}
        value = node("Conv" if output_padding is None else "ConvTranspose", conv_inputs,
                     kernel_shape=list(w_shape[2:]), strides=list(stride), dilations=list(dilation),
                     pads=[before for before, _ in padding] + [after for _, after in padding], group=groups, **extra)
        for k, step in enumerate(post_ops):
            s = dict(step)
            kind, alpha, beta = s["kind"], s["alpha"], s["beta"]
            if kind == "relu":
                value = node("Relu", [value]) if alpha == 0 else node("LeakyRelu", [value], alpha=alpha)
            elif kind == "clip":
                value = node("Clip", [value, constant(f"post{k}_low", alpha), constant(f"post{k}_high", beta)])
            elif kind == "elu":
                value = node("Elu", [value], alpha=alpha)
            elif kind in ("gelu_erf", "gelu_tanh"):
                value = node("Gelu", [value], approximate="none" if kind == "gelu_erf" else "tanh")
            elif kind == "swish":
                scaled = value if alpha == 1 else node("Mul", [value, constant(f"post{k}_alpha", alpha)])
                value = node("Mul", [value, node("Sigmoid", [scaled])])
            elif kind == "logistic":
                value = node("Sigmoid", [value])
            elif kind == "tanh":
                value = node("Tanh", [value])
            elif kind == "hardswish" and np.float32(alpha) == np.float32(1 / 6) and beta == 0.5:
                value = node("HardSwish", [value])
            elif kind == "hardswish":
                value = node("Mul", [value, node("HardSigmoid", [value], alpha=alpha, beta=beta)])
            elif kind == "hardsigmoid":
                value = node("HardSigmoid", [value], alpha=alpha, beta=beta)
            elif kind == "mish":
                value = node("Mish", [value])
            elif kind == "soft_relu" and alpha == 1:
                value = node("Softplus", [value])
            elif kind == "soft_relu":
                value = node("Div", [node("Softplus", [node("Mul", [value, constant(f"post{k}_alpha", alpha)])]),
                                     f"post{k}_alpha"])
            elif kind == "linear":
                value = node("Add", [node("Mul", [value, constant(f"post{k}_alpha", alpha)]),
                                     constant(f"post{k}_beta", beta)])
            elif kind == "square":
                value = node("Mul", [value, value])
            elif kind in ("abs", "sqrt", "exp", "log", "round"):
                value = node(kind.capitalize(), [value])
            elif kind == "pow":
                value = node("Mul", [node("Pow", [value, constant(f"post{k}_beta", beta)]),
                                     constant(f"post{k}_alpha", alpha)])
            elif kind == "sum":
                residual = operand(f"post{k}", y_shape, k)
                if s["scale"] != 1 or s["zero_point"] != 0:
                    shifted = node("Sub", [residual, constant(f"post{k}_zero_point", s["zero_point"])])
                    residual = node("Mul", [shifted, constant(f"post{k}_scale", s["scale"])])
                value = node("Add", [value, residual])
            elif kind == "batchnorm":
                rows = [operand(f"post{k}_{row}", y_shape[1:2], k, index)
                        for index, row in enumerate(("mean", "var", "gamma", "beta"))]
                value = node("BatchNormalization", [value, rows[2], rows[3], rows[0], rows[1]], epsilon=alpha)
            elif kind in ("binary_add", "binary_sub", "binary_mul", "binary_div", "binary_max", "binary_min",
                          "prelu"):
                shape = [size if s["mask"] >> dim & 1 else 1 for dim, size in enumerate(y_shape)]
                op = "PRelu" if kind == "prelu" else kind.removeprefix("binary_").capitalize()
                value = node(op, [value, operand(f"post{k}", shape, k)])
            else:
                raise ValueError(f"onnxruntime_conv builds no post-op {kind!r}")
        if quantized:
            node("QuantizeLinear", [value, array("y_scale", y_scale), array("y_zero_point", y_zero_point)], **y_axis)
        nodes[-1].output[0] = "y"  # the last node's (the convolution's without a chain or quantization)
        output = helper.make_tensor_value_info("y", types[destination], list(y_shape))
        graph = helper.make_graph(nodes, "conv", inputs, [output], initializer=constants)
        opsets = [helper.make_opsetid("", 22)]
        model = helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets),
                                  producer_name="convparity")
        return model, feeds

    def session_of(model):
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only
        options.graph_optimization_level = {"all": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL,
                                            "disable": onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL}[optimization]
        for key, value in session_config:
            options.add_session_config_entry(key, value)
        if optimized_model is not None:
            options.optimized_model_filepath = optimized_model
        threads = os.environ.get("OMP_NUM_THREADS", "")  # ORT sizes its thread pool by the cores otherwise
        if threads.isdigit():
            options.intra_op_num_threads = int(threads)
        return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    if not quantized:  # a float model holds no values: one session serves every call
        float_model, float_feeds = build(None, None, None)
        float_session = session_of(float_model)

    def step(x, w, b, dy, operands=(), quantization=None):
        if quantized:
            model, feeds = build(quantization, w, b)
            session = session_of(model)
        else:
            session, feeds = float_session, float_feeds
        quiet = onnxruntime.RunOptions()
        quiet.log_severity_level = 4  # a refusal is raised with its message: not logged as well
        inputs = {"x": x}
        if not quantized:
            inputs.update({"w": w} if b is None else {"w": w, "b": b})
        for name, index, row in feeds:
            inputs[name] = np.ascontiguousarray(operands[index] if row is None else operands[index][row])
        (y,) = session.run(["y"], inputs, quiet)
        return y, None, None, None

    return step


def _convolution(applies: Callable[[ConvSpec], bool]) -> Callable[[ConvSpec], bool]:
    return lambda spec: not spec.transposed and applies(spec)


def _transposed(applies: Callable[[ConvSpec], bool]) -> Callable[[ConvSpec], bool]:
    return lambda spec: spec.transposed and applies(spec)


def _negative_padding(spec: ConvSpec) -> bool:
    return any(min(pair) < 0 for pair in spec.padding)


def _past_the_stride(spec: ConvSpec) -> bool:
    """A transposed spec with an output_padding >= stride (PyTorch allows it below the dilation)."""
    return spec.transposed and any(extra >= s for extra, s in zip(spec.output_padding, spec.stride))


# Each example is x (1, 1, 4), w (1, 1, 2) with one feature. Every post-op kind of POST_OPS builds and runs in
# float32 and float16 at both levels (tests/plugins/test_onnxruntime.py runs the epilogues grid in both), so none
# needs a probe of its own: a float16 node without a kernel is cast to float32 by ONNX Runtime itself.
PROBES = (
    *(Probe(probe.condition, _convolution(probe.applies), probe.example) for probe in dtype_probes(1)),
    Probe("negative padding (a crop)", _convolution(_negative_padding), tiny_spec(1, padding=((-1, 0),))),
    *(Probe(f"transposed, {probe.condition}", _transposed(probe.applies), probe.example)
      for probe in dtype_probes(1, transposed=True)),
    Probe("transposed, negative padding", _transposed(_negative_padding),
          tiny_spec(1, padding=((-1, 0),), transposed=True)),
    Probe("transposed, output_padding >= stride (below the dilation)", _past_the_stride,
          tiny_spec(1, dilation=2, output_padding=1, transposed=True)),
)


def refusals() -> tuple[type[BaseException], ...]:
    """The exception types of onnxruntime that say it will not build or run a model."""
    state = ONNXRUNTIME.load().capi.onnxruntime_pybind11_state
    return tuple(getattr(state, kind) for kind in REFUSALS)


def refusal_reason(error: BaseException) -> str:
    return f"ONNX Runtime {ONNXRUNTIME.load().__version__} ({PROVIDER}): {error}"


@lru_cache(maxsize=256)
def _step(name: str, spec: ConvSpec) -> Callable[..., tuple]:
    return BACKENDS[name].program(spec).build()


@cache
def _probed_limits(name: str) -> tuple[Limit, ...]:
    return probed_limits(PROBES, BACKENDS[name].run, refusals(), refusal_reason)


class OnnxRuntimeBackend:
    """Forward-only Conv and its epilogue on ONNX Runtime's CPU provider, graph optimizations on; gradients None."""

    name = "onnxruntime"
    optimization = "all"
    post_ops = POST_OPS
    # The median seconds per case of a 2-core run of the smoke and default grids in four dtypes (results.csv,
    # 2026-12, cold caches): 2 ms; a framework's 20 GFLOP/s on one core.
    cost = BackendCost(0.002, 0.05)

    def availability(self) -> str | None:
        return ONNXRUNTIME.missing() or ONNX.missing()

    def version(self) -> str:
        return f"{ONNXRUNTIME.load().__version__} ({PROVIDER}, opset {OPSET}, {LEVELS[self.optimization]})"

    @property
    def limits(self) -> tuple[Limit, ...]:
        """One Limit per probe ONNX Runtime refuses, with its reason; empty when it is not installed."""
        return () if self.availability() else _probed_limits(self.name)

    def supports(self, spec: ConvSpec) -> str | None:
        return first_limit(self.limits, spec)

    def program(self, spec: ConvSpec) -> Program:
        return Program(onnxruntime_conv, program_arguments(spec, x_shape=spec.x_shape, w_shape=spec.w_shape,
                                                           y_shape=spec.y_shape, optimization=self.optimization))

    def run(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray | None,
            extras: Extras | None = None) -> Outputs:
        """x (N, C, *in), w (O, C/groups, *k), b (O,) or None -> (y (N, O, *out), None, None, None); extras
        carries the post-ops' operands. Transposed: w (C, O/groups, *k)."""
        operands = tuple(extras.operands) if extras is not None else _placeholder_operands(spec)
        return _step(self.name, spec)(x, w, b, dy, operands=operands)


def _placeholder_operands(spec: ConvSpec) -> tuple[np.ndarray | None, ...]:
    """Operands for a call without extras (a probe): ones of each operand's shape, in the spec's compute dtype."""
    return tuple(None if shape is None else np.ones(shape, numpy_dtype(spec.compute_dtype))
                 for shape in spec.operand_shapes)


class OnnxRuntimeUnfusedBackend(OnnxRuntimeBackend):
    """The same models with ONNX Runtime's graph optimizations off: every node of the chain runs as its own kernel."""

    name = "onnxruntime-unfused"
    optimization = "disable"


BACKENDS = {backend.name: backend for backend in (OnnxRuntimeBackend(), OnnxRuntimeUnfusedBackend())}


@hookimpl
def convparity_register_backends(register):
    from convparity.plugins import onnxruntime_quantized  # it builds on this module

    for backend in (*BACKENDS.values(), *onnxruntime_quantized.BACKENDS.values()):
        register(backend)
