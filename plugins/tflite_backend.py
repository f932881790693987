"""Backends `tflite-int8`, `tflite-int8-reference` and `tflite-int8-optimized`: TensorFlow Lite's integer
convolutions (tf.lite, shipped with TensorFlow), forward only (program `tflite_conv`).

The model: a tf.function on a float NHWC input (crop by slicing where a pad is negative, tf.pad where one is
positive, tf.nn.conv2d VALID, or tf.nn.depthwise_conv2d where groups == in_channels, tf.nn.bias_add, and a fused
relu / relu6 where the spec's chain is one), converted by TFLiteConverter with full-integer quantization (int8
input and output). The converter picks its own scales from a representative dataset; the spec's are imposed by
rewriting the flatbuffer (tensorflow.lite.tools.flatbuffer_utils): every tensor from the input to the
convolution gets (sx, zp_x), every one from the convolution to the output (sy, zp_y), the filter buffer the
spec's int8 weights (OHWI, or 1HWO for depthwise) with sw per tensor or per output channel, the bias buffer the
spec's int32 bias with scale sx sw[o]. Nothing calibrated is left. TFLite's activations are int8: a uint8 x or
y is re-encoded exactly (code - 128, zero point - 128). A rank-1 case runs as rank 2 with a height-1 dim.

The three backends differ in the interpreter's op resolver, and so in how they requantize the int32
accumulator (measured: tests/plugins/test_tflite.py):
- `tflite-int8`: tf.lite.Interpreter's default (OpResolverType.AUTO), which applies the XNNPACK delegate: it
  requantizes in float32 (acc * float32(sx sw / sy)) and rounds half to even BEFORE adding zp_y
  (`half_even_before_zero_point`).
- `tflite-int8-reference`: BUILTIN_REF, TFLite's reference kernels: gemmlowp's fixed-point requantization
  (QuantizeMultiplier, SaturatingRoundingDoublingHighMul, RoundingDivideByPOT: `double_rounding`).
- `tflite-int8-optimized`: BUILTIN_WITHOUT_DEFAULT_DELEGATES, TFLite's optimized kernels: double rounding as well,
  except that some kernels round the second stage half up (a declared deviation).

What TFLite refuses (limits): a filter zero point other than 0, rank 3 (the converter keeps CONV_3D in float),
an int32 destination (no int8 convolution writes its accumulator), per-channel activation scales or zero points,
a float bias (TFLite's is int32 in sx sw steps), transposed convolutions (convparity has no integer ones).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from convparity.plugin import (
    BackendCost,
    ConvSpec,
    DeclaredLimits,
    Deviation,
    Extras,
    Limit,
    Outputs,
    Program,
    hookimpl,
    program_arguments,
)
from convparity.plugins.tensorflow_backend import TENSORFLOW, thread_environment


def tflite_conv(*, stride, padding, dilation, groups, dtype, bias, post_ops=(), quantization=None, resolver="AUTO",
                x_shape, out_channels):
    """A TFLite int8 model of the convolution (module docstring), converted once, the spec's scales, zero points,
    weights and bias written into its flatbuffer at each step, and run by tf.lite.Interpreter with the op resolver
    `resolver` (AUTO: XNNPACK; BUILTIN_REF: reference kernels; BUILTIN_WITHOUT_DEFAULT_DELEGATES: optimized
    kernels). x_shape: (N, C, *in); dtype "SRC:WEI:DST" of uint8 / int8.
    step(x, w, b, dy, operands=(), quantization=...) -> (y codes, None, None, None)."""
    import os
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # errors only
    import numpy as np
    import tensorflow as tf
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    source, _, destination = dtype.split(":") if ":" in dtype else (dtype,) * 3
    lifted = len(stride) == 1  # rank 1 as rank 2 with a height-1 dim
    if lifted:
        stride, padding, dilation = (1, *stride), ((0, 0), *padding), (1, *dilation)
        x_shape = (*x_shape[:2], 1, *x_shape[2:])
    batch, channels, *size = x_shape
    depthwise = groups == channels > 1 and not (max(stride) > 1 and max(dilation) > 1)
    activation = None
    if post_ops:  # one fused activation: relu, or clip 0..6 (relu6)
        (step,) = (dict(op) for op in post_ops)
        activation = tf.nn.relu if step["kind"] == "relu" else tf.nn.relu6

    def model(kernel_size):
        rng = np.random.default_rng(0)
        per_group = channels // groups
        if depthwise:
            filters = rng.uniform(-1, 1, (*kernel_size, channels, out_channels // channels)).astype(np.float32)
        else:
            filters = rng.uniform(-1, 1, (*kernel_size, per_group, out_channels)).astype(np.float32)
        offsets = rng.uniform(-1, 1, out_channels).astype(np.float32)
        crop = (slice(None), *(slice(max(-lo, 0), hi if hi < 0 else None) for lo, hi in padding), slice(None))
        pads = [[0, 0], *([max(lo, 0), max(hi, 0)] for lo, hi in padding), [0, 0]]

        @tf.function(input_signature=[tf.TensorSpec((batch, *size, channels), tf.float32)])
        def convolution(x):
            if any(lo < 0 or hi < 0 for lo, hi in padding):
                x = x[crop]
            if any(amount for pair in pads for amount in pair):
                x = tf.pad(x, pads)  # int8: TFLite's PAD pads with the zero point
            if depthwise:
                y = tf.nn.depthwise_conv2d(x, filters, strides=[1, *stride, 1], padding="VALID", dilations=dilation)
            else:
                y = tf.nn.conv2d(x, filters, strides=stride, padding="VALID", dilations=dilation)
            if bias:
                y = tf.nn.bias_add(y, offsets)
            return y if activation is None else activation(y)

        return convolution

    def representative():
        rng = np.random.default_rng(1)
        for _ in range(4):
            yield [rng.uniform(-1, 1, (batch, *size, channels)).astype(np.float32)]

    def convert(kernel_size):
        function = model(kernel_size)
        converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], function)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return converter.convert()

    opcodes = {number: name for name, number in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    cached = {}

    def converted(kernel_size):
        if kernel_size not in cached:
            model_object = flatbuffer_utils.read_model_from_bytearray(bytearray(convert(kernel_size)))
            graph = model_object.subgraphs[0]
            names = [opcodes[max(model_object.operatorCodes[op.opcodeIndex].builtinCode,
                                 model_object.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)]
                     for op in graph.operators]
            convolutions = [op for name, op in zip(names, graph.operators)
                            if name in ("CONV_2D", "DEPTHWISE_CONV_2D")]
            if len(convolutions) != 1 or "DEQUANTIZE" in names or "QUANTIZE" in names:
                raise RuntimeError(f"the converter did not make one int8 convolution: {names}")
            if activation is not None and any(name in ("RELU", "RELU6", "RELU_N1_TO_1") for name in names):
                raise RuntimeError(f"the converter did not fuse the activation into the convolution: {names}")
            cached[kernel_size] = (model_object, names, convolutions[0])
        return cached[kernel_size]

    def quantization_parameters(scales, zero_points, dimension=0):
        parameters = schema.QuantizationParametersT()
        parameters.scale = [float(s) for s in scales]
        parameters.zeroPoint = [int(z) for z in zero_points]
        parameters.quantizedDimension = dimension
        return parameters

    def imposed(model_object, conv, w, b, q):
        """The model's bytes with the spec's quantization, weights and bias (module docstring)."""
        graph = model_object.subgraphs[0]
        x_zero = int(q["x_zero_point"]) - (128 if source == "uint8" else 0)
        y_zero = int(q["y_zero_point"]) - (128 if destination == "uint8" else 0)
        producers = {t: op for op in graph.operators for t in op.outputs}
        consumers = {}
        for op in graph.operators:
            for t in op.inputs:
                consumers.setdefault(t, []).append(op)
        tensor = conv.inputs[0]
        while True:  # from the convolution's input up to the model's (PAD, STRIDED_SLICE keep x's parameters)
            graph.tensors[tensor].quantization = quantization_parameters([q["x_scale"]], [x_zero])
            if tensor not in producers:
                break
            tensor = producers[tensor].inputs[0]
        pending = [conv.outputs[0]]
        while pending:  # from the convolution's output down to the model's
            tensor = pending.pop()
            graph.tensors[tensor].quantization = quantization_parameters([q["y_scale"]], [y_zero])
            pending += [t for op in consumers.get(tensor, ()) for t in op.outputs]
        scales = np.broadcast_to(np.asarray(q["w_scale"], dtype=np.float64), (out_channels,))
        filters = graph.tensors[conv.inputs[1]]
        if depthwise:  # (O, 1, kh, kw) -> (1, kh, kw, O), output channel c * multiplier + m
            data, dimension = np.transpose(w, (1, 2, 3, 0)), 3
        else:  # (O, C/g, kh, kw) -> OHWI
            data, dimension = np.transpose(w, (0, 2, 3, 1)), 0
        assert tuple(filters.shape) == data.shape, (tuple(filters.shape), data.shape)
        model_object.buffers[filters.buffer].data = np.frombuffer(data.astype(np.int8).tobytes(), np.uint8)
        per_tensor = np.ndim(q["w_scale"]) == 0
        filters.quantization = quantization_parameters(scales[:1] if per_tensor else scales,
                                                       [0] if per_tensor else [0] * out_channels, dimension)
        if len(conv.inputs) > 2 and conv.inputs[2] >= 0:
            offsets = graph.tensors[conv.inputs[2]]
            values = np.zeros(out_channels, np.int32) if b is None else np.asarray(b, np.int32)
            model_object.buffers[offsets.buffer].data = np.frombuffer(values.astype("<i4").tobytes(), np.uint8)
            bias_scales = float(q["x_scale"]) * (scales[:1] if per_tensor else scales)
            offsets.quantization = quantization_parameters(bias_scales, [0] * len(bias_scales))
        elif b is not None and np.any(b):
            raise RuntimeError("the converted convolution has no bias input")
        return bytes(flatbuffer_utils.convert_object_to_bytearray(model_object))

    resolvers = {name: getattr(tf.lite.experimental.OpResolverType, name)
                 for name in ("AUTO", "BUILTIN_REF", "BUILTIN_WITHOUT_DEFAULT_DELEGATES")}

    def step(x, w, b, dy, operands=(), quantization=None):
        q = dict(quantization)
        if lifted:
            x, w = x[:, :, None], w[:, :, None]
        model_object, _, conv = converted(tuple(w.shape[2:]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            interpreter = tf.lite.Interpreter(model_content=imposed(model_object, conv, w, b, q), num_threads=1,
                                              experimental_op_resolver_type=resolvers[resolver])
        interpreter.allocate_tensors()
        codes = np.moveaxis(x, 1, -1).astype(np.int16) - (128 if source == "uint8" else 0)
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], codes.astype(np.int8))
        interpreter.invoke()
        y = np.moveaxis(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]), -1, 1)
        y = y.astype(np.int16) + (128 if destination == "uint8" else 0)
        return (y[:, :, 0] if lifted else y).astype(destination), None, None, None

    return step


def tflite_ops(step: Callable[..., tuple]) -> list[str]:
    """The op names of the model a built step converted last (for tests: what the converter made)."""
    for cell in step.__closure__ or ():
        value = cell.cell_contents
        if callable(value) and getattr(value, "__name__", "") == "converted":
            cache = next(c.cell_contents for c in value.__closure__ if isinstance(c.cell_contents, dict))
            return list(next(iter(cache.values()))[1])
    raise LookupError("not a tflite_conv step")


INT8_TYPES = ("uint8:int8:uint8", "uint8:int8:int8", "int8", "int8:int8:uint8")  # "int8" is int8:int8:int8


def activation_not_fused(spec: ConvSpec) -> bool:
    """A chain other than one relu (slope 0) or one clip 0..6: TFLite fuses only those (RELU, RELU6) into an int8
    convolution as a clamp of the output codes."""
    if not spec.post_ops:
        return False
    if len(spec.post_ops) > 1:
        return True
    op = spec.post_ops[0]
    return not ((op.function == "relu" and op.alpha == 0) or (op.function == "clip" and (op.alpha, op.beta) == (0, 6)))


LIMITS = (
    Limit("rank 3", "TFLite has no int8 CONV_3D: the converter keeps the 3-D convolution in float between DEQUANTIZE "
          "and QUANTIZE", lambda spec: spec.rank == 3),
    Limit("a filter zero point other than 0", "tensorflow/lite/kernels/conv.cc: affine_quantization->zero_point->"
          "data[i] != 0 (CONV_2D failed to prepare); XNNPACK: unsupported zero-point value in INT8 tensor",
          lambda spec: spec.quantization.w_zero_point != 0),
    Limit("per-channel x or y scales or zero points", "TFLite quantizes activations per tensor",
          lambda spec: any(spec.quantization.per_channel and name[0] in "xy"
                           for name in spec.quantization.per_channel)),
    Limit("a float bias", "TFLite's int8 convolution takes an int32 bias in steps of sx sw",
          lambda spec: spec.bias and spec.bias_dtype != "int32"),
    Limit("a chain other than one relu or relu6", "TFLite fuses RELU and RELU6 into CONV_2D as a clamp of the codes; "
          "anything else is an op of its own", activation_not_fused),
)

# Measured: tests/plugins/test_tflite.py (exact ties with a power-of-two multiplier and an odd y zero point).
XNNPACK_ROUNDING = "half_even_before_zero_point"
REFERENCE_ROUNDING = "double_rounding"

# BUILTIN_WITHOUT_DEFAULT_DELEGATES: TFLite's optimized int8 kernels requantize with a second stage that rounds ties
# half up (toward +inf) where gemmlowp's RoundingDivideByPOT rounds them away from zero, in CONV_2D without groups and
# in DEPTHWISE_CONV_2D's vectorized channels (the first 8 of each 8; the rest use the reference rounding): negative
# values at a tie of the second stage differ by one step from double_rounding, e.g. v = -0.75 with M = 1/4.
# Evidence: tests/plugins/test_tflite.py::test_optimized_kernels_round_the_second_stage_half_up.
OPTIMIZED_HALF_UP = Deviation(
    condition="the optimized kernels: CONV_2D without groups, DEPTHWISE_CONV_2D", tensors=("y",), strict=False,
    applies=lambda spec: spec.groups == 1 or spec.groups == spec.in_channels,
    reason="the optimized int8 kernels round the second requantization stage half up, not half away from zero "
           "(gemmlowp's RoundingDivideByPOT), in some channels", upstream="not reported yet")


@lru_cache(maxsize=256)
def built_step(spec: ConvSpec, resolver: str) -> Callable[..., tuple]:
    """The spec's step, converted once per process."""
    return TFLiteBackend(resolver).program(spec).build()


