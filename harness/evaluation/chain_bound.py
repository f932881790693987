"""The error bound of every tensor of a case, carried through a post-op chain and quantization.

A plain convolution keeps the bound of harness.evaluation.bound:
factor * (gamma(K, u_acc) * mag + u_out * |ref| + eta_out). With a chain, each step's error is carried
forward. Derivation (forward), with v_k the exact input of step k and E_k a bound on how far an
implementation's v_k may be from it:

    E_0     = gamma(K, u_acc) * mag_c                      the convolution's own sum (K + 2 with scales)
    E'_k    = E_k + u * |v_k|                              an unfused backend stores v_k in the working type
    E_k+1   = L_k * E'_k + w_k * u * (|v_k+1| + L_k * (|v_k| + M_k) + R_k) + J_k
    M_k+1   = L_k * M_k + |v_k+1|,  M_0 = mag_c            a bound on the sizes the step works with

L_k = sup |f'| over [v_k - E'_k, v_k + E'_k] (mean value theorem: |f(a) - f(b)| <= L |a - b|),
w_k the step's rounding work in unit roundoffs (reference_impl.post_ops: one for a plain add, eight for
a composition of transcendental functions such as gelu), u the unit roundoff of the working type
(ConvSpec.compute_dtype), and J_k the jump of a discontinuous step (round: 1 where a half-integer lies
within E'_k). R_k is the size of what the step adds from its operand (reference_impl.post_ops.operand_size:
a sum's |scale r|, a binary's |src1|, batchnorm's |m mean| + |beta|), since its roundings are relative to
the operands too where the result cancels. The M_k term covers an implementation that folds the step into
the convolution's weights (batchnorm into w and b rounds every folded weight once: u * L * mag). The output then adds
its own rounding u_out * |y| + eta_out, and a y scale divides everything by sy.

Backward, with g_k the gradient arriving at step k (g_K = dy, exact) and G_k its error bound:

    G_k-1 = L_k * G_k + |g_k| * D_k + w_k * u * L_k * |g_k|

D_k = sup |f'(t) - f'(v_k)| over t in [v_k - E'_k, v_k + E'_k] (curvature times E'_k, plus the jump of
f' where a kink lies within it: relu's slope may be either side at 0). The gradient at the
convolution's output g_c carries G_c into the convolution's backward pass, which is linear:
dx errs by gamma(K_dx) * conv^T(|g_c|, |w|) + conv^T(G_c, |w|), dw by gamma(K_dw) * corr(|x|, |g_c|) +
corr(|x|, G_c), db by gamma(K_db) * sum |g_c| + sum G_c. An operand's gradient sums g_k+1 * t_k over
the dims it is broadcast along, t_k the step's derivative in the operand: it errs by
gamma(n) * sum |g t| + sum (|t| G + |g| dt), dt the change of t over E'_k.

An integer y is judged in steps (harness.evaluation.steps); its window is E_K / sy plus the float32
requantization's rounding, 2 u_32 (|v| + |zp_y| + 1): the distance an implementation's value before
rounding may lie from the exact one, so that a step to either side of a tie inside it is allowed.
"""

from __future__ import annotations

import math

import numpy as np

from convparity.harness.cases.spec import ConvSpec
from convparity.harness.evaluation.bound import UNDERFLOW, element_bound, gamma, roundoff
from convparity.harness.evaluation.reference import Reference, channel, forward_backward_function, reference_options
from convparity.harness.vocabulary import UNIT_ROUNDOFF
from convparity.reference_impl.post_ops import (
    DIFFERENTIABLE_OPERANDS,
    derivative_change,
    operand_gradient_terms,
    operand_size,
    reduce_to,
    slope,
    value_jump,
    work,
)


def tensor_bounds(spec: ConvSpec, ref: Reference, *, accumulation: str, tolerance_factor: float = 1.0,
                  ) -> dict[str, np.ndarray]:
    """{tensor: per-element bound} for every float tensor of `ref` (an integer y has `code_window` instead)."""
    reductions = spec.reductions
    if ref.trace is None and "c" not in ref.magnitudes:  # a plain convolution
        return {t: element_bound(ref.values[t], ref.magnitudes[t], reduction=reductions[t],
                                 dtype=spec.dtype_of(t), accumulation=accumulation,
                                 tolerance_factor=tolerance_factor)
                for t in ref.values}
    forward = _forward_errors(spec, ref, accumulation)
    bounds: dict[str, np.ndarray] = {}
    if not spec.integer_output:
        bounds["y"] = forward.output / _scale(spec, ref) + _rounding(ref.values["y"], spec.dtype_of("y"))
    if spec.differentiable:
        bounds.update(_backward_bounds(spec, ref, forward, accumulation))
    return {t: tolerance_factor * b for t, b in bounds.items()}


def code_window(spec: ConvSpec, ref: Reference, *, accumulation: str, tolerance_factor: float = 1.0) -> np.ndarray:
    """How far an implementation's integer y may lie from the exact value before rounding (module docstring)."""
    assert ref.codes is not None
    forward = _forward_errors(spec, ref, accumulation)
    u32 = UNIT_ROUNDOFF["float32"]
    zero_point = np.abs(np.asarray(channel(spec.quantization.y_zero_point if isinstance(
        spec.quantization.y_zero_point, int) else 0, ref.codes.real.ndim)))
    return tolerance_factor * (forward.output / _scale(spec, ref) + 2 * u32 * (np.abs(ref.codes.real) + zero_point + 1))


