"""Backend `mlx`: mlx.core.conv_general and mlx.core.vjp on MLX's CPU device.

Boundary: MLX convolutions are channels-last, so x (N, C, *in) and dy (N, O, *out) become (N, *in, C) and
(N, *out, O), w (O, C/groups, *k) becomes (O, *k, C/groups), and the results are moved back. Arrays are
made with an explicit dtype: `mx.array` of a float64 NumPy array is float32 unless told otherwise.
bfloat16 arrays enter as float32 (exact) and are cast. conv_general takes per-dim (low, high) pads,
negative ones included. The bias is `y + b` (MLX has no convolution with bias), differentiated with the
convolution by one `mx.vjp`. Everything runs inside `mx.stream(mx.cpu)`.

Limits are probes: each is a tiny convolution showing one feature, and MLX's own error message, when it
raises one, becomes the reason. On MLX 0.32: 3-D convolutions with groups, and float64 wherever the CPU
backend needs its direct ("slow") kernels, which have no float64 instantiation: dilation, groups, and the
input-dilated convolution that the vjp uses for dx when stride > 1. The remaining float64 specs run, but
see DEVIATIONS. mlx is imported only when first needed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from types import ModuleType

import numpy as np

from convparity.harness.backends.contract import Outputs, missing_framework
from convparity.harness.backends.deviations import Deviation
from convparity.harness.backends.hookspecs import hookimpl
from convparity.harness.backends.limits import CONVOLUTION_ONLY, DeclaredLimits, Limit
from convparity.harness.cases.spec import ConvSpec


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
        upstream="not reported yet",
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


@cache
def _mlx() -> ModuleType:
    import mlx.core

    return mlx.core


def to_channels_last(array: np.ndarray) -> np.ndarray:
    """(N, C, *spatial) -> (N, *spatial, C); also w (O, C/g, *k) -> (O, *k, C/g)."""
    return np.moveaxis(array, 1, -1)


def to_channels_first(array: np.ndarray) -> np.ndarray:
    """(N, *spatial, C) -> (N, C, *spatial); also (O, *k, C/g) -> (O, C/g, *k)."""
    return np.moveaxis(array, -1, 1)


def _array(array: np.ndarray, dtype: str):
    mx = _mlx()
    if dtype == "bfloat16":
        return mx.array(array.astype(np.float32), dtype=mx.float32).astype(mx.bfloat16)
    return mx.array(np.ascontiguousarray(array), dtype=getattr(mx, dtype))


def _numpy(array) -> np.ndarray:
    mx = _mlx()
    return np.array(array.astype(mx.float32) if array.dtype == mx.bfloat16 else array)


def forward(spec: ConvSpec) -> Callable:
    """f(x, w[, b]) -> y in MLX's layouts: x (N, *in, C), w (O, *k, C/g), b (O,), y (N, *out, O)."""
    mx = _mlx()
    padding = ([before for before, _ in spec.padding], [after for _, after in spec.padding])

    def f(x, w, *b):
        y = mx.conv_general(x, w, stride=list(spec.stride), padding=padding, kernel_dilation=list(spec.dilation),
                            groups=spec.groups)
        return y + b[0] if b else y

    return f


def forward_backward(spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray) -> list:
    """[y, dx, dw(, db)] as NumPy arrays in MLX's layouts (see `forward`), computed on the CPU."""
    mx = _mlx()
    with mx.stream(mx.cpu):
        primals = [_array(to_channels_last(x), spec.dtype), _array(to_channels_last(w), spec.dtype)]
        if b is not None:
            primals.append(_array(b, spec.dtype))
        (y,), grads = mx.vjp(forward(spec), primals, [_array(to_channels_last(dy), spec.dtype)])
        mx.eval(y, *grads)
    return [_numpy(t) for t in (y, *grads)]


@dataclass(frozen=True)
class Probe:
    """A feature MLX may refuse: `applies` picks the specs with it, `example` is a tiny one."""

    condition: str
    applies: Callable[[ConvSpec], bool]
    example: ConvSpec


def _tiny(rank: int, **fields) -> ConvSpec:
    return ConvSpec(batch=1, in_channels=2, out_channels=2, input_size=(5,) * rank, kernel_size=(2,) * rank, **fields)


PROBES = (
    Probe("rank 3 with groups > 1", lambda spec: spec.rank == 3 and spec.groups > 1, _tiny(3, groups=2)),
    Probe("float64 with stride > 1", lambda spec: spec.dtype == "float64" and max(spec.stride) > 1,
          _tiny(1, stride=2, dtype="float64")),
    Probe("float64 with dilation > 1", lambda spec: spec.dtype == "float64" and max(spec.dilation) > 1,
          _tiny(1, dilation=2, dtype="float64")),
    Probe("float64 with groups > 1", lambda spec: spec.dtype == "float64" and spec.groups > 1,
          _tiny(2, groups=2, dtype="float64")),
)


def refusal(probe: Probe) -> str | None:
    """MLX's error message for the probe's example, or None when it runs."""
    spec = probe.example
    rng = np.random.default_rng(0)
    x, w, dy = (rng.standard_normal(shape) for shape in (spec.x_shape, spec.w_shape, spec.y_shape))
    try:
        forward_backward(spec, x, w, None, dy)
    except ValueError as error:
        return f"MLX {metadata.version('mlx')} (CPU): {error}"
    return None


@cache
def _probed_limits() -> tuple[Limit, ...]:
    reasons = ((probe, refusal(probe)) for probe in PROBES)
    return tuple(Limit(probe.condition, reason, probe.applies) for probe, reason in reasons if reason)


class MlxBackend(DeclaredLimits):
    """conv_general + vjp on MLX's CPU device, channels-last at MLX's side of the boundary."""

    name = "mlx"
    deviations = DEVIATIONS

    def availability(self) -> str | None:
        return missing_framework(_mlx, "mlx", "mlx")

    def version(self) -> str:
        return f"{metadata.version('mlx')} (CPU device)"

    @property
    def limits(self) -> tuple[Limit, ...]:
        """The probes MLX refuses, with its reasons; empty when mlx is not installed."""
        return (CONVOLUTION_ONLY,) + (() if self.availability() else _probed_limits())

    def run(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray) -> Outputs:
        """x (N, C, *in), w (O, C/groups, *k), b (O,) or None, dy (N, O, *out) -> y, dx, dw, db (NumPy)."""
        y, dx, dw, *db = forward_backward(spec, x, w, b, dy)
        return (to_channels_first(y), to_channels_first(dx), to_channels_first(dw), db[0] if db else None)


@hookimpl
def convparity_register_backends(register):
    register(MlxBackend())
