"""Backend `mlx`: mlx.core.conv_general and mlx.core.vjp on MLX's CPU device.

Boundary: MLX convolutions are channels-last, so x (N, C, *in) and dy (N, O, *out) become (N, *in, C) and
(N, *out, O), w (O, C/groups, *k) becomes (O, *k, C/groups), and the results are moved back. Arrays are
made with an explicit dtype: `mx.array` of a float64 NumPy array is float32 unless told otherwise.
bfloat16 arrays enter as float32 (exact) and are cast. conv_general takes per-dim (low, high) pads,
negative ones included. The bias is `y + b` (MLX has no convolution with bias), differentiated with the
convolution by one `mx.vjp`. Everything runs inside `mx.stream(mx.cpu)`. The whole of it is `mlx_conv`
(the backend's program).

Limits are probes: each is a tiny convolution showing one feature, and MLX's own error message, when it
raises one, becomes the reason. On MLX 0.32: 3-D convolutions with groups, and float64 wherever the CPU
backend needs its direct ("slow") kernels, which have no float64 instantiation: dilation, groups, and the
input-dilated convolution that the vjp uses for dx when stride > 1. The remaining float64 specs run, but
see DEVIATIONS. mlx is imported only when first needed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, lru_cache

import numpy as np

from convparity.plugin import (
    CONVOLUTION_ONLY,
    BackendCost,
    ConvSpec,
    Deviation,
    Framework,
    Limit,
    Outputs,
    Probe,
    Program,
    first_limit,
    hookimpl,
    installed_version,
    probed_limits,
    program_arguments,
    tiny_spec,
)

MLX = Framework("mlx.core", "mlx", distribution="mlx")


def _dense(spec: ConvSpec) -> bool:
    """Stride 1, dilation 1, one group: the specs MLX's CPU backend runs with its explicit-GEMM kernels."""
    return set(spec.stride) == {1} and set(spec.dilation) == {1} and spec.groups == 1


DEVIATIONS = (
    Deviation(
        condition="float64 with stride 1, dilation 1 and one group",
        reason="MLX's CPU explicit-GEMM convolution computes float64 in float32 and returns float64 "
        "(`auto conv_dtype = float32;` in mlx/backend/cpu/conv.cpp), so y and dx carry float32 rounding. Repro: "
        "import mlx.core as mx, numpy as np; x = np.random.default_rng(0).random((1, 64, 1)); "
        "y = mx.conv_general(mx.array(x, dtype=mx.float64), mx.ones((1, 1, 1), dtype=mx.float64), stream=mx.cpu); "
        "print(y.dtype, abs(np.array(y) - x).max())  # float64, ~3e-8 (x rounded to float32), not 0",
        upstream="docs/upstream/mlx-float64-computed-in-float32.md (not reported yet)",
        applies=_dense,
        dtypes=("float64",),
        tensors=("y", "dx"),
    ),
    Deviation(
        condition="bias, float16/bfloat16",
        reason="MLX has no convolution with bias (mlx.nn.Conv2d adds it too): conv_general rounds to the narrow "
        "dtype and `+ b` rounds again (two roundings). Repro: import mlx.core as mx; "
        "y = mx.conv_general(mx.ones((1, 1, 2), dtype=mx.float16), mx.array([[[2048.0, 1.0]]], dtype=mx.float16), "
        "stream=mx.cpu) + mx.array([1.0], dtype=mx.float16); print(y.item())  # 2048.0, not 2050 = 2048 + 1 + 1",
        upstream="a precision choice, not reported",
        dtypes=("float16", "bfloat16"),
        tensors=("y",),
        bias=True,
        strict=False,
    ),
)


