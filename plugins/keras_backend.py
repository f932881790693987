"""Backend `keras`: Keras 3 Conv1D / Conv2D / Conv3D layers with data_format="channels_first", on TensorFlow.

One layer per case (program `keras_conv`), built with the spec's dtype as its dtype policy and its strides,
dilation_rate, groups and use_bias; its kernel (*k, C/g, O) and bias are set from the canonical arrays with
set_weights, so inputs and outputs stay in the canonical (N, C, *spatial) layout.
Padding: when the spec's pads are exactly TensorFlow's "same" rule, the layer's own padding="same";
otherwise the input is cropped (negative pads) and zero-padded with keras.ops before a "valid" layer.
Gradients: tf.GradientTape through the ops and the layer, for x, the kernel and the bias, inside a
tf.function graph as Keras' own training step runs on a CPU (jit_compile="auto" means no XLA without
an accelerator). Where TensorFlow's CPU kernels refuse the graph (float64 and float16 channels-first
gradients: "Conv2DCustomBackpropInputOp only supports NHWC", dilated or grouped gradients, ...), the
same step runs XLA-compiled instead (as the tensorflow backend does). `run` names the functions a case
traces after the case, for TensorFlow's XLA cache (convparity.plugins.tensorflow_backend.run_named).

Transposed convolutions: Keras 3 Conv1DTranspose / Conv2DTranspose / Conv3DTranspose, kernel
(*k, C_out, C_in), the same way. Their padding is "same" (used when the spec's pads are TensorFlow's
"same" for transposed convolutions) or "valid" with an output_padding below the stride, which gives
the full result and up to stride - 1 positions past it; the spec's window of that is sliced out of
y. They take no groups, and cannot add positions before the full result (a negative start pad) or
stride or more past it (output_padding >= stride, which PyTorch allows under dilation): limits.

Post-op chains: one elementwise step Keras has an activation for is the layer's own `activation=` ("relu",
"relu6", "gelu", "silu", "hard_silu", ... or a keras.activations function with the step's parameters); any other
chain is layers after the convolution: Activation (keras.activations, or keras.ops composed where Keras has no
such activation), Add for a sum, Add / Subtract / Multiply / Maximum / Minimum for a binary step, PReLU and
BatchNormalization (training=False) with their weights set from the operand. Keras' merge layers refuse a src1
broadcast along the batch and PReLU has no per-batch alpha (limits); binary_div has no merge layer (not declared).

Keras runs on whichever backend KERAS_BACKEND names when it is first imported; this plugin sets it
to "tensorflow" if it is unset, and reports itself unavailable if Keras runs on another backend.
Worker processes get TensorFlow's thread and compile-cache variables (the tensorflow backend's).
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
    Framework,
    Limit,
    Outputs,
    Program,
    hookimpl,
    program_arguments,
)
from convparity.plugins.tensorflow_backend import (
    BIAS_ROUNDED_IN_OUTPUT_DTYPE,
    GELU_FLOAT32_CONSTANTS,
    LEAKY_RELU_FLOAT32_ALPHA,
    TENSORFLOW,
    cache_environment,
    chain_keywords,
    run_named,
    thread_environment,
)


def past_the_stride(spec: ConvSpec) -> bool:
    """A transposed spec whose output reaches stride or more positions past the full result in some dim."""
    return spec.transposed and any(extra - after >= s for (_, after), extra, s in
                                   zip(spec.padding, spec.output_padding, spec.stride))


# Raised by keras.src.layers.convolutional.base_conv.BaseConv.__init__ and base_conv_transpose.BaseConvTranspose
# (Keras 3.15); the transposed layers' __init__ has no `groups` argument.
LIMITS = (
    Limit(
        condition="stride > 1 and dilation > 1 in any dims",
        reason="ValueError: `strides > 1` not supported in conjunction with `dilation_rate > 1`",
        applies=lambda spec: max(spec.stride) > 1 and max(spec.dilation) > 1,
    ),
    Limit(
        condition="transposed with groups > 1",
        reason="ValueError: Unrecognized keyword arguments passed to Conv2DTranspose: {'groups': 2} "
        "(Conv1DTranspose, Conv2DTranspose and Conv3DTranspose have no groups)",
        applies=lambda spec: spec.transposed and spec.groups > 1,
    ),
    Limit(
        condition="transposed with output_padding - end pad >= stride in a dim",
        reason="ValueError: `output_padding` must be strictly less than `strides` for all dimensions",
        applies=past_the_stride,
    ),
    Limit(
        condition="transposed with a negative start pad",
        reason="ValueError: The `padding` argument must be a list/tuple or one of {'valid', 'same'}: the transposed "
        "layers pad only as 'valid' or 'same', which never add positions before the full output",
        applies=lambda spec: spec.transposed and any(before < 0 for before, _ in spec.padding),
    ),
    # keras.layers.PReLU builds its alpha of the input's shape less the batch dim (base: input_shape[1:]).
    Limit(
        condition="prelu slopes that vary along the batch (mask bit 0)",
        reason="keras.layers.PReLU's alpha has the shape input_shape[1:]: one slope per batch element has no place",
        applies=lambda spec: any(op.kind == "prelu" and op.mask & 1 for op in spec.post_ops),
    ),
    # keras.layers.Add, Subtract, Multiply, Maximum, Minimum (keras/src/layers/merging/base_merge.py, Keras 3.15).
    Limit(
        condition="a binary step whose src1 is broadcast along the batch (mask bit 0 unset, batch > 1)",
        reason="ValueError: Cannot merge tensors with different batch sizes. Received tensors with shapes "
               "[(2, 6, 7, 8), (1, 6, 1, 1)]",
        applies=lambda spec: spec.batch > 1 and any(op.kind.startswith("binary_") and not op.mask & 1
                                                    for op in spec.post_ops),
    ),
)
# The kinds a chain of Keras layers computes (keras_conv): every elementwise kind (an activation), sum and the binary
# kinds Keras has a merge layer for (not binary_div), PReLU and BatchNormalization.
POST_OPS = ("relu", "clip", "elu", "gelu_erf", "gelu_tanh", "swish", "logistic", "tanh", "hardswish", "hardsigmoid",
            "mish", "soft_relu", "linear", "abs", "square", "sqrt", "exp", "log", "round", "pow", "sum", "binary_add",
            "binary_sub", "binary_mul", "binary_max", "binary_min", "prelu", "batchnorm")


def hits_bias_bug(spec: ConvSpec) -> bool:
    """The cases of the Keras channels_first bias bug: a bias and a last output size of the layer equal to
    out_channels > 1 (for a transposed spec the layer's output before the spec's window is cropped from it;
    with one channel the bias is the same along either axis: `convparity search` found those cases xpass)."""
    return spec.bias and layer_output_size(spec)[-1] == spec.out_channels > 1


def bias_bug_shows_in_y(spec: ConvSpec) -> bool:
    """y is wrong in the bias-bug cases, except in float32 for ungrouped, undilated rank-1 and rank-2
    convolutions, where TensorFlow's graph optimizer fuses the NCHW Conv2D with the NHWC BiasAdd and (itself
    wrongly) adds the bias along the channels after all (tests/plugins/test_tensorflow.py, the fusion test).
    It fuses no transposed convolution (Conv2DBackpropInput), nor a dilated one, even one whose kernel is 1
    wide (found by `convparity search`), so those are wrong in float32 too."""
    fused = (not spec.transposed and spec.dtype == "float32" and spec.groups == 1 and spec.rank <= 2
             and max(spec.dilation) == 1)
    return hits_bias_bug(spec) and not fused


def add_takes_operand_for_bias(spec: ConvSpec) -> bool:
    """Keras 3.15's keras.ops.add (TensorFlow backend) turns add(y, r) into tf.nn.bias_add when r has exactly one
    dim > 1 whose size is y's dim 1 or last dim, with data_format NHWC when it is the last one's: wrong where r's
    non-unit dim is not the axis that data_format adds along (a sum's or binary_add's operand)."""
    for op, shape in zip(spec.post_ops, spec.operand_shapes):
        if op.function not in ("sum", "binary_add") or shape is None:
            continue
        wide = [dim for dim, size in enumerate(shape) if size > 1]
        if len(wide) != 1 or shape[wide[0]] not in (spec.y_shape[1], spec.y_shape[-1]):
            continue
        axis = len(spec.y_shape) - 1 if spec.y_shape[-1] == shape[wide[0]] else 1
        if axis != wide[0]:
            return True
    return False


# Keras 3.15 bug, channels_first bias on the TensorFlow backend: BaseConv.call reshapes the bias to
# (1, filters, 1, ...) and calls keras.ops.add, whose TensorFlow version turns a bias-like second
# operand into tf.nn.bias_add with data_format "NHWC" whenever the output's LAST dim equals the bias
# length, ignoring where the bias's non-unit axis is. So when the last output size equals
# out_channels the bias is added along the last spatial axis: y is wrong, and so is db (summed over
# the wrong axes); dx and dw are right. Minimal repro without a convolution (NumPy adds per channel):
#   keras.ops.add(np.zeros((1, 4, 3, 4)), np.arange(1., 5.).reshape(1, 4, 1, 1))
# Evidence: tests/plugins/test_keras.py::test_bias_bug_explains_the_wrong_y_and_db_exactly.
KERAS_BIAS_BUG = "keras.ops.add adds a channels_first bias along the last axis when its size equals out_channels"
DEVIATIONS = (
    Deviation(condition="bias and the layer's output_size[-1] == out_channels > 1 (float32: grouped, dilated, "
                        "rank 3 or transposed)",
              applies=bias_bug_shows_in_y, tensors=("y",), bias=True, dtypes=("float64", "float32"),
              versions=">=3.15", reason=KERAS_BIAS_BUG,
              upstream="docs/upstream/keras-channels-first-bias.md (not reported yet)"),
    Deviation(condition="bias and the layer's output_size[-1] == out_channels > 1", applies=hits_bias_bug,
              tensors=("db",),
              bias=True, dtypes=("float64", "float32"), versions=">=3.15", reason=KERAS_BIAS_BUG,
              upstream="docs/upstream/keras-channels-first-bias.md (not reported yet)"),
    # In float16/bfloat16 the bug and TensorFlow's double rounding of the bias mix: neither is strict there.
    Deviation(condition="bias and the layer's output_size[-1] == out_channels > 1, float16/bfloat16",
              applies=hits_bias_bug,
              tensors=("y", "db"), bias=True, dtypes=("float16", "bfloat16"), versions=">=3.15", strict=False,
              reason=KERAS_BIAS_BUG, upstream="docs/upstream/keras-channels-first-bias.md (not reported yet)"),
    BIAS_ROUNDED_IN_OUTPUT_DTYPE,
    # The same keras.ops.add on the Add layer's operand: a src1 with one non-unit dim (per_oc, batch 1) whose size is
    # also y's last is added as an NHWC bias. In the float32 graph the conv's fusion adds it right after all (y
    # passes); its gradient (BiasAddGrad, NHWC) sums over the wrong axes. Deviation.tensors cannot name dpost{k}, so
    # every tensor is covered, not strictly. Evidence: tests/plugins/test_keras.py::test_add_layer_bias_bug.
    Deviation(condition="a binary_add or sum operand with one non-unit dim whose size equals y's last dim, not along "
                        "it", applies=add_takes_operand_for_bias, versions=">=3.15", strict=False,
              reason="keras.ops.add takes the Add layer's operand for a channels-last bias (tf.nn.bias_add NHWC)",
              upstream="not reported yet"),
    # Keras' gelu and relu(negative_slope=...) are tf.nn.gelu and tf.nn.leaky_relu on TensorFlow: the same float32
    # constants in float64 (tests/plugins/test_keras.py::test_float64_gelu_and_leaky_relu_are_tensorflows).
    GELU_FLOAT32_CONSTANTS,
    LEAKY_RELU_FLOAT32_ALPHA,
)


def is_same_padding(spec: ConvSpec) -> bool:
    """Whether the spec's pads (and output_padding) are TensorFlow's "same" for its sizes, strides and dilations."""
    return spec == spec.replace(padding="same", output_padding=0)


def transposed_output_padding(spec: ConvSpec) -> tuple[int, ...]:
    """The output_padding of a "valid" transposed layer whose output holds the spec's window: below the stride."""
    return tuple(min(max(extra - after, 0), s - 1)
                 for (_, after), extra, s in zip(spec.padding, spec.output_padding, spec.stride))


