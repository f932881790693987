"""Backend `paddle`: PaddlePaddle dygraph paddle.nn.functional.conv{1,2,3}d and paddle.grad, on the CPU.

Layouts are Paddle's channels-first ones ("NCL", "NCHW", "NCDHW"), the canonical layouts, so nothing is
transposed. Padding goes in Paddle's per-dim pair form [[0, 0], [0, 0], [before, after], ...], which takes
asymmetric pads; Paddle refuses negative ones ("Invalid padding, all value should be larger than or equal
to 0"), so a crop is a slice of x before the convolution and autograd carries dx through it. Tensors are
placed on the CPU explicitly, so no global device setting is touched. The whole of it is `paddle_conv`
(the backend's program).

Limits are probes: Paddle's CPU convolution kernels are registered for float64 and float32 only; for
each other dtype a tiny convolution is attempted and Paddle's own NotFound message becomes the reason.
paddle is imported only when first needed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import cache, lru_cache
from types import ModuleType

import numpy as np

from convparity.plugin import (
    CONVOLUTION_ONLY,
    BackendCost,
    ConvSpec,
    Framework,
    Limit,
    Outputs,
    Program,
    dtype_probes,
    first_limit,
    hookimpl,
    probed_limits,
    program_arguments,
)

PADDLE = Framework("paddle", "paddle", distribution="paddlepaddle")


def paddle_conv(*, stride, padding, dilation, groups, dtype, bias):
    """paddle.nn.functional.conv{1,2,3}d on CPU tensors, channels-first, and paddle.grad;
    step(x, w, b, dy) -> (y, dx, dw, db). A negative pad (a crop) is a slice of x before the convolution:
    Paddle's padding must be >= 0."""
    import numpy as np
    import paddle

    functional = paddle.nn.functional
    rank = len(stride)
    conv = (functional.conv1d, functional.conv2d, functional.conv3d)[rank - 1]
    data_format = ("NCL", "NCHW", "NCDHW")[rank - 1]
    crops = any(min(pair) < 0 for pair in padding)
    crop = (slice(None), slice(None), *(slice(max(-before, 0), after if after < 0 else None)
                                        for before, after in padding))
    pads = [[0, 0], [0, 0], *([max(before, 0), max(after, 0)] for before, after in padding)]

    def tensor(array):  # a CPU tensor of `dtype` that records gradients; bfloat16 enters as float32 (exact)
        source = np.ascontiguousarray(array.astype(np.float32) if dtype == "bfloat16" else array)
        return paddle.to_tensor(source, dtype=dtype, place=paddle.CPUPlace(), stop_gradient=False)

    def numpy(t):
        return (t.astype("float32") if t.dtype == paddle.bfloat16 else t).numpy()

    def step(x, w, b, dy):
        xt, wt, dyt = tensor(x), tensor(w), tensor(dy)
        bt = None if b is None else tensor(b)
        y = conv(xt[crop] if crops else xt, wt, bt, stride=list(stride), padding=pads, dilation=list(dilation),
                 groups=groups, data_format=data_format)
        leaves = [t for t in (xt, wt, bt) if t is not None]
        y, dx, dw, *db = [numpy(t) for t in (y, *paddle.grad([y], leaves, grad_outputs=[dyt]))]
        return y, dx, dw, db[0] if db else None

    return step


def _paddle() -> ModuleType:
    with warnings.catch_warnings():
        # paddle.utils.cpp_extension warns at import that ccache is missing; nothing here compiles C++.
        warnings.filterwarnings("ignore", message="No ccache found")
        return PADDLE.load()


@lru_cache(maxsize=256)
def _step(spec: ConvSpec) -> Callable[..., tuple]:
    _paddle()
    return PaddleBackend().program(spec).build()


# A tiny convolution per dtype: x (1, 2, 5, 5), w (2, 2, 3, 3).
PROBES = dtype_probes(2, in_channels=2, out_channels=2, input_size=(5, 5), kernel_size=(3, 3))


@cache
def _probed_limits() -> tuple[Limit, ...]:
    """One Limit per dtype Paddle has no CPU kernel for, with the first line of Paddle's message."""
    paddle = _paddle()
    return probed_limits(PROBES, PaddleBackend().run, (RuntimeError, NotImplementedError),
                         lambda error: f"Paddle {paddle.__version__} (CPU): {str(error).strip().splitlines()[0]}")


class PaddleBackend:
    """Dygraph convolution with autograd on the CPU, channels-first."""

    name = "paddle"
    # Measured (2026-12, 2-core machine): `convparity run -b paddle -g smoke --dtype float32 --compile-cache off`,
    # median `seconds` per case of results.csv 0.0008 (eager dispatch); per_gflop assumed.
    cost = BackendCost(0.0008, 0.05)

    def availability(self) -> str | None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No ccache found")  # as in _paddle
            return PADDLE.missing()

    def version(self) -> str:
        paddle = _paddle()
        return f"{paddle.__version__} (commit {paddle.version.commit[:10]}, CPU)"

    @property
    def limits(self) -> tuple[Limit, ...]:
        """One Limit per dtype Paddle has no CPU kernel for; empty when paddle is not installed."""
        return (CONVOLUTION_ONLY,) + (() if self.availability() else _probed_limits())

    def supports(self, spec: ConvSpec) -> str | None:
        return first_limit(self.limits, spec)

    def program(self, spec: ConvSpec) -> Program:
        return Program(paddle_conv, program_arguments(spec))

    def run(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray) -> Outputs:
        """x (N, C, *in), w (O, C/groups, *k), b (O,) or None, dy (N, O, *out) -> y, dx, dw, db (NumPy)."""
        return _step(spec)(x, w, b, dy)


@hookimpl
def convparity_register_backends(register):
    register(PaddleBackend())