def mlx_conv(*, stride, padding, dilation, groups, dtype, bias):
    """mx.conv_general (+ b) and mx.vjp on the CPU stream, channels-last inside: x (N, *in, C), w (O, *k, C/groups),
    y and dy (N, *out, O). step(x, w, b, dy) -> (y, dx, dw, db) channels-first, as NumPy arrays."""
    import mlx.core as mx
    import numpy as np

    low, high = [before for before, _ in padding], [after for _, after in padding]

    def forward(x, w, *b):
        y = mx.conv_general(x, w, stride=list(stride), padding=(low, high), kernel_dilation=list(dilation),
                            groups=groups)
        return y + b[0] if b else y  # MLX has no convolution with bias

    def array(a):  # of `dtype` (mx.array of float64 is float32 unless told); bfloat16 enters as float32 (exact)
        if dtype == "bfloat16":
            return mx.array(a.astype(np.float32), dtype=mx.float32).astype(mx.bfloat16)
        return mx.array(np.ascontiguousarray(a), dtype=getattr(mx, dtype))

    def numpy(a):
        return np.array(a.astype(mx.float32) if a.dtype == mx.bfloat16 else a)

    def step(x, w, b, dy):
        with mx.stream(mx.cpu):
            primals = [array(np.moveaxis(x, 1, -1)), array(np.moveaxis(w, 1, -1))] + ([] if b is None else [array(b)])
            (y,), grads = mx.vjp(forward, primals, [array(np.moveaxis(dy, 1, -1))])
            mx.eval(y, *grads)
        y, dx, dw, *db = [numpy(t) for t in (y, *grads)]
        return np.moveaxis(y, -1, 1), np.moveaxis(dx, -1, 1), np.moveaxis(dw, -1, 1), db[0] if db else None

    return step


@lru_cache(maxsize=256)
def _step(spec: ConvSpec) -> Callable[..., tuple]:
    MLX.load()
    return MlxBackend().program(spec).build()


# Each example is x (1, 2, 5, ...), w (2, 2, 2, ...) with one feature.
PROBES = (
    Probe("rank 3 with groups > 1", lambda spec: spec.rank == 3 and spec.groups > 1,
          tiny_spec(3, in_channels=2, out_channels=2, input_size=(5, 5, 5), groups=2)),
    Probe("float64 with stride > 1", lambda spec: spec.dtype == "float64" and max(spec.stride) > 1,
          tiny_spec(1, in_channels=2, out_channels=2, input_size=(5,), stride=2, dtype="float64")),
    Probe("float64 with dilation > 1", lambda spec: spec.dtype == "float64" and max(spec.dilation) > 1,
          tiny_spec(1, in_channels=2, out_channels=2, input_size=(5,), dilation=2, dtype="float64")),
    Probe("float64 with groups > 1", lambda spec: spec.dtype == "float64" and spec.groups > 1,
          tiny_spec(2, in_channels=2, out_channels=2, input_size=(5, 5), groups=2, dtype="float64")),
)


@cache
def _probed_limits() -> tuple[Limit, ...]:
    """The probes MLX refuses, with MLX's own message."""
    return probed_limits(PROBES, MlxBackend().run, (ValueError,),
                         lambda error: f"MLX {installed_version('mlx')} (CPU): {error}")


class MlxBackend:
    """conv_general + vjp on MLX's CPU device, channels-last at MLX's side of the boundary."""

    name = "mlx"
    deviations = DEVIATIONS
    # Measured (2026-12, 2-core machine): `convparity run -b mlx -g smoke --dtype float32 --compile-cache off`,
    # median `seconds` per case of results.csv 0.0033; per_gflop assumed.
    cost = BackendCost(0.0033, 0.05)

    def availability(self) -> str | None:
        return MLX.missing()

    def version(self) -> str:
        return f"{installed_version('mlx')} (CPU device)"

    @property
    def limits(self) -> tuple[Limit, ...]:
        """The probes MLX refuses, with its reasons; empty when mlx is not installed."""
        return (CONVOLUTION_ONLY,) + (() if self.availability() else _probed_limits())

    def supports(self, spec: ConvSpec) -> str | None:
        return first_limit(self.limits, spec)

    def program(self, spec: ConvSpec) -> Program:
        return Program(mlx_conv, program_arguments(spec))

    def run(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray) -> Outputs:
        """x (N, C, *in), w (O, C/groups, *k), b (O,) or None, dy (N, O, *out) -> y, dx, dw, db (NumPy)."""
        return _step(spec)(x, w, b, dy)


@hookimpl
def convparity_register_backends(register):
    register(MlxBackend())
