"""The float64 reference of one case: every tensor's value, and what the error bound needs to judge it.

For a plain convolution: y, dx, dw, db from convparity.reference_impl and their magnitudes (the same
operations on |x|, |w|, |b|, |dy|). With attributes (a post-op chain, quantization), in the order of
benchdnn's reference (conv/ref_conv.cpp):

    x' = (x - zp_x) * sx,  w' = (w - zp_w) * sw        per channel where drawn so
    c  = conv(x', w') + b                                an int32 bias counts accumulator steps: (acc + b) sx sw
    v  = chain(c)                                        reference_impl.post_ops, with each step's input kept
    y  = v / sy + zp_y                                   rounded half to even (or the spec's rounding) and
                                                         saturated for an integer y (reference_impl.quantized)

An integer source is accumulated exactly (reference_impl.quantized.quantized_accumulator). Gradients
(float cases without scales only) run the chain backward from dy to the convolution's output, then
through the convolution's backward pass; each differentiable operand gets its own gradient `dpost{k}`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from convparity import reference_impl
from convparity.harness.cases.inputs import Inputs
from convparity.harness.cases.spec import ConvSpec
from convparity.reference_impl.post_ops import ChainTrace, chain_backward, chain_forward
from convparity.reference_impl.quantized import (
    double_rounding_requantize,
    exact_ties,
    output_codes,
    quantized_accumulator,
    round_codes,
    saturate,
)


@dataclass(frozen=True)
class Codes:
    """An integer y before rounding: v (N, O, *out) = real / sy + zp_y in float64, where it is exactly a tie, the
    exact accumulator (int64, an int32 bias included; None for a float source), sx sw[o] / sy per channel, and
    hard_ties: the ties float32 arithmetic computes exactly too (a power-of-two multiplier, an accumulator below
    2**24, no chain), where a backend's rounding mode shows."""

    real: np.ndarray
    ties: np.ndarray
    accumulator: np.ndarray | None
    multipliers: np.ndarray
    hard_ties: np.ndarray


@dataclass(frozen=True)
class Reference:
    """Float64 results and magnitudes of one case, keyed by tensor (spec.tensors), and what bounds need beyond them.

    values: y (an integer y as the codes the spec's rounding gives), dx, dw, db, dpost{k}.
    magnitudes: the same operations on absolute values, for the plain convolution's tensors; with a chain,
    "c" is the magnitude of the convolution's output before it.
    trace: the chain's inputs per step (None without a chain); operands: the post-op operands in float64;
    step_gradients[k]: the gradient entering step k from above (dy for the last step); conv_output: c;
    conv_gradient: the gradient at c. codes: an integer y's values before rounding (None for a float y).
    abs_x, abs_w: |x'| and |w'| (shifted and scaled); y_scale: sy (a number or one per output channel).
    """

    values: dict[str, np.ndarray]
    magnitudes: dict[str, np.ndarray]
    conv_output: np.ndarray
    trace: ChainTrace | None = None
    operands: tuple[np.ndarray | None, ...] = ()
    step_gradients: tuple[np.ndarray, ...] = ()
    codes: Codes | None = None
    abs_x: np.ndarray | None = None
    abs_w: np.ndarray | None = None
    conv_gradient: np.ndarray | None = None
    y_scale: np.ndarray | float = 1.0


def channel(values: Any, ndim: int, axis: int = 1) -> np.ndarray | float:
    """A scalar as it is, a (channels,) array shaped to broadcast along `axis` of an ndim tensor."""
    if np.ndim(values) == 0:
        return float(values)
    shape = [1] * ndim
    shape[axis] = -1
    return np.asarray(values, dtype=np.float64).reshape(shape)


def reference_options(spec: ConvSpec) -> dict:
    options = dict(stride=spec.stride, padding=spec.padding, dilation=spec.dilation, groups=spec.groups)
    if spec.transposed:
        options["output_padding"] = spec.output_padding
    return options


def forward_backward_function(spec: ConvSpec):
    return reference_impl.conv_transpose_forward_backward if spec.transposed else reference_impl.conv_forward_backward


def _forward(spec: ConvSpec):
    return reference_impl.conv_transpose_forward if spec.transposed else reference_impl.conv_forward


