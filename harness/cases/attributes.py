"""What a convolution carries beyond its shapes: a post-op chain and quantization, in benchdnn's option grammar.

A spec's attributes print as benchdnn options before its descriptor (`ConvSpec.descriptor`), and read back
from them (`read_options`), so one line names a case whole:

    --attr-post-ops=sum:0.5+relu --attr-scales=src:common:0.25+wei:per_oc --bia-dt=s32 g1mb2ic16ih8oc16oh8kh3ph1

- `--attr-post-ops=STEP+STEP...` (benchdnn's `str2attr_post_ops`): an eltwise `KIND[:ALPHA[:BETA]]` (a
  further field is read and ignored, as benchdnn ignores it), `sum[:SCALE[:ZERO_POINT[:DT]]]`,
  `KIND:DT[:MASK[:TAG[:STRIDES]]]` for a binary op (add, sub, mul, div, max, min, with or without `binary_`;
  the tag and strides choose src1's memory layout, which changes no value, and are dropped), `prelu[:MASK]`,
  and convparity's `batchnorm[:EPS]` (inference batchnorm, eps 1e-5 by default). A MASK is an int or a
  policy: common (0), per_oc / per_dim_1 (2), per_dim_0 (1), per_dim_01 (3), per_dim_2 (4), per_dim_3 (8),
  per_tensor (every dim). Kinds and policies are case-insensitive; `eltwise_` may prefix an eltwise kind.
  benchdnn gives no defaults beyond 0 for alpha and beta: `hardswish` alone is x * clip(0, 0, 1) = 0, so
  PyTorch's hardswish is `hardswish:0.16666667:0.5`.
- `--attr-scales=ARG:POLICY[:SCALE][:DT]+...` and `--attr-zero-points=ARG:POLICY[:VALUE][:DT]+...`:
  ARG src (or src0), wei or dst; POLICY common / host_scalar (one value, given; default 1 for a scale, 0
  for a zero point) or per-channel: per_oc or per_dim_1 for src (per input channel) and dst (per output
  channel), per_oc or per_dim_0 (mask 1, or 3 when grouped) for wei scales (per output channel). A
  per-channel value is drawn with the case's inputs (benchdnn's sets: scales 1/16, 1/8, 1/4; zero points
  -2 to 2). A scale's DT is read and ignored: every value convparity uses is exact in bf16 and f16.
- `--bia-dt=DT`: the bias data type of an integer convolution: s32 (in accumulator steps, ONNX's
  convention and the default for 8-bit sources) or a float type (in real units, benchdnn's).
- `--rounding=MODE`: the rounding of an integer destination (convparity's; half_even by default, see
  convparity.reference_impl.quantized.ROUNDING_MODES).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from convparity.reference_impl.post_ops import BINARY, ELTWISE, ELTWISE_ALIASES, PostOp
from convparity.reference_impl.quantized import check_rounding

PER_CHANNEL: Literal["per_channel"] = "per_channel"
Scale = float | Literal["per_channel"]
ZeroPoint = int | Literal["per_channel"]
BENCHDNN_TYPES = {"f64": "float64", "f32": "float32", "f16": "float16", "bf16": "bfloat16",
                  "f8_e4m3": "float8_e4m3", "f8_e5m2": "float8_e5m2", "s8": "int8", "u8": "uint8", "s32": "int32"}
SHORT_TYPES = {long: short for short, long in BENCHDNN_TYPES.items()}
DEFAULT_BATCHNORM_EPS = 1e-5
POLICIES = {"common": 0, "host_scalar": 0, "per_dim_0": 1, "per_oc": 2, "per_dim_1": 2, "per_dim_01": 3,
            "per_ocic": 3, "per_dim_2": 4, "per_dim_3": 8}
# Operand data types a binary or sum post-op may name; values are drawn exact in each, so none changes a result.
OPERAND_TYPES = tuple(BENCHDNN_TYPES)


class AttributeOptionError(ValueError):
    """An attribute option that does not parse; the message names the option and the entry."""


@dataclass(frozen=True)
class Quantization:
    """Scales and zero points of x, w and y, the bias data type and the rounding of an integer y.

    Each scale is a positive float or "per_channel" (drawn per channel with the inputs: x per input channel,
    w and y per output channel), kept to 9 significant digits (what a float32 needs; benchdnn reads scales with
    stof), so that a spec read from a model is the one its descriptor reads back as; each zero point an int or
    "per_channel" (w's only an int). bias_dtype: "" for
    the default (int32 for 8-bit integer sources, else the float the rest computes in), "int32" (the bias
    counts accumulator steps, ONNX's convention) or a float type (real units, benchdnn's).
    The identity (all scales 1, zero points 0) is `Quantization()`.
    """

    x_scale: Scale = 1.0
    w_scale: Scale = 1.0
    y_scale: Scale = 1.0
    x_zero_point: ZeroPoint = 0
    w_zero_point: int = 0
    y_zero_point: ZeroPoint = 0
    bias_dtype: str = ""
    rounding: str = "half_even"

    def __post_init__(self) -> None:
        for name in ("x_scale", "w_scale", "y_scale"):
            value = getattr(self, name)
            if value == PER_CHANNEL:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    math.isfinite(value) and value > 0):
                raise ValueError(f"quantization {name} must be a positive finite number or 'per_channel', "
                                 f"got {value!r}")
            object.__setattr__(self, name, float(f"{float(value):.9g}"))
        for name in ("x_zero_point", "w_zero_point", "y_zero_point"):
            value = getattr(self, name)
            if value == PER_CHANNEL and name != "w_zero_point":
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                kinds = "an int" if name == "w_zero_point" else "an int or 'per_channel'"
                raise ValueError(f"quantization {name} must be {kinds}, got {value!r}")
        if self.bias_dtype not in ("", "int32", "float64", "float32", "float16", "bfloat16"):
            raise ValueError(f"quantization bias_dtype must be '', int32 or a float dtype, got {self.bias_dtype!r}")
        check_rounding(self.rounding, "quantization rounding")

    @property
    def is_identity(self) -> bool:
        return self == Quantization(bias_dtype=self.bias_dtype, rounding=self.rounding)

    @property
    def per_channel(self) -> tuple[str, ...]:
        """The fields whose values are drawn per channel."""
        return tuple(f.name for f in fields(self) if getattr(self, f.name) == PER_CHANNEL)


# -- reading ----------------------------------------------------------------------------------------

def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise AttributeOptionError(f"{what}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise AttributeOptionError(f"{what}: {text!r} is not a finite number")
    return value


def _integer(text: str, what: str) -> int:
    value = _number(text, what)
    if value != int(value):
        raise AttributeOptionError(f"{what}: {text!r} is not an integer (benchdnn: 'the zero point is not exact')")
    return int(value)


def _mask(text: str, what: str, ndims: int) -> int:
    key = text.lower()
    if key == "per_tensor":
        return (1 << ndims) - 1
    if key in POLICIES:
        return POLICIES[key]
    if re.fullmatch(r"\d+", text):
        return int(text)
    raise AttributeOptionError(f"{what}: unknown policy {text!r} (an int mask or one of per_tensor, "
                          f"{', '.join(POLICIES)})")


def _operand_type(text: str, what: str) -> str:
    key = text.lower().removeprefix("dnnl_")
    if key not in BENCHDNN_TYPES:
        raise AttributeOptionError(f"{what}: unknown data type {text!r} (known: {', '.join(BENCHDNN_TYPES)})")
    return key


def parse_post_ops(text: str, rank: int) -> tuple[PostOp, ...]:
    """A chain from `--attr-post-ops`'s value (module docstring) for a spec of `rank` spatial dims."""
    if not text:
        return ()
    return tuple(_post_op(entry, index, rank + 2) for index, entry in enumerate(text.split("+")))


def _post_op(entry: str, index: int, ndims: int) -> PostOp:
    what = f"--attr-post-ops entry {index + 1} {entry!r}"
    kind, *args = entry.split(":")
    kind = kind.lower()
    if kind == "dw":
        raise AttributeOptionError(f"{what}: the fused depthwise post-op (dw) is a second convolution; convparity "
                              "checks one convolution and its epilogue")
    if kind.removeprefix("eltwise_") in (*ELTWISE, *ELTWISE_ALIASES):
        kind = kind.removeprefix("eltwise_")
        numbers = [_number(a, what) for a in args[:2]]
        alpha, beta = (numbers + [0.0, 0.0])[:2]
        try:
            return PostOp(kind, alpha=alpha, beta=beta)
        except ValueError as error:
            raise AttributeOptionError(f"{what}: {error}") from None
    if kind == "sum":
        if len(args) > 3:
            raise AttributeOptionError(f"{what}: sum takes SCALE:ZERO_POINT:DT at most")
        scale = _number(args[0], what) if args else 1.0
        zero_point = _integer(args[1], what) if len(args) > 1 else 0
        data_type = _operand_type(args[2], what) if len(args) > 2 else ""
        return PostOp("sum", scale=scale, zero_point=zero_point, data_type=data_type)
    if kind == "prelu":
        return PostOp("prelu", mask=_mask(args[0], what, ndims) if args else 0)
    if kind == "batchnorm":
        eps = _number(args[0], what) if args else DEFAULT_BATCHNORM_EPS
        try:
            return PostOp("batchnorm", alpha=eps)
        except ValueError as error:
            raise AttributeOptionError(f"{what}: {error}") from None
    binary = kind if kind.startswith("binary_") else f"binary_{kind}"
    if binary in BINARY:
        if not args:
            raise AttributeOptionError(f"{what}: a binary post-op needs its operand's data type, e.g. {kind}:f32")
        if len(args) > 2 and args[2].lower() == "grouped":
            raise AttributeOptionError(f"{what}: the grouped tag broadcasts src1 per group; convparity reads "
                                       "KIND:DT[:MASK[:TAG]] with a layout tag")
        mask = _mask(args[1], what, ndims) if len(args) > 1 else 0
        return PostOp(binary, mask=mask, data_type=_operand_type(args[0], what))
    comparisons = ("ge", "gt", "le", "lt", "eq", "ne", "select")
    if kind.removeprefix("binary_") in comparisons:
        raise AttributeOptionError(f"{what}: comparison and select post-ops give 0 or 1 where two values meet; "
                              "convparity compares continuous epilogues")
    raise AttributeOptionError(f"{what}: unknown post-op kind {kind!r}")


_ARGUMENTS = {"src": "x", "src0": "x", "wei": "w", "dst": "y"}


def parse_scales(text: str, quantization: Quantization, grouped: bool) -> Quantization:
    """`quantization` with the scales of `--attr-scales`'s value."""
    changes: dict[str, Any] = {}
    for entry in filter(None, text.split("+")):
        tensor, per_channel, value = _entry(entry, "--attr-scales", grouped, scale=True)
        changes[f"{tensor}_scale"] = PER_CHANNEL if per_channel else (_positive(value, entry) if value else 1.0)
    return replace(quantization, **changes)


def parse_zero_points(text: str, quantization: Quantization, grouped: bool) -> Quantization:
    """`quantization` with the zero points of `--attr-zero-points`'s value."""
    changes: dict[str, Any] = {}
    for entry in filter(None, text.split("+")):
        tensor, per_channel, value = _entry(entry, "--attr-zero-points", grouped, scale=False)
        if per_channel and tensor == "w":
            raise AttributeOptionError(f"--attr-zero-points entry {entry!r}: weights take one zero point (common)")
        what = f"--attr-zero-points entry {entry!r}"
        changes[f"{tensor}_zero_point"] = PER_CHANNEL if per_channel else (_integer(value, what) if value else 0)
    return replace(quantization, **changes)


def _positive(text: str, entry: str) -> float:
    value = _number(text, f"--attr-scales entry {entry!r}")
    if value <= 0:
        raise AttributeOptionError(f"--attr-scales entry {entry!r}: a scale must be positive, got {text}")
    return float(f"{value:.9g}")  # read with stof: a float32 value


def _entry(entry: str, option: str, grouped: bool, *, scale: bool) -> tuple[str, bool, str]:
    """(tensor x/w/y, per channel, value text) of one ARG:POLICY[:VALUE][:DT] entry."""
    what = f"{option} entry {entry!r}"
    argument, *rest = entry.split(":")
    if argument.lower() not in _ARGUMENTS:
        raise AttributeOptionError(f"{what}: {argument!r} is not an argument convparity scales (src, wei, dst)"
                              + (" (a fused depthwise post-op's)" if argument.startswith("attr_post_op_dw") else ""))
    tensor = _ARGUMENTS[argument.lower()]
    if not rest:
        raise AttributeOptionError(f"{what}: a policy must follow the argument, e.g. {argument}:common")
    policy = rest[0].lower()
    weight_masks = (1, 3) if scale else ()
    single = policy in ("common", "host_scalar", "0")
    channel = {"x": ("per_oc", "per_dim_1", "2"), "y": ("per_oc", "per_dim_1", "2"),
               "w": ("per_oc", "per_dim_0", *(str(m) for m in weight_masks))}[tensor]
    if not single and policy not in channel:
        raise AttributeOptionError(f"{what}: policy {rest[0]!r} is not one convparity computes for {argument} (common, "
                              f"host_scalar or {', '.join(channel)})")
    if policy == "1" and grouped:
        raise AttributeOptionError(f"{what}: mask 1 of grouped weights is per group, not per output channel")
    value = rest[1] if single and len(rest) > 1 and rest[1].lower().removeprefix("dnnl_") not in BENCHDNN_TYPES \
        else ""
    return tensor, not single, value


def read_options(words: list[str]) -> dict[str, str]:
    """{option name: value} of `--NAME=VALUE` words (the attribute options a case descriptor may lead with)."""
    options: dict[str, str] = {}
    for word in words:
        name, equals, value = word[2:].partition("=")
        if not word.startswith("--") or not equals:
            raise AttributeOptionError(f"{word!r}: an option is --NAME=VALUE")
        if name not in CASE_OPTIONS:
            known = ", ".join("--" + option for option in CASE_OPTIONS)
            raise AttributeOptionError(f"unknown option --{name} (a case takes {known})")
        if name in options:
            raise AttributeOptionError(f"--{name} is given twice")
        options[name] = value
    return options


CASE_OPTIONS = ("attr-post-ops", "attr-scales", "attr-zero-points", "bia-dt", "rounding")


# -- printing ---------------------------------------------------------------------------------------

def _text(value: float) -> str:
    """A number in the shortest form that reads back as the same float: 2, 0.5, 1e-05."""
    return str(int(value)) if value == int(value) and abs(value) < 1e15 else repr(value)


def format_post_op(op: PostOp, ndims: int) -> str:
    if op.eltwise is not None:
        args = [op.alpha, op.beta] if op.beta else [op.alpha] if op.alpha else []
        return ":".join([op.kind, *map(_text, args)])
    if op.kind == "sum":
        parts = ["sum"]
        if op.scale != 1 or op.zero_point or op.data_type:
            parts.append(_text(op.scale))
        if op.zero_point or op.data_type:
            parts.append(str(op.zero_point))
        if op.data_type:
            parts.append(op.data_type)
        return ":".join(parts)
    if op.kind == "batchnorm":
        return "batchnorm" if op.eps == DEFAULT_BATCHNORM_EPS else f"batchnorm:{_text(op.eps)}"
    mask = _mask_text(op.mask, ndims)
    if op.kind == "prelu":
        return "prelu" if op.mask == 0 else f"prelu:{mask}"
    return f"{op.kind.removeprefix('binary_')}:{op.data_type or 'f32'}" + ("" if op.mask == 0 else f":{mask}")


def _mask_text(mask: int, ndims: int) -> str:
    names = {0: "common", 2: "per_oc", (1 << ndims) - 1: "per_tensor"}
    return names.get(mask, str(mask))


def format_post_ops(chain: tuple[PostOp, ...], ndims: int) -> str:
    return "+".join(format_post_op(op, ndims) for op in chain)


def format_scales(quantization: Quantization) -> str:
    parts = []
    for tensor, argument in (("x", "src"), ("w", "wei"), ("y", "dst")):
        value = getattr(quantization, f"{tensor}_scale")
        if value == PER_CHANNEL:
            parts.append(f"{argument}:per_oc")
        elif value != 1.0:
            parts.append(f"{argument}:common:{_text(value)}")
    return "+".join(parts)


def format_zero_points(quantization: Quantization) -> str:
    parts = []
    for tensor, argument in (("x", "src"), ("w", "wei"), ("y", "dst")):
        value = getattr(quantization, f"{tensor}_zero_point")
        if value == PER_CHANNEL:
            parts.append(f"{argument}:per_dim_1")
        elif value:
            parts.append(f"{argument}:common:{value}")
    return "+".join(parts)


def format_options(chain: tuple[PostOp, ...], quantization: Quantization, ndims: int) -> str:
    """The attribute options of a spec, space-separated (empty for a plain convolution)."""
    options = []
    if chain:
        options.append(f"--attr-post-ops={format_post_ops(chain, ndims)}")
    if scales := format_scales(quantization):
        options.append(f"--attr-scales={scales}")
    if zero_points := format_zero_points(quantization):
        options.append(f"--attr-zero-points={zero_points}")
    if quantization.bias_dtype:
        options.append(f"--bia-dt={SHORT_TYPES[quantization.bias_dtype]}")
    if quantization.rounding != "half_even":
        options.append(f"--rounding={quantization.rounding}")
    return " ".join(options)
