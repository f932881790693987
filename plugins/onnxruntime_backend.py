"""Backend `onnxruntime`: one ONNX `Conv` (or `ConvTranspose`) node per spec, run by ONNX Runtime's CPU provider.

Forward only: ONNX Runtime's inference sessions compute y, so dx, dw and db come back as None and
their rows read `unsupported`. The model has inputs x (N, C, *in), w (O, C/groups, *k) and, with a
bias, b (O,), in the spec's dtype; pads are ONNX's [before..., after...]. A transposed spec is a
`ConvTranspose` node with w (C, O/groups, *k), the same pads and its output_padding. One session per
spec is cached and reused.

Limits are probes, not guesses: each `Probe` is a tiny model showing one feature (a dtype, a
negative pad); when ONNX Runtime refuses to build a session for it or to run it, its own error text becomes the
reason of a `Limit` covering every spec with that feature. A newer ONNX Runtime that adds, say, a
float64 Conv kernel drops that limit by itself. onnx and onnxruntime are imported lazily.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from types import ModuleType

import numpy as np

from convparity.harness.backends.contract import Outputs, missing_framework
from convparity.harness.backends.hookspecs import hookimpl
from convparity.harness.backends.limits import DeclaredLimits, Limit
from convparity.harness.cases.inputs import Inputs, make_inputs
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.vocabulary import DTYPES

PROVIDER = "CPUExecutionProvider"
# Conv-22 and ConvTranspose-22 are the newest; they are the first to admit bfloat16.
OPSET = 22
# The exceptions onnxruntime raises for a model it will not build a session for.
REFUSALS = ("Fail", "InvalidArgument", "InvalidGraph", "NotImplemented")
ELEMENT_TYPES = {"float64": "DOUBLE", "float32": "FLOAT", "float16": "FLOAT16", "bfloat16": "BFLOAT16"}


@cache
def _modules() -> tuple[ModuleType, ModuleType]:
    """(onnx, onnxruntime)."""
    import onnx
    import onnxruntime

    return onnx, onnxruntime


def conv_model(spec: ConvSpec) -> bytes:
    """A serialized ONNX model: y = Conv(x, w[, b]) (ConvTranspose if transposed) with the spec's geometry and dtype."""
    onnx, _ = _modules()
    helper = onnx.helper
    element = getattr(onnx.TensorProto, ELEMENT_TYPES[spec.dtype])
    names = ["x", "w", "b"] if spec.bias else ["x", "w"]
    shapes = {"x": spec.x_shape, "w": spec.w_shape, "b": (spec.out_channels,)}
    extra = {"output_padding": list(spec.output_padding)} if spec.transposed else {}
    node = helper.make_node(
        "ConvTranspose" if spec.transposed else "Conv", names, ["y"],
        kernel_shape=list(spec.kernel_size),
        strides=list(spec.stride),
        dilations=list(spec.dilation),
        pads=[before for before, _ in spec.padding] + [after for _, after in spec.padding],
        group=spec.groups,
        **extra,
    )
    graph = helper.make_graph(
        [node], "conv",
        [helper.make_tensor_value_info(name, element, list(shapes[name])) for name in names],
        [helper.make_tensor_value_info("y", element, list(spec.y_shape))],
    )
    opsets = [helper.make_opsetid("", OPSET)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets),
                              producer_name="convparity")
    return model.SerializeToString()


@lru_cache(maxsize=256)
def _session(spec: ConvSpec):
    _, ort = _modules()
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: ORT's warnings would flood a sweep's output
    # ORT sizes its thread pool by the cores, not OMP_NUM_THREADS: follow the runner's per-worker setting.
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit():
        options.intra_op_num_threads = int(threads)
    return ort.InferenceSession(conv_model(spec), options, providers=[PROVIDER])


@dataclass(frozen=True)
class Probe:
    """A feature ONNX Runtime may refuse: `applies` picks the specs with it, `example` is a tiny one."""

    condition: str
    applies: Callable[[ConvSpec], bool]
    example: ConvSpec


