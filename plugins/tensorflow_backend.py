"""Backends `tensorflow` and `tensorflow-xla`: tf.nn.conv2d / tf.nn.conv3d on the CPU, gradients from tf.GradientTape
(program `tensorflow_conv`).

Boundary: TensorFlow's CPU kernels have no channels-first convolution, so the canonical arrays are
transposed to channels-last, x (N, *in, C) and dy (N, *out, O), and the weight to (*k, C/g, O); the
results are transposed back. A rank-1 case runs as rank 2 with a height-1 dim (what tf.nn.conv1d does).
Padding: a negative pad (a crop) slices the input first; the rest goes to conv2d's explicit `paddings`
for ranks 1 and 2, and to tf.pad before a VALID conv3d for rank 3 (Conv3D takes only SAME or VALID).
Groups: the filter's input depth C/g, from which conv2d and conv3d infer the group count.

Paths: every case runs eagerly first. Where TensorFlow's eager CPU kernels refuse the case (they
raise InvalidArgumentError or UnimplementedError: gradients of dilated or grouped convolutions in
float64/float16, conv3d with dilation or groups, ...), the same forward and backward run again
XLA-compiled (tf.function(jit_compile=True)), which handles all of them; an XLA refusal is raised as
it is. Both paths compute y, dx, dw and db together, so one case's four tensors come from one path.
TensorFlow is imported only when a backend is first asked about it.

Post-op chains (backends `tensorflow` and `tensorflow-xla`): every kind, in the TensorFlow op that has it after
tf.nn.bias_add (tf.nn.relu, relu6, elu, leaky_relu, gelu, silu, sigmoid, tanh, softplus, tf.round, ...; a sum or binary
step with its operand transposed to channels-last; prelu as tf.where; batchnorm as
tf.compat.v1.nn.fused_batch_norm(is_training=False), FusedBatchNormV3, or tf.nn.batch_normalization in float64, which
FusedBatchNormV3 lacks). `tensorflow` runs a chain in tf.function graphs (y from the inference graph, the gradients
from the training graph), where Grappler's remapper and the oneDNN rewrite fuse Conv2D + BiasAdd + Relu / Relu6 / Elu
/ LeakyRelu into one _MklNativeFusedConv2D kernel (tests/plugins/test_tensorflow.py); a plain spec keeps the eager
path above, so its results are those it always had. `tensorflow-xla` runs every case, chain or not, as one
XLA-compiled function (jit_compile=True), where XLA fuses the chain: the two show fused-vs-fused differences side by
side. The gradients of a sum's residual, a binary's src1 and prelu's slopes come from the same GradientTape.

Transposed convolutions run tf.nn.conv2d_transpose (ranks 1 and 2; rank 1 with a height-1 dim, as
tf.nn.conv1d_transpose does) and tf.nn.conv3d_transpose, filter (*k, C_out/g, C_in), with the
output_shape that selects the output window: conv2d_transpose takes the non-negative pads as explicit
`padding` and reaches up to stride - 1 positions past the full result through its output_shape;
conv3d_transpose (SAME or VALID only) runs VALID and its output is cropped by slicing. What a window
needs beyond that (a negative pad, or output_padding >= stride, which PyTorch allows under dilation)
is added with tf.pad; tf.nn.bias_add comes last. Eager kernels refuse dilated and grouped ones
("Current CPU implementations do not yet support dilation rates larger than 1", "Gradients for
grouped convolutions are not supported on CPU"): those run XLA-compiled, as above.

Compile cache: TensorFlow's persistent XLA cache (TF_XLA_FLAGS=--tf_xla_persistent_cache_directory,
`cache_environment`) keys an entry by the traced function's name, which TensorFlow numbers from a
process-wide counter (`__inference_train_<uid>`), so a later process finds an entry only if it traced
the same cases in the same order. `run` names what a case traces after a digest of the backend and the
spec instead (`case_function_names`: `__inference_train_<key>_<n>`), so an entry is found whatever ran
before it in either process. That is process-wide machinery around the program, not part of it.
It replaces private TensorFlow functions (concrete_function._inference_name and its forward and
backward twins, TensorFlow 2.21); where they are absent, names stay TensorFlow's own and only the
cache's hit rate suffers, never a result.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from functools import cache, lru_cache
from pathlib import Path

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
    installed_version,
    program_arguments,
)

# No spec that both TensorFlow's eager CPU kernels and XLA refuse is known (TensorFlow 2.21).
LIMITS: tuple[Limit, ...] = ()

HALF = ("float16", "bfloat16")
# Adding the bias as its own op in the output dtype rounds twice, round(round(conv) + b): beyond the
# bound where the bias cancels much of the convolution. A precision choice (Keras on TensorFlow and JAX
# make it too), not expressible as an accumulation, so declared here; non-strict: cases without such
# cancellation pass. Evidence: tests/plugins/test_tensorflow.py::test_half_precision_bias_rounds_twice.
BIAS_ROUNDED_IN_OUTPUT_DTYPE = Deviation(
    condition="bias, float16/bfloat16", dtypes=HALF, tensors=("y",), bias=True, strict=False,
    reason="the bias is added in the output dtype after the convolution is rounded to it (two roundings)",
    upstream="a precision choice, not reported")
DEVIATIONS: tuple[Deviation, ...] = (
    BIAS_ROUNDED_IN_OUTPUT_DTYPE,
    # Evidence: tests/plugins/test_tensorflow.py::test_half_precision_gradients_accumulate_in_the_narrow_dtype.
    Deviation(condition="float16/bfloat16 gradients on the eager CPU kernels", dtypes=HALF, tensors=("dx", "dw"),
              strict=False, versions=">=2.21",
              reason="eager CPU Conv2DBackpropInput/Filter accumulate dx and dw in the 16-bit dtype",
              upstream="not reported yet"),
    # Evidence: tests/plugins/test_tensorflow.py::test_bfloat16_bias_gradient_sums_exactly (4096 ones give 256).
    Deviation(condition="bias, bfloat16", dtypes=("bfloat16",), tensors=("db",), bias=True, strict=False,
              versions=">=2.21", reason="eager CPU BiasAddGrad sums bfloat16 in bfloat16: 4096 ones give 256",
              upstream="not reported yet"),
)


def chain_has(spec: ConvSpec, *kinds: str) -> bool:
    return any(op.function in kinds for op in spec.post_ops)


def leaky_slope_not_float32(spec: ConvSpec) -> bool:
    """A relu step whose negative slope float32 does not hold exactly."""
    return any(op.function == "relu" and op.alpha != 0 and float(np.float32(op.alpha)) != op.alpha
               for op in spec.post_ops)


# Chain steps whose float64 results TensorFlow computes with float32 constants (strict: every float64 case shows it).
# tf.nn.gelu casts its Python constants with math_ops.cast(0.7071067811865476, features.dtype) (and 0.044715 for the
# tanh form): a Python float becomes a float32 tensor first, so float64 gelu uses 1/sqrt(2) rounded to float32.
# Evidence: tests/plugins/test_tensorflow.py::test_float64_gelu_uses_float32_constants.
GELU_FLOAT32_CONSTANTS = Deviation(
    condition="float64, a gelu_erf or gelu_tanh step", dtypes=("float64",), versions=">=2.21",
    applies=lambda spec: chain_has(spec, "gelu_erf", "gelu_tanh"),
    reason="tf.nn.gelu's constants (1/sqrt 2; 0.044715) pass through float32 (math_ops.cast of a Python float)",
    upstream="not reported yet")
# LeakyRelu's `alpha` is a float attribute (32 bits): tf.nn.leaky_relu(x, 0.1) on float64 multiplies by 0.1f.
# Evidence: tests/plugins/test_tensorflow.py::test_float64_leaky_relu_slope_is_float32.
LEAKY_RELU_FLOAT32_ALPHA = Deviation(
    condition="float64, a relu step whose slope float32 does not hold", dtypes=("float64",), versions=">=2.21",
    applies=leaky_slope_not_float32,
    reason="LeakyRelu's alpha attribute is a 32-bit float: a float64 slope is rounded to float32",
    upstream="not reported yet")
DEVIATIONS = (*DEVIATIONS, GELU_FLOAT32_CONSTANTS, LEAKY_RELU_FLOAT32_ALPHA)
# XLA adds the bias inside its fusion, and computes the gradients without the eager kernels: of the eager kernels'
# deviations only the bias rounding in the output dtype is kept (non-strict, as for Keras and JAX); the chain's ops
# are the same TensorFlow ops, with the same float32 constants.
XLA_DEVIATIONS = (BIAS_ROUNDED_IN_OUTPUT_DTYPE, GELU_FLOAT32_CONSTANTS, LEAKY_RELU_FLOAT32_ALPHA)


def tensorflow_conv(*, stride, padding, dilation, groups, dtype, bias, output_padding=None, post_ops=(), xla=False):
    """tf.nn.conv2d / conv3d (conv2d_transpose / conv3d_transpose with an output_padding) in channels-last layout,
    tf.nn.bias_add, the post-op chain in TensorFlow ops (tf.nn.relu, tf.compat.v1.nn.fused_batch_norm, ...), and the
    gradients of x, w, b and each differentiable operand by tf.GradientTape.
    Without `xla`: a plain convolution runs eagerly on the CPU; a chain runs in tf.function graphs, where Grappler's
    remapper fuses it into the convolution's kernel (y from the inference graph, the gradients from the training
    graph); either is XLA-compiled (tf.function(jit_compile=True)) where TensorFlow's CPU kernels refuse the case.
    With `xla`: y and the gradients from one XLA-compiled function.
    step(x, w, b, dy, operands=(), quantization=None) -> (y, dx, dw, db[, {"dpost{k}": gradient}]), all in the
    canonical channels-first layouts."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # errors only
    import numpy as np
    import tensorflow as tf

    lifted = len(stride) == 1  # rank 1 runs as rank 2 with a height-1 dim, as tf.nn.conv1d does
    if lifted:
        stride, padding, dilation = (1, *stride), ((0, 0), *padding), (1, *dilation)
        output_padding = None if output_padding is None else (0, *output_padding)
    rank = len(stride)
    chain = tuple(dict(step) for step in post_ops)
    # Kinds whose operand has a gradient (reference_impl.post_ops.DIFFERENTIABLE_OPERANDS).
    differentiable = ("sum", "binary_add", "binary_sub", "binary_mul", "binary_div", "binary_max", "binary_min",
                      "prelu")

    def crop(pairs):
        """The slices that apply the negative part of each (before, after) pair (N and C untouched)."""
        return (slice(None), *(slice(max(-lo, 0), hi if hi < 0 else None) for lo, hi in pairs), slice(None))

    def extend(pairs):
        """tf.pad's paddings for the positive part of each (before, after) pair."""
        return [[0, 0], *([max(lo, 0), max(hi, 0)] for lo, hi in pairs), [0, 0]]

    def convolution(x, w, b):
        x = x[crop(padding)]
        if rank == 3:  # conv3d pads only SAME or VALID
            y = tf.nn.conv3d(tf.pad(x, extend(padding)), w, strides=[1, *stride, 1], padding="VALID",
                             dilations=[1, *dilation, 1])
        else:
            y = tf.nn.conv2d(x, w, strides=stride, padding=extend(padding), dilations=dilation)
        return y if b is None else tf.nn.bias_add(y, b)

    def transposed(x, w, b):
        # Per dim, the full result is (i - 1) s + (k - 1) d + 1 long and the spec's window of it [before, end).
        # conv2d_transpose computes the window [start, stop) given by its explicit pads (>= 0) and output_shape,
        # at most s - 1 past the full result; conv3d_transpose runs VALID, from 0. `post` turns [start, stop)
        # into the spec's window: negative amounts crop, positive ones extend (tf.pad).
        pads, sizes, post = [[0, 0]], [], []
        for i, k, s, d, (before, after), extra in zip(x.shape[1:-1], w.shape[:-2], stride, dilation, padding,
                                                      output_padding):
            full = (i - 1) * s + (k - 1) * d + 1
            end = full - after + extra
            if rank == 3:
                start, stop = 0, min(max(end, full), full + s - 1)
            else:
                start, stop = max(before, 0), min(end, full + s - 1)
                pads.append([start, max(full - stop, 0)])
            sizes.append(stop - start)
            post.append((start - before, end - stop))
        pads.append([0, 0])
        conv_transpose = tf.nn.conv3d_transpose if rank == 3 else tf.nn.conv2d_transpose
        y = conv_transpose(x, w, [x.shape[0], *sizes, w.shape[-2] * groups], strides=stride,
                           padding="VALID" if rank == 3 else pads, dilations=dilation)
        y = y[crop(post)]
        if any(amount > 0 for pair in extend(post) for amount in pair):
            y = tf.pad(y, extend(post))
        return y if b is None else tf.nn.bias_add(y, b)

    def eltwise(kind, y, a, b):
        """One elementwise step, in the op TensorFlow has for it (the ones Grappler's remapper fuses into the
        convolution: Relu, Relu6, Elu, LeakyRelu, and on oneDNN Swish), else composed of TensorFlow ops."""
        if kind == "relu":
            return tf.nn.relu(y) if a == 0 else tf.nn.leaky_relu(y, alpha=a)
        if kind == "clip":
            return tf.nn.relu6(y) if (a, b) == (0, 6) else tf.clip_by_value(y, a, b)
        if kind == "elu":
            return tf.nn.elu(y) if a == 1 else tf.where(y > 0, y, a * tf.nn.elu(y))
        if kind == "gelu_erf":
            return tf.nn.gelu(y, approximate=False)
        if kind == "gelu_tanh":
            return tf.nn.gelu(y, approximate=True)
        if kind == "swish":
            return tf.nn.silu(y, beta=a)
        if kind in ("hardswish", "hardsigmoid"):
            gate = tf.clip_by_value(a * y + b, 0, 1)
            return y * gate if kind == "hardswish" else gate
        if kind == "linear":
            return a * y + b
        if kind == "soft_relu":
            return tf.math.softplus(a * y) / a
        if kind == "mish":
            return y * tf.tanh(tf.math.softplus(y))
        if kind == "pow":
            return a * tf.pow(y, b)
        return {"logistic": tf.sigmoid, "tanh": tf.tanh, "abs": tf.abs, "square": tf.square, "sqrt": tf.sqrt,
                "exp": tf.exp, "log": tf.math.log, "round": tf.round}[kind](y)

    def epilogue(y, operands):
        """The chain on y (channels-last), operands[k] post-op k's (channels-last, None for an eltwise step)."""
        for op, other in zip(chain, operands):
            kind, a, b = op["kind"], op["alpha"], op["beta"]
            if kind == "sum":
                if op["zero_point"]:
                    other = other - op["zero_point"]
                y = y + (other if op["scale"] == 1 else op["scale"] * other)
            elif kind == "prelu":
                y = tf.where(y > 0, y, y * other)
            elif kind == "batchnorm":  # operand rows mean, var, gamma, beta (one per channel)
                mean, var, gamma, beta = tf.unstack(other)
                if y.dtype == tf.float64:  # FusedBatchNormV3 has no float64 kernel
                    y = tf.nn.batch_normalization(y, mean, var, beta, gamma, a)
                else:  # the inference form Grappler fuses (with the activation after it): float32 statistics
                    stats = [tf.cast(t, tf.float32) for t in (gamma, beta, mean, var)]
                    y = tf.compat.v1.nn.fused_batch_norm(y, *stats[:2], mean=stats[2], variance=stats[3], epsilon=a,
                                                         is_training=False)[0]
            elif kind.startswith("binary_"):
                y = {"binary_add": tf.add, "binary_sub": tf.subtract, "binary_mul": tf.multiply,
                     "binary_div": tf.divide, "binary_max": tf.maximum, "binary_min": tf.minimum}[kind](y, other)
            else:
                y = eltwise(kind, y, a, b)
        return y

    convolve = convolution if output_padding is None else transposed

    def forward(x, w, b, *operands):
        return epilogue(convolve(x, w, b), operands)

    def train(x, w, dy, b, *operands):
        watched = [k for k, op in enumerate(chain) if op["kind"] in differentiable]
        sources = [x, w] + ([] if b is None else [b]) + [operands[k] for k in watched]
        with tf.GradientTape() as tape:
            tape.watch(sources)
            y = forward(x, w, b, *operands)
        if dy is None:
            return [y]
        return [y, *tape.gradient(y, sources, output_gradients=dy,
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)]

    compiled = tf.function(train, jit_compile=True, autograph=False)
    graph_forward = tf.function(forward, autograph=False)  # Grappler rewrites these graphs (its remapper fuses)
    graph_train = tf.function(train, autograph=False)

    def channels_last(a):
        """An operand broadcastable to y (N, O, *out) in the program's layout (N, [1,] *out, O)."""
        if a is None or a.ndim == 2:  # batchnorm's (4, O) rows
            return a
        return np.moveaxis(a[:, :, None] if lifted else a, 1, -1)

    def channels_first(a):
        a = np.moveaxis(a, -1, 1)
        return a[:, :, 0] if lifted else a

    def step(x, w, b, dy, operands=(), quantization=None):
        if lifted:
            x, w = x[:, :, None], w[:, :, None]
            dy = None if dy is None else dy[:, :, None]
        others = [channels_last(a) for a in operands]
        arrays = (np.moveaxis(x, 1, -1), np.transpose(w, (*range(2, rank + 2), 1, 0)),
                  None if dy is None else np.moveaxis(dy, 1, -1), b, *others)
        with tf.device("/CPU:0"):
            if xla:
                results = compiled(*arrays)
            else:
                tensors = [None if a is None else tf.constant(a) for a in arrays]
                try:
                    if not chain:
                        results = train(*tensors)
                    else:  # y from the inference graph, the gradients from the training graph
                        inferred = graph_forward(tensors[0], tensors[1], tensors[3], *tensors[4:])
                        results = [inferred, *graph_train(*tensors)[1:]]
                except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
                    results = compiled(*arrays)
        y, *gradients = [np.asarray(t) for t in results]
        y = channels_first(y)
        if dy is None:
            return y, None, None, None
        dx, dw = gradients[0], gradients[1]
        db = gradients[2] if b is not None else None
        dx, dw = np.moveaxis(dx, -1, 1), np.transpose(dw, (rank + 1, rank, *range(rank)))
        if lifted:
            dx, dw = dx[:, :, 0], dw[:, :, 0]
        watched = [k for k, op in enumerate(chain) if op["kind"] in differentiable]
        if not watched:
            return y, dx, dw, db
        operand_gradients = gradients[2 + (b is not None):]
        return y, dx, dw, db, {f"dpost{k}": channels_first(g) for k, g in zip(watched, operand_gradients)}

    return step