def layer_output_size(spec: ConvSpec) -> tuple[int, ...]:
    """The spatial size of the layer's own output: the spec's, except for a transposed spec whose window is cropped
    from a "valid" layer's output, the full result and the layer's output_padding."""
    if not spec.transposed or is_same_padding(spec):
        return spec.output_size
    return tuple((i - 1) * s + (k - 1) * d + 1 + extra for i, k, s, d, extra in zip(
        spec.input_size, spec.kernel_size, spec.stride, spec.dilation, transposed_output_padding(spec)))


def keras_conv(*, stride, padding, dilation, groups, dtype, bias, output_padding=None, filters, kernel_size,
               input_shape, post_ops=(), output_shape=None):
    """A Keras Conv1D/2D/3D layer (Conv1D/2D/3DTranspose with an output_padding), data_format="channels_first", on
    TensorFlow (Keras' default backend; the plugin's workers set KERAS_BACKEND): its kernel and bias set with
    set_weights, y and the gradients of x, kernel, bias and the chain's differentiable operands by tf.GradientTape
    in a tf.function (XLA-compiled where TensorFlow's CPU kernels refuse the graph).
    padding: "same" (the layer's own; a transposed layer then picks its own output_padding), else (before, after)
    per dim: x cropped and padded with keras.ops before a "valid" layer, or for a transposed layer the window
    sliced from its "valid" output.
    post_ops: one elementwise step Keras has an activation for is the layer's `activation=`; any other chain is
    layers after the convolution, one per step: Activation, Add / Subtract / Multiply / Maximum / Minimum with the
    operand, PReLU (its alpha set from the slopes), BatchNormalization (inference; its weights set from the
    operand). output_shape: y's shape, which the layers after the convolution are built for. Without a chain,
    everything the chain needs is under `if post_ops:`, so that a repro script specialised to a plain case shows
    the layer, the tape and nothing else.
    step(x, w, b, dy, operands=(), quantization=None) -> (y, dx, dw, db[, {"dpost{k}": gradient}]) with
    x (N, C, *in) and w (O, C/groups, *k), or (C, O, *k) transposed."""
    import keras
    import numpy as np
    import tensorflow as tf

    rank, same = len(stride), padding == "same"
    fused = len(post_ops) == 1 and dict(post_ops[0])["kind"] not in ("sum", "prelu", "batchnorm") and not dict(
        post_ops[0])["kind"].startswith("binary_")  # one elementwise step: the layer's own activation
    if post_ops:
        ops, activations = keras.ops, keras.activations
        chain = tuple(dict(step) for step in post_ops)
        unit = {"float64": 2.0**-53, "float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}[dtype]

        def activation(op):
            """The activation of one elementwise step: keras.activations' name where Keras has the function (with
            the step's parameters to the dtype's precision: benchdnn writes 1/6 as 0.16666667), else keras.ops
            composed."""
            kind, a, b = op["kind"], op["alpha"], op["beta"]
            sixth = abs(a - 1 / 6) <= unit / 6 and b == 0.5  # keras' hard_sigmoid is relu6(x + 3) / 6

            def composed(v):
                if kind == "relu":
                    return activations.relu(v, negative_slope=a)
                if kind == "clip":
                    return ops.clip(v, a, b)
                if kind == "elu":
                    return activations.elu(v, alpha=a)
                if kind == "gelu_tanh":
                    return activations.gelu(v, approximate=True)
                if kind == "swish":
                    return v * ops.sigmoid(a * v)
                if kind == "soft_relu":
                    return ops.softplus(a * v) / a
                if kind in ("hardswish", "hardsigmoid"):
                    gate = ops.clip(a * v + b, 0, 1)
                    return v * gate if kind == "hardswish" else gate
                if kind == "linear":
                    return a * v + b
                if kind == "pow":
                    return a * ops.power(v, b)
                return {"abs": ops.abs, "square": ops.square, "sqrt": ops.sqrt, "log": ops.log,
                        "round": ops.round}[kind](v)

            named = {("relu", a == 0): "relu", ("clip", (a, b) == (0, 6)): "relu6", ("elu", a == 1): "elu",
                     ("gelu_erf", True): "gelu", ("swish", a == 1): "silu", ("logistic", True): "sigmoid",
                     ("tanh", True): "tanh", ("mish", True): "mish", ("soft_relu", a == 1): "softplus",
                     ("exp", True): "exponential", ("hardsigmoid", sixth): "hard_sigmoid",
                     ("hardswish", sixth): "hard_silu", ("linear", (a, b) == (1, 0)): "linear"}
            return named.get((kind, True), composed)

        steps = []  # the layers after the convolution, one per step of a chain that is not the layer's activation
        for op in () if fused else chain:
            kind = op["kind"]
            if kind == "prelu":  # alpha spans y's dims in the mask, shared along the others
                steps.append(keras.layers.PReLU(
                    shared_axes=[d for d in range(1, rank + 2) if not op["mask"] >> d & 1], dtype=dtype))
            elif kind == "batchnorm":
                steps.append(keras.layers.BatchNormalization(axis=1, epsilon=op["alpha"], dtype=dtype))
            elif kind in ("sum", "binary_add"):
                steps.append(keras.layers.Add(dtype=dtype))
            elif kind.startswith("binary_"):
                steps.append({"binary_sub": keras.layers.Subtract, "binary_mul": keras.layers.Multiply,
                              "binary_max": keras.layers.Maximum, "binary_min": keras.layers.Minimum}[kind](
                    dtype=dtype))
            else:
                steps.append(keras.layers.Activation(activation(op), dtype=dtype))
            if kind in ("prelu", "batchnorm"):
                steps[-1].build(output_shape)
        # The gradients a chain has beyond x, w, b: a sum's residual, a binary's src1, PReLU's alpha.
        watched = [k for k, op in enumerate(chain)
                   if op["kind"] in ("sum", "prelu") or op["kind"].startswith("binary_")]

        def chain_forward(y, operands):
            for op, step_layer, other in zip(chain, steps, operands):
                if op["kind"] == "batchnorm":
                    y = step_layer(y, training=False)
                elif op["kind"] == "sum":
                    if op["zero_point"]:
                        other = ops.subtract(other, op["zero_point"])
                    y = step_layer([y, other if op["scale"] == 1 else ops.multiply(other, op["scale"])])
                elif op["kind"].startswith("binary_"):
                    y = step_layer([y, other])
                else:
                    y = step_layer(y)
            return y

        def chain_sources(operands):
            """What the chain's gradients are taken of: PReLU's alpha, the other steps' operands."""
            return [steps[k].alpha.value if chain[k]["kind"] == "prelu" else operands[k] for k in watched]

        def chain_operands(operands):
            """The steps' weights set (PReLU's, BatchNormalization's); the operands the graph takes (None for those)."""
            for op, step_layer, other in zip(chain, steps, operands):
                if op["kind"] == "prelu":
                    step_layer.set_weights([other[0]])
                elif op["kind"] == "batchnorm":  # rows mean, var, gamma, beta; its weights gamma, beta, mean, var
                    step_layer.set_weights([other[2], other[3], other[0], other[1]])
            return [None if other is None or op["kind"] in ("prelu", "batchnorm") else other
                    for op, other in zip(chain, operands)]

        def chain_gradients(rest):
            """{"dpost{k}": gradient} of the chain's watched operands (PReLU's alpha has y's dims less the batch)."""
            return {f"dpost{k}": g[None] if chain[k]["kind"] == "prelu" else g for k, g in zip(watched, rest)}

    layer = ((keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D) if output_padding is None else (
        keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose))[rank - 1](
        filters=filters, kernel_size=kernel_size, strides=stride, padding="same" if same else "valid",
        data_format="channels_first", dilation_rate=dilation, use_bias=bias, dtype=dtype,
        activation=activation(chain[0]) if fused else None,
        # output_padding below the stride: the full result and up to stride - 1 positions past it
        **({"groups": groups} if output_padding is None else {"output_padding": None if same else tuple(
            max(extra - after, 0) for (_, after), extra in zip(padding, output_padding))}))
    if same or output_padding is not None:
        layer.build(input_shape)
    else:  # x cropped where a pad is negative, zero-padded where it is positive
        crop = (slice(None), slice(None), *(slice(max(-lo, 0), hi if hi < 0 else None) for lo, hi in padding))
        pads = [[0, 0], [0, 0], *([max(lo, 0), max(hi, 0)] for lo, hi in padding)]
        layer.build((*input_shape[:2], *(i + lo + hi for i, (lo, hi) in zip(input_shape[2:], padding))))

    def convolution(x):
        if output_padding is None:
            return layer(keras.ops.pad(x[crop], pads))
        window = tuple(slice(before, extra - after if after > extra else None)
                       for (before, after), extra in zip(padding, output_padding))
        return layer(x)[(slice(None), slice(None), *window)]  # the spec's window of the layer's output

    def gradients(x, dy, *operands):
        with tf.GradientTape() as tape:
            tape.watch([x, *chain_sources(operands)] if post_ops else x)  # the kernel and bias are watched variables
            y = layer(x) if same else convolution(x)
            if post_ops:
                y = chain_forward(y, operands)
        return [y, *tape.gradient(y, [x, layer.kernel.value, *([layer.bias.value] if bias else []), *(
            chain_sources(operands) if post_ops else [])], output_gradients=dy,
            unconnected_gradients=tf.UnconnectedGradients.ZERO)]

    graph = tf.function(gradients, autograph=False)  # as Keras' own training step on a CPU (no XLA)
    xla = tf.function(gradients, jit_compile=True, autograph=False)

    def step(x, w, b, dy, operands=(), quantization=None):
        layer.set_weights([np.transpose(w, (*range(2, rank + 2), 1, 0)), *([b] if bias else [])])
        passed = chain_operands(operands) if post_ops else ()
        with tf.device("/CPU:0"):
            try:
                results = graph(tf.constant(x), tf.constant(dy), *[None if a is None else tf.constant(a)
                                                                    for a in passed])
            except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):  # the CPU kernels refuse it
                results = xla(x, dy, *passed)
        y, dx, dkernel, *rest = [np.asarray(t) for t in results]
        return (y, dx, np.transpose(dkernel, (rank + 1, rank, *range(rank))), rest.pop(0) if bias else None,
                *([chain_gradients(rest)] if post_ops else []))

    return step