def _tiny(**fields) -> ConvSpec:
    """x (1, 1, 4), w (1, 1, 2): the smallest spec that shows one feature."""
    return ConvSpec(batch=1, in_channels=1, out_channels=1, input_size=(4,), kernel_size=(2,), **fields)


def _past_the_stride(spec: ConvSpec) -> bool:
    """A transposed spec with an output_padding >= stride (PyTorch allows it below the dilation)."""
    return spec.transposed and any(extra >= s for extra, s in zip(spec.output_padding, spec.stride))


PROBES = tuple(
    Probe(f"dtype {name}", lambda spec, name=name: not spec.transposed and spec.dtype == name, _tiny(dtype=name))
    for name in DTYPES
) + (
    Probe(
        "negative padding (a crop)",
        lambda spec: not spec.transposed and any(min(pair) < 0 for pair in spec.padding),
        _tiny(padding=((-1, 0),)),
    ),
) + tuple(
    Probe(f"transposed, dtype {name}", lambda spec, name=name: spec.transposed and spec.dtype == name,
          _tiny(dtype=name, transposed=True))
    for name in DTYPES
) + (
    Probe(
        "transposed, negative padding",
        lambda spec: spec.transposed and any(min(pair) < 0 for pair in spec.padding),
        _tiny(padding=((-1, 0),), transposed=True),
    ),
    Probe("transposed, output_padding >= stride (below the dilation)", _past_the_stride,
          _tiny(dilation=2, output_padding=1, transposed=True)),
)


def refusal(probe: Probe) -> str | None:
    """ONNX Runtime's error text when it cannot build a session for the probe's example or run it, else None."""
    _, ort = _modules()
    state = ort.capi.onnxruntime_pybind11_state
    refused = tuple(getattr(state, kind) for kind in REFUSALS)
    try:
        _run(probe.example, make_inputs(probe.example, 0))
    except refused as error:
        return f"ONNX Runtime {ort.__version__} ({PROVIDER}): {error}"
    return None


class OnnxRuntimeBackend(DeclaredLimits):
    """Forward-only Conv on ONNX Runtime's CPU provider; gradients are None."""

    name = "onnxruntime"

    def availability(self) -> str | None:
        return missing_framework(_modules, "onnxruntime or onnx", "onnxruntime")

    def version(self) -> str:
        _, ort = _modules()
        return f"{ort.__version__} ({PROVIDER}, opset {OPSET})"

    @property
    def limits(self) -> tuple[Limit, ...]:
        """One Limit per probe ONNX Runtime refuses, with its reason; empty when it is not installed."""
        return () if self.availability() else _probed_limits()

    def run(
        self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray
    ) -> Outputs:
        """x (N, C, *in), w (O, C/groups, *k), b (O,) or None -> (y (N, O, *out), None, None, None).

        Transposed: w (C, O/groups, *k)."""
        return _run(spec, Inputs(x, w, b, dy)), None, None, None


def _run(spec: ConvSpec, inputs: Inputs) -> np.ndarray:
    """y of the spec's session for x, w and b."""
    feeds = {"x": inputs.x, "w": inputs.w} if inputs.b is None else {"x": inputs.x, "w": inputs.w, "b": inputs.b}
    _, ort = _modules()
    quiet = ort.RunOptions()
    quiet.log_severity_level = 4  # a refusal is raised with its message: not logged to stderr as well
    (y,) = _session(spec).run(["y"], feeds, quiet)
    return y


@cache
def _probed_limits() -> tuple[Limit, ...]:
    reasons = ((probe, refusal(probe)) for probe in PROBES)
    return tuple(Limit(probe.condition, reason, probe.applies) for probe, reason in reasons if reason)


@hookimpl
def convparity_register_backends(register):
    register(OnnxRuntimeBackend())
