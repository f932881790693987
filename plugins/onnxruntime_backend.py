"""Backend `onnxruntime`: one ONNX `Conv` (or `ConvTranspose`) node per spec, run by ONNX Runtime's CPU provider.

Forward only: ONNX Runtime's inference sessions compute y, so dx, dw and db come back as None and
their rows read `unsupported`. The model has inputs x (N, C, *in), w (O, C/groups, *k) and, with a
bias, b (O,), in the spec's dtype; pads are ONNX's [before..., after...]. A transposed spec is a
`ConvTranspose` node with w (C, O/groups, *k), the same pads and its output_padding. The whole of it is
`onnxruntime_conv` (the backend's program); one session per spec is built and reused.

Limits are probes, not guesses: each `Probe` is a tiny model showing one feature (a dtype, a
negative pad); when ONNX Runtime refuses to build a session for it or to run it, its own error text becomes the
reason of a `Limit` covering every spec with that feature. A newer ONNX Runtime that adds, say, a
float64 Conv kernel drops that limit by itself. onnx and onnxruntime are imported lazily.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, lru_cache

import numpy as np

from convparity.plugin import (
    BackendCost,
    ConvSpec,
    Framework,
    Limit,
    Outputs,
    Probe,
    Program,
    dtype_probes,
    first_limit,
    hookimpl,
    probed_limits,
    program_arguments,
    tiny_spec,
)

ONNX = Framework("onnx", "onnxruntime")
ONNXRUNTIME = Framework("onnxruntime", "onnxruntime")
PROVIDER = "CPUExecutionProvider"
# Conv-22 and ConvTranspose-22 are the newest; they are the first to admit bfloat16 (onnxruntime_conv's opset).
OPSET = 22
# The exceptions onnxruntime raises for a model it will not build a session for.
REFUSALS = ("Fail", "InvalidArgument", "InvalidGraph", "NotImplemented")


def onnxruntime_conv(*, stride, padding, dilation, groups, dtype, bias, output_padding=None, x_shape, w_shape,
                     y_shape):
    """y = Conv(x, w[, b]) (ConvTranspose with output_padding) as a one-node ONNX model, opset 22, in an ONNX
    Runtime session on the CPU execution provider. Forward only: step(x, w, b, dy) -> (y, None, None, None)."""
    import os

    import onnx
    import onnxruntime
    from onnx import helper

    element = {"float64": onnx.TensorProto.DOUBLE, "float32": onnx.TensorProto.FLOAT,
               "float16": onnx.TensorProto.FLOAT16, "bfloat16": onnx.TensorProto.BFLOAT16}[dtype]
    names = ["x", "w", "b"] if bias else ["x", "w"]
    shapes = {"x": x_shape, "w": w_shape, "b": y_shape[1:2]}
    extra = {} if output_padding is None else {"output_padding": list(output_padding)}
    node = helper.make_node("Conv" if output_padding is None else "ConvTranspose", names, ["y"],
                            kernel_shape=list(w_shape[2:]), strides=list(stride), dilations=list(dilation),
                            pads=[before for before, _ in padding] + [after for _, after in padding], group=groups,
                            **extra)
    inputs = [helper.make_tensor_value_info(name, element, list(shapes[name])) for name in names]
    graph = helper.make_graph([node], "conv", inputs, [helper.make_tensor_value_info("y", element, list(y_shape))])
    opsets = [helper.make_opsetid("", 22)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets),
                              producer_name="convparity")
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    threads = os.environ.get("OMP_NUM_THREADS", "")  # ORT sizes its thread pool by the cores otherwise
    if threads.isdigit():
        options.intra_op_num_threads = int(threads)
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def step(x, w, b, dy):
        quiet = onnxruntime.RunOptions()
        quiet.log_severity_level = 4  # a refusal is raised with its message: not logged as well
        (y,) = session.run(["y"], {"x": x, "w": w} if b is None else {"x": x, "w": w, "b": b}, quiet)
        return y, None, None, None

    return step


def _convolution(applies: Callable[[ConvSpec], bool]) -> Callable[[ConvSpec], bool]:
    return lambda spec: not spec.transposed and applies(spec)


def _transposed(applies: Callable[[ConvSpec], bool]) -> Callable[[ConvSpec], bool]:
    return lambda spec: spec.transposed and applies(spec)


def _negative_padding(spec: ConvSpec) -> bool:
    return any(min(pair) < 0 for pair in spec.padding)


def _past_the_stride(spec: ConvSpec) -> bool:
    """A transposed spec with an output_padding >= stride (PyTorch allows it below the dilation)."""
    return spec.transposed and any(extra >= s for extra, s in zip(spec.output_padding, spec.stride))


# Each example is x (1, 1, 4), w (1, 1, 2) with one feature.
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
def _step(spec: ConvSpec) -> Callable[..., tuple]:
    return OnnxRuntimeBackend().program(spec).build()


@cache
def _probed_limits() -> tuple[Limit, ...]:
    ort = ONNXRUNTIME.load()
    state = ort.capi.onnxruntime_pybind11_state
    refused = tuple(getattr(state, kind) for kind in REFUSALS)
    return probed_limits(PROBES, OnnxRuntimeBackend().run, refused,
                         lambda error: f"ONNX Runtime {ort.__version__} ({PROVIDER}): {error}")


class OnnxRuntimeBackend:
    """Forward-only Conv on ONNX Runtime's CPU provider; gradients are None."""

    name = "onnxruntime"
    # The median seconds per case of a 2-core run of the smoke and default grids in four dtypes (results.csv,
    # 2026-12, cold caches): 2 ms; a framework's 20 GFLOP/s on one core.
    cost = BackendCost(0.002, 0.05)

    def availability(self) -> str | None:
        return ONNXRUNTIME.missing() or ONNX.missing()

    def version(self) -> str:
        return f"{ONNXRUNTIME.load().__version__} ({PROVIDER}, opset {OPSET})"

    @property
    def limits(self) -> tuple[Limit, ...]:
        """One Limit per probe ONNX Runtime refuses, with its reason; empty when it is not installed."""
        return () if self.availability() else _probed_limits()

    def supports(self, spec: ConvSpec) -> str | None:
        return first_limit(self.limits, spec)

    def program(self, spec: ConvSpec) -> Program:
        return Program(onnxruntime_conv, program_arguments(spec, x_shape=spec.x_shape, w_shape=spec.w_shape,
                                                           y_shape=spec.y_shape))

    def run(
        self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray
    ) -> Outputs:
        """x (N, C, *in), w (O, C/groups, *k), b (O,) or None -> (y (N, O, *out), None, None, None).

        Transposed: w (C, O/groups, *k)."""
        return _step(spec)(x, w, b, dy)


@hookimpl
def convparity_register_backends(register):
    register(OnnxRuntimeBackend())
