"""Seeded inputs for a case: x, w, b, dy, each post-op's operand and per-channel quantization values.

The draw depends on the run seed and the case (its descriptor and bias), not on the dtype, the
backend or the machine, so every backend and every dtype sees the same values before the cast.

Float tensors are drawn in float64 and cast to their data type (x to the source's, w to the
weights', dy to the destination's, b to `ConvSpec.bias_dtype`):
- x, dy: Uniform(-1, 1); w: Uniform(-1, 1) / sqrt(fan_in), so outputs stay O(1) in every dtype; with a post-op
  chain whose eltwise steps change course beyond 1 (relu6's 6, hardswish's -3 and 3), w is scaled by 1.5 times
  the farthest such point, so that the convolution's outputs reach where the epilogue acts;
- post-op operands, in `ConvSpec.compute_dtype` (values exact in the operand's own data type too):
  a sum's residual and a binary's src1 Uniform(-1, 1) (a divisor 0.5 to 2 in size; an integer operand
  type draws whole numbers from -16 to 16 within its range, as benchdnn does), prelu slopes in
  multiples of 1/8 from -1 to 1, batchnorm's mean and beta Uniform(-0.5, 0.5), var log-uniform from 0.01 to
  4, gamma Uniform(0.5, 1.5).

Integer sources are drawn from benchdnn's ranges (conv/cfg.cpp), small enough that the sums stay far
inside int32 and the scales benchdnn's files give keep outputs inside the destination's range: x from
0 to 8 for uint8 (to 160 for a 4-byte destination), -4 to 4 for int8; w -4 to 4 (-2 to 2, doubled,
against int8 sources), 0 to 8 for uint8; a common zero point is added, so x - zp stays in that range;
the int32 bias -8 to 8; a residual in destination codes (0 to 160, -4 to 4, -128 to 128). Per-channel
scales are drawn from {1/16, 1/8, 1/4} and zero points from -2 (0 for uint8) to 2 (benchdnn's sets).

An `InputStyle` says how the float tensors x, w, b and dy are drawn:

- `uniform` (the default, every sweep): as above;
- `integers:K`: whole numbers from 1 to K in magnitude, of either sign (no zeros, which would hide what a
  value does), exact in every float type (bfloat16 holds every integer up to 256): what a repro script
  shows a maintainer, when a bug survives them (convparity.harness.search.values). Integer sources, post-op
  operands and quantization values are drawn as in the default style.
- `saturating`: integer sources drawn where integer kernels overflow their narrow intermediates, as
  int8 bugs need (pytorch#44939: FBGEMM's vpmaddubsw adds two uint8 x int8 products in a saturating
  int16, which 255 x 127 twice exceeds): x codes from 224 to 255 for uint8 and 112 to 127 in magnitude,
  either sign, for int8, w 112 to 127 in magnitude, either sign (224 to 255 for uint8), as codes (a zero
  point is not added: x - zp_x is what it leaves). Float sources are drawn as in the default style.
- `weights:PATH`: a model layer's own weights (`--model SOURCE --weights`): w (spec.w_shape, the canonical layout),
  b (out_channels,) where the layer has a bias, and for a quantized layer its per-channel w_scale where it has one,
  read from the .npz file a model reader wrote (harness.cases.models.write_weights); everything else (x, dy, the
  operands, the other scales) is drawn as in the default style, with the same values. A file that is missing, or
  whose arrays do not fit the case, is a ValueError naming the file and the array.

A style travels with the case wherever it is evaluated (a sweep's `RunCase` and `EvaluateCase` tasks
carry it, and regenerate the inputs from (spec, seed, style) in their workers); its `text` is how it is
written in files and on the command line (`convparity explain --inputs integers:1`). A case of a grid
may carry one (`Case.inputs`: the `int8-saturation` grid's are saturating).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import numpy as np

from convparity.harness.cases.attributes import BENCHDNN_TYPES, PER_CHANNEL
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.vocabulary import INTEGER_RANGE, is_integer, numpy_dtype

INPUT_KINDS = ("uniform", "integers", "saturating", "weights")
LARGEST_INTEGER = 256  # every integer up to here is exact in bfloat16, the narrowest float type


@dataclass(frozen=True)
class InputStyle:
    """How a case's values are drawn: "uniform", nonzero "integers" of magnitude at most `scale`, "saturating"
    integer sources, or a model layer's "weights" from the file `source` (see the module docstring)."""

    kind: str = "uniform"
    scale: int = 0
    source: str = ""

    def __post_init__(self) -> None:
        if self.kind not in INPUT_KINDS:
            raise ValueError(f"input style: unknown kind {self.kind!r} (known: {', '.join(INPUT_KINDS)})")
        if self.kind != "integers" and self.scale != 0:
            raise ValueError(f"input style: {self.kind} values take no scale")
        if self.kind == "integers" and not (isinstance(self.scale, int) and 1 <= self.scale <= LARGEST_INTEGER):
            raise ValueError(f"input style: integers need a scale from 1 to {LARGEST_INTEGER}, got {self.scale!r}")
        if (self.kind == "weights") != bool(self.source) or not isinstance(self.source, str):
            raise ValueError("input style: weights need the file they are in (weights:PATH), and only they take one")

    @property
    def text(self) -> str:
        """"uniform", "integers:K", "saturating" or "weights:PATH": how files and command lines write it (`parse`
        reads it back)."""
        if self.kind == "weights":
            return f"weights:{self.source}"
        return f"{self.kind}:{self.scale}" if self.kind == "integers" else self.kind

    @property
    def is_default(self) -> bool:
        return self == UNIFORM

    @classmethod
    def parse(cls, text: str) -> InputStyle:
        """The style whose `text` this is ("" reads as uniform); ValueError saying what is accepted."""
        text = str(text).strip()
        if text in ("", "uniform"):
            return UNIFORM
        if text == "saturating":
            return SATURATING
        if text.startswith("weights:") and text.removeprefix("weights:").strip():
            return cls("weights", source=text.removeprefix("weights:").strip())
        match = re.fullmatch(r"integers:(\d{1,4})", text)
        if not match or not 1 <= int(match.group(1)) <= LARGEST_INTEGER:
            raise ValueError(f"input style {text!r}: expected 'uniform', 'saturating', 'integers:K' (K from 1 "
                             f"to {LARGEST_INTEGER}) or 'weights:PATH'")
        return cls("integers", int(match.group(1)))


