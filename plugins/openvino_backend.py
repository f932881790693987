"""Backend `openvino`: an OpenVINO model with one Convolution or GroupConvolution node, on the CPU plugin.

Forward only: a compiled OpenVINO model computes y; dx, dw and db come back as None (`unsupported` rows).
The model is built with OpenVINO's Python opset API: Parameters x (N, C, *in) and w (O, C/groups, *k) in
the spec's element type, GroupConvolution over w reshaped to (groups, O/groups, C/groups, *k) when
groups > 1, and with a bias an Add of a Parameter b of shape (1, O, 1, ...). Negative pads (crops) are a
Slice of x before the convolution: the CPU plugin accepts the model with negative `pads_begin` but
fails to compile it ("could not construct a memory descriptor using a format tag"). The whole of it is
`openvino_conv` (the backend's program); one compiled model per spec, built and reused.

Precision: the CPU plugin chooses its inference precision, and on CPUs with bf16 support its default is
bf16, so a float32 model would run its Convolution in bf16. Every model here is compiled with
INFERENCE_PRECISION_HINT f32; the precision each dtype's Convolution then really runs in is read back
from the compiled model's runtime graph (`runtimePrecision`) and recorded in `version()`. The CPU plugin
has no f64 kernels (its inference precisions are f32, bf16, f16): a float64 model runs in f32, which
the probed float64 limit says in the plugin's own terms. openvino is imported only when first needed.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any

import numpy as np

from convparity.plugin import (
    CONVOLUTION_ONLY,
    BackendCost,
    ConvSpec,
    Deviation,
    Framework,
    Limit,
    Outputs,
    Program,
    dtype_probes,
    first_limit,
    hookimpl,
    installed_version,
    probed_limits,
    program_arguments,
)

OPENVINO = Framework("openvino", "openvino")
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


def openvino_conv(*, stride, padding, dilation, groups, dtype, bias, x_shape, w_shape):
    """y = [Group]Convolution(crop(x), w) [+ b] as an OpenVINO model (opset13), compiled for the CPU plugin at
    INFERENCE_PRECISION_HINT f32. Forward only: step(x, w, b, dy) -> (y, None, None, None).

    step.compiled_model is the compiled model: its runtime graph says the precision each node runs in."""
    import os

    import numpy as np
    import openvino as ov
    import openvino.opset13 as ops

    element = {"float64": ov.Type.f64, "float32": ov.Type.f32, "float16": ov.Type.f16, "bfloat16": ov.Type.bf16}[dtype]
    rank = len(x_shape) - 2
    x = ops.parameter(list(x_shape), element, name="x")
    w = ops.parameter(list(w_shape), element, name="w")
    data = x
    if any(min(pair) < 0 for pair in padding):  # a crop: the CPU plugin fails to compile negative pads_begin
        start = np.array([max(-before, 0) for before, _ in padding], np.int64)
        stop = np.array([after if after < 0 else np.iinfo(np.int64).max for _, after in padding], np.int64)
        data = ops.slice(x, start, stop, np.ones(rank, np.int64), np.arange(2, 2 + rank, dtype=np.int64))
    geometry = dict(strides=list(stride), pads_begin=[max(before, 0) for before, _ in padding],
                    pads_end=[max(after, 0) for _, after in padding], dilations=list(dilation))
    if groups == 1:
        y = ops.convolution(data, w, **geometry)
    else:  # w (O, C/groups, *k) as (groups, O/groups, C/groups, *k)
        per_group = [groups, w_shape[0] // groups, *w_shape[1:]]
        y = ops.group_convolution(data, ops.reshape(w, ops.constant(np.array(per_group, np.int64)), special_zero=False),
                                  **geometry)
    parameters = [x, w]
    if bias:
        b = ops.parameter([1, w_shape[0]] + [1] * rank, element, name="b")
        y = ops.add(y, b)
        parameters.append(b)
    config = {"INFERENCE_PRECISION_HINT": "f32"}  # the CPU plugin's default is bf16 on CPUs that have it
    threads = os.environ.get("OMP_NUM_THREADS", "")  # the CPU plugin sizes its thread pool by the cores otherwise
    if threads.isdigit():
        config["INFERENCE_NUM_THREADS"] = int(threads)
    compiled = ov.Core().compile_model(ov.Model([y], parameters, "conv"), "CPU", config)

    def tensor(array):  # bfloat16 (ml_dtypes) as its bits, with element type bf16
        array = np.ascontiguousarray(array)
        if array.dtype.name == "bfloat16":
            return ov.Tensor(array.view(np.uint16), array.shape, ov.Type.bf16)
        return ov.Tensor(array)

    def step(x, w, b, dy):
        inputs = [x, w] if b is None else [x, w, b.reshape((1, -1) + (1,) * rank)]
        request = compiled.create_infer_request()
        request.infer([tensor(a) for a in inputs])
        y = request.get_output_tensor(0).data
        if dtype == "bfloat16":  # .data shows bf16 bits through a float16 view
            import ml_dtypes

            y = y.view(np.uint16).view(ml_dtypes.bfloat16)
        return np.array(y), None, None, None

    step.compiled_model = compiled
    return step


@lru_cache(maxsize=256)
def _step(spec: ConvSpec) -> Any:
    """openvino_conv's step for the spec (with its compiled_model), built once."""
    return OpenVinoBackend().program(spec).build()


