"""Backend `jax`: `lax.conv_general_dilated` for y and `jax.vjp` of it for dx, dw and db.

Float64 is enabled explicitly (`jax_enable_x64`) before JAX computes anything: without it JAX
silently computes float64 inputs in float32. The convolution runs at `Precision.HIGHEST`, so on
accelerators float32 is not computed in bfloat16 or TF32 passes. One jitted function serves every
spec: the geometry is a static argument, so JAX compiles once per (geometry, shapes, dtype) and
reuses the executable when a spec comes back. JAX takes per-dim (before, after) pads, negative ones
(crops) included, and NumPy arrays of ml_dtypes.bfloat16, so nothing is converted at the boundary.

Transposed convolutions are the fractionally strided convolution `lax.conv_transpose` computes:
`conv_general_dilated` of x dilated by the stride (`lhs_dilation`), with the kernel flipped and its
channel axes swapped (`transpose_kernel=True`), padded by (e - 1 - before, e - 1 - after +
output_padding) per dim for the effective kernel e. lax.conv_transpose takes no group count, so the
same call is made here directly, with `feature_group_count` and the kernel swapped group by group.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache
from types import ModuleType

import numpy as np

from convparity.harness.backends.contract import Outputs, missing_framework
from convparity.harness.backends.deviations import Deviation
from convparity.harness.backends.hookspecs import hookimpl
from convparity.harness.backends.limits import DeclaredLimits, Limit
from convparity.harness.cases.spec import ConvSpec

SPATIAL = "DHW"

# Verified with jax 0.10 on CPU: every rank, stride, dilation, group count, negative padding and
# dtype of the spec runs, so JAX declares no limits.
LIMITS: tuple[Limit, ...] = ()
# Evidence: tests/plugins/test_jax.py::test_narrow_dtypes_agree_without_bias (no bias, no failure), and
# ::test_narrow_dtypes_round_the_bias (y = round(round(conv) + b); db within a narrow-dtype accumulation bound).


def crops_then_pads(pairs) -> bool:
    """A dim padded by (low, high) with low < 0 < high <= -low: what XLA:CPU's Eigen convolution mishandles."""
    return any(low < 0 < high <= -low for low, high in pairs)


# XLA:CPU (jaxlib 0.10.2) computes a float32/float16/bfloat16 convolution whose dim is padded by (low, high) with
# low < 0 < high <= -low on its Eigen path, which takes it for an unpadded one and reads past the rows it may use:
# the output holds neighbouring input or uninitialised memory (1e26 and the like). float64 and more than 16
# channels take other paths. Which shapes take the Eigen path depends on the channel counts, so the declarations
# are not strict. The convolutions concerned: y of a convolution with such pads, and dx of a transposed one,
# which is the convolution with the spec's pads (before, after - output_padding).
# Evidence: tests/plugins/test_jax.py::test_xla_cpu_convolution_crops_then_pads_correctly (xfail, the bug alone)
# and ::test_crop_then_pad_deviation_explains_the_failures.
XLA_NEGATIVE_LOW_PADDING = "https://github.com/openxla/xla/issues/48713"
XLA_BUG = ("XLA:CPU's Eigen convolution reads outside its input when a dim is padded by low < 0 < high <= -low "
           "(float32, float16, bfloat16)")
NARROW = ("float32", "float16", "bfloat16")
DEVIATIONS = (
    Deviation(condition="bias, float16/bfloat16", dtypes=("float16", "bfloat16"), tensors=("y", "db"), bias=True,
              strict=False, reason="adds the bias after rounding the convolution to the narrow dtype, and "
              "reduces dy to db in that dtype", upstream="a precision choice, not reported"),
    Deviation(condition="a dim padded by before < 0 < after <= -before", dtypes=NARROW, tensors=("y",),
              applies=lambda spec: not spec.transposed and crops_then_pads(spec.padding), strict=False,
              versions=">=0.10.2", reason=XLA_BUG, upstream=XLA_NEGATIVE_LOW_PADDING),
    Deviation(condition="transposed, a dim with before < 0 < after - output_padding <= -before", dtypes=NARROW,
              tensors=("dx",), strict=False, versions=">=0.10.2", reason=XLA_BUG, upstream=XLA_NEGATIVE_LOW_PADDING,
              applies=lambda spec: spec.transposed and crops_then_pads(
                  (before, after - extra) for (before, after), extra in zip(spec.padding, spec.output_padding))),
)


