"""The ONNX graphs the onnxruntime backends run, as self-contained programs, and what they share.

`onnxruntime_conv`: a Conv (or ConvTranspose) node and its post-op chain as ONNX nodes, or for 8-bit integer
types the QDQ graph around them (onnxruntime, onnxruntime-unfused, onnxruntime-qdq, onnxruntime-qdq-unfused);
`onnxruntime_integer_conv`: one QLinearConv or ConvInteger node (onnxruntime-qlinearconv, onnxruntime-convinteger).
Each is a top-level function whose body imports what it uses, so repro scripts print it whole. onnx and
onnxruntime are imported lazily.
"""

from __future__ import annotations

from convparity.plugin import Framework

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


def onnxruntime_integer_conv(*, operator, stride, padding, dilation, groups, dtype, bias, x_shape, w_shape, y_shape,
                             quantization=None, optimization="all"):
    """y = QLinearConv(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point[, b]) or
    ConvInteger(x, w, x_zero_point, w_zero_point) [+ b] (int32), one ONNX node (opset 22) in an ONNX Runtime session
    on the CPU execution provider at graph optimization level `optimization`. x is a graph input; w, b and the
    scales and zero points are initializers (scalars, or 1-D where they come per channel), so each call builds
    its session. Forward only: step(x, w, b, dy, operands=(), quantization={six scales and zero points}) ->
    (y, None, None, None), y as codes of its integer type. `quantization` (bias data type, rounding) is the
    spec's, for the record: the node defines both."""
    import os

    import numpy as np
    import onnx
    import onnxruntime
    from onnx import helper, numpy_helper

    types = {"uint8": onnx.TensorProto.UINT8, "int8": onnx.TensorProto.INT8, "int32": onnx.TensorProto.INT32}
    source, weights, destination = dtype.split(":") if ":" in dtype else (dtype,) * 3
    attributes = dict(kernel_shape=list(w_shape[2:]), strides=list(stride), dilations=list(dilation),
                      pads=[before for before, _ in padding] + [after for _, after in padding], group=groups)

    def initializer(name, values):
        return numpy_helper.from_array(np.asarray(values), name)

    def model(q, w, b):
        def scale(name):
            return np.asarray(q[name], np.float32)

        def zero_point(name, data_type, like):
            values, limits = np.asarray(q[name]), np.iinfo(data_type)
            if np.any(values < limits.min) or np.any(values > limits.max):
                raise ValueError(f"{name} {values.tolist()} does not fit {data_type}, its tensor's data type")
            return np.broadcast_to(values.astype(data_type), np.shape(like)).copy()

        constants = [initializer("w", w)]
        if operator == "QLinearConv":
            names = ["x", "x_scale", "x_zero_point", "w", "w_scale", "w_zero_point", "y_scale", "y_zero_point"]
            constants += [initializer("x_scale", scale("x_scale")),
                          initializer("x_zero_point", zero_point("x_zero_point", source, q["x_zero_point"])),
                          initializer("w_scale", scale("w_scale")),
                          initializer("w_zero_point", zero_point("w_zero_point", weights, q["w_scale"])),
                          initializer("y_scale", scale("y_scale")),
                          initializer("y_zero_point", zero_point("y_zero_point", destination, q["y_zero_point"]))]
            if b is not None:
                names.append("b")
                constants.append(initializer("b", b))
            nodes = [helper.make_node("QLinearConv", names, ["y"], **attributes)]
        else:
            if any(np.any(np.asarray(q[name]) != 1) for name in ("x_scale", "w_scale", "y_scale")) or np.any(
                    np.asarray(q["y_zero_point"]) != 0):
                raise ValueError("ConvInteger computes the int32 accumulator: it takes no scales or y zero point")
            constants += [initializer("x_zero_point", zero_point("x_zero_point", source, q["x_zero_point"])),
                          initializer("w_zero_point", zero_point("w_zero_point", weights, q["w_zero_point"]))]
            nodes = [helper.make_node("ConvInteger", ["x", "w", "x_zero_point", "w_zero_point"],
                                      ["y" if b is None else "accumulator"], **attributes)]
            if b is not None:  # int32 + int32: exact
                constants.append(initializer("b", np.asarray(b).reshape((1, -1) + (1,) * (len(x_shape) - 2))))
                nodes.append(helper.make_node("Add", ["accumulator", "b"], ["y"]))
        graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", types[source], list(x_shape))],
                                  [helper.make_tensor_value_info("y", types[destination], list(y_shape))],
                                  initializer=constants)
        opsets = [helper.make_opsetid("", 22)]
        return helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets),
                                 producer_name="convparity")

    def step(x, w, b, dy, operands=(), quantization=None):
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only
        options.graph_optimization_level = {"all": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL,
                                            "disable": onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL}[optimization]
        threads = os.environ.get("OMP_NUM_THREADS", "")  # ORT sizes its thread pool by the cores otherwise
        if threads.isdigit():
            options.intra_op_num_threads = int(threads)
        session = onnxruntime.InferenceSession(model(quantization, w, b).SerializeToString(), options,
                                               providers=["CPUExecutionProvider"])
        quiet = onnxruntime.RunOptions()
        quiet.log_severity_level = 4  # a refusal is raised with its message: not logged as well
        (y,) = session.run(["y"], {"x": x}, quiet)
        return y, None, None, None

    return step


def refusals() -> tuple[type[BaseException], ...]:
    """The exception types of onnxruntime that say it will not build or run a model."""
    state = ONNXRUNTIME.load().capi.onnxruntime_pybind11_state
    return tuple(getattr(state, kind) for kind in REFUSALS)


def refusal_reason(error: BaseException) -> str:
    return f"ONNX Runtime {ONNXRUNTIME.load().__version__} ({PROVIDER}): {error}"