TENSORFLOW = Framework("tensorflow", "tensorflow", environment={"TF_CPP_MIN_LOG_LEVEL": "2"})
DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-gpu")
TF_CACHE_FLAG = "--tf_xla_persistent_cache_directory"


def cache_environment(folder: Path | None, current: Mapping[str, str]) -> dict[str, str]:
    """The persistent cache of TensorFlow's XLA compiler in folder/tensorflow-<version>, added to the user's other
    TF_XLA_FLAGS; a user's own cache flag wins over a folder; None removes any cache flag (TensorFlow keeps
    nothing on disk unless the flag asks it to). Used by jit_compile=True functions only: this backend's and
    Keras' XLA paths."""
    version = installed_version(*DISTRIBUTIONS)
    if version is None:
        return {}
    flags = current.get("TF_XLA_FLAGS", "").split()
    cache_flags = [flag for flag in flags if flag.startswith(TF_CACHE_FLAG)]
    if folder is None:
        return {"TF_XLA_FLAGS": " ".join(f for f in flags if f not in cache_flags)} if cache_flags else {}
    if cache_flags:
        return {}
    return {"TF_XLA_FLAGS": " ".join([*flags, f"{TF_CACHE_FLAG}={folder / f'tensorflow-{version}'}"])}


def thread_environment(threads: int) -> dict[str, str]:
    """TensorFlow's intra-op pool."""
    return {"TF_NUM_INTRAOP_THREADS": str(threads)}