def reference(spec: ConvSpec, inputs: Inputs) -> Reference:
    """The reference of `spec` from its inputs as drawn (module docstring)."""
    if not spec.post_ops and spec.quantization.is_identity and not spec.integer_output:
        return _plain(spec, inputs)
    return _with_attributes(spec, inputs)


def _plain(spec: ConvSpec, inputs: Inputs) -> Reference:
    """A convolution alone: values and magnitudes of y, dx, dw, db in one pass each."""
    options = reference_options(spec)
    as64 = [None if a is None else np.asarray(a, dtype=np.float64) for a in (inputs.x, inputs.w, inputs.b, inputs.dy)]
    names = spec.tensors
    x, w, b = np.asarray(inputs.x, dtype=np.float64), np.asarray(inputs.w, dtype=np.float64), as64[2]
    if not spec.differentiable:
        y = _forward(spec)(x, w, b, **options)
        mag = _forward(spec)(np.abs(x), np.abs(w), None if b is None else np.abs(b), **options)
        return Reference({"y": y}, {"y": mag}, y)
    values = dict(zip(("y", "dx", "dw", "db"), forward_backward_function(spec)(*as64, **options)))
    magnitudes = dict(zip(("y", "dx", "dw", "db"), forward_backward_function(spec)(
        *[None if a is None else np.abs(a) for a in as64], **options)))
    return Reference({t: values[t] for t in names}, {t: magnitudes[t] for t in names}, values["y"])


def _with_attributes(spec: ConvSpec, inputs: Inputs) -> Reference:
    options = reference_options(spec)
    c, magnitude, accumulator, abs_x, abs_w = _convolution(spec, inputs)
    operands = tuple(None if o is None else np.asarray(o, dtype=np.float64) for o in inputs.operands)
    trace = chain_forward(c, spec.post_ops, operands) if spec.post_ops else None
    v = trace.output if trace is not None else c
    q = inputs.quantization
    real = v / channel(q["y_scale"], v.ndim) + channel(q["y_zero_point"], v.ndim)
    values: dict[str, np.ndarray] = {}
    codes = None
    if spec.integer_output:
        codes = _codes(spec, inputs, real, accumulator)
        values["y"] = codes_under(spec, codes, spec.quantization.rounding)
    else:
        values["y"] = real
    step_gradients: tuple[np.ndarray, ...] = ()
    gc = None
    if spec.differentiable:
        assert inputs.dy is not None
        dy = np.asarray(inputs.dy, dtype=np.float64)
        gc, operand_gradients, step_gradients = _chain_gradients(spec, trace, operands, dy)
        b = None if inputs.b is None else np.asarray(inputs.b, dtype=np.float64)
        _, dx, dw, db = forward_backward_function(spec)(np.asarray(inputs.x, dtype=np.float64),
                                                np.asarray(inputs.w, dtype=np.float64), b, gc, **options)
        values.update(dx=dx, dw=dw)
        if db is not None:
            values["db"] = db
        values.update({f"dpost{k}": gradient for k, gradient in operand_gradients.items()})
    return Reference({t: values[t] for t in spec.tensors}, {"c": magnitude}, c, trace, operands, step_gradients,
                     codes, abs_x, abs_w, gc, channel(q["y_scale"], v.ndim))


