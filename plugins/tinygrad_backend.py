"""Backend `tinygrad`: Tensor.conv2d (any rank) and Tensor.gradient on tinygrad's CPU device.

tinygrad lowers the convolution to its own pooling, broadcast-multiply and sum kernels, generates C for
them and compiles them with clang (or the compiler the `CC` environment variable names): its CPU device
needs that compiler even to start, and without it the backend is unavailable with tinygrad's own error
(`FileNotFoundError: ... 'clang'`). gcc cannot stand in (tinygrad passes clang-only flags and types).
tinygrad's PYTHON device needs no compiler but takes seconds to minutes per case, so it is not used.

Layouts are the canonical ones (conv2d is channels-first). Padding is conv2d's flat form, last dim first
as (before, after) pairs, which takes asymmetric and negative (cropping) pads. bfloat16 arrays enter as
float32 (exact) and are cast, and results leave through a cast to float32, so no kernel stores bfloat16
(Debian 12's clang 14 has no x86 `__bf16` and refuses kernels that do). Limits are probes: a tiny
convolution and its gradients per dtype, and the compiler's own message when it refuses one. tinygrad
is imported only when first needed; where the runner gives a worker one thread, tinygrad's CPU device
is told so.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib import metadata
from types import ModuleType

import numpy as np

from convparity.harness.backends.contract import Outputs, missing_framework
from convparity.harness.backends.deviations import Deviation
from convparity.harness.backends.hookspecs import hookimpl
from convparity.harness.backends.limits import CONVOLUTION_ONLY, DeclaredLimits, Limit
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.vocabulary import DTYPES

DEVICE = "CPU"

# Evidence: tests/plugins/test_tinygrad.py::test_float16_bias_is_rounded_twice_as_declared and
# ::test_bfloat16_products_are_rounded_before_the_sum.
DEVIATIONS = (
    Deviation(
        condition="bias, float16",
        reason="Tensor.conv2d adds the bias to the convolution already rounded to float16 (two roundings). Repro: "
        "from tinygrad import Tensor, dtypes; h = dict(dtype=dtypes.float16, device='CPU'); "
        "print(Tensor.ones(1, 2, 1, **h).conv2d(Tensor([[[2048.0], [1.0]]], **h), Tensor([1.0], **h)).numpy())  "
        "# 2048, not 2050 = 2048 + 1 + 1",
        upstream="a precision choice, not reported",
        dtypes=("float16",),
        tensors=("y",),
        bias=True,
        strict=False,
    ),
    Deviation(
        condition="bfloat16",
        reason="each product x*w is rounded to bfloat16 before the float32 sum (float16 products are not; dx and dw "
        "err alike). Repro: from tinygrad import Tensor, dtypes; "
        "b = lambda v: Tensor(v, device='CPU').cast(dtypes.bfloat16); "
        "print(b([[[1.0078125], [1.0]]]).conv2d(b([[[1.015625], [-1.0]]])).float().item())  "
        "# 0.0234375, not 0.0235595703125 = 1.0078125 * 1.015625 - 1 (torch gives the latter)",
        upstream="not reported yet",
        dtypes=("bfloat16",),
        tensors=("y", "dx", "dw"),
        strict=False,
    ),
)


@cache
def _tinygrad() -> ModuleType:
    if os.environ.get("OMP_NUM_THREADS") == "1":
        os.environ.setdefault("NUM_CPU_THREADS", "1")
    import tinygrad

    return tinygrad


def compiler() -> str:
    """The C compiler tinygrad's CPU device runs: $CC, else clang."""
    return os.environ.get("CC", "clang")


def device_problem() -> str | None:
    """tinygrad's own error when its CPU device cannot start here, else None."""
    tinygrad = _tinygrad()
    try:
        tinygrad.Device[DEVICE]
    except Exception as error:  # noqa: BLE001 - whatever tinygrad raises is the reason, quoted
        return (f"tinygrad {metadata.version('tinygrad')}: its {DEVICE} device cannot start: "
                f"{type(error).__name__}: {error} (tinygrad compiles CPU kernels with {compiler()!r}; "
                "install clang or name a clang in CC)")
    return None