class TFLiteBackend(DeclaredLimits):
    """TFLite int8 convolutions through tf.lite.Interpreter with one op resolver (module docstring)."""

    limits = LIMITS
    data_types = INT8_TYPES
    post_ops = ("relu", "clip")
    # Converting a model is ~0.1 s a case; the interpreter itself is fast.
    cost = BackendCost(0.15, 0.1)

    def __init__(self, resolver: str = "AUTO") -> None:
        self.resolver = resolver
        self.name, rounding, self.deviations = {
            "AUTO": ("tflite-int8", XNNPACK_ROUNDING, ()),
            "BUILTIN_REF": ("tflite-int8-reference", REFERENCE_ROUNDING, ()),
            "BUILTIN_WITHOUT_DEFAULT_DELEGATES": ("tflite-int8-optimized", REFERENCE_ROUNDING, (OPTIMIZED_HALF_UP,)),
        }[resolver]
        self.rounding = dict.fromkeys(INT8_TYPES, rounding)

    def availability(self) -> str | None:
        missing = TENSORFLOW.missing()
        if missing is not None:
            return missing
        try:
            import tensorflow.lite.tools.flatbuffer_utils  # noqa: F401
        except ImportError as error:
            return f"tf.lite's flatbuffer tools are missing from this TensorFlow: {error}"
        return None

    def version(self) -> str:
        return TENSORFLOW.load().__version__

    def supports(self, spec: ConvSpec) -> str | None:
        if spec.dtype not in INT8_TYPES:
            return f"dtype {spec.dtype}: TFLite's integer convolution takes 8-bit x and w and writes 8-bit y"
        return super().supports(spec)

    def thread_environment(self, threads: int) -> dict[str, str]:
        return thread_environment(threads)

    def cache_environment(self, folder: Path | None, current: Mapping[str, str]) -> dict[str, str]:
        return {}

    def program(self, spec: ConvSpec) -> Program:
        arguments: dict[str, Any] = program_arguments(spec, resolver=self.resolver, x_shape=spec.x_shape,
                                                      out_channels=spec.out_channels)
        return Program(tflite_conv, arguments)

    def run(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray | None,
            extras: Extras | None = None) -> Outputs:
        """x (N, C, *in) uint8/int8 codes, w (O, C/groups, *k) int8, b (O,) int32 or None -> y codes (forward
        only)."""
        TENSORFLOW.load()
        assert extras is not None, "a quantized spec comes with its scales"
        return built_step(spec, self.resolver)(x, w, b, dy, quantization=extras.quantization)  # type: ignore[no-any-return]


@hookimpl
def convparity_register_backends(register):
    for resolver in ("AUTO", "BUILTIN_REF", "BUILTIN_WITHOUT_DEFAULT_DELEGATES"):
        register(TFLiteBackend(resolver))
