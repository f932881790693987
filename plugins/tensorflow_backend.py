"""Backend `tensorflow`: tf.nn.conv2d / tf.nn.conv3d on the CPU, gradients from tf.GradientTape (program
`tensorflow_conv`).

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
DEVIATIONS = (
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


def tensorflow_conv(*, stride, padding, dilation, groups, dtype, bias, output_padding=None):
    """tf.nn.conv2d / conv3d (conv2d_transpose / conv3d_transpose with an output_padding) in channels-last layout,
    tf.nn.bias_add, and the gradients of x, w and b by tf.GradientTape; eager on the CPU, or XLA-compiled
    (tf.function(jit_compile=True)) where TensorFlow's eager CPU kernels refuse the case.
    step(x, w, b, dy) -> (y, dx, dw, db), all in the canonical channels-first layouts."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # errors only
    import numpy as np
    import tensorflow as tf

    lifted = len(stride) == 1  # rank 1 runs as rank 2 with a height-1 dim, as tf.nn.conv1d does
    if lifted:
        stride, padding, dilation = (1, *stride), ((0, 0), *padding), (1, *dilation)
        output_padding = None if output_padding is None else (0, *output_padding)
    rank = len(stride)

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

    forward = convolution if output_padding is None else transposed

    def train(x, w, dy, b):
        sources = [x, w] + ([] if b is None else [b])
        with tf.GradientTape() as tape:
            tape.watch(sources)
            y = forward(x, w, b)
        return [y, *tape.gradient(y, sources, output_gradients=dy)]

    compiled = tf.function(train, jit_compile=True, autograph=False)

    def step(x, w, b, dy):
        if lifted:
            x, w, dy = x[:, :, None], w[:, :, None], dy[:, :, None]
        arrays = (np.moveaxis(x, 1, -1), np.transpose(w, (*range(2, rank + 2), 1, 0)), np.moveaxis(dy, 1, -1), b)
        with tf.device("/CPU:0"):
            try:
                results = train(*(None if a is None else tf.constant(a) for a in arrays))
            except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
                results = compiled(*arrays)
        y, dx, dw, *db = [np.asarray(t) for t in results]
        y, dx, dw = np.moveaxis(y, -1, 1), np.moveaxis(dx, -1, 1), np.transpose(dw, (rank + 1, rank, *range(rank)))
        if lifted:
            y, dx, dw = y[:, :, 0], dx[:, :, 0], dw[:, :, 0]
        return y, dx, dw, db[0] if db else None

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


def run_named(backend: str, spec: ConvSpec, step: Callable[..., tuple], *arrays: np.ndarray | None) -> tuple:
    """`step(*arrays)`, naming the functions it traces after `backend` and `spec` (see the module docstring)."""
    names = case_function_names()
    with names.naming(case_key(backend, spec)) if names else nullcontext():
        return step(*arrays)


@lru_cache(maxsize=256)
def built_step(spec: ConvSpec) -> Callable[..., tuple]:
    """The spec's step, built once per process (its XLA-compiled form is traced once per case)."""
    return TensorFlowBackend().program(spec).build()


class TensorFlowBackend(DeclaredLimits):
    """tf.nn.conv2d / conv3d on the CPU in channels-last layout, eager or XLA-compiled (see module)."""

    name = "tensorflow"
    limits = LIMITS
    deviations = DEVIATIONS
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
        return Program(tensorflow_conv, program_arguments(spec))

    def run(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray) -> Outputs:
        """x (N, C, *in), w (O, C/groups, *k), b (O,) or None, dy (N, O, *out) -> y, dx, dw, db (NumPy).

        Transposed: w (C, O/groups, *k), in TensorFlow's layout (*k, O/groups, C)."""
        TENSORFLOW.load()  # its logs limited before the program imports it
        return run_named(self.name, spec, built_step(spec), x, w, b, dy)


@hookimpl
def convparity_register_backends(register):
    register(TensorFlowBackend())