def keras_arguments(spec: ConvSpec) -> dict[str, Any]:
    """The program's arguments: the spec's, the layer's filters and kernel_size, x's shape, and padding "same" where
    the spec's pads are TensorFlow's "same" (the layer's own padding then)."""
    arguments = program_arguments(spec, filters=spec.out_channels, kernel_size=spec.kernel_size,
                                  input_shape=spec.x_shape)
    if spec.post_ops:
        arguments["output_shape"] = spec.y_shape
    if is_same_padding(spec):
        arguments["padding"] = "same"
    return arguments


# Keras imports TensorFlow itself: its log level is set before that.
KERAS = Framework("keras", "keras", environment={"KERAS_BACKEND": "tensorflow", **TENSORFLOW.environment})


@lru_cache(maxsize=256)
def built_step(spec: ConvSpec) -> Callable[..., tuple]:
    """The spec's step, built once per process: one layer, its graph traced once per case."""
    return KerasBackend().program(spec).build()


class KerasBackend(DeclaredLimits):
    """Keras 3 ConvND layers, channels_first, on TensorFlow's CPU kernels or XLA (see module)."""

    name = "keras"
    limits = LIMITS
    post_ops = POST_OPS
    deviations = DEVIATIONS
    # The median `seconds` per case of a 2-core run of the smoke and default grids in four dtypes (results.csv,
    # 2026-12, cold compile caches): mostly tracing and XLA compiling. 20 GFLOP/s on one core.
    cost = BackendCost(0.42, 0.05)

    def availability(self) -> str | None:
        missing = KERAS.missing()
        if missing is not None:
            return missing
        active = KERAS.load().backend.backend()
        if active != "tensorflow":
            return f"keras runs on its {active!r} backend (KERAS_BACKEND); this plugin needs 'tensorflow'"
        return None

    def version(self) -> str:
        return f"{KERAS.load().__version__} (tensorflow {TENSORFLOW.load().__version__})"

    def thread_environment(self, threads: int) -> dict[str, str]:
        return thread_environment(threads)

    def cache_environment(self, folder: Path | None, current: Mapping[str, str]) -> dict[str, str]:
        """TensorFlow's XLA cache, as for the tensorflow backend (the same folder: both compile through it)."""
        return cache_environment(folder, current)

    def program(self, spec: ConvSpec) -> Program:
        return Program(keras_conv, keras_arguments(spec))

    def run(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray | None,
            extras: Extras | None = None) -> Outputs:
        """x (N, C, *in), w (O, C/groups, *k), b (O,) or None, dy (N, O, *out) -> y, dx, dw, db (NumPy), and
        {"dpost{k}": gradient} of the chain's differentiable operands (extras.operands).

        Transposed: w (C, O, *k) (no groups), as the layer's kernel (*k, O, C)."""
        KERAS.load()  # on TensorFlow, its logs limited, before the program imports it
        return run_named(self.name, spec, built_step(spec), x, w, b, dy,  # type: ignore[return-value]
                         **chain_keywords(extras))


@hookimpl
def convparity_register_backends(register):
    register(KerasBackend())
