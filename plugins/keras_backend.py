"""Backend `keras`: Keras 3 Conv1D / Conv2D / Conv3D layers with data_format="channels_first", on TensorFlow.

One layer per case, built with the spec's dtype as its dtype policy and its strides, dilation_rate,
groups and use_bias; its kernel (*k, C/g, O) and bias are set from the canonical arrays with
set_weights, so inputs and outputs stay in the canonical (N, C, *spatial) layout.
Padding: when the spec's pads are exactly TensorFlow's "same" rule, the layer's own padding="same";
otherwise the input is cropped (negative pads) and zero-padded with keras.ops before a "valid" layer.
Gradients: tf.GradientTape through the ops and the layer, for x, the kernel and the bias, inside a
tf.function graph as Keras' own training step runs on a CPU (jit_compile="auto" means no XLA without
an accelerator). Where TensorFlow's CPU kernels refuse the graph (float64 and float16 channels-first
gradients: "Conv2DCustomBackpropInputOp only supports NHWC", dilated or grouped gradients, ...), the
same step runs XLA-compiled instead (see convparity.plugins.tensorflow_backend.eager_or_xla).

Transposed convolutions: Keras 3 Conv1DTranspose / Conv2DTranspose / Conv3DTranspose, kernel
(*k, C_out, C_in), the same way. Their padding is "same" (used when the spec's pads are TensorFlow's
"same" for transposed convolutions) or "valid" with an output_padding below the stride, which gives
the full result and up to stride - 1 positions past it; the spec's window of that is sliced out of
y. They take no groups, and cannot add positions before the full result (a negative start pad) or
stride or more past it (output_padding >= stride, which PyTorch allows under dilation): limits.

Keras runs on whichever backend KERAS_BACKEND names when it is first imported; this plugin sets it
to "tensorflow" if it is unset, and reports itself unavailable if Keras runs on another backend.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache, lru_cache
from types import ModuleType

import numpy as np

from convparity.harness.backends.contract import Outputs
from convparity.harness.backends.deviations import Deviation
from convparity.harness.backends.hookspecs import hookimpl
from convparity.harness.backends.limits import DeclaredLimits, Limit
from convparity.harness.cases.spec import ConvSpec
from convparity.plugins.tensorflow_backend import (
    BIAS_ROUNDED_IN_OUTPUT_DTYPE,
    canonical_filter,
    case_key,
    crop_slices,
    eager_or_xla,
    filter_layout,
    tape_gradients,
    tensorflow,
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
)




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
              versions=">=3.15", reason=KERAS_BIAS_BUG, upstream="not reported yet"),
    Deviation(condition="bias and the layer's output_size[-1] == out_channels > 1", applies=hits_bias_bug,
              tensors=("db",),
              bias=True, dtypes=("float64", "float32"), versions=">=3.15", reason=KERAS_BIAS_BUG,
              upstream="not reported yet"),
    # In float16/bfloat16 the bug and TensorFlow's double rounding of the bias mix: neither is strict there.
    Deviation(condition="bias and the layer's output_size[-1] == out_channels > 1, float16/bfloat16",
              applies=hits_bias_bug,
              tensors=("y", "db"), bias=True, dtypes=("float16", "bfloat16"), versions=">=3.15", strict=False,
              reason=KERAS_BIAS_BUG, upstream="not reported yet"),
    BIAS_ROUNDED_IN_OUTPUT_DTYPE,
)


@cache
def keras() -> ModuleType:
    """The keras module, on the TensorFlow backend unless KERAS_BACKEND already names another."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if os.environ["KERAS_BACKEND"] == "tensorflow":
        tensorflow()  # imported first, with its C++ logs limited to errors
    import keras

    return keras


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


def transposed_crop(spec: ConvSpec) -> tuple[slice, ...]:
    """Per spatial dim, the slice of a "valid" transposed layer's output that is the spec's output."""
    return tuple(slice(before, before + size) for (before, _), size in zip(spec.padding, spec.output_size))


