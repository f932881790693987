"""Backend `openvino`: an OpenVINO model with one Convolution or GroupConvolution node, on the CPU plugin.

Forward only: a compiled OpenVINO model computes y; dx, dw and db come back as None (`unsupported` rows).
The model is built with OpenVINO's Python opset API: Parameters x (N, C, *in) and w (O, C/groups, *k) in
the spec's element type, GroupConvolution over w reshaped to (groups, O/groups, C/groups, *k) when
groups > 1, and with a bias an Add of a Parameter b of shape (1, O, 1, ...). Negative pads (crops) are a
Slice of x before the convolution: the CPU plugin accepts the model with negative `pads_begin` but
fails to compile it ("could not construct a memory descriptor using a format tag"). One compiled model
per spec, cached and reused.

Precision: the CPU plugin chooses its inference precision, and on CPUs with bf16 support its default is
bf16, so a float32 model would run its Convolution in bf16. Every model here is compiled with
INFERENCE_PRECISION_HINT f32; the precision each dtype's Convolution then really runs in is read back
from the compiled model's runtime graph (`runtimePrecision`) and recorded in `version()`. The CPU plugin
has no f64 kernels (its inference precisions are f32, bf16, f16): a float64 model runs in f32, which
the probed float64 limit says in the plugin's own terms. openvino is imported only when first needed.
"""

from __future__ import annotations

import os
from functools import cache, lru_cache
from importlib import metadata
from types import ModuleType

import ml_dtypes
import numpy as np

from convparity.harness.backends.contract import Outputs, missing_framework
from convparity.harness.backends.deviations import Deviation
from convparity.harness.backends.hookspecs import hookimpl
from convparity.harness.backends.limits import CONVOLUTION_ONLY, DeclaredLimits, Limit
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.vocabulary import DTYPES

DEVICE = "CPU"
PRECISION_HINT = "f32"
ELEMENT_TYPES = {"float64": "f64", "float32": "f32", "float16": "f16", "bfloat16": "bf16"}
# Runtime precisions by width, to tell a Convolution that runs narrower than its model's dtype.
BITS = {"f64": 64, "f32": 32, "f16": 16, "bf16": 16}

# Evidence: tests/plugins/test_openvino.py::test_bfloat16_bias_is_rounded_twice_where_the_add_is_not_fused.
DEVIATIONS = (
    Deviation(
        condition="bias, bfloat16",
        reason="where the CPU plugin keeps the bias Add as its own bf16 Eltwise node (it fuses it into the "
        "Convolution only for some shapes), the convolution is rounded to bf16 before b is added (two roundings). "
        "Repro: bf16 model y = Add(Convolution(x, w), b), x = ones (1, 2, 4, 4), w = [256, 1] (1, 2, 1, 1), b = [1]: "
        "y = 256, not 258 (x of shape (1, 2, 1, 1) fuses the Add and gives 258)",
        upstream="a precision choice, not reported",
        dtypes=("bfloat16",),
        tensors=("y",),
        bias=True,
        strict=False,
    ),
)


@cache
def _openvino() -> tuple[ModuleType, ModuleType]:
    """(openvino, its opset13 module)."""
    import openvino
    import openvino.opset13

    return openvino, openvino.opset13


def conv_model(spec: ConvSpec):
    """An ov.Model: y = [Group]Convolution(crop(x), w) [+ b], Parameters named x, w[, b]."""
    ov, ops = _openvino()
    element = getattr(ov.Type, ELEMENT_TYPES[spec.dtype])
    x = ops.parameter(list(spec.x_shape), element, name="x")
    w = ops.parameter(list(spec.w_shape), element, name="w")
    data = x
    if any(min(pair) < 0 for pair in spec.padding):
        axes = np.arange(2, 2 + spec.rank, dtype=np.int64)
        start = np.array([max(-before, 0) for before, _ in spec.padding], np.int64)
        stop = np.array([after if after < 0 else np.iinfo(np.int64).max for _, after in spec.padding], np.int64)
        data = ops.slice(x, start, stop, np.ones(spec.rank, np.int64), axes)
    geometry = {
        "strides": list(spec.stride),
        "pads_begin": [max(before, 0) for before, _ in spec.padding],
        "pads_end": [max(after, 0) for _, after in spec.padding],
        "dilations": list(spec.dilation),
    }
    if spec.groups == 1:
        y = ops.convolution(data, w, **geometry)
    else:
        per_group = [spec.groups, spec.out_channels // spec.groups, *spec.w_shape[1:]]
        grouped = ops.reshape(w, ops.constant(np.array(per_group, np.int64)), special_zero=False)
        y = ops.group_convolution(data, grouped, **geometry)
    parameters = [x, w]
    if spec.bias:
        b = ops.parameter([1, spec.out_channels] + [1] * spec.rank, element, name="b")
        y = ops.add(y, b)
        parameters.append(b)
    return ov.Model([y], parameters, "conv")


@cache
def _core():
    ov, _ = _openvino()
    return ov.Core()


@lru_cache(maxsize=256)
def compiled_model(spec: ConvSpec):
    """conv_model(spec) compiled for the CPU plugin with the f32 precision hint."""
    config = {"INFERENCE_PRECISION_HINT": PRECISION_HINT}
    # The CPU plugin sizes its thread pool by the cores: follow the runner's per-worker setting.
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit():
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return _core().compile_model(conv_model(spec), DEVICE, config)


def convolution_precision(compiled) -> str:
    """The runtimePrecision of the Convolution in a compiled model's runtime graph, e.g. "f32"."""
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) == "Convolution":
            return info["runtimePrecision"].astype(str)
    raise LookupError("the runtime model has no Convolution node")