UNIFORM = InputStyle()
SATURATING = InputStyle("saturating")


@dataclass(frozen=True)
class Inputs:
    """x (N, C, *in), w (O, C/groups, *kernel), b (O,) or None, dy (N, O, *out) or None (no gradients).

    Transposed: w (C, O/groups, *kernel) (spec.w_shape). operands: one per post-op (None for an eltwise step),
    of spec.operand_shapes. quantization: every scale and zero point of spec.quantization, a Python number
    where it is common, a (channels,) array where it is drawn per channel.
    """

    x: np.ndarray
    w: np.ndarray
    b: np.ndarray | None
    dy: np.ndarray | None
    operands: tuple[np.ndarray | None, ...] = ()
    quantization: dict[str, float | int | np.ndarray] = field(default_factory=dict)

    @property
    def extras(self) -> Extras:
        """What a backend's `run` gets beyond x, w, b, dy (harness.backends.contract)."""
        return Extras(self.operands, self.quantization)


@dataclass(frozen=True)
class Extras:
    """The inputs beyond x, w, b, dy that a backend computing post-ops or quantized types is given.

    operands[k]: post-op k's operand (None for an eltwise step): a sum's residual (N, O, *out), a binary's src1
    and prelu's slopes broadcastable to y, batchnorm's (4, O) rows mean, var, gamma, beta.
    quantization: {"x_scale", "w_scale", "y_scale", "x_zero_point", "w_zero_point", "y_zero_point"} as numbers,
    or (channels,) arrays where drawn per channel.
    """

    operands: tuple[np.ndarray | None, ...] = ()
    quantization: dict[str, float | int | np.ndarray] = field(default_factory=dict)


def case_seed(spec: ConvSpec, seed: int, style: InputStyle = UNIFORM) -> int:
    """A 64-bit seed from the run seed, the case (its descriptor and bias, not its dtype) and the input style
    (the default style adds nothing, so uniform draws are those of every earlier version)."""
    key = f"{seed}|{spec.descriptor}|bias={spec.bias}"
    if not style.is_default:
        key += f"|inputs={style.text}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")