def case_key(backend: str, spec: ConvSpec) -> str:
    """16 hex digits naming `backend` running `spec`, alike in every process (the spec's repr is all its
    fields, dtype included; the backend keeps two backends' functions for one spec apart)."""
    return hashlib.sha256(f"{backend}|{spec!r}".encode()).hexdigest()[:16]


# TensorFlow's private functions that name traced functions "<prefix><python name>_<uid>" (TensorFlow 2.21).
NAMING_FUNCTIONS = {"_inference_name": "__inference_", "_forward_name": "__forward_", "_backward_name": "__backward_"}


class CaseFunctionNames:
    """Names for the functions TensorFlow traces, after the case being run rather than a global counter.

    Within `naming(key)`, the n-th function traced (an inference function, or the forward and
    backward functions TensorFlow derives to differentiate a function called inside another) is
    `<prefix><python name>_<key>_<n>`. A name already given in this process (a case whose functions
    were evicted from the caches and are traced anew) gets `r<k>` appended, as TensorFlow's function
    library keeps one definition per name; a case traced once per process gets the same names
    whatever ran before it. Outside `naming`, TensorFlow's own counter names apply. Each thread
    names its own case.
    """

    def __init__(self) -> None:
        self.current = threading.local()  # per thread: .key (None outside `naming`) and .traced
        self.issued: Counter[str] = Counter()
        self.lock = threading.Lock()

    def replacing(self, kind: str, counter_name: Callable[[str], str]) -> Callable[[str], str]:
        """A stand-in for TensorFlow's `counter_name`, which makes names starting with `kind`."""

        def name(python_name: str) -> str:
            key = getattr(self.current, "key", None)
            if key is None:
                return counter_name(python_name)
            self.current.traced += 1
            base = f"{kind}{python_name}_{key}_{self.current.traced}"
            with self.lock:
                repeat = self.issued[base]
                self.issued[base] += 1
            return base if repeat == 0 else f"{base}r{repeat}"

        return name

    @contextmanager
    def naming(self, key: str) -> Iterator[None]:
        self.current.key, self.current.traced = key, 0
        try:
            yield
        finally:
            self.current.key = None


