"""Backend `tensorflow`: tf.nn.conv2d / tf.nn.conv3d on the CPU, gradients from tf.GradientTape.

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

Compile cache: TensorFlow's persistent XLA cache (harness/running/compile_cache.py) keys an entry by
the traced function's name, which TensorFlow numbers from a process-wide counter
(`__inference_step_<uid>`), so a later process finds an entry only if it traced the same cases in
the same order. `case_function_names` names what a case traces after a digest of the backend and
the spec instead (`__inference_step_<key>_<n>`), so an entry is found whatever ran before it in
either process.
It replaces private TensorFlow functions (concrete_function._inference_name and its forward and
backward twins, TensorFlow 2.21); where they are absent, names stay TensorFlow's own and only the
cache's hit rate suffers, never a result.

Transposed convolutions run tf.nn.conv2d_transpose (ranks 1 and 2; rank 1 with a height-1 dim, as
tf.nn.conv1d_transpose does) and tf.nn.conv3d_transpose, filter (*k, C_out/g, C_in), with the
output_shape that selects the output window: conv2d_transpose takes the non-negative pads as explicit
`padding` and reaches up to stride - 1 positions past the full result through its output_shape;
conv3d_transpose (SAME or VALID only) runs VALID and its output is cropped by slicing. What a window
needs beyond that (a negative pad, or output_padding >= stride, which PyTorch allows under dilation)
is added with tf.pad; tf.nn.bias_add comes last. Eager kernels refuse dilated and grouped ones
("Current CPU implementations do not yet support dilation rates larger than 1", "Gradients for
grouped convolutions are not supported on CPU"): those run XLA-compiled, as above.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from functools import cache, lru_cache
from types import ModuleType

import numpy as np

from convparity.harness.backends.contract import Outputs, missing_framework
from convparity.harness.backends.deviations import Deviation
from convparity.harness.backends.hookspecs import hookimpl
from convparity.harness.backends.limits import DeclaredLimits, Limit
from convparity.harness.cases.spec import ConvSpec

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


@cache
def tensorflow() -> ModuleType:
    """The tensorflow module, imported on first use with its C++ logs limited to errors."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def to_channels_last(array: np.ndarray) -> np.ndarray:
    """(N, C, *spatial) -> (N, *spatial, C)."""
    return np.moveaxis(array, 1, -1)


def to_channels_first(array: np.ndarray) -> np.ndarray:
    """(N, *spatial, C) -> (N, C, *spatial)."""
    return np.moveaxis(array, -1, 1)


def filter_layout(w: np.ndarray) -> np.ndarray:
    """w (O, C/g, *k) -> (*k, C/g, O), the filter layout of TensorFlow and Keras."""
    return np.transpose(w, tuple(range(2, w.ndim)) + (1, 0))


def canonical_filter(w: np.ndarray) -> np.ndarray:
    """(*k, C/g, O) -> (O, C/g, *k)."""
    return np.transpose(w, (w.ndim - 1, w.ndim - 2) + tuple(range(w.ndim - 2)))


def crop_slices(padding: tuple[tuple[int, int], ...]) -> tuple[slice, ...]:
    """Per spatial dim, the slice that applies the negative part of its (before, after) pad."""
    return tuple(slice(max(-before, 0), after if after < 0 else None) for before, after in padding)


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
    tensorflow()
    from tensorflow.python.eager.polymorphic_function import concrete_function

    if not all(hasattr(concrete_function, function) for function in NAMING_FUNCTIONS):
        return None
    names = CaseFunctionNames()
    for function, kind in NAMING_FUNCTIONS.items():
        setattr(concrete_function, function, names.replacing(kind, getattr(concrete_function, function)))
    return names


def eager_or_xla(key: str, step: Callable[..., list], *arrays: np.ndarray | None) -> list:
    """`step(*tensors)` on the CPU as it is (eager, or a graph if it is a tf.function), else XLA-compiled.

    `step` takes one tensor per array (None stays None) and returns a list of tensors. TensorFlow
    refuses a configuration its kernels lack with InvalidArgumentError or UnimplementedError; then
    the same `step` runs as tf.function(jit_compile=True), and whatever XLA raises propagates.
    Functions traced meanwhile are named after `key` (`case_key`: the backend and the spec that
    `step` was made for; see the module docstring).
    """
    names = case_function_names()
    with names.naming(key) if names else nullcontext():
        return _eager_or_xla(step, *arrays)


def _eager_or_xla(step: Callable[..., list], *arrays: np.ndarray | None) -> list:
    tf = tensorflow()
    with tf.device("/CPU:0"):
        try:
            return step(*(None if a is None else tf.constant(a) for a in arrays))
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
            return compiled(step)(*arrays)


@lru_cache(maxsize=256)
def compiled(step: Callable[..., list]) -> Callable[..., list]:
    """`step` as one XLA-compiled tf.function, traced once per input shape and dtype."""
    return tensorflow().function(step, jit_compile=True, autograph=False)


def tape_gradients(forward: Callable, sources: list, dy) -> list:
    """[y, dy/d(source) for each source] for y = forward(), with upstream gradient dy."""
    tf = tensorflow()
    with tf.GradientTape() as tape:
        tape.watch(sources)
        y = forward()
    return [y, *tape.gradient(y, sources, output_gradients=dy)]


def as_rank2(spec: ConvSpec) -> ConvSpec:
    """A rank-1 spec as rank 2 with a height-1 dim (what tf.nn.conv1d does); ranks 2 and 3 unchanged."""
    if spec.rank != 1:
        return spec
    return spec.replace(input_size=(1, *spec.input_size), kernel_size=(1, *spec.kernel_size),
                        stride=(1, *spec.stride), padding=((0, 0), *spec.padding), dilation=(1, *spec.dilation),
                        output_padding=(0, *spec.output_padding))


