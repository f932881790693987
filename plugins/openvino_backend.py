"""Backends `openvino` and `openvino-int8`: an OpenVINO model with one Convolution or GroupConvolution node and its
epilogue, on the CPU plugin.

Forward only: a compiled OpenVINO model computes y; dx, dw and db come back as None (`unsupported` rows).
The model is built with OpenVINO's Python opset API: Parameters x (N, C, *in) and w (O, C/groups, *k) in
the spec's element type, GroupConvolution over w reshaped to (groups, O/groups, C/groups, *k) when
groups > 1, and with a bias an Add of a Parameter b of shape (1, O, 1, ...). Negative pads (crops) are a
Slice of x before the convolution: the CPU plugin accepts the model with negative `pads_begin` but
fails to compile it ("could not construct a memory descriptor using a format tag"). A post-op chain is built as
OpenVINO ops after the convolution (`openvino_conv`'s docstring lists them), each operand a Parameter. The CPU
plugin fuses the activations and a y-shaped Add (the sum) into its Convolution node (an activation after the bias
Add into that Add's Eltwise node); operands that are Parameters (a per-channel Multiply, batchnorm's statistics)
are not folded into the weights (tests/plugins/test_openvino.py reads the runtime graph). The whole of it is
`openvino_conv` (the backend's program); one compiled model per spec, built and reused.

`openvino-int8` runs 8-bit integer specs as the models NNCF writes: FakeQuantize on x, on the weights and on y
around the convolution, which the CPU plugin's low-precision transformations compile into an int8 convolution
(u8 or i8 activations, i8 weights, an int8 primitive: read from the runtime graph; specs it leaves on f32
activations are a limit). It rounds as its FakeQuantize does, y's zero point added before a half-to-even rounding
(`half_even`). Its int8 kernel returns saturated codes where a window lies entirely in the last spatial dim's
padding and x's zero point is not 0 (a declared deviation), and dies with SIGSEGV on some such geometries (a
limit, tried in a child process).

Precision: the CPU plugin chooses its inference precision, and on CPUs with bf16 support its default is
bf16, so a float32 model would run its Convolution in bf16. Every model here is compiled with
INFERENCE_PRECISION_HINT f32; the precision each dtype's Convolution then really runs in is read back
from the compiled model's runtime graph (`runtimePrecision`) and recorded in `version()`. The CPU plugin
has no f64 kernels (its inference precisions are f32, bf16, f16): a float64 model runs in f32, which
the probed float64 limit says in the plugin's own terms. openvino is imported only when first needed.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any

import numpy as np

from convparity.plugin import (
    CONVOLUTION_ONLY,
    BackendCost,
    ConvSpec,
    Deviation,
    Extras,
    Framework,
    Limit,
    Outputs,
    Program,
    dtype_probes,
    first_limit,
    hookimpl,
    installed_version,
    numpy_dtype,
    probed_limits,
    program_arguments,
)

OPENVINO = Framework("openvino", "openvino")
DEVICE = "CPU"
PRECISION_HINT = "f32"
ELEMENT_TYPES = {"float64": "f64", "float32": "f32", "float16": "f16", "bfloat16": "bf16"}
# Runtime precisions by width, to tell a Convolution that runs narrower than its model's dtype.
BITS = {"f64": 64, "f32": 32, "f16": 16, "bf16": 16}

# The post-op kinds openvino_conv builds (benchdnn's aliases resolve to these before they reach it).
POST_OPS = ("relu", "clip", "elu", "gelu_erf", "gelu_tanh", "swish", "logistic", "tanh", "hardswish", "hardsigmoid",
            "mish", "soft_relu", "linear", "abs", "square", "sqrt", "exp", "log", "round", "pow", "sum",
            "binary_add", "binary_sub", "binary_mul", "binary_div", "binary_max", "binary_min", "prelu", "batchnorm")

# Evidence: tests/plugins/test_openvino.py::test_bfloat16_bias_is_rounded_twice_where_the_add_is_not_fused.
DEVIATIONS = (
    Deviation(
        condition="bias, bfloat16",
        reason="where the CPU plugin keeps the bias Add as its own bf16 Eltwise node (it fuses it into the "
        "Convolution only for some shapes), the convolution is rounded to bf16 before b is added (two roundings). "
        "Repro: bf16 model y = Add(Convolution(x, w), b), x = ones (1, 2, 4, 4), w = [256, 1] (1, 2, 1, 1), b = [1]: "
        "y = 256, not 258 (x of shape (1, 2, 1, 1) fuses the Add and gives 258)",
        upstream="a precision choice, not reported",
        dtypes=("bfloat16",),
        tensors=("y",),
        bias=True,
        strict=False,
    ),
)


def openvino_conv(*, stride, padding, dilation, groups, dtype, bias, x_shape, w_shape, post_ops=(), quantization=None):
    """y = [Group]Convolution(crop(x), w) [+ b], then the post-op chain, as an OpenVINO model (opset13), compiled for
    the CPU plugin at INFERENCE_PRECISION_HINT f32. Forward only: step(x, w, b, dy, operands=(), quantization=None)
    -> (y, None, None, None).

    Each step of `post_ops` (kind, alpha, beta, scale, zero_point, mask) becomes OpenVINO ops after the convolution:
    relu Relu (PRelu with a scalar slope for alpha), clip Clamp, elu Elu, gelu_erf / gelu_tanh Gelu (erf / tanh),
    swish Swish(beta alpha), logistic Sigmoid, tanh Tanh, hardswish HSwish (alpha 1/6, beta 1/2; else x *
    HardSigmoid), hardsigmoid HardSigmoid, mish Mish, soft_relu SoftPlus(alpha x) / alpha, linear alpha x + beta,
    abs, square x * x, sqrt, exp, log, round Round(half_to_even), pow alpha * Power(x, beta), sum x + scale (r -
    zero_point), binary_* Add/Subtract/Multiply/Divide/Maximum/Minimum, prelu PRelu, batchnorm BatchNormInference.
    Operands are Parameters post{k} (batchnorm: post{k}_mean, _var, _gamma, _beta) after x, w and b.

    An integer dtype (SRC:WEI:DST of uint8 / int8) makes the model OpenVINO's low-precision transformations turn into
    an int8 convolution: x (codes, a Parameter of its type) -> Convert -> Subtract x_zero_point -> Multiply x_scale
    -> FakeQuantize (256 levels over x's range), w as a constant (w - w_zero_point) * w_scale -> FakeQuantize per
    output channel (255 levels over +-127 w_scale for int8 weights with zero point 0, else 256 over w's range), the
    (Group)Convolution, the bias as a constant b * x_scale * w_scale (an int32 bias) or b, the chain, and a FakeQuantize
    from y's range in real units to its codes, Converted to y's type. Its values arrive with the inputs (step's
    `quantization`: the six scales and zero points), so each call compiles its model. step.compiled_model is the
    last compiled model: its runtime graph says the precision each node runs in (step(None, w, b, None,
    quantization=...) compiles without running)."""
    import os

    import numpy as np
    import openvino as ov
    import openvino.opset13 as ops

    types = {"float64": ov.Type.f64, "float32": ov.Type.f32, "float16": ov.Type.f16, "bfloat16": ov.Type.bf16,
             "uint8": ov.Type.u8, "int8": ov.Type.i8}
    ranges = {"uint8": (0, 255), "int8": (-128, 127)}
    source, weights, destination = dtype.split(":") if ":" in dtype else (dtype,) * 3
    quantized = source in ranges
    element = ov.Type.f32 if quantized else types[dtype]
    working = np.float32 if quantized else {"float64": np.float64, "float32": np.float32, "float16": np.float16,
                                            "bfloat16": np.float32}[dtype]
    rank = len(x_shape) - 2
    per_channel = (1, -1) + (1,) * rank  # a (channels,) array against (N, C, *spatial)
    config = {"INFERENCE_PRECISION_HINT": "f32"}  # the CPU plugin's default is bf16 on CPUs that have it
    threads = os.environ.get("OMP_NUM_THREADS", "")  # the CPU plugin sizes its thread pool by the cores otherwise
    if threads.isdigit():
        config["INFERENCE_NUM_THREADS"] = int(threads)

    def constant(value):
        return ops.constant(np.asarray(value, working), element)

    def build(q, w_values, b_values):
        """(model, names of the operand Parameters with their post-op index and batchnorm row)."""
        x = ops.parameter(list(x_shape), types[source], name="x")
        parameters, feeds = [x], []
        data = x
        if any(min(pair) < 0 for pair in padding):  # a crop: the CPU plugin fails to compile negative pads_begin
            start = np.array([max(-before, 0) for before, _ in padding], np.int64)
            stop = np.array([after if after < 0 else np.iinfo(np.int64).max for _, after in padding], np.int64)
            data = ops.slice(x, start, stop, np.ones(rank, np.int64), np.arange(2, 2 + rank, dtype=np.int64))
        if quantized:
            def column(name, channels):
                return np.broadcast_to(np.asarray(q[name], np.float64), (channels,)).reshape(per_channel)

            x_scale, x_zero_point = column("x_scale", x_shape[1]), column("x_zero_point", x_shape[1])
            low, high = ranges[source]
            real = ops.multiply(ops.subtract(ops.convert(data, ov.Type.f32), constant(x_zero_point)),
                                constant(x_scale))
            limits = [constant((low - x_zero_point) * x_scale), constant((high - x_zero_point) * x_scale)]
            data = ops.fake_quantize(real, *limits, *limits, 256)
            w_scale = np.broadcast_to(np.asarray(q["w_scale"], np.float64), (w_shape[0],)).reshape(
                (-1,) + (1,) * (rank + 1))
            w_zero_point = float(q["w_zero_point"])
            weight = constant((np.asarray(w_values, np.float64) - w_zero_point) * w_scale)
            if weights == "int8" and w_zero_point == 0:
                limits, levels = [constant(-127 * w_scale), constant(127 * w_scale)], 255
            else:
                low, high = ranges[weights]
                limits = [constant((low - w_zero_point) * w_scale), constant((high - w_zero_point) * w_scale)]
                levels = 256
            w = ops.fake_quantize(weight, *limits, *limits, levels)
        else:
            w = ops.parameter(list(w_shape), element, name="w")
            parameters.append(w)
        geometry = dict(strides=list(stride), pads_begin=[max(before, 0) for before, _ in padding],
                        pads_end=[max(after, 0) for _, after in padding], dilations=list(dilation))
        if groups == 1:
            y = ops.convolution(data, w, **geometry)
        else:  # w (O, C/groups, *k) as (groups, O/groups, C/groups, *k)
            per_group = [groups, w_shape[0] // groups, *w_shape[1:]]
            y = ops.group_convolution(data, ops.reshape(w, ops.constant(np.array(per_group, np.int64)),
                                                        special_zero=False), **geometry)
        if bias and quantized:
            b = np.asarray(b_values, np.float64)
            if b_values.dtype == np.int32:  # in accumulator steps
                b = b * np.asarray(q["x_scale"], np.float64) * w_scale.reshape(-1)
            y = ops.add(y, constant(b.reshape(per_channel)))
        elif bias:
            b = ops.parameter([1, w_shape[0]] + [1] * rank, element, name="b")
            y = ops.add(y, b)
            parameters.append(b)
        y_shape = list(y.get_output_shape(0))

        def operand(name, shape, index, row=None):
            parameters.append(ops.parameter(list(shape), element, name=name))
            feeds.append((index, row))
            return parameters[-1]

        for k, step in enumerate(post_ops):
            s = dict(step)
            kind, alpha, beta = s["kind"], s["alpha"], s["beta"]
            if kind == "relu":
                y = ops.relu(y) if alpha == 0 else ops.prelu(y, constant([alpha]))
            elif kind == "clip":
                y = ops.clamp(y, alpha, beta)
            elif kind == "elu":
                y = ops.elu(y, alpha)
            elif kind in ("gelu_erf", "gelu_tanh"):
                y = ops.gelu(y, "erf" if kind == "gelu_erf" else "tanh")
            elif kind == "swish":
                y = ops.swish(y, constant(alpha))
            elif kind == "logistic":
                y = ops.sigmoid(y)
            elif kind == "tanh":
                y = ops.tanh(y)
            elif kind == "hardswish" and np.float32(alpha) == np.float32(1 / 6) and beta == 0.5:
                y = ops.hswish(y)
            elif kind == "hardswish":
                y = ops.multiply(y, ops.hard_sigmoid(y, constant(alpha), constant(beta)))
            elif kind == "hardsigmoid":
                y = ops.hard_sigmoid(y, constant(alpha), constant(beta))
            elif kind == "mish":
                y = ops.mish(y)
            elif kind == "soft_relu" and alpha == 1:
                y = ops.softplus(y)
            elif kind == "soft_relu":
                y = ops.divide(ops.softplus(ops.multiply(y, constant(alpha))), constant(alpha))
            elif kind == "linear":
                y = ops.add(ops.multiply(y, constant(alpha)), constant(beta))
            elif kind == "square":
                y = ops.multiply(y, y)
            elif kind in ("abs", "sqrt", "exp", "log"):
                y = getattr(ops, kind)(y)
            elif kind == "round":
                y = ops.round(y, "half_to_even")
            elif kind == "pow":
                y = ops.multiply(ops.power(y, constant(beta)), constant(alpha))
            elif kind == "sum":
                residual = operand(f"post{k}", y_shape, k)
                if s["scale"] != 1 or s["zero_point"] != 0:
                    residual = ops.multiply(ops.subtract(residual, constant(s["zero_point"])), constant(s["scale"]))
                y = ops.add(y, residual)
            elif kind == "batchnorm":
                mean, var, gamma, shift = (operand(f"post{k}_{row}", y_shape[1:2], k, index)
                                           for index, row in enumerate(("mean", "var", "gamma", "beta")))
                y = ops.batch_norm_inference(y, gamma, shift, mean, var, alpha)
            elif kind in ("binary_add", "binary_sub", "binary_mul", "binary_div", "binary_max", "binary_min",
                          "prelu"):
                shape = [size if s["mask"] >> dim & 1 else 1 for dim, size in enumerate(y_shape)]
                op = {"binary_add": ops.add, "binary_sub": ops.subtract, "binary_mul": ops.multiply,
                      "binary_div": ops.divide, "binary_max": ops.maximum, "binary_min": ops.minimum,
                      "prelu": ops.prelu}[kind]
                y = op(y, operand(f"post{k}", shape, k))
            else:
                raise ValueError(f"openvino_conv builds no post-op {kind!r}")
        if quantized:  # real units to y's codes: round(real / y_scale + y_zero_point), saturated
            y_scale = np.broadcast_to(np.asarray(q["y_scale"], np.float64), (w_shape[0],)).reshape(per_channel)
            y_zero_point = np.broadcast_to(np.asarray(q["y_zero_point"], np.float64), (w_shape[0],)).reshape(
                per_channel)
            low, high = ranges[destination]
            y = ops.fake_quantize(y, constant((low - y_zero_point) * y_scale),
                                  constant((high - y_zero_point) * y_scale), constant(low), constant(high), 256)
            y = ops.convert(y, types[destination])
        return ov.Model([y], parameters, "conv"), feeds

    def tensor(array):  # bfloat16 (ml_dtypes) as its bits, with element type bf16
        array = np.ascontiguousarray(array)
        if array.dtype.name == "bfloat16":
            return ov.Tensor(array.view(np.uint16), array.shape, ov.Type.bf16)
        return ov.Tensor(array)

    if not quantized:  # a float model holds no values: one compiled model serves every call
        float_model, float_feeds = build(None, None, None)
        float_compiled = ov.Core().compile_model(float_model, "CPU", config)

    def step(x, w, b, dy, operands=(), quantization=None):
        if quantized:
            model, feeds = build(quantization, w, b)
            compiled = ov.Core().compile_model(model, "CPU", config)
            step.compiled_model = compiled
            if x is None:  # compiled only, to read its runtime graph
                return None
            inputs = [x]
        else:
            compiled, feeds = float_compiled, float_feeds
            inputs = [x, w] if b is None else [x, w, b.reshape((1, -1) + (1,) * rank)]
        inputs += [operands[index] if row is None else operands[index][row] for index, row in feeds]
        step.compiled_model = compiled
        request = compiled.create_infer_request()
        request.infer([tensor(a) for a in inputs])
        y = request.get_output_tensor(0).data
        if dtype == "bfloat16":  # .data shows bf16 bits through a float16 view
            import ml_dtypes

            y = y.view(np.uint16).view(ml_dtypes.bfloat16)
        return np.array(y), None, None, None

    if not quantized:
        step.compiled_model = float_compiled
    return step


@lru_cache(maxsize=256)
def _step(name: str, spec: ConvSpec) -> Any:
    """openvino_conv's step for the spec (with its compiled_model), built once."""
    return BACKENDS[name].program(spec).build()


def convolution_precision(compiled) -> str:
    """The runtimePrecision of the Convolution in a compiled model's runtime graph, e.g. "f32"."""
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) == "Convolution":
            return info["runtimePrecision"].astype(str)
    raise LookupError("the runtime model has no Convolution node")


# A tiny convolution per dtype: x (1, 2, 5, 5), w (2, 2, 3, 3).
PROBES = dtype_probes(2, in_channels=2, out_channels=2, input_size=(5, 5), kernel_size=(3, 3))


@cache
def runtime_precisions() -> dict[str, str]:
    """{dtype: the precision the CPU plugin runs that dtype's Convolution in}, read from each probe's model."""
    return {probe.example.dtype: convolution_precision(_step("openvino", probe.example).compiled_model)
            for probe in PROBES}


class NarrowerPrecision(Exception):
    """The CPU plugin runs a model's Convolution in a narrower precision than the model's dtype."""


def _precision_check(spec: ConvSpec, *inputs: object) -> None:
    """Raises NarrowerPrecision, saying so in OpenVINO's terms, where the spec's Convolution runs narrower."""
    model_precision = ELEMENT_TYPES[spec.dtype]
    precision = runtime_precisions()[spec.dtype]
    if BITS[precision] < BITS[model_precision]:
        raise NarrowerPrecision(
            f"OpenVINO {OPENVINO.load().get_version()} {DEVICE} plugin runs the Convolution of a {model_precision} "
            f"model in {precision} (compiled model's runtime graph: runtimePrecision={precision}; "
            "the CPU plugin's inference precisions are f32, bf16 and f16)")


@cache
def _probed_limits() -> tuple[Limit, ...]:
    """A limit for each dtype whose Convolution the CPU plugin runs in a narrower precision."""
    return probed_limits(PROBES, _precision_check, (NarrowerPrecision,), str)


class OpenVinoBackend:
    """Forward-only Convolution and its epilogue on OpenVINO's CPU plugin at f32 inference precision; gradients None."""

    name = "openvino"
    deviations = DEVIATIONS
    post_ops = POST_OPS
    # Measured (2026-12, 2-core machine): `convparity run -b openvino -g smoke --dtype float32 --compile-cache off`,
    # median `seconds` per case of results.csv 0.060 (compiling each case's model dominates); per_gflop assumed.
    cost = BackendCost(0.06, 0.05)

    def availability(self) -> str | None:
        return OPENVINO.missing()

    def version(self) -> str:
        ov = OPENVINO.load()
        cpu = ov.Core().get_property(DEVICE, "FULL_DEVICE_NAME")
        precisions = ", ".join(f"{dtype} in {precision}" for dtype, precision in runtime_precisions().items())
        return (f"{installed_version('openvino')} ({ov.get_version()}; {DEVICE} plugin on {cpu}; "
                f"INFERENCE_PRECISION_HINT {PRECISION_HINT}; Convolution runs {precisions})")

    @property
    def limits(self) -> tuple[Limit, ...]:
        """The probed precision limits; empty when openvino is not installed."""
        return (CONVOLUTION_ONLY,) + (() if self.availability() else _probed_limits())

    def supports(self, spec: ConvSpec) -> str | None:
        return first_limit(self.limits, spec)

    def program(self, spec: ConvSpec) -> Program:
        return Program(openvino_conv, program_arguments(spec, x_shape=spec.x_shape, w_shape=spec.w_shape))

    def run(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray | None,
            extras: Extras | None = None) -> Outputs:
        """x (N, C, *in), w (O, C/groups, *k), b (O,) or None -> (y (N, O, *out), None, None, None); extras carries
        the post-ops' operands (and, for openvino-int8, the scales and zero points)."""
        extras = extras if extras is not None else probe_extras(spec)
        return _step(self.name, spec)(x, w, b, dy, operands=tuple(extras.operands),
                                      quantization=dict(extras.quantization))


def probe_extras(spec: ConvSpec) -> Extras:
    """Extras for a call without them (a probe): ones for each operand, the spec's scales and zero points with 1 and
    0 per channel where it draws them per channel."""
    operands = tuple(None if shape is None else np.ones(shape, numpy_dtype(spec.compute_dtype))
                     for shape in spec.operand_shapes)
    quantization: dict[str, Any] = {}
    for name in ("x_scale", "w_scale", "y_scale", "x_zero_point", "w_zero_point", "y_zero_point"):
        value, shape = getattr(spec.quantization, name), spec.per_channel_shapes.get(name)
        quantization[name] = value if shape is None else np.full(shape, 0 if name.endswith("point") else 1.0)
    return Extras(operands, quantization)


EIGHT_BITS = ("uint8", "int8")
INT8_TYPES = tuple(x if x == w == y else f"{x}:{w}:{y}" for x in EIGHT_BITS for w in EIGHT_BITS for y in EIGHT_BITS)


def convolution_kernel(spec: ConvSpec) -> tuple[str, str]:
    """(activation precision, primitiveType) of the Convolution the CPU plugin compiles for the spec's FakeQuantize
    model (openvino-int8's program, compiled without running, with probe_extras' values)."""
    wei = spec.data_types[1]
    w = np.zeros(spec.w_shape, numpy_dtype(wei))
    b = None if not spec.bias else np.zeros(spec.out_channels, numpy_dtype(spec.bias_dtype or "int32"))
    step: Any = BACKENDS["openvino-int8"].program(spec).build()
    step(None, w, b, None, operands=probe_extras(spec).operands, quantization=probe_extras(spec).quantization)
    for op in step.compiled_model.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) == "Convolution":
            return str(op.inputs()[0].get_element_type().get_type_name()), info["primitiveType"].astype(str)
    raise LookupError("the runtime model has no Convolution node")