def make_inputs(spec: ConvSpec, seed: int, style: InputStyle = UNIFORM) -> Inputs:
    """The case's inputs in `style` (module docstring).

    fan_in is the most products of x and w one element of y sums: C/groups * prod(kernel) for a
    convolution; for a transposed one, C/groups times the taps that reach one output position (about
    prod(kernel / stride)), from spec.reductions.
    """
    if style.kind == "weights":
        return _with_weights(spec, make_inputs(spec, seed), style.source)
    rng = np.random.default_rng(case_seed(spec, seed, style))
    src, wei, dst = spec.data_types
    if spec.quantized:
        x, w, b = _integer_sources(spec, rng, style)
    elif style.kind == "integers":
        x, w = _integers(rng, spec.x_shape, style).astype(numpy_dtype(src)), \
            _integers(rng, spec.w_shape, style).astype(numpy_dtype(wei))
        b = _integers(rng, (spec.out_channels,), style).astype(numpy_dtype(spec.bias_dtype or "float32")) \
            if spec.bias else None
    else:
        fan_in = max(spec.reductions["y"] - (1 if spec.bias else 0), 1)
        x = rng.uniform(-1.0, 1.0, spec.x_shape).astype(numpy_dtype(src))
        w = (rng.uniform(-1.0, 1.0, spec.w_shape) * spread(spec) / np.sqrt(fan_in)).astype(numpy_dtype(wei))
        b = rng.uniform(-1.0, 1.0, (spec.out_channels,)) if spec.bias else None
        if b is not None:
            b = b.astype(numpy_dtype(spec.bias_dtype or "float32"))
    if not spec.differentiable:
        dy = None
    elif style.kind == "integers" and not spec.quantized:
        dy = _integers(rng, spec.y_shape, style).astype(numpy_dtype(dst))
    else:
        dy = rng.uniform(-1.0, 1.0, spec.y_shape).astype(numpy_dtype(dst))
    operands = tuple(None if shape is None else _operand(spec, op, shape, rng)
                     for op, shape in zip(spec.post_ops, spec.operand_shapes))
    return Inputs(x=x, w=w, b=b, dy=dy, operands=operands, quantization=_quantization(spec, rng))


def _with_weights(spec: ConvSpec, drawn: Inputs, path: str) -> Inputs:
    """`drawn` with w, b and a per-channel w_scale from the layer's weights file (module docstring)."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(f"weights {path}: cannot be read: {error}") from None
    wei = spec.data_types[1]

    def fitted(name: str, shape: tuple[int, ...], dtype: str) -> np.ndarray:
        if name not in arrays:
            raise ValueError(f"weights {path}: no array {name!r} in it (it has {', '.join(sorted(arrays)) or 'none'})")
        value = arrays[name]
        if value.shape != shape:
            raise ValueError(f"weights {path}: {name} has the shape {value.shape}, the case needs {shape}")
        if is_integer(dtype) and (not np.all(value == np.round(value)) or value.min(initial=0) <
                                  INTEGER_RANGE[dtype][0] or value.max(initial=0) > INTEGER_RANGE[dtype][1]):
            raise ValueError(f"weights {path}: {name} holds values that are not {dtype} codes")
        return value.astype(numpy_dtype(dtype))

    w = fitted("w", spec.w_shape, wei)
    b = fitted("b", (spec.out_channels,), spec.bias_dtype or "float32") if spec.bias else None
    quantization = dict(drawn.quantization)
    if spec.quantization.w_scale == PER_CHANNEL and "w_scale" in arrays:
        quantization["w_scale"] = fitted("w_scale", spec.per_channel_shapes["w_scale"], "float64")
    return Inputs(x=drawn.x, w=w, b=b, dy=drawn.dy, operands=drawn.operands, quantization=quantization)


def _integers(rng: np.random.Generator, shape: tuple[int, ...], style: InputStyle) -> np.ndarray:
    """Whole numbers of magnitude 1 to style.scale, either sign, as float64."""
    magnitudes = rng.integers(1, style.scale + 1, shape)
    return np.where(rng.random(shape) < 0.5, -magnitudes, magnitudes).astype(np.float64)


def spread(spec: ConvSpec) -> float:
    """How far the weights are scaled beyond 1/sqrt(fan_in): 1.5 times the farthest point past 1 where an eltwise
    step of the chain changes course (a kink or a clip bound), else 1."""
    points = [abs(point) for op in spec.post_ops if op.eltwise is not None
              for point, _ in op.eltwise.kinks(op.alpha, op.beta)]
    farthest = max(points, default=0.0)
    return 1.5 * farthest if farthest > 1 else 1.0


def _integer_sources(spec: ConvSpec, rng: np.random.Generator,
                     style: InputStyle) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """x, w and the int32 (or float) bias of an integer convolution, from benchdnn's ranges (or saturating)."""
    src, wei, dst = spec.data_types
    q = spec.quantization
    if style.kind == "saturating":
        x, w = _near_the_top(rng, spec.x_shape, src), _near_the_top(rng, spec.w_shape, wei)
    else:
        wide_destination = dst in ("int32", "float32", "float64")
        x_low, x_high = (0, 160 if wide_destination else 8) if src == "uint8" else (-4, 4)
        w_low, w_high = (0, 8) if wei == "uint8" else (-2, 2) if src == "int8" else (-4, 4)
        x = rng.integers(x_low, x_high, spec.x_shape, endpoint=True)
        w = rng.integers(w_low, w_high, spec.w_shape, endpoint=True) * (2 if src == wei == "int8" else 1)
    if style.kind != "saturating":  # saturating codes are drawn as codes, zero points aside
        if q.x_zero_point != PER_CHANNEL:
            x = x + int(q.x_zero_point)
        w = w + q.w_zero_point
    x = np.clip(x, *INTEGER_RANGE[src]).astype(numpy_dtype(src))
    w = np.clip(w, *INTEGER_RANGE[wei]).astype(numpy_dtype(wei))
    b = None
    if spec.bias:
        b = rng.integers(-8, 8, (spec.out_channels,), endpoint=True).astype(numpy_dtype(spec.bias_dtype or "int32"))
    return x, w, b