@cache
def _jax() -> ModuleType:
    """jax, with 64-bit types enabled before any computation.

    XLA's CPU client sizes its thread pools by the cores, not OMP_NUM_THREADS; where the runner asks a
    worker for one thread, XLA is told so before it starts (a user's own XLA_FLAGS win)."""
    if os.environ.get("OMP_NUM_THREADS") == "1" and "XLA_FLAGS" not in os.environ:
        os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false"
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax


def dimension_numbers(rank: int) -> tuple[str, str, str]:
    """Canonical layouts as lax dimension numbers: rank 2 -> ("NCHW", "OIHW", "NCHW")."""
    spatial = SPATIAL[-rank:]
    return "NC" + spatial, "OI" + spatial, "NC" + spatial


def transposed_kernel(w, groups: int):
    """w (C_in, C_out/groups, *k) -> (C_out, C_in/groups, *k) flipped in every spatial dim: the kernel of
    the stride-dilated convolution that computes the transposed one (lax.conv_transpose's
    `transpose_kernel=True`, group by group)."""
    c_in, c_out_g, *kernel = w.shape
    rank = len(kernel)
    grouped = w.reshape((groups, c_in // groups, c_out_g, *kernel))  # (G, C_in/G, C_out/G, *k)
    swapped = grouped.swapaxes(1, 2).reshape((groups * c_out_g, c_in // groups, *kernel))  # (C_out, C_in/G, *k)
    return swapped[(slice(None), slice(None)) + (slice(None, None, -1),) * rank]


def transposed_padding(kernel, stride, padding, dilation, output_padding) -> tuple[tuple[int, int], ...]:
    """The stride-dilated input's pads per dim: (e - 1 - before, e - 1 - after + output_padding), e = (k - 1) d + 1."""
    return tuple(
        ((k - 1) * d - before, (k - 1) * d - after + extra)
        for k, d, (before, after), extra in zip(kernel, dilation, padding, output_padding)
    )


def _forward_backward(x, w, b, dy, *, stride, padding, dilation, groups, output_padding=None):
    """y = conv(x, w) + b (conv_transpose with an output_padding) and its vjp at dy: (y, dx, dw, db),
    db None when b is None."""
    jax = _jax()
    lax = jax.lax
    rank = len(stride)

    def forward(x, w, b):
        if output_padding is None:
            y = lax.conv_general_dilated(
                x, w, window_strides=stride, padding=padding, rhs_dilation=dilation, feature_group_count=groups,
                dimension_numbers=dimension_numbers(rank), precision=lax.Precision.HIGHEST,
            )
        else:
            y = lax.conv_general_dilated(
                x, transposed_kernel(w, groups), window_strides=(1,) * rank,
                padding=transposed_padding(w.shape[2:], stride, padding, dilation, output_padding),
                lhs_dilation=stride, rhs_dilation=dilation, feature_group_count=groups,
                dimension_numbers=dimension_numbers(rank), precision=lax.Precision.HIGHEST,
            )
        return y if b is None else y + b.reshape((1, -1) + (1,) * rank)

    y, pullback = jax.vjp(forward, x, w, b)
    dx, dw, db = pullback(dy)
    return y, dx, dw, db


@cache
def _compiled() -> Callable:
    return _jax().jit(_forward_backward,
                      static_argnames=("stride", "padding", "dilation", "groups", "output_padding"))


class JaxBackend(DeclaredLimits):
    """Runs on JAX's default device (the CPU unless a jaxlib with an accelerator is installed)."""

    name = "jax"
    limits = LIMITS
    deviations = DEVIATIONS

    def availability(self) -> str | None:
        return missing_framework(_jax, "jax", "jax")

    def version(self) -> str:
        jax = _jax()
        import jaxlib

        return f"{jax.__version__} (jaxlib {jaxlib.__version__}, {jax.default_backend()})"

    def run(
        self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray
    ) -> Outputs:
        """x (N, C, *in), w (O, C/groups, *k), b (O,) or None, dy (N, O, *out) -> y, dx, dw, db (NumPy).

        Transposed: w (C, O/groups, *k)."""
        outputs = _compiled()(x, w, b, dy, stride=spec.stride, padding=spec.padding, dilation=spec.dilation,
                              groups=spec.groups, output_padding=spec.output_padding if spec.transposed else None)
        return tuple(None if t is None else np.asarray(t) for t in outputs)  # type: ignore[return-value]


@hookimpl
def convparity_register_backends(register):
    register(JaxBackend())
