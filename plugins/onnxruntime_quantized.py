"""Quantized convolutions on ONNX Runtime's CPU provider: QLinearConv and ConvInteger nodes, and QDQ graphs.

Four backends, registered by the onnxruntime plugin (`onnxruntime_backend`'s hook), forward only:

- `onnxruntime-qlinearconv`: one QLinearConv node (`onnxruntime_integer_conv`): x a graph input, w, the int32
  bias and the six scales and zero points initializers, as a quantized model holds them. ONNX Runtime 1.32 has
  kernels for x uint8 with w uint8 or int8 and y uint8, and for x, w, y int8; the other combinations the
  operator admits are refused with its NOT_IMPLEMENTED message (probed limits).
- `onnxruntime-convinteger`: one ConvInteger node, the exact int32 accumulator (plus an int32 Add of the bias):
  x and w uint8 or int8, y int32, no scales.
- `onnxruntime-qdq`: the QDQ graph (DequantizeLinear -> Conv -> [Relu/Clip] -> QuantizeLinear, built by
  `onnxruntime_backend.onnxruntime_conv`) at ORT_ENABLE_ALL, where ONNX Runtime's QDQ transformers turn it into
  a QLinearConv. int8 activations are fused only with the session config entry session.qdqisint8allowed=1,
  which it sets. A Relu or Clip before QuantizeLinear is removed (folded into y's saturation) only where it
  clips nothing y's range keeps; otherwise, and for per-channel x or y scales, a float bias and mixed
  uint8/int8 activations, the graph stays DequantizeLinear, Conv, QuantizeLinear in float32: those specs are a
  limit read from the optimized graph itself (`not_fused`).
- `onnxruntime-qdq-unfused`: the same graph at ORT_DISABLE_ALL: it dequantizes, convolves and runs the whole
  post-op chain in float32 (accumulation float32), then QuantizeLinear.

Rounding (measured, tests/plugins/test_onnxruntime_quantized.py): every one of these rounds real / y_scale half
to even and then adds y's zero point, as ONNX's QuantizeLinear defines it (y = saturate(round(x / y_scale) +
y_zero_point)), so at a tie with an odd zero point the code is not the even one: `half_even_before_zero_point`.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from convparity.plugin import (
    BackendCost,
    ConvSpec,
    Extras,
    Limit,
    Outputs,
    Probe,
    Program,
    first_limit,
    numpy_dtype,
    probed_limits,
    program_arguments,
    tiny_spec,
)
from convparity.plugins.onnxruntime_graphs import (
    ONNX,
    ONNXRUNTIME,
    POST_OPS,
    PROVIDER,
    onnxruntime_conv,
    onnxruntime_integer_conv,
    refusal_reason,
    refusals,
)

EIGHT_BITS = ("uint8", "int8")


def _dtype(x: str, w: str, y: str) -> str:
    """A spec's dtype in its canonical form: one name when the three are the same."""
    return x if x == w == y else f"{x}:{w}:{y}"


# Every x:w:y combination the ONNX operators admit (QLinearConv's T1, T2, T3; QuantizeLinear's 8-bit types).
QLINEAR_TYPES = tuple(_dtype(x, w, y) for x in EIGHT_BITS for w in EIGHT_BITS for y in EIGHT_BITS)
CONVINTEGER_TYPES = tuple(_dtype(x, w, "int32") for x in EIGHT_BITS for w in EIGHT_BITS)
# The combinations ORT_ENABLE_ALL fuses into QLinearConv (with session.qdqisint8allowed=1 for int8 activations).
QDQ_FUSED_TYPES = ("uint8", "uint8:int8:uint8", "int8")
ROUNDING = "half_even_before_zero_point"
INT8_FUSION = (("session.qdqisint8allowed", "1"),)
SCALES = ("x_scale", "w_scale", "y_scale")
ZERO_POINTS = ("x_zero_point", "w_zero_point", "y_zero_point")




def probe_quantization(spec: ConvSpec) -> dict[str, Any]:
    """The spec's scales and zero points, 1 and 0 per channel where it draws them per channel (for a probe)."""
    values: dict[str, Any] = {}
    for name in SCALES + ZERO_POINTS:
        value = getattr(spec.quantization, name)
        shape = spec.per_channel_shapes.get(name)
        values[name] = value if shape is None else np.full(shape, 1.0 if name in SCALES else 0)
    return values