def _eight_bits(spec: ConvSpec) -> bool:
    """Whether x, w and y are all uint8 or int8 (the data types openvino-int8 builds)."""
    return set(spec.data_types) <= set(EIGHT_BITS)


@lru_cache(maxsize=1024)
def runs_int8(spec: ConvSpec) -> bool:
    """Whether the CPU plugin's Convolution for the spec takes 8-bit activations (an int8 kernel)."""
    return convolution_kernel(spec)[0] in ("u8", "i8")


INTEGER_SOURCES = Limit("float data types", "openvino-int8 runs FakeQuantize models of 8-bit integer codes",
                        lambda spec: not spec.quantized)
NOT_INT8 = Limit(
    "a FakeQuantize model the CPU plugin does not run as an int8 convolution",
    "its low-precision transformations leave the Convolution on f32 activations (read from the compiled model's "
    "runtime graph), e.g. for weights with a zero point, or a 3-D depthwise convolution with an x zero point",
    lambda spec: _eight_bits(spec) and not runs_int8(spec))


def padding_columns(spec: ConvSpec) -> bool:
    """Whether some output position's window lies entirely in the padding of the last spatial dim (all its taps
    there fall before or after the input)."""
    size, kernel, dilation, stride = (spec.input_size[-1], spec.kernel_size[-1], spec.dilation[-1], spec.stride[-1])
    before = spec.padding[-1][0]
    return any(all(not 0 <= p * stride - before + t * dilation < size for t in range(kernel))
               for p in range(spec.output_size[-1]))