def _tensor(array: np.ndarray, dtype: str):
    tinygrad = _tinygrad()
    if dtype == "bfloat16":
        return tinygrad.Tensor(array.astype(np.float32), device=DEVICE).cast(tinygrad.dtypes.bfloat16)
    return tinygrad.Tensor(np.ascontiguousarray(array), device=DEVICE)


def _numpy(tensor) -> np.ndarray:
    return (tensor.float() if tensor.dtype == _tinygrad().dtypes.bfloat16 else tensor).numpy()


def forward_backward(spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray) -> list:
    """[y, dx, dw(, db)] as NumPy arrays in the canonical layouts."""
    x_t, w_t, dy_t = (_tensor(a, spec.dtype) for a in (x, w, dy))
    b_t = None if b is None else _tensor(b, spec.dtype)
    flat_padding = tuple(amount for pair in reversed(spec.padding) for amount in pair)
    y = x_t.conv2d(w_t, b_t, groups=spec.groups, stride=spec.stride, dilation=spec.dilation, padding=flat_padding)
    leaves = [t for t in (x_t, w_t, b_t) if t is not None]
    return [_numpy(t) for t in (y, *y.gradient(*leaves, gradient=dy_t))]


@contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Collects what this process and its children write to file descriptor 2 (a compiler's diagnostics)."""
    sys.stderr.flush()
    saved = os.dup(2)
    text: list[str] = []
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield text
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text.append(sink.read().decode(errors="replace"))


def refusal(dtype: str) -> str | None:
    """The compiler's (or tinygrad's) message when a tiny `dtype` convolution fails, else None."""
    spec = ConvSpec(batch=1, in_channels=2, out_channels=2, input_size=(5, 5), kernel_size=(3, 3), dtype=dtype)
    rng = np.random.default_rng(0)
    x, w, dy = (rng.standard_normal(shape).astype(np.float32) for shape in (spec.x_shape, spec.w_shape, spec.y_shape))
    with captured_stderr() as stderr:
        try:
            forward_backward(spec, x, w, None, dy)
            return None
        except (subprocess.CalledProcessError, RuntimeError, NotImplementedError) as error:
            failure = f"{type(error).__name__}: {error}"
    said = [line.strip() for line in stderr[0].splitlines() if "error:" in line]
    compiler_says = f"; {compiler()} said: {said[0]}" if said else ""
    return f"tinygrad {metadata.version('tinygrad')} ({DEVICE}, {compiler_version()}): {failure}{compiler_says}"


@cache
def compiler_version() -> str:
    """The first line of `$CC --version`, e.g. "Debian clang version 14.0.6"."""
    try:
        lines = subprocess.run([compiler(), "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        return f"{compiler()}: {error}"
    return lines.splitlines()[0] if lines else compiler()


@cache
def _probed_limits() -> tuple[Limit, ...]:
    reasons = ((dtype, refusal(dtype)) for dtype in DTYPES)
    return tuple(Limit(f"dtype {dtype}", reason, lambda spec, dtype=dtype: spec.dtype == dtype)
                 for dtype, reason in reasons if reason)


class TinygradBackend(DeclaredLimits):
    """Tensor.conv2d + Tensor.gradient on tinygrad's CPU device (clang-compiled kernels)."""

    name = "tinygrad"
    deviations = DEVIATIONS

    def availability(self) -> str | None:
        return missing_framework(_tinygrad, "tinygrad", "tinygrad") or device_problem()

    def version(self) -> str:
        renderer = type(_tinygrad().Device[DEVICE].renderer).__name__
        return f"{metadata.version('tinygrad')} ({DEVICE} device, {renderer}, {compiler_version()})"

    @property
    def limits(self) -> tuple[Limit, ...]:
        """One Limit per dtype the CPU device fails to compile; empty when tinygrad's CPU device is unusable."""
        return (CONVOLUTION_ONLY,) + (() if self.availability() else _probed_limits())

    def run(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray) -> Outputs:
        """x (N, C, *in), w (O, C/groups, *k), b (O,) or None, dy (N, O, *out) -> y, dx, dw, db (NumPy)."""
        y, dx, dw, *db = forward_backward(spec, x, w, b, dy)
        return y, dx, dw, db[0] if db else None


@hookimpl
def convparity_register_backends(register):
    register(TinygradBackend())