def _scale(spec: ConvSpec, ref: Reference) -> np.ndarray | float:
    """|sy| (a number or per output channel): the y scale divides the chain's error."""
    return np.abs(ref.y_scale)


def _rounding(values: np.ndarray, dtype: str) -> np.ndarray:
    return UNIT_ROUNDOFF[dtype] * np.abs(values) + UNDERFLOW[dtype]


class _Forward:
    """The forward pass's bounds: E'_k per step (errors[k]), and E_K at the chain's output."""

    def __init__(self, errors: list[np.ndarray], output: np.ndarray) -> None:
        self.errors = errors
        self.output = output


def _forward_errors(spec: ConvSpec, ref: Reference, accumulation: str) -> _Forward:
    u = UNIT_ROUNDOFF[spec.compute_dtype]
    scaled = not spec.quantization.is_identity
    reduction = spec.reductions["y"] + (2 if scaled else 0)
    magnitude = ref.magnitudes["c"]
    error = gamma(reduction, roundoff(accumulation)) * magnitude
    if spec.quantized:  # the exact accumulator times the scales, in float32 at least
        error = error + 3 * UNIT_ROUNDOFF["float32"] * np.abs(ref.conv_output)
    errors = []
    if ref.trace is not None:
        sizes = magnitude
        for k, op in enumerate(spec.post_ops):
            v = ref.trace.inputs[k]
            after = ref.trace.inputs[k + 1] if k + 1 < len(spec.post_ops) else ref.trace.output
            widened = error + u * np.abs(v)
            errors.append(widened)
            steep = slope(op, v, widened, ref.operands[k])
            with np.errstate(invalid="ignore", over="ignore"):
                error = (steep * widened + work(op) * u * (np.abs(after) + steep * (np.abs(v) + sizes)
                                                           + operand_size(op, v, ref.operands[k]))
                         + value_jump(op, v, widened))
                sizes = steep * sizes + np.abs(after)
            error = np.where(np.isnan(error), np.inf, error)
    return _Forward(errors, error)


def _backward_bounds(spec: ConvSpec, ref: Reference, forward: _Forward, accumulation: str) -> dict[str, np.ndarray]:
    u = UNIT_ROUNDOFF[spec.compute_dtype]
    u_acc = roundoff(accumulation)
    reductions = spec.reductions
    bounds: dict[str, np.ndarray] = {}
    assert ref.abs_x is not None and ref.abs_w is not None
    carried = np.zeros(spec.y_shape)
    for k in reversed(range(len(spec.post_ops))):
        op, v, operand = spec.post_ops[k], ref.trace.inputs[k], ref.operands[k]  # type: ignore[union-attr]
        g, widened = ref.step_gradients[k], forward.errors[k]
        steep = slope(op, v, widened, operand)
        if op.kind in DIFFERENTIABLE_OPERANDS:
            bounds[f"dpost{k}"] = _operand_bound(spec, k, v, widened, g, carried, u_acc, ref)
        with np.errstate(invalid="ignore", over="ignore"):
            carried = steep * carried + np.abs(g) * derivative_change(op, v, widened, operand) + work(
                op) * u * steep * np.abs(g)
        carried = np.where(np.isnan(carried), np.inf, carried)
    g0 = ref.conv_gradient
    assert g0 is not None
    options = reference_options(spec)
    no_bias = None
    _, mag_dx, mag_dw, _ = forward_backward_function(spec)(ref.abs_x, ref.abs_w, no_bias, np.abs(g0), **options)
    _, err_dx, err_dw, _ = forward_backward_function(spec)(ref.abs_x, ref.abs_w, no_bias, carried, **options)
    axes = tuple(i for i in range(g0.ndim) if i != 1)
    propagated = {"dx": (mag_dx, err_dx), "dw": (mag_dw, err_dw),
                  "db": (np.abs(g0).sum(axis=axes), carried.sum(axis=axes))}
    for tensor in ("dx", "dw", "db"):
        if tensor not in ref.values:
            continue
        magnitude, error = propagated[tensor]
        bounds[tensor] = (gamma(reductions[tensor], u_acc) * magnitude + error
                          + _rounding(ref.values[tensor], spec.dtype_of(tensor)))
    return bounds


def _operand_bound(spec: ConvSpec, k: int, v: np.ndarray, widened: np.ndarray, g: np.ndarray, carried: np.ndarray,
                   u_acc: float, ref: Reference) -> np.ndarray:
    """The bound of post-op k's operand gradient: the sum of g * t over the broadcast dims (module docstring)."""
    op, operand = spec.post_ops[k], ref.operands[k]
    assert operand is not None
    terms = np.abs(operand_gradient_terms(op, v, operand))
    other = np.broadcast_to(operand, v.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = {
            "binary_mul": lambda: widened,
            "binary_div": lambda: widened / (other * other),
            "prelu": lambda: np.where(np.abs(v) <= widened, np.abs(v) + widened, np.where(v < 0, widened, 0.0)),
            "binary_max": lambda: np.where(np.abs(v - other) <= widened, 1.0, 0.0),
            "binary_min": lambda: np.where(np.abs(v - other) <= widened, 1.0, 0.0),
        }.get(op.kind, lambda: np.zeros(v.shape))()
    shape = np.shape(operand)
    count = max(1, math.prod(v.shape) // max(1, math.prod(shape)))
    value = ref.values[f"dpost{k}"]
    return (gamma(count, u_acc) * reduce_to(np.abs(g) * terms, shape) + reduce_to(terms * carried + np.abs(g) * change,
                                                                                   shape)
            + _rounding(value, spec.dtype_of(f"dpost{k}")))
