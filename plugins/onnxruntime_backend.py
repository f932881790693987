"""Backends `onnxruntime` and `onnxruntime-unfused`: an ONNX `Conv` (or `ConvTranspose`) node and its epilogue as
ONNX nodes, run by ONNX Runtime's CPU provider with graph optimizations on (ORT_ENABLE_ALL) and off (ORT_DISABLE_ALL).

Forward only: ONNX Runtime's inference sessions compute y, so dx, dw and db come back as None and
their rows read `unsupported` (onnxruntime-training is not used). The model has inputs x (N, C, *in), w
(O, C/groups, *k) and, with a bias, b (O,), in the spec's dtype; pads are ONNX's [before..., after...]. A
transposed spec is a `ConvTranspose` node with w (C, O/groups, *k), the same pads and its output_padding.

A post-op chain is built as the ONNX nodes a model exported from a framework holds after its convolution
(`onnxruntime_conv`'s docstring lists them), each operand a graph input (a sum's residual, a binary's src1,
prelu's slopes, batchnorm's four rows). At ORT_ENABLE_ALL, ONNX Runtime's graph transformers fuse part of
them into the convolution: Relu, LeakyRelu, Clip, Sigmoid, Tanh and HardSigmoid into a FusedConv (its
activation), an Add of a y-shaped tensor (a sum) and the activation after it into FusedConv's Z input, and
x * Sigmoid(alpha x) into QuickGelu; the others run as their own kernels. At ORT_DISABLE_ALL every node runs as
written, so the two backends side by side separate a fusion's error from a kernel's. (Folding batchnorm, a
per-channel Add or Mul into the weights needs constant weights: w is a graph input here, so those folds do not
happen.) In float16 ONNX Runtime's CPU provider casts each node without a float16 kernel to float32 and back.

The whole of it is `onnxruntime_conv` (the backend's program, in `onnxruntime_graphs`); one session per spec is
built and reused.

Limits are probes, not guesses: each `Probe` is a tiny model showing one feature (a dtype, a
negative pad, a post-op kind); when ONNX Runtime refuses to build a session for it or to run it, its own error
text becomes the reason of a `Limit` covering every spec with that feature. A newer ONNX Runtime that adds,
say, a float64 Conv kernel drops that limit by itself. onnx and onnxruntime are imported lazily.

The quantized backends (QLinearConv, ConvInteger, QDQ graphs) are in `onnxruntime_quantized`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, lru_cache

import numpy as np

from convparity.plugin import (
    BackendCost,
    ConvSpec,
    Extras,
    Limit,
    Outputs,
    Probe,
    Program,
    dtype_probes,
    first_limit,
    hookimpl,
    numpy_dtype,
    probed_limits,
    program_arguments,
    tiny_spec,
)
from convparity.plugins import onnxruntime_quantized
from convparity.plugins.onnxruntime_graphs import (
    LEVELS,
    ONNX,
    ONNXRUNTIME,
    OPSET,
    POST_OPS,
    PROVIDER,
    onnxruntime_conv,
    refusal_reason,
    refusals,
)


def _convolution(applies: Callable[[ConvSpec], bool]) -> Callable[[ConvSpec], bool]:
    return lambda spec: not spec.transposed and applies(spec)


def _transposed(applies: Callable[[ConvSpec], bool]) -> Callable[[ConvSpec], bool]:
    return lambda spec: spec.transposed and applies(spec)


def _negative_padding(spec: ConvSpec) -> bool:
    return any(min(pair) < 0 for pair in spec.padding)


def _past_the_stride(spec: ConvSpec) -> bool:
    """A transposed spec with an output_padding >= stride (PyTorch allows it below the dilation)."""
    return spec.transposed and any(extra >= s for extra, s in zip(spec.output_padding, spec.stride))


# Each example is x (1, 1, 4), w (1, 1, 2) with one feature. Every post-op kind of POST_OPS builds and runs in
# float32 and float16 at both levels (tests/plugins/test_onnxruntime.py runs the epilogues grid in both), so none
# needs a probe of its own: a float16 node without a kernel is cast to float32 by ONNX Runtime itself.
PROBES = (
    *(Probe(probe.condition, _convolution(probe.applies), probe.example) for probe in dtype_probes(1)),
    Probe("negative padding (a crop)", _convolution(_negative_padding), tiny_spec(1, padding=((-1, 0),))),
    *(Probe(f"transposed, {probe.condition}", _transposed(probe.applies), probe.example)
      for probe in dtype_probes(1, transposed=True)),
    Probe("transposed, negative padding", _transposed(_negative_padding),
          tiny_spec(1, padding=((-1, 0),), transposed=True)),
    Probe("transposed, output_padding >= stride (below the dilation)", _past_the_stride,
          tiny_spec(1, dilation=2, output_padding=1, transposed=True)),
)


@lru_cache(maxsize=256)
def _step(name: str, spec: ConvSpec) -> Callable[..., tuple]:
    return BACKENDS[name].program(spec).build()


@cache
def _probed_limits(name: str) -> tuple[Limit, ...]:
    return probed_limits(PROBES, BACKENDS[name].run, refusals(), refusal_reason)


class OnnxRuntimeBackend:
    """Forward-only Conv and its epilogue on ONNX Runtime's CPU provider, graph optimizations on; gradients None."""

    name = "onnxruntime"
    optimization = "all"
    post_ops = POST_OPS
    # The median seconds per case of a 2-core run of the smoke and default grids in four dtypes (results.csv,
    # 2026-12, cold caches): 2 ms; a framework's 20 GFLOP/s on one core.
    cost = BackendCost(0.002, 0.05)

    def availability(self) -> str | None:
        return ONNXRUNTIME.missing() or ONNX.missing()

    def version(self) -> str:
        return f"{ONNXRUNTIME.load().__version__} ({PROVIDER}, opset {OPSET}, {LEVELS[self.optimization]})"

    @property
    def limits(self) -> tuple[Limit, ...]:
        """One Limit per probe ONNX Runtime refuses, with its reason; empty when it is not installed."""
        return () if self.availability() else _probed_limits(self.name)

    def supports(self, spec: ConvSpec) -> str | None:
        return first_limit(self.limits, spec)

    def program(self, spec: ConvSpec) -> Program:
        return Program(onnxruntime_conv, program_arguments(spec, x_shape=spec.x_shape, w_shape=spec.w_shape,
                                                           y_shape=spec.y_shape, optimization=self.optimization))

    def run(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray | None,
            extras: Extras | None = None) -> Outputs:
        """x (N, C, *in), w (O, C/groups, *k), b (O,) or None -> (y (N, O, *out), None, None, None); extras
        carries the post-ops' operands. Transposed: w (C, O/groups, *k)."""
        operands = tuple(extras.operands) if extras is not None else _placeholder_operands(spec)
        return _step(self.name, spec)(x, w, b, dy, operands=operands)


def _placeholder_operands(spec: ConvSpec) -> tuple[np.ndarray | None, ...]:
    """Operands for a call without extras (a probe): ones of each operand's shape, in the spec's compute dtype."""
    return tuple(None if shape is None else np.ones(shape, numpy_dtype(spec.compute_dtype))
                 for shape in spec.operand_shapes)


class OnnxRuntimeUnfusedBackend(OnnxRuntimeBackend):
    """The same models with ONNX Runtime's graph optimizations off: every node of the chain runs as its own kernel."""

    name = "onnxruntime-unfused"
    optimization = "disable"


BACKENDS = {backend.name: backend for backend in (OnnxRuntimeBackend(), OnnxRuntimeUnfusedBackend())}


@hookimpl
def convparity_register_backends(register):
    for backend in (*BACKENDS.values(), *onnxruntime_quantized.BACKENDS.values()):
        register(backend)