# Run in a child process by `crashes`: the spec (pickled on stdin) through openvino-int8, on zeros.
_CRASH_PROBE = """
import pickle, sys
import numpy as np
from convparity.plugins.openvino_backend import BACKENDS, probe_extras
from convparity.plugin import numpy_dtype
spec = pickle.load(sys.stdin.buffer)
src, wei, _ = spec.data_types
b = None if not spec.bias else np.zeros(spec.out_channels, numpy_dtype(spec.bias_dtype or "int32"))
BACKENDS["openvino-int8"].run(spec, np.zeros(spec.x_shape, numpy_dtype(src)), np.zeros(spec.w_shape, numpy_dtype(wei)),
                              b, None, extras=probe_extras(spec))
"""


@lru_cache(maxsize=1024)
def crashes(spec: ConvSpec) -> bool:
    """Whether running the spec on openvino-int8 kills its process (a signal), tried once in a child process.

    Only specs with a window in the last dim's padding are tried: the crashes seen (17 of 291 such random
    geometries, none of 259 without) all had one."""
    if not _eight_bits(spec) or not padding_columns(spec):
        return False
    import pickle
    import subprocess
    import sys

    child = subprocess.run([sys.executable, "-c", _CRASH_PROBE], input=pickle.dumps(spec), capture_output=True,
                           timeout=300)
    return child.returncode < 0