def _tiny(dtype: str) -> ConvSpec:
    return ConvSpec(batch=1, in_channels=2, out_channels=2, input_size=(5, 5), kernel_size=(3, 3), dtype=dtype)


@cache
def runtime_precisions() -> dict[str, str]:
    """{dtype: the precision the CPU plugin runs that dtype's Convolution in}, probed on a tiny model."""
    return {dtype: convolution_precision(compiled_model(_tiny(dtype))) for dtype in DTYPES}


@cache
def _probed_limits() -> tuple[Limit, ...]:
    """A limit for each dtype whose Convolution the CPU plugin runs in a narrower precision."""
    ov, _ = _openvino()
    limits = []
    for dtype, precision in runtime_precisions().items():
        if BITS[precision] < BITS[ELEMENT_TYPES[dtype]]:
            reason = (f"OpenVINO {ov.get_version()} {DEVICE} plugin runs the Convolution of a {ELEMENT_TYPES[dtype]} "
                      f"model in {precision} (compiled model's runtime graph: runtimePrecision={precision}; "
                      "the CPU plugin's inference precisions are f32, bf16 and f16)")
            limits.append(Limit(f"dtype {dtype}", reason, lambda spec, dtype=dtype: spec.dtype == dtype))
    return tuple(limits)


def _tensor(array: np.ndarray):
    """An ov.Tensor of the array; bfloat16 arrays are passed as their bits with element type bf16."""
    ov, _ = _openvino()
    array = np.ascontiguousarray(array)
    if array.dtype == ml_dtypes.bfloat16:
        return ov.Tensor(array.view(np.uint16), array.shape, ov.Type.bf16)
    return ov.Tensor(array)


class OpenVinoBackend(DeclaredLimits):
    """Forward-only Convolution on OpenVINO's CPU plugin at f32 inference precision; gradients are None."""

    name = "openvino"
    deviations = DEVIATIONS

    def availability(self) -> str | None:
        return missing_framework(_openvino, "openvino", "openvino")

    def version(self) -> str:
        ov, _ = _openvino()
        cpu = _core().get_property(DEVICE, "FULL_DEVICE_NAME")
        precisions = ", ".join(f"{dtype} in {precision}" for dtype, precision in runtime_precisions().items())
        return (f"{metadata.version('openvino')} ({ov.get_version()}; {DEVICE} plugin on {cpu}; "
                f"INFERENCE_PRECISION_HINT {PRECISION_HINT}; Convolution runs {precisions})")

    @property
    def limits(self) -> tuple[Limit, ...]:
        """The probed precision limits; empty when openvino is not installed."""
        return (CONVOLUTION_ONLY,) + (() if self.availability() else _probed_limits())

    def run(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray) -> Outputs:
        """x (N, C, *in), w (O, C/groups, *k), b (O,) or None -> (y (N, O, *out), None, None, None)."""
        inputs = [x, w] if b is None else [x, w, b.reshape((1, -1) + (1,) * spec.rank)]
        request = compiled_model(spec).create_infer_request()
        request.infer([_tensor(a) for a in inputs])
        y = request.get_output_tensor(0).data
        if spec.dtype == "bfloat16":  # .data shows bf16 bits through a float16 view
            y = y.view(np.uint16).view(ml_dtypes.bfloat16)
        return np.array(y), None, None, None


@hookimpl
def convparity_register_backends(register):
    register(OpenVinoBackend())