_INSTALLING = threading.Lock()


def case_function_names() -> CaseFunctionNames | None:
    """The naming hooks, installed in TensorFlow once, on first use; None where it lacks the private functions."""
    with _INSTALLING:  # two threads' first cases must not install two sets of hooks
        return _installed_case_function_names()


@cache
def _installed_case_function_names() -> CaseFunctionNames | None:
    TENSORFLOW.load()
    from tensorflow.python.eager.polymorphic_function import concrete_function

    if not all(hasattr(concrete_function, function) for function in NAMING_FUNCTIONS):
        return None
    names = CaseFunctionNames()
    for function, kind in NAMING_FUNCTIONS.items():
        setattr(concrete_function, function, names.replacing(kind, getattr(concrete_function, function)))
    return names


def run_named(backend: str, spec: ConvSpec, step: Callable[..., tuple], *arrays: np.ndarray | None,
              **keywords: object) -> tuple:
    """`step(*arrays, **keywords)`, naming the functions it traces after `backend` and `spec` (see the module
    docstring)."""
    names = case_function_names()
    with names.naming(case_key(backend, spec)) if names else nullcontext():
        return step(*arrays, **keywords)


def chain_keywords(extras: Extras | None) -> dict[str, object]:
    """What a program's step takes beyond x, w, b, dy: the post-ops' operands (nothing without extras)."""
    return {} if extras is None else {"operands": tuple(extras.operands)}


