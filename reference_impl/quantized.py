"""Quantized convolution: an exact integer accumulation, then requantization with a named rounding mode.

The formula (ONNX QLinearConv and ConvInteger; benchdnn's conv/ref_conv.cpp, with its f32 bias):

    acc[n, o, p] = sum over c, t of (x[n, c, p s + t d] - zp_x) (w[o, c, t] - zp_w)      exact, in int64
    real         = (acc + b) * sx * sw[o]           b in int32: in accumulator steps (ONNX)
                 = acc * sx * sw[o] + b              b floating: in real units (benchdnn)
    v            = real / sy + zp_y                  the output code before rounding
    y            = saturate(round(v))                to y_dtype's range

Padding holds the zero point, so a padded position adds nothing once zp_x is subtracted. With
`y_scale=None` the result is the int32 accumulator acc (+ b): ConvInteger. `x_zero_point` may be one
per input channel, `w_scale` and `w_zero_point` one per output channel.

Rounding modes (`ROUNDING_MODES`) are named as data, so a backend declares its mode like its
accumulation:
- "half_even": v rounded half to even (ONNX QuantizeLinear, benchdnn): ties go to the even code;
- "half_away": half away from zero (C's round(), TFLite's float kernels);
- "half_up": half toward +infinity (floor(v + 0.5));
- "half_even_before_zero_point": real / sy rounded half to even, then zp_y added (FBGEMM, QNNPACK):
  it differs from "half_even" at ties when zp_y is odd;
- "double_rounding": fixed-point requantization (gemmlowp's, in TFLite's integer kernels): the multiplier
  sx sw / sy (in double) as a 31-bit fixed-point number and a shift (QuantizeMultiplier),
  SaturatingRoundingDoublingHighMul (ties toward +infinity) then RoundingDivideByPOT (ties away from
  zero): two roundings, so it may differ by one step off a tie (tensorflow#25087). It needs an integer
  bias and no post-ops.

`requantize` takes v as float64 plus the exact ties (see `exact_ties`): an element whose float64 value
lands on .5 is checked in exact rational arithmetic, so a value a hair off a tie is not rounded as one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from convparity.reference_impl.geometry import IntOrInts, Padding, conv_geometry
from convparity.reference_impl.im2col import convolve
from convparity.reference_impl.post_ops import PostOp, chain_forward

ROUNDING_MODES = ("half_even", "half_away", "half_up", "half_even_before_zero_point", "double_rounding")
INTEGER_RANGES = {"uint8": (0, 255), "int8": (-128, 127), "int32": (-2**31, 2**31 - 1)}


def check_rounding(rounding: str, field: str = "rounding") -> str:
    if rounding not in ROUNDING_MODES:
        raise ValueError(f"{field} must be one of {', '.join(ROUNDING_MODES)}, got {rounding!r}")
    return rounding


def _integers(name: str, array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name} must be an integer array, got dtype {array.dtype}")
    return array.astype(np.int64)


def _per_channel(name: str, value: object, channels: int) -> np.ndarray:
    """A scalar or one value per channel, as a float64 (channels,) array."""
    array = np.asarray(value, dtype=np.float64).reshape(-1)
    if array.size == 1:
        return np.full(channels, float(array[0]))
    if array.size != channels:
        raise ValueError(f"{name} must be a scalar or have {channels} values (one per channel), got {array.size}")
    return array


def _broadcast_channel(values: np.ndarray, ndim: int) -> np.ndarray:
    return values.reshape((1, -1) + (1,) * (ndim - 2))


def quantized_accumulator(x: np.ndarray, w: np.ndarray, *, stride: IntOrInts = 1, padding: Padding = 0,
                          dilation: IntOrInts = 1, groups: int = 1, x_zero_point: object = 0,
                          w_zero_point: object = 0) -> np.ndarray:
    """acc (N, O, *out) = sum of (x - zp_x)(w - zp_w), exact in int64 (module docstring).

    x (N, C, *in) and w (O, C/groups, *kernel) integer arrays; zp_x a scalar or (C,), zp_w a scalar or (O,).
    The sums are done in float64 on integers, exact while every partial sum stays below 2**53 (checked).
    """
    x64, w64 = _integers("x", x), _integers("w", w)
    if x64.ndim < 3:
        raise ValueError(f"x must have shape (N, C, *spatial), got {x64.shape}")
    shifted_x = x64 - _broadcast_channel(_per_channel("x_zero_point", x_zero_point, x64.shape[1]), x64.ndim)
    shifted_w = w64 - _per_channel("w_zero_point", w_zero_point, w64.shape[0]).reshape((-1,) + (1,) * (w64.ndim - 1))
    largest = float(np.abs(shifted_x).max(initial=0)) * float(np.abs(shifted_w).max(initial=0)) * int(
        np.prod(w64.shape[1:]))
    if largest >= 2.0**53:
        raise ValueError(f"the accumulation may reach {largest:.3g}, beyond what float64 sums exactly (2**53)")
    shifted_x, shifted_w = shifted_x.astype(np.float64), shifted_w.astype(np.float64)
    geometry = conv_geometry(shifted_x, shifted_w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    acc, _, _ = convolve(geometry, shifted_x, shifted_w, None, outputs={"y"})
    assert acc is not None
    return np.rint(acc).astype(np.int64)


def multiplier(x_scale: float, w_scale: object, y_scale: float, channels: int) -> np.ndarray:
    """sx * sw[o] / sy per output channel, in float64 (channels,)."""
    return float(x_scale) * _per_channel("w_scale", w_scale, channels) / float(y_scale)


def output_codes(acc: np.ndarray, b: np.ndarray | None, *, x_scale: float, w_scale: object, y_scale: float,
                 y_zero_point: int) -> tuple[np.ndarray, np.ndarray]:
    """(v, exact ties): v = real / sy + zp_y in float64 (module docstring), and where v is exactly k + 1/2."""
    channels = acc.shape[1]
    scales = _per_channel("w_scale", w_scale, channels)
    total = acc.astype(np.float64)
    integer_bias = b is not None and np.asarray(b).dtype.kind in "iu"
    if integer_bias:
        total = total + _broadcast_channel(np.asarray(b, dtype=np.float64), acc.ndim)
    real = total * float(x_scale) * _broadcast_channel(scales, acc.ndim)
    if b is not None and not integer_bias:
        real = real + _broadcast_channel(np.asarray(b, dtype=np.float64), acc.ndim)
    v = real / float(y_scale) + y_zero_point
    ties = exact_ties(v, lambda index: _exact_code(index, acc, b, integer_bias, x_scale, scales, y_scale,
                                                   y_zero_point))
    return v, ties


def _exact_code(index: tuple[int, ...], acc: np.ndarray, b: np.ndarray | None, integer_bias: bool, x_scale: float,
                scales: np.ndarray, y_scale: float, y_zero_point: int) -> Fraction:
    """v at one element in exact rational arithmetic (the scales as the binary fractions they are)."""
    channel = index[1]
    total = Fraction(int(acc[index]))
    if integer_bias:
        total += int(np.asarray(b)[channel])
    real = total * Fraction(float(x_scale)) * Fraction(float(scales[channel]))
    if b is not None and not integer_bias:
        real += Fraction(float(np.asarray(b)[channel]))
    return real / Fraction(float(y_scale)) + y_zero_point


def exact_ties(v: np.ndarray, exact, window: float = 2.0**-40) -> np.ndarray:
    """Where v is exactly k + 1/2: elements whose float64 value lies within `window` (relative) of a tie are
    recomputed with `exact(index) -> Fraction`; the others are no tie."""
    distance = np.abs(v - np.floor(v) - 0.5)
    candidates = np.argwhere(distance <= window * np.maximum(np.abs(v), 1.0))
    ties = np.zeros(v.shape, dtype=bool)
    for index in map(tuple, candidates):
        value = exact(index)
        ties[index] = value.denominator == 2
    return ties


def round_codes(v: np.ndarray, ties: np.ndarray, rounding: str, *, y_zero_point: int = 0) -> np.ndarray:
    """v rounded by `rounding` (not "double_rounding", which works on the accumulator:
    `double_rounding_requantize`), as float64 integers. `ties` marks exact ties; elsewhere v is rounded to
    nearest, which its float64 value decides."""
    check_rounding(rounding)
    if rounding == "double_rounding":
        raise ValueError("double_rounding rounds the accumulator: use double_rounding_requantize")
    if rounding == "half_even_before_zero_point":
        shifted = v - y_zero_point
        return _round(shifted, ties, "half_even") + y_zero_point
    return _round(v, ties, rounding)


def _round(v: np.ndarray, ties: np.ndarray, rounding: str) -> np.ndarray:
    nearest = np.floor(v + 0.5)  # off a tie every mode rounds to nearest
    low = np.floor(v)
    at_tie = {
        "half_even": np.where(low % 2 == 0, low, low + 1),
        "half_away": np.where(v >= 0, low + 1, low),
        "half_up": low + 1,
    }[rounding]
    return np.where(ties, at_tie, nearest)


def saturate(codes: np.ndarray, y_dtype: str) -> np.ndarray:
    low, high = INTEGER_RANGES[y_dtype]
    return np.clip(codes, low, high)


def quantize_multiplier(real_multiplier: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: (q, shift) with real = q * 2**(shift - 31), q a 31-bit fixed-point int."""
    if real_multiplier == 0:
        return 0, 0
    fraction, shift = math.frexp(real_multiplier)
    q = round_half_away(fraction * 2**31)
    if q == 2**31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q, shift


