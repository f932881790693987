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
same step runs XLA-compiled instead (see plugins.tensorflow_backend.eager_or_xla).

Keras runs on whichever backend KERAS_BACKEND names when it is first imported; this plugin sets it
to "tensorflow" if it is unset, and reports itself unavailable if Keras runs on another backend.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache, lru_cache
from types import ModuleType

import numpy as np

from harness.backends.contract import Outputs
from harness.backends.hookspecs import hookimpl
from harness.backends.limits import Limit, first_limit
from harness.cases.spec import ConvSpec
from plugins.tensorflow_backend import (
    canonical_filter,
    crop_slices,
    eager_or_xla,
    filter_layout,
    tape_gradients,
    tensorflow,
)

# Raised by keras.src.layers.convolutional.base_conv.BaseConv.__init__ (Keras 3.15).
LIMITS = (
    Limit(
        condition="stride > 1 and dilation > 1 in any dims",
        reason="ValueError: `strides > 1` not supported in conjunction with `dilation_rate > 1`",
        applies=lambda spec: max(spec.stride) > 1 and max(spec.dilation) > 1,
    ),
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
    """Whether the spec's pads are TensorFlow's "same" padding for its sizes, strides and dilations."""
    return spec.padding == spec.replace(padding="same").padding


@lru_cache(maxsize=256)
def conv_layer(spec: ConvSpec):
    """The built Conv{rank}D layer of a case, expecting the input already cropped and padded if not "same"."""
    layers = keras().layers
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
        return layer(x if same else ops.pad(x[crop], pads))

    def step(x, dy):
        weights = [layer.kernel.value] + ([layer.bias.value] if spec.bias else [])
        return tape_gradients(lambda: forward(x), [x, *weights], dy)

    return tensorflow().function(step, autograph=False)


class KerasBackend:
    """Keras 3 ConvND layers, channels_first, on TensorFlow's CPU kernels or XLA (see module)."""

    name = "keras"
    limits = LIMITS

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

    def supports(self, spec: ConvSpec) -> str | None:
        return first_limit(self.limits, spec)

    def run(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray) -> Outputs:
        """x (N, C, *in), w (O, C/groups, *k), b (O,) or None, dy (N, O, *out) -> y, dx, dw, db (NumPy)."""
        conv_layer(spec).set_weights([filter_layout(w)] + ([] if b is None else [b]))
        y, dx, dw, *db = [np.asarray(t) for t in eager_or_xla(training_step(spec), x, dy)]
        return y, dx, canonical_filter(dw), db[0] if db else None


@hookimpl
def convparity_register_backends(register):
    register(KerasBackend())