def convolution_precision(compiled) -> str:
    """The runtimePrecision of the Convolution in a compiled model's runtime graph, e.g. "f32"."""
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) == "Convolution":
            return info["runtimePrecision"].astype(str)
    raise LookupError("the runtime model has no Convolution node")


# A tiny convolution per dtype: x (1, 2, 5, 5), w (2, 2, 3, 3).
PROBES = dtype_probes(2, in_channels=2, out_channels=2, input_size=(5, 5), kernel_size=(3, 3))


@cache
def runtime_precisions() -> dict[str, str]:
    """{dtype: the precision the CPU plugin runs that dtype's Convolution in}, read from each probe's model."""
    return {probe.example.dtype: convolution_precision(_step(probe.example).compiled_model) for probe in PROBES}


class NarrowerPrecision(Exception):
    """The CPU plugin runs a model's Convolution in a narrower precision than the model's dtype."""


def _precision_check(spec: ConvSpec, *inputs: object) -> None:
    """Raises NarrowerPrecision, saying so in OpenVINO's terms, where the spec's Convolution runs narrower."""
    model_precision = ELEMENT_TYPES[spec.dtype]
    precision = runtime_precisions()[spec.dtype]
    if BITS[precision] < BITS[model_precision]:
        raise NarrowerPrecision(
            f"OpenVINO {OPENVINO.load().get_version()} {DEVICE} plugin runs the Convolution of a {model_precision} "
            f"model in {precision} (compiled model's runtime graph: runtimePrecision={precision}; "
            "the CPU plugin's inference precisions are f32, bf16 and f16)")


@cache
def _probed_limits() -> tuple[Limit, ...]:
    """A limit for each dtype whose Convolution the CPU plugin runs in a narrower precision."""
    return probed_limits(PROBES, _precision_check, (NarrowerPrecision,), str)


class OpenVinoBackend:
    """Forward-only Convolution on OpenVINO's CPU plugin at f32 inference precision; gradients are None."""

    name = "openvino"
    deviations = DEVIATIONS
    # Measured (2026-12, 2-core machine): `convparity run -b openvino -g smoke --dtype float32 --compile-cache off`,
    # median `seconds` per case of results.csv 0.060 (compiling each case's model dominates); per_gflop assumed.
    cost = BackendCost(0.06, 0.05)

    def availability(self) -> str | None:
        return OPENVINO.missing()

    def version(self) -> str:
        ov = OPENVINO.load()
        cpu = ov.Core().get_property(DEVICE, "FULL_DEVICE_NAME")
        precisions = ", ".join(f"{dtype} in {precision}" for dtype, precision in runtime_precisions().items())
        return (f"{installed_version('openvino')} ({ov.get_version()}; {DEVICE} plugin on {cpu}; "
                f"INFERENCE_PRECISION_HINT {PRECISION_HINT}; Convolution runs {precisions})")

    @property
    def limits(self) -> tuple[Limit, ...]:
        """The probed precision limits; empty when openvino is not installed."""
        return (CONVOLUTION_ONLY,) + (() if self.availability() else _probed_limits())

    def supports(self, spec: ConvSpec) -> str | None:
        return first_limit(self.limits, spec)

    def program(self, spec: ConvSpec) -> Program:
        return Program(openvino_conv, program_arguments(spec, x_shape=spec.x_shape, w_shape=spec.w_shape))

    def run(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray) -> Outputs:
        """x (N, C, *in), w (O, C/groups, *k), b (O,) or None -> (y (N, O, *out), None, None, None)."""
        return _step(spec)(x, w, b, dy)


@hookimpl
def convparity_register_backends(register):
    register(OpenVinoBackend())