def round_half_away(value: float) -> int:
    """C's std::round: half away from zero."""
    return int(math.floor(abs(value) + 0.5)) * (1 if value >= 0 else -1)


def _rounding_doubling_high_mul(a: np.ndarray, b: int) -> np.ndarray:
    """gemmlowp's SaturatingRoundingDoublingHighMul on int64 holders of int32 values."""
    product = a * b
    nudge = np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    total = product + nudge
    quotient = np.where(total >= 0, total // (1 << 31), -((-total) // (1 << 31)))  # C division truncates
    return np.where((a == -(2**31)) & (b == -(2**31)), 2**31 - 1, quotient)


def _rounding_divide_by_pot(x: np.ndarray, exponent: int) -> np.ndarray:
    """gemmlowp's RoundingDivideByPOT: x / 2**exponent rounded half away from zero."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + np.where(x < 0, 1, 0)
    return (x >> exponent) + np.where(remainder > threshold, 1, 0)


def double_rounding_requantize(acc: np.ndarray, multipliers: Sequence[float] | np.ndarray, y_zero_point: int,
                               ) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier(acc, QuantizeMultiplier(M[o])) + zp_y, per output channel o,
    as float64 integers (not saturated). acc (N, O, *out) int64 (bias included)."""
    out = np.empty(acc.shape, dtype=np.float64)
    for channel, real in enumerate(multipliers):
        q, shift = quantize_multiplier(float(real))
        left, right = max(shift, 0), max(-shift, 0)
        scaled = acc[:, channel] * (1 << left)
        out[:, channel] = _rounding_divide_by_pot(_rounding_doubling_high_mul(scaled, q), right) + y_zero_point
    return out


def quantized_conv_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    *,
    stride: IntOrInts = 1,
    padding: Padding = 0,
    dilation: IntOrInts = 1,
    groups: int = 1,
    x_scale: float,
    x_zero_point: object,
    w_scale: object,
    w_zero_point: object,
    y_scale: object = None,
    y_zero_point: object = 0,
    y_dtype: str = "uint8",
    rounding: str = "half_even",
    post_ops: Sequence[PostOp] = (),
    operands: Sequence[np.ndarray | None] = (),
) -> np.ndarray:
    """y (N, O, *out) of a quantized convolution (module docstring), as an array of y_dtype; int32 acc (+ b) when
    y_scale is None (ConvInteger). x (N, C, *in) and w (O, C/groups, *kernel) integer arrays; b (O,) int32 or
    floating; padding per dimension as (before, after) pairs like the other reference functions.

    y_scale and y_zero_point may be one per output channel. `post_ops` (reference_impl.post_ops, with one operand
    each, None for an eltwise step) apply to the real value before y's scale, as benchdnn applies them. A float
    y_dtype ("float32", ...) returns v = real / sy + zp_y in float64, unrounded.
    """
    check_rounding(rounding)
    if y_dtype not in INTEGER_RANGES and y_dtype not in ("float64", "float32", "float16", "bfloat16"):
        raise ValueError(f"y_dtype must be one of {', '.join(INTEGER_RANGES)} or a float type, got {y_dtype!r}")
    acc = quantized_accumulator(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups,
                                x_zero_point=x_zero_point, w_zero_point=w_zero_point)
    if b is not None and np.shape(b) != (acc.shape[1],):
        raise ValueError(f"b must have shape ({acc.shape[1]},), got {np.shape(b)}")
    integer_bias = b is not None and np.asarray(b).dtype.kind in "iu"
    if y_scale is None:
        total = acc if b is None else acc + _broadcast_channel(_integers("b", b), acc.ndim)
        return saturate(total, "int32").astype(np.int32)
    y_scales = _per_channel("y_scale", y_scale, acc.shape[1])
    if not np.all(y_scales > 0):
        raise ValueError(f"y_scale must be positive, got {y_scale!r}")
    common = np.ndim(y_scale) == 0 and np.ndim(y_zero_point) == 0  # type: ignore[arg-type]
    if rounding == "double_rounding":
        if not integer_bias and b is not None or post_ops or not common or y_dtype not in INTEGER_RANGES:
            raise ValueError("double_rounding requantizes an integer accumulator: an int32 bias (or none), no "
                             "post-ops, one y scale and zero point and an integer y_dtype")
        total = acc if b is None else acc + _broadcast_channel(_integers("b", b), acc.ndim)
        multipliers = multiplier(x_scale, w_scale, float(y_scales[0]), acc.shape[1])
        codes = double_rounding_requantize(total, multipliers, int(np.asarray(y_zero_point).reshape(-1)[0]))
        return saturate(codes, y_dtype).astype(y_dtype)
    if not post_ops and common:
        v, ties = output_codes(acc, b, x_scale=x_scale, w_scale=w_scale, y_scale=float(y_scale),  # type: ignore[arg-type]
                               y_zero_point=int(y_zero_point))  # type: ignore[call-overload]
    else:
        channel_scale = float(x_scale) * _per_channel("w_scale", w_scale, acc.shape[1])
        total = acc.astype(np.float64)
        if integer_bias:
            total = total + _broadcast_channel(np.asarray(b, dtype=np.float64), acc.ndim)
        real = total * _broadcast_channel(channel_scale, acc.ndim)
        if b is not None and not integer_bias:
            real = real + _broadcast_channel(np.asarray(b, dtype=np.float64), acc.ndim)
        if post_ops:
            real = chain_forward(real, post_ops, operands).output
        zero_points = _per_channel("y_zero_point", y_zero_point, acc.shape[1])
        v = real / _broadcast_channel(y_scales, acc.ndim) + _broadcast_channel(zero_points, acc.ndim)
        ties = np.abs(v - np.floor(v) - 0.5) == 0
    if y_dtype not in INTEGER_RANGES:
        return v
    codes = round_codes(v, ties, rounding, y_zero_point=int(np.asarray(y_zero_point).reshape(-1)[0]) if common else 0)
    return saturate(codes, y_dtype).astype(y_dtype)