INT8_CRASHES = (Limit(
    "an output position whose window lies in the last spatial dim's padding, where the int8 kernel crashes",
    "the CPU plugin's int8 convolution dies with a signal (SIGSEGV) on this geometry (tried on zeros in a child "
    "process); e.g. x (1, 1, 1) uint8, w (1, 1, 1), pads (0, 1). Not reported upstream that we found",
    crashes),)
INT8_DEVIATIONS = (
    Deviation(
        condition="x zero point (or int8 x, which the CPU plugin shifts to uint8 with zero point 128) and an output "
        "position whose window lies in the last spatial dim's padding",
        reason="the int8 convolution returns saturated codes (255) instead of y's zero point there when x's zero "
        "point is not 0. Repro: x uint8 (1, 1, 1, 1) = 200, x_zero_point 196, x_scale 0.0186; w int8 (1, 1, 2, 2) = "
        "100, w_scale 0.003; y_scale 0.0058, y_zero_point 159; pads H (0, 1), W (1, 1), dilation (1, 2): y = [255], "
        "not [159] (the f32 Convolution of the same model gives 159; x_zero_point 0 gives 159). Related, not the "
        "same: oneDNN#5080 (padding of s8 brgemm convolutions)",
        upstream="not reported yet (related: https://github.com/uxlfoundation/oneDNN/issues/5080)",
        applies=lambda spec: spec.quantized and padding_columns(spec) and (
            spec.data_types[0] == "int8" or spec.quantization.x_zero_point != 0),
        tensors=("y",),
        strict=False,
    ),
)


class OpenVinoInt8Backend(OpenVinoBackend):
    """FakeQuantize around the convolution: the CPU plugin's int8 kernels (u8 activations, i8 weights); forward only."""

    name = "openvino-int8"
    data_types = INT8_TYPES
    # Measured: OpenVINO's FakeQuantize rounds (real - input_low) / step half to even, so y's zero point is added
    # before the rounding (tests/plugins/test_openvino.py::test_int8_ties_go_to_the_even_code).
    rounding = dict.fromkeys(INT8_TYPES, "half_even")
    deviations = INT8_DEVIATIONS
    # Measured (2026-12, 2-core machine under load, load average 17): median `seconds` per case of the int8 grid
    # 0.27 (the model is compiled for every call: its scales and weights are constants); per_gflop assumed.
    cost = BackendCost(0.27, 0.05)

    @property
    def limits(self) -> tuple[Limit, ...]:
        return (INTEGER_SOURCES, *INT8_CRASHES, NOT_INT8)


BACKENDS = {backend.name: backend for backend in (OpenVinoBackend(), OpenVinoInt8Backend())}


@hookimpl
def convparity_register_backends(register):
    for backend in BACKENDS.values():
        register(backend)