def probe_extras(spec: ConvSpec) -> Extras:
    """Extras for a probe: ones for each operand (in the spec's working float type), probe_quantization."""
    operands = tuple(None if shape is None else np.ones(shape, numpy_dtype(spec.compute_dtype))
                     for shape in spec.operand_shapes)
    return Extras(operands, probe_quantization(spec))


def quantized(spec: ConvSpec, **changes: Any) -> ConvSpec:
    """`spec` with its quantization changed (scales, zero points, bias data type)."""
    return spec.replace(quantization=dataclasses.replace(spec.quantization, **changes))


def _has_dtype(dtype: str) -> Callable[[ConvSpec], bool]:
    return lambda spec: spec.dtype == dtype


def _per_channel(*names: str) -> Callable[[ConvSpec], bool]:
    return lambda spec: any(name in spec.quantization.per_channel for name in names)


def _float_bias(spec: ConvSpec) -> bool:
    return spec.bias_dtype not in (None, "int32")


def _tiny(dtype: str, bias: bool = True, padding: Any = 0, **changes: Any) -> ConvSpec:
    """x (1, 2, 4, 4), w (2, 2, 2, 2) of `dtype` with an int32 bias (or none), quantization changed by `changes`."""
    return quantized(tiny_spec(2, in_channels=2, out_channels=2, dtype=dtype, bias=bias, padding=padding), **changes)


def _negative_padding(spec: ConvSpec) -> bool:
    return any(min(pair) < 0 for pair in spec.padding)


def _crop_probe(typical: str) -> Probe:
    """ONNX's pads are never negative (QLinearConv's and ConvInteger's shape inference say so; found by a search)."""
    return Probe("negative padding (a crop)", _negative_padding, _tiny(typical, padding=((-1, 0), (0, 0))))


def _quantization_probes(dtypes: tuple[str, ...], typical: str) -> tuple[Probe, ...]:
    """One probe per data type, then per-channel x and y scales and zero points and a float bias on `typical`."""
    return (
        *(Probe(f"dtype {dtype}", _has_dtype(dtype), _tiny(dtype)) for dtype in dtypes),
        Probe("x zero point per input channel", _per_channel("x_zero_point"), _tiny(typical,
                                                                                    x_zero_point="per_channel")),
        Probe("x scale per input channel", _per_channel("x_scale"), _tiny(typical, bias=False,
                                                                          x_scale="per_channel")),
        Probe("y scale per output channel", _per_channel("y_scale"), _tiny(typical, y_scale="per_channel")),
        Probe("y zero point per output channel", _per_channel("y_zero_point"),
              _tiny(typical, y_zero_point="per_channel")),
        Probe("bias in real units (a float bias data type)", _float_bias, _tiny(typical, bias_dtype="float32")),
        _crop_probe(typical),
    )


INTEGER_SOURCES = Limit(
    "float data types", "this backend runs quantized ONNX graphs: x and w are 8-bit integer codes",
    lambda spec: not spec.quantized)
RANGES = {"uint8": (0, 255), "int8": (-128, 127), "int32": (-2**31, 2**31 - 1)}


def _zero_point_outside(spec: ConvSpec) -> bool:
    """A zero point its tensor's data type cannot hold: a common one out of range, or one drawn per channel for a
    uint8 tensor (convparity draws them from -2 to 2, benchdnn's set)."""
    for tensor, data_type in zip("xwy", spec.data_types):
        value = getattr(spec.quantization, f"{tensor}_zero_point")
        low, high = RANGES.get(data_type, (0, 0))
        if value == "per_channel" and low == 0 or value != "per_channel" and not low <= value <= high:
            return True
    return False


ZERO_POINT_RANGE = Limit(
    "a zero point outside its tensor's data type (a negative one for uint8)",
    "an ONNX zero point has its tensor's data type (QuantizeLinear, DequantizeLinear, QLinearConv, ConvInteger)",
    lambda spec: spec.quantized and _zero_point_outside(spec))