def _convolution(spec: ConvSpec, inputs: Inputs,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """(c, its magnitude, the exact accumulator (int64, bias excluded) of integer sources with one x scale, |x'|,
    |w'|): the convolution of the shifted, scaled sources plus the bias, before the chain."""
    options = reference_options(spec)
    q = inputs.quantization
    x64, w64 = np.asarray(inputs.x, dtype=np.float64), np.asarray(inputs.w, dtype=np.float64)
    scaled_x = (x64 - channel(q["x_zero_point"], x64.ndim)) * channel(q["x_scale"], x64.ndim)
    scaled_w = (w64 - q["w_zero_point"]) * channel(q["w_scale"], w64.ndim, 1 if spec.transposed else 0)
    channel_scale = np.broadcast_to(np.asarray(q["w_scale"], dtype=np.float64), (spec.out_channels,)) * np.asarray(
        q["x_scale"], dtype=np.float64).max()
    b = None if inputs.b is None else np.asarray(inputs.b, dtype=np.float64)
    integer_bias = inputs.b is not None and np.asarray(inputs.b).dtype.kind in "iu"
    b_real = None if b is None else b * channel_scale if integer_bias else b  # an int32 bias counts sx sw steps
    accumulator = None
    if spec.quantized and np.ndim(q["x_scale"]) == 0:
        accumulator = quantized_accumulator(inputs.x, inputs.w, **options, x_zero_point=q["x_zero_point"],
                                            w_zero_point=q["w_zero_point"])
        c = accumulator * channel(channel_scale, accumulator.ndim)
        if b_real is not None:
            c = c + channel(b_real, c.ndim)
    else:
        c = _forward(spec)(scaled_x, scaled_w, b_real, **options)
    abs_x, abs_w = np.abs(scaled_x), np.abs(scaled_w)
    magnitude = _forward(spec)(abs_x, abs_w, None if b_real is None else np.abs(b_real), **options)
    return c, magnitude, accumulator, abs_x, abs_w


def _chain_gradients(spec: ConvSpec, trace: ChainTrace | None, operands: tuple[np.ndarray | None, ...],
                     dy: np.ndarray) -> tuple[np.ndarray, dict[int, np.ndarray], tuple[np.ndarray, ...]]:
    """(gradient at the convolution's output, operand gradients by step, the gradient entering each step)."""
    if trace is None:
        return dy, {}, ()
    gradients = chain_backward(trace, spec.post_ops, operands, dy)
    return gradients.conv_output, gradients.operands, gradients.entering


def _codes(spec: ConvSpec, inputs: Inputs, real: np.ndarray, accumulator: np.ndarray | None) -> Codes:
    """An integer y's values before rounding, with its exact ties: in exact rationals from the accumulator where
    the scales are common and there is no chain, else the float64 values taken as exact."""
    q = inputs.quantization
    scales = np.broadcast_to(np.asarray(q["w_scale"], dtype=np.float64), (spec.out_channels,))
    y_scales = np.broadcast_to(np.asarray(q["y_scale"], dtype=np.float64), (spec.out_channels,))
    multipliers = float(np.max(np.asarray(q["x_scale"]))) * scales / y_scales
    integer_bias = inputs.b is not None and np.asarray(inputs.b).dtype.kind in "iu"
    total = accumulator
    if accumulator is not None and integer_bias:
        total = accumulator + np.asarray(inputs.b, dtype=np.int64).reshape((1, -1) + (1,) * (accumulator.ndim - 2))
    common = all(np.ndim(q[name]) == 0 for name in ("x_scale", "y_scale", "y_zero_point"))
    if accumulator is not None and total is not None and not spec.post_ops and common:
        real, ties = output_codes(accumulator, inputs.b, x_scale=float(q["x_scale"]), w_scale=q["w_scale"],
                                  y_scale=float(q["y_scale"]), y_zero_point=int(q["y_zero_point"]))
        float_bias = inputs.b is not None and not integer_bias
        power_of_two = np.array([math.frexp(m)[0] == 0.5 for m in multipliers]).reshape(
            (1, -1) + (1,) * (real.ndim - 2))
        hard = ties & power_of_two & (np.abs(total) < 2**24) & (not float_bias)
        return Codes(real, ties, total, multipliers, hard)
    ties = exact_ties(real, lambda index: Fraction(float(real[index])))
    return Codes(real, ties, total, multipliers, np.zeros(real.shape, dtype=bool))


def codes_under(spec: ConvSpec, codes: Codes, rounding: str) -> np.ndarray:
    """The integer y (as float64) that `rounding` gives, saturated to y's type."""
    destination = spec.data_types[2]
    if rounding == "double_rounding":
        if codes.accumulator is None:
            raise ValueError("double_rounding rounding needs an integer accumulator")
        zero_point = spec.quantization.y_zero_point
        rounded = double_rounding_requantize(codes.accumulator, codes.multipliers, int(zero_point) if isinstance(
            zero_point, int) else 0)
    else:
        zero_point = spec.quantization.y_zero_point
        rounded = round_codes(codes.real, codes.ties, rounding,
                              y_zero_point=int(zero_point) if isinstance(zero_point, int) else 0)
    return saturate(rounded, destination).astype(np.float64)