# The kinds the program computes (every kind convparity has; benchdnn's aliases resolve to these), each in the
# TensorFlow op that has it (tensorflow_conv's `epilogue`).
POST_OPS = ("relu", "clip", "elu", "gelu_erf", "gelu_tanh", "swish", "logistic", "tanh", "hardswish", "hardsigmoid",
            "mish", "soft_relu", "linear", "abs", "square", "sqrt", "exp", "log", "round", "pow", "sum", "binary_add",
            "binary_sub", "binary_mul", "binary_div", "binary_max", "binary_min", "prelu", "batchnorm")


@lru_cache(maxsize=256)
def built_step(spec: ConvSpec, xla: bool = False) -> Callable[..., tuple]:
    """The spec's step, built once per process (its XLA-compiled form is traced once per case)."""
    return (TensorFlowXlaBackend() if xla else TensorFlowBackend()).program(spec).build()


class TensorFlowBackend(DeclaredLimits):
    """tf.nn.conv2d / conv3d on the CPU in channels-last layout: eager, a post-op chain in tf.function graphs
    (Grappler fuses it), XLA-compiled where the CPU kernels refuse (see module)."""

    name = "tensorflow"
    limits = LIMITS
    deviations = DEVIATIONS
    post_ops = POST_OPS
    xla = False
    # The median `seconds` per case of a 2-core run of the smoke and default grids in four dtypes (results.csv,
    # 2026-12, cold compile caches): mostly XLA compiling. 20 GFLOP/s on one core.
    cost = BackendCost(0.27, 0.05)

    def availability(self) -> str | None:
        return TENSORFLOW.missing()

    def version(self) -> str:
        return TENSORFLOW.load().__version__

    def thread_environment(self, threads: int) -> dict[str, str]:
        return thread_environment(threads)

    def cache_environment(self, folder: Path | None, current: Mapping[str, str]) -> dict[str, str]:
        return cache_environment(folder, current)

    def program(self, spec: ConvSpec) -> Program:
        return Program(tensorflow_conv, program_arguments(spec, **({"xla": True} if self.xla else {})))

    def run(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray | None,
            extras: Extras | None = None) -> Outputs:
        """x (N, C, *in), w (O, C/groups, *k), b (O,) or None, dy (N, O, *out) -> y, dx, dw, db (NumPy), and
        {"dpost{k}": gradient} of the chain's differentiable operands (extras.operands).

        Transposed: w (C, O/groups, *k), in TensorFlow's layout (*k, O/groups, C)."""
        TENSORFLOW.load()  # its logs limited before the program imports it
        return run_named(self.name, spec, built_step(spec, self.xla), x, w, b, dy,  # type: ignore[return-value]
                         **chain_keywords(extras))


class TensorFlowXlaBackend(TensorFlowBackend):
    """The same program, every case XLA-compiled (tf.function(jit_compile=True)): XLA fuses the chain."""

    name = "tensorflow-xla"
    xla = True
    deviations = XLA_DEVIATIONS
    # Every case compiles once, forward and backward together.
    cost = BackendCost(0.6, 0.05)


@hookimpl
def convparity_register_backends(register):
    register(TensorFlowBackend())
    register(TensorFlowXlaBackend())