@lru_cache(maxsize=256)
def conv_layer(spec: ConvSpec):
    """The built Conv{rank}D layer of a case, expecting the input already cropped and padded if not "same"
    (Conv{rank}DTranspose for a transposed case, its output cropped after it if not "same")."""
    layers = keras().layers
    if spec.transposed:
        return transposed_layer(spec)
    layer_class = (layers.Conv1D, layers.Conv2D, layers.Conv3D)[spec.rank - 1]
    same = is_same_padding(spec)
    layer = layer_class(
        filters=spec.out_channels, kernel_size=spec.kernel_size, strides=spec.stride,
        padding="same" if same else "valid", data_format="channels_first", dilation_rate=spec.dilation,
        groups=spec.groups, use_bias=spec.bias, dtype=spec.dtype,
    )
    padded = spec.input_size if same else tuple(i + lo + hi for i, (lo, hi) in zip(spec.input_size, spec.padding))
    layer.build((spec.batch, spec.in_channels, *padded))
    return layer


def transposed_layer(spec: ConvSpec):
    """The built Conv{rank}DTranspose layer of a transposed case (see the module docstring)."""
    layers = keras().layers
    layer_class = (layers.Conv1DTranspose, layers.Conv2DTranspose, layers.Conv3DTranspose)[spec.rank - 1]
    same = is_same_padding(spec)
    layer = layer_class(
        filters=spec.out_channels, kernel_size=spec.kernel_size, strides=spec.stride,
        padding="same" if same else "valid", output_padding=None if same else transposed_output_padding(spec),
        data_format="channels_first", dilation_rate=spec.dilation, use_bias=spec.bias, dtype=spec.dtype,
    )
    layer.build((spec.batch, spec.in_channels, *spec.input_size))
    return layer


@lru_cache(maxsize=256)
def training_step(spec: ConvSpec) -> Callable[..., list]:
    """step(x, dy) -> [y, dx, dkernel(, dbias)] through conv_layer(spec), in the canonical layout, as a tf.function.

    x (N, C, *in), dy and y (N, O, *out), dkernel (*k, C/g, O). A graph function, as Keras' own
    training step on a CPU (jit_compile="auto" is False without an accelerator); cached per spec so
    that it is traced once per case. It reads the layer's current weights.
    """
    ops = keras().ops
    layer = conv_layer(spec)
    same = is_same_padding(spec)
    crop = (slice(None), slice(None), *crop_slices(spec.padding))
    pads = [[0, 0], [0, 0], *([max(before, 0), max(after, 0)] for before, after in spec.padding)]

    def forward(x):
        if spec.transposed:
            return layer(x) if same else layer(x)[(slice(None), slice(None), *transposed_crop(spec))]
        return layer(x if same else ops.pad(x[crop], pads))

    def step(x, dy):
        weights = [layer.kernel.value] + ([layer.bias.value] if spec.bias else [])
        return tape_gradients(lambda: forward(x), [x, *weights], dy)

    return tensorflow().function(step, autograph=False)


class KerasBackend(DeclaredLimits):
    """Keras 3 ConvND layers, channels_first, on TensorFlow's CPU kernels or XLA (see module)."""

    name = "keras"
    limits = LIMITS
    deviations = DEVIATIONS

    def availability(self) -> str | None:
        try:
            active = keras().backend.backend()
        except ImportError as error:
            return f"keras or tensorflow is not installed (pip install 'convparity[keras]'): {error}"
        if active != "tensorflow":
            return f"keras runs on its {active!r} backend (KERAS_BACKEND); this plugin needs 'tensorflow'"
        return None

    def version(self) -> str:
        return f"{keras().__version__} (tensorflow {tensorflow().__version__})"

    def run(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray) -> Outputs:
        """x (N, C, *in), w (O, C/groups, *k), b (O,) or None, dy (N, O, *out) -> y, dx, dw, db (NumPy).

        Transposed: w (C, O, *k) (no groups), as the layer's kernel (*k, O, C)."""
        conv_layer(spec).set_weights([filter_layout(w)] + ([] if b is None else [b]))
        outputs = eager_or_xla(case_key(self.name, spec), training_step(spec), x, dy)
        y, dx, dw, *db = [np.asarray(t) for t in outputs]
        return y, dx, canonical_filter(dw), db[0] if db else None


@hookimpl
def convparity_register_backends(register):
    register(KerasBackend())