@lru_cache(maxsize=256)
def training_step(spec: ConvSpec) -> Callable[..., list]:
    """step(x, w, dy, b) -> [y, dx, dw(, db)] for a rank-2 or rank-3 spec, in TensorFlow's layout.

    x (N, *in, C), w (*k, C/g, O), dy and y (N, *out, O), b (O,) or None. Cached per spec, so its
    compiled form is traced once per case.
    """
    tf = tensorflow()
    crop = (slice(None), *crop_slices(spec.padding), slice(None))
    pads = [[0, 0], *([max(before, 0), max(after, 0)] for before, after in spec.padding), [0, 0]]

    def conv(x, w, b):
        x = x[crop]
        if spec.rank == 3:
            y = tf.nn.conv3d(tf.pad(x, pads), w, strides=[1, *spec.stride, 1], padding="VALID",
                             dilations=[1, *spec.dilation, 1])
        else:
            y = tf.nn.conv2d(x, w, strides=spec.stride, padding=pads, dilations=spec.dilation)
        return y if b is None else tf.nn.bias_add(y, b)

    def step(x, w, dy, b):
        return tape_gradients(lambda: conv(x, w, b), [x, w] + ([] if b is None else [b]), dy)

    return step


def transposed_window(spec: ConvSpec) -> tuple[list[list[int]] | str, tuple[int, ...], tuple[tuple[int, int], ...]]:
    """How a rank-2 or rank-3 transposed spec runs: (padding, output spatial shape, post) for conv{2,3}d_transpose.

    padding: the explicit [[0, 0], [before, after]..., [0, 0]] of conv2d_transpose, or "VALID" for
    rank 3; per dim the output window [before', before' + size) of the full result ((i - 1) s + e
    long, zeros past it) is what TensorFlow computes. post: per dim (start, end) amounts that turn it
    into the spec's window: positive ones extend the output (tf.pad), negative ones crop it.
    """
    padding: list[list[int]] = [[0, 0]]
    sizes, post = [], []
    for i, k, s, d, (before, after), extra in zip(spec.input_size, spec.kernel_size, spec.stride, spec.dilation,
                                                   spec.padding, spec.output_padding):
        full = (i - 1) * s + (k - 1) * d + 1
        end = full - after + extra  # the spec's window is [before, end) of the full result
        if spec.rank == 3:  # VALID: [0, size) with size from full to full + s - 1
            start, stop = 0, min(max(end, full), full + s - 1)
        else:  # the conv's pads must be >= 0, the conv must see exactly i output positions
            start, stop = max(before, 0), min(end, full + s - 1)
            padding.append([start, max(full - stop, 0)])
        sizes.append(stop - start)
        post.append((start - before, end - stop))
    padding.append([0, 0])
    return ("VALID" if spec.rank == 3 else padding), tuple(sizes), tuple(post)


@lru_cache(maxsize=256)
def transposed_step(spec: ConvSpec) -> Callable[..., list]:
    """step(x, w, dy, b) -> [y, dx, dw(, db)] for a rank-2 or rank-3 transposed spec, in TensorFlow's layout.

    x (N, *in, C_in), w (*k, C_out/g, C_in), dy and y (N, *out, C_out), b (C_out,) or None.
    """
    tf = tensorflow()
    padding, sizes, post = transposed_window(spec)
    output_shape = [spec.batch, *sizes, spec.out_channels]
    crop = (slice(None), *(slice(max(-lo, 0), hi if hi < 0 else None) for lo, hi in post), slice(None))
    extend = [[0, 0], *([max(lo, 0), max(hi, 0)] for lo, hi in post), [0, 0]]
    conv_transpose = tf.nn.conv3d_transpose if spec.rank == 3 else tf.nn.conv2d_transpose

    def forward(x, w, b):
        y = conv_transpose(x, w, output_shape, strides=spec.stride, padding=padding, dilations=spec.dilation)
        y = y[crop]
        if any(amount > 0 for pair in extend for amount in pair):
            y = tf.pad(y, extend)
        return y if b is None else tf.nn.bias_add(y, b)

    def step(x, w, dy, b):
        return tape_gradients(lambda: forward(x, w, b), [x, w] + ([] if b is None else [b]), dy)

    return step


class TensorFlowBackend(DeclaredLimits):
    """tf.nn.conv2d / conv3d on the CPU in channels-last layout, eager or XLA-compiled (see module)."""

    name = "tensorflow"
    limits = LIMITS
    deviations = DEVIATIONS

    def availability(self) -> str | None:
        return missing_framework(tensorflow, "tensorflow", "tensorflow")

    def version(self) -> str:
        return tensorflow().__version__

    def run(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray) -> Outputs:
        """x (N, C, *in), w (O, C/groups, *k), b (O,) or None, dy (N, O, *out) -> y, dx, dw, db (NumPy).

        Transposed: w (C, O/groups, *k), in TensorFlow's layout (*k, O/groups, C) (filter_layout)."""
        tf_spec = as_rank2(spec)
        x, w, dy = x.reshape(tf_spec.x_shape), w.reshape(tf_spec.w_shape), dy.reshape(tf_spec.y_shape)
        step = transposed_step(tf_spec) if spec.transposed else training_step(tf_spec)
        results = eager_or_xla(case_key(self.name, tf_spec), step, to_channels_last(x), filter_layout(w),
                               to_channels_last(dy), b)
        y, dx, dw, *db = [np.asarray(t) for t in results]
        return (to_channels_first(y).reshape(spec.y_shape), to_channels_first(dx).reshape(spec.x_shape),
                canonical_filter(dw).reshape(spec.w_shape), db[0] if db else None)


@hookimpl
def convparity_register_backends(register):
    register(TensorFlowBackend())
