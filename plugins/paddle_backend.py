"""Backend `paddle`: PaddlePaddle dygraph paddle.nn.functional.conv{1,2,3}d and paddle.grad, on the CPU.

Layouts are Paddle's channels-first ones ("NCL", "NCHW", "NCDHW"), the canonical layouts, so nothing is
transposed. Padding goes in Paddle's per-dim pair form [[0, 0], [0, 0], [before, after], ...], which takes
asymmetric pads; Paddle refuses negative ones ("Invalid padding, all value should be larger than or equal
to 0"), so a crop is a slice of x before the convolution and autograd carries dx through it. Tensors are
placed on the CPU explicitly, so no global device setting is touched.

Limits are probes: Paddle's CPU convolution kernels are registered for float64 and float32 only; for
each other dtype a tiny convolution is attempted and Paddle's own NotFound message becomes the reason.
paddle is imported only when first needed.
"""

from __future__ import annotations

import warnings
from functools import cache
from types import ModuleType

import numpy as np

from convparity.harness.backends.contract import Outputs, missing_framework
from convparity.harness.backends.hookspecs import hookimpl
from convparity.harness.backends.limits import CONVOLUTION_ONLY, DeclaredLimits, Limit
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.vocabulary import DTYPES

DATA_FORMATS = ("NCL", "NCHW", "NCDHW")


@cache
def _paddle() -> ModuleType:
    with warnings.catch_warnings():
        # paddle.utils.cpp_extension warns at import that ccache is missing; nothing here compiles C++.
        warnings.filterwarnings("ignore", message="No ccache found")
        import paddle
    return paddle


def crop_slices(padding: tuple[tuple[int, int], ...]) -> tuple[slice, ...]:
    """(N, C, *spatial) slices that apply the negative part of each dim's (before, after) pad."""
    return (slice(None), slice(None)) + tuple(
        slice(max(-before, 0), after if after < 0 else None) for before, after in padding
    )


def _tensor(array: np.ndarray, dtype: str):
    """A CPU paddle tensor of `dtype` that records gradients (bfloat16 arrives via float32, exactly)."""
    paddle = _paddle()
    source = np.ascontiguousarray(array.astype(np.float32) if dtype == "bfloat16" else array)
    return paddle.to_tensor(source, dtype=dtype, place=paddle.CPUPlace(), stop_gradient=False)


def forward_backward(spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray) -> list:
    """[y, dx, dw(, db)] as paddle tensors."""
    paddle = _paddle()
    functional = paddle.nn.functional
    conv = (functional.conv1d, functional.conv2d, functional.conv3d)[spec.rank - 1]
    x_t, w_t, dy_t = (_tensor(a, spec.dtype) for a in (x, w, dy))
    b_t = None if b is None else _tensor(b, spec.dtype)
    cropped = x_t[crop_slices(spec.padding)] if any(min(pair) < 0 for pair in spec.padding) else x_t
    padding = [[0, 0], [0, 0]] + [[max(before, 0), max(after, 0)] for before, after in spec.padding]
    y = conv(cropped, w_t, b_t, stride=list(spec.stride), padding=padding, dilation=list(spec.dilation),
             groups=spec.groups, data_format=DATA_FORMATS[spec.rank - 1])
    leaves = [t for t in (x_t, w_t, b_t) if t is not None]
    return [y, *paddle.grad([y], leaves, grad_outputs=[dy_t])]


def _numpy(tensor) -> np.ndarray:
    return (tensor.astype("float32") if tensor.dtype == _paddle().bfloat16 else tensor).numpy()


def refusal(dtype: str) -> str | None:
    """Paddle's message when it has no CPU convolution kernel for `dtype` (first line), else None."""
    spec = ConvSpec(batch=1, in_channels=2, out_channels=2, input_size=(5, 5), kernel_size=(3, 3), dtype=dtype)
    rng = np.random.default_rng(0)
    x, w, dy = (rng.standard_normal(shape).astype(np.float32) for shape in (spec.x_shape, spec.w_shape, spec.y_shape))
    try:
        forward_backward(spec, x, w, None, dy)
    except (RuntimeError, NotImplementedError) as error:
        return f"Paddle {_paddle().__version__} (CPU): {str(error).strip().splitlines()[0]}"
    return None


@cache
def _probed_limits() -> tuple[Limit, ...]:
    reasons = ((dtype, refusal(dtype)) for dtype in DTYPES)
    return tuple(Limit(f"dtype {dtype}", reason, lambda spec, dtype=dtype: spec.dtype == dtype)
                 for dtype, reason in reasons if reason)


class PaddleBackend(DeclaredLimits):
    """Dygraph convolution with autograd on the CPU, channels-first."""

    name = "paddle"

    def availability(self) -> str | None:
        return missing_framework(_paddle, "paddle", "paddle")

    def version(self) -> str:
        paddle = _paddle()
        return f"{paddle.__version__} (commit {paddle.version.commit[:10]}, CPU)"

    @property
    def limits(self) -> tuple[Limit, ...]:
        """One Limit per dtype Paddle has no CPU kernel for; empty when paddle is not installed."""
        return (CONVOLUTION_ONLY,) + (() if self.availability() else _probed_limits())

    def run(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray) -> Outputs:
        """x (N, C, *in), w (O, C/groups, *k), b (O,) or None, dy (N, O, *out) -> y, dx, dw, db (NumPy)."""
        y, dx, dw, *db = (_numpy(t) for t in forward_backward(spec, x, w, b, dy))
        return y, dx, dw, db[0] if db else None


@hookimpl
def convparity_register_backends(register):
    register(PaddleBackend())