class _QuantizedBackend:
    """What the four backends share: availability, version, limits, run."""

    name = ""
    optimization = "all"
    data_types: tuple[str, ...] = ()
    post_ops: tuple[str, ...] = ()
    session_config: tuple[tuple[str, str], ...] = ()
    probes: tuple[Probe, ...] = ()
    fixed_limits: tuple[Limit, ...] = (INTEGER_SOURCES, ZERO_POINT_RANGE)
    # Measured (2026-12, 2-core machine under load): median `seconds` per case of the int8 grid 1.4 to 1.7 ms (7 ms
    # for ConvInteger's two cases), a session built per case; per_gflop as the float backend's.
    cost = BackendCost(0.003, 0.05)

    def availability(self) -> str | None:
        return ONNXRUNTIME.missing() or ONNX.missing()

    def version(self) -> str:
        level = {"all": "ORT_ENABLE_ALL", "disable": "ORT_DISABLE_ALL"}[self.optimization]
        return f"{ONNXRUNTIME.load().__version__} ({PROVIDER}, opset 22, {level})"

    @property
    def limits(self) -> tuple[Limit, ...]:
        """The fixed limits, then one per probe ONNX Runtime refuses (none of those when it is not installed)."""
        return self.fixed_limits + (() if self.availability() else _probed_limits(self.name))

    def supports(self, spec: ConvSpec) -> str | None:
        return first_limit(self.limits, spec)

    def program(self, spec: ConvSpec) -> Program:
        raise NotImplementedError

    def run(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray | None,
            extras: Extras | None = None) -> Outputs:
        """x (N, C, *in) and w (O, C/groups, *k) as codes, b (O,) int32 or None -> (y (N, O, *out) codes, None, None,
        None); extras carries the scales and zero points (and the post-ops' operands)."""
        extras = extras if extras is not None else probe_extras(spec)
        return _step(self.name, spec)(x, w, b, dy, operands=tuple(extras.operands),
                                      quantization=dict(extras.quantization))


class QLinearConvBackend(_QuantizedBackend):
    """One QLinearConv node: integer accumulation, requantization in float32."""

    name = "onnxruntime-qlinearconv"
    operator = "QLinearConv"
    data_types = QLINEAR_TYPES
    rounding = dict.fromkeys(QLINEAR_TYPES, ROUNDING)
    probes = _quantization_probes(QLINEAR_TYPES, "int8")

    def program(self, spec: ConvSpec) -> Program:
        return Program(onnxruntime_integer_conv, program_arguments(
            spec, operator=self.operator, x_shape=spec.x_shape, w_shape=spec.w_shape, y_shape=spec.y_shape,
            optimization=self.optimization))


def _scaled(spec: ConvSpec) -> bool:
    q = spec.quantization
    return any(getattr(q, name) != 1 for name in SCALES) or q.y_zero_point != 0


class ConvIntegerBackend(QLinearConvBackend):
    """One ConvInteger node (and an int32 Add of the bias): the exact accumulator."""

    name = "onnxruntime-convinteger"
    operator = "ConvInteger"
    data_types = CONVINTEGER_TYPES
    rounding: dict[str, str] = {}
    fixed_limits = (INTEGER_SOURCES, ZERO_POINT_RANGE, Limit(
        "scales or a y zero point", "ConvInteger computes the int32 accumulator (x - x_zero_point) (w - "
        "w_zero_point); it takes no scales", _scaled), Limit(
        "bias in real units (a float bias data type)", "ConvInteger's int32 accumulator takes an int32 bias, in "
        "accumulator steps", _float_bias))
    probes = (*(Probe(f"dtype {dtype}", _has_dtype(dtype), _tiny(dtype)) for dtype in CONVINTEGER_TYPES),
              Probe("x zero point per input channel", _per_channel("x_zero_point"),
                    _tiny("uint8:int8:int32", x_zero_point="per_channel")),
              _crop_probe("uint8:int8:int32"))