def _near_the_top(rng: np.random.Generator, shape: tuple[int, ...], data_type: str) -> np.ndarray:
    """Codes in the top eighth of an 8-bit type's magnitudes: 224 to 255 (uint8), +-112 to +-127 (int8)."""
    top = INTEGER_RANGE[data_type][1]
    magnitudes = rng.integers(top - top // 8, top, shape, endpoint=True)
    if data_type == "uint8":
        return magnitudes
    return np.where(rng.random(shape) < 0.5, -magnitudes, magnitudes)


def _operand(spec: ConvSpec, op, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Post-op `op`'s operand of `shape` (module docstring)."""
    compute = numpy_dtype(spec.compute_dtype)
    if op.kind == "batchnorm":
        channels = shape[1]
        variance = np.exp(rng.uniform(np.log(0.01), np.log(4.0), channels))  # trained networks' spread
        rows = (rng.uniform(-0.5, 0.5, channels), variance, rng.uniform(0.5, 1.5, channels),
                rng.uniform(-0.5, 0.5, channels))
        return np.stack(rows).astype(compute)
    if op.kind == "prelu":
        return (rng.integers(-8, 8, shape, endpoint=True) / 8).astype(compute)
    destination = spec.data_types[2]
    operand_type = BENCHDNN_TYPES.get(op.data_type, "") or (destination if op.kind == "sum" else "")
    if op.kind == "sum" and is_integer(destination):
        low, high = {"uint8": (0, 160), "int8": (-4, 4), "int32": (-128, 128)}[destination]
        return rng.integers(low, high, shape, endpoint=True).astype(compute)
    if is_integer(operand_type):
        low, high = INTEGER_RANGE[operand_type]
        values = np.clip(rng.integers(-16, 16, shape, endpoint=True), low, high).astype(np.float64)
        if op.kind == "binary_div":
            values = np.where(values == 0, 1.0, values)
        return (values / 8 if op.kind == "binary_mul" else values).astype(compute)
    if op.kind == "binary_div":
        values = rng.uniform(0.5, 2.0, shape) * rng.choice((-1.0, 1.0), shape)
    else:
        values = rng.uniform(-1.0, 1.0, shape)
    if operand_type:  # exact in the operand's own type as well
        values = values.astype(numpy_dtype(operand_type)).astype(np.float64)
    return values.astype(compute)


def _quantization(spec: ConvSpec, rng: np.random.Generator) -> dict[str, float | int | np.ndarray]:
    """Every scale and zero point: the spec's value, or a (channels,) draw where it is per channel."""
    q = spec.quantization
    values: dict[str, float | int | np.ndarray] = {}
    shapes = spec.per_channel_shapes
    for name in ("x_scale", "w_scale", "y_scale", "x_zero_point", "w_zero_point", "y_zero_point"):
        value = getattr(q, name)
        if value != PER_CHANNEL:
            values[name] = value
        elif name.endswith("scale"):
            values[name] = rng.choice(np.array([1 / 16, 1 / 8, 1 / 4]), shapes[name])
        else:  # benchdnn: [max(-2, lowest), 2] of the tensor's type
            data_type = dict(zip("xwy", spec.data_types))[name[0]]
            lowest = INTEGER_RANGE[data_type][0] if is_integer(data_type) else -2
            values[name] = rng.integers(max(-2, lowest), 2, shapes[name], endpoint=True)
    return values