class QdqBackend(_QuantizedBackend):
    """The QDQ graph at ORT_ENABLE_ALL: fused into a QLinearConv (specs it leaves unfused are a limit)."""

    name = "onnxruntime-qdq"
    optimization = "all"
    session_config: tuple[tuple[str, str], ...] = INT8_FUSION
    data_types: tuple[str, ...] = QDQ_FUSED_TYPES
    rounding = dict.fromkeys(QDQ_FUSED_TYPES, ROUNDING)
    post_ops: tuple[str, ...] = ("relu", "clip")
    # ORT_ENABLE_ALL fuses a per-output-channel QuantizeLinear into a QLinearConv whose kernel then refuses it.
    probes: tuple[Probe, ...] = (
        Probe("y scale per output channel", _per_channel("y_scale"), _tiny("int8", y_scale="per_channel")),
        Probe("y zero point per output channel", _per_channel("y_zero_point"),
              _tiny("int8", y_zero_point="per_channel")),
        _crop_probe("int8"))

    @staticmethod
    def refusal_reason(error: BaseException) -> str:
        return ("ORT_ENABLE_ALL fuses the QDQ graph into a QLinearConv that refuses it when run (the same graph runs "
                f"at ORT_DISABLE_ALL: onnxruntime-qdq-unfused): {refusal_reason(error)}")

    @property
    def fixed_limits(self) -> tuple[Limit, ...]:  # type: ignore[override]
        return (INTEGER_SOURCES, ZERO_POINT_RANGE, Limit(
            "a QDQ graph ONNX Runtime does not fuse into QLinearConv",
            "ORT_ENABLE_ALL (session.qdqisint8allowed=1) leaves DequantizeLinear -> Conv -> QuantizeLinear in "
            "float32 (read from the optimized graph): per-channel x or y scales or zero points, a float bias, mixed "
            "uint8/int8 activations, or a Relu/Clip that clips inside y's range; onnxruntime-qdq-unfused computes "
            "them", lambda spec: spec.quantized and not fused(spec)))

    def program(self, spec: ConvSpec, optimized_model: str | None = None) -> Program:
        extra = {} if optimized_model is None else {"optimized_model": optimized_model}
        return Program(onnxruntime_conv, program_arguments(
            spec, x_shape=spec.x_shape, w_shape=spec.w_shape, y_shape=spec.y_shape, optimization=self.optimization,
            session_config=self.session_config, **extra))


class QdqUnfusedBackend(QdqBackend):
    """The QDQ graph at ORT_DISABLE_ALL: dequantized, convolved and post-processed in float32, then quantized."""

    name = "onnxruntime-qdq-unfused"
    optimization = "disable"
    session_config = ()
    data_types = QLINEAR_TYPES
    rounding = dict.fromkeys(QLINEAR_TYPES, ROUNDING)
    accumulation = dict.fromkeys(QLINEAR_TYPES, "float32")
    post_ops = POST_OPS
    probes = _quantization_probes(QLINEAR_TYPES, "int8")
    refusal_reason = staticmethod(refusal_reason)

    @property
    def fixed_limits(self) -> tuple[Limit, ...]:  # type: ignore[override]
        return (INTEGER_SOURCES, ZERO_POINT_RANGE)


def optimized_graph(spec: ConvSpec) -> tuple[str, ...]:
    """The op types of the graph ORT_ENABLE_ALL makes of the spec's QDQ graph (onnxruntime-qdq's session options),
    written when its session is built (and run once on zeros with probe_extras: a refusal then is not raised)."""
    backend = BACKENDS["onnxruntime-qdq"]
    assert isinstance(backend, QdqBackend)
    onnx = ONNX.load()
    src, wei, _ = spec.data_types
    x = np.zeros(spec.x_shape, numpy_dtype(src))
    w = np.zeros(spec.w_shape, numpy_dtype(wei))
    b = None if not spec.bias else np.zeros(spec.out_channels, numpy_dtype(spec.bias_dtype or "int32"))
    extras = probe_extras(spec)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "optimized.onnx"
        step = backend.program(spec, optimized_model=str(path)).build()
        try:
            step(x, w, b, None, operands=extras.operands, quantization=extras.quantization)
        except refusals():
            if not path.exists():  # refused before its optimized graph was written
                raise
        return tuple(node.op_type for node in onnx.load(str(path)).graph.node)


@lru_cache(maxsize=1024)
def fused(spec: ConvSpec) -> bool:
    """Whether ONNX Runtime turns the spec's QDQ graph into a QLinearConv (its optimized graph holds one)."""
    if not spec.quantized or not set(spec.data_types) <= set(EIGHT_BITS) or _zero_point_outside(spec):
        return False
    try:
        return "QLinearConv" in optimized_graph(spec)
    except refusals():
        return False


@lru_cache(maxsize=256)
def _step(name: str, spec: ConvSpec) -> Callable[..., tuple]:
    return BACKENDS[name].program(spec).build()


@cache
def _probed_limits(name: str) -> tuple[Limit, ...]:
    backend = BACKENDS[name]
    return probed_limits(backend.probes, backend.run, refusals(), getattr(backend, "refusal_reason", refusal_reason))


BACKENDS: dict[str, _QuantizedBackend] = {backend.name: backend for backend in (
    QLinearConvBackend(), ConvIntegerBackend(), QdqBackend(), QdqUnfusedBackend())}
