"""Fused post-op chains (epilogues) in float64: what follows the convolution inside one fused kernel.

A chain is a sequence of `PostOp`, applied left to right to the convolution's output v (N, O, *out) the
way benchdnn's reference applies `--attr-post-ops` (tests/benchdnn/dnn_types.cpp, `maybe_post_ops`):

- eltwise KIND (alpha, beta): v = f(v), f from `ELTWISE` (benchdnn's formulas, dnnl::impl::math);
- sum (scale, zero_point): v = v + scale * (r - zero_point), r (N, O, *out) the residual operand
  (the tensor the convolution's output is added onto);
- binary_add, binary_sub, binary_mul, binary_div, binary_max, binary_min: v = v OP src1, src1 of
  `operand_shape`: v's size on the dims in `mask` (bit 0 the batch, bit 1 the channels, bits 2.. the
  spatial dims), 1 elsewhere, broadcast;
- prelu: v = v if v > 0 else v * slope, the slopes broadcast from `mask` like src1;
- batchnorm (inference; eps in `alpha`): v = (v - mean) / sqrt(var + eps) * gamma + beta, with the
  operand (4, O) holding mean, var, gamma, beta per output channel (convparity's own; benchdnn has none).

Each step also gives its derivative and bounds on how far an implementation may stray (used by the error
bound, convparity.harness.evaluation.chain_bound): `slope`, the largest |f'| over an interval of
inputs; `derivative_change`, the largest change of f' over it (curvature times its width, plus any jump
of f' inside it); `value_jump`, a jump of f itself inside it (round); and `work`, the rounding error of
computing the step, in units of the working precision's unit roundoff.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Array = np.ndarray
SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
GELU_TANH_FIT = 0.044715


def _logistic(s: Array) -> Array:
    """1 / (1 + exp(-s)) without overflow."""
    e = np.exp(-np.abs(s))
    return np.where(s >= 0, 1 / (1 + e), e / (1 + e))


def _softplus(s: Array) -> Array:
    return np.logaddexp(0.0, s)


_erf = np.frompyfunc(math.erf, 1, 1)


def _phi(s: Array) -> Array:
    """The standard normal CDF, Phi(s) = (1 + erf(s / sqrt 2)) / 2."""
    return 0.5 * (1 + np.asarray(_erf(s / math.sqrt(2)), dtype=np.float64))


def _normal_density(s: Array) -> Array:
    return np.exp(-0.5 * s * s) / math.sqrt(2 * math.pi)


@dataclass(frozen=True)
class Eltwise:
    """One elementwise function of benchdnn's: f(s, alpha, beta), f' and what bounds them.

    slope_bound(alpha, beta): sup |f'| over all s, or None where f' is unbounded (then `local_slope` gives it
    on an interval); curvature(alpha, beta): sup |f''| (None: `local_curvature`); kinks(alpha, beta): the
    points where f' jumps, with the jump; work: the rounding error of an implementation, in unit roundoffs of
    (|f| + slope * |s|) (1 for one rounding, more for a composition of transcendental functions).
    """

    forward: Callable[[Array, float, float], Array]
    derivative: Callable[[Array, float, float], Array]
    slope_bound: Callable[[float, float], float | None]
    curvature: Callable[[float, float], float | None]
    kinks: Callable[[float, float], tuple[tuple[float, float], ...]] = lambda a, b: ()
    work: float = 1.0
    local_slope: Callable[[Array, Array, float, float], Array] | None = None
    local_curvature: Callable[[Array, Array, float, float], Array] | None = None


def _constant(value: float) -> Callable[[float, float], float]:
    return lambda a, b: value


def _hardsigmoid(s: Array, a: float, b: float) -> Array:
    return np.clip(a * s + b, 0.0, 1.0)


def _hardsigmoid_slope(s: Array, a: float, b: float) -> Array:
    inner = a * s + b
    return np.where((inner > 0) & (inner < 1), a, 0.0)


def _hardswish_slope_bound(a: float, b: float) -> float:
    """f = s * clip(a s + b, 0, 1): f' = 2 a s + b where 0 < a s + b < 1 (from -b to 2 - b), else 0 or 1."""
    return max(1.0, abs(b), abs(2 - b)) if a else abs(min(max(b, 0.0), 1.0))


def _hardsigmoid_kinks(a: float, b: float) -> tuple[tuple[float, float], ...]:
    return ((-b / a, abs(a)), ((1 - b) / a, abs(a))) if a else ()


def _hardswish_kinks(a: float, b: float) -> tuple[tuple[float, float], ...]:
    return ((-b / a, abs(b)), ((1 - b) / a, abs(1 - b))) if a else ()


def _gelu_tanh(s: Array) -> Array:
    return 0.5 * s * (1 + np.tanh(SQRT_2_OVER_PI * s * (1 + GELU_TANH_FIT * s * s)))


def _gelu_tanh_slope(s: Array) -> Array:
    t = np.tanh(SQRT_2_OVER_PI * s * (1 + GELU_TANH_FIT * s * s))
    return 0.5 * (1 + t) + 0.5 * s * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * GELU_TANH_FIT * s * s)


def _swish_slope(s: Array, a: float) -> Array:
    sigma = _logistic(a * s)
    return sigma + a * s * sigma * (1 - sigma)


def _mish_slope(s: Array) -> Array:
    t = np.tanh(_softplus(s))
    return t + s * (1 - t * t) * _logistic(s)


def _pow_slope(s: Array, e: Array, a: float, b: float, order: int) -> Array:
    """sup |d^order/ds^order of a s^b| over [s - e, s + e]: |a| * |b (b - 1)...| * |s|^(b - order) at the end of the
    interval where it is largest (infinite where a negative power meets 0)."""
    factor = abs(a) * abs(math.prod(b - i for i in range(order)))
    if factor == 0:
        return np.zeros_like(s)
    power = b - order
    far = np.abs(s) + e
    near = np.abs(s) - e
    if power >= 0:
        return factor * far**power
    with np.errstate(divide="ignore"):
        return np.where(near > 0, factor * np.maximum(near, 0) ** power, np.inf)


def _positive_domain(s: Array, e: Array, function: Callable[[Array], Array]) -> Array:
    """function(s - e) where the interval stays above 0 (the largest value of a decreasing function), else inf."""
    low = s - e
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(low > 0, function(np.where(low > 0, low, 1.0)), np.inf)


# Suprema of the derivatives of the smooth bounded kinds, from their closed forms (the tests check them densely).
GELU_SLOPE = 1.1291  # Phi(s) + s phi(s) peaks at s = sqrt 2: 1.128904; the tanh fit peaks at 1.128993
GELU_CURVATURE = 0.7980  # phi(s) (2 - s^2) peaks at s = 0: 2 phi(0) = 0.79788; the tanh fit: 0.79788
SWISH_SLOPE = 1.0999  # g(t) = sigma(t) (1 + t (1 - sigma(t))) lies in [-0.0998, 1.0998]; f' = g(alpha s)
MISH_SLOPE = 1.0889  # mish' lies in [-0.1126, 1.0885]
MISH_CURVATURE = 0.6450  # |mish''| peaks at 0.6442
TANH_CURVATURE = 4 / (3 * math.sqrt(3))  # |d^2 tanh| = |2 t (1 - t^2)| peaks at t = 1/sqrt 3
LOGISTIC_CURVATURE = 1 / (6 * math.sqrt(3))  # |sigma (1 - sigma) (1 - 2 sigma)| peaks at 0.0962

ELTWISE: dict[str, Eltwise] = {
    "relu": Eltwise(lambda s, a, b: np.where(s > 0, s, a * s), lambda s, a, b: np.where(s > 0, 1.0, a),
                    lambda a, b: max(1.0, abs(a)), _constant(0.0), lambda a, b: ((0.0, abs(1 - a)),)),
    "elu": Eltwise(lambda s, a, b: np.where(s > 0, s, a * np.expm1(np.minimum(s, 0))),
                   lambda s, a, b: np.where(s > 0, 1.0, a * np.exp(np.minimum(s, 0))),
                   lambda a, b: max(1.0, abs(a)), lambda a, b: abs(a), lambda a, b: ((0.0, abs(1 - a)),), work=4),
    "tanh": Eltwise(lambda s, a, b: np.tanh(s), lambda s, a, b: 1 - np.tanh(s) ** 2, _constant(1.0),
                    _constant(TANH_CURVATURE), work=4),
    "logistic": Eltwise(lambda s, a, b: _logistic(s), lambda s, a, b: _logistic(s) * (1 - _logistic(s)),
                        _constant(0.25), _constant(LOGISTIC_CURVATURE), work=4),
    "square": Eltwise(lambda s, a, b: s * s, lambda s, a, b: 2 * s, lambda a, b: None, _constant(2.0),
                      local_slope=lambda s, e, a, b: 2 * (np.abs(s) + e)),
    "abs": Eltwise(lambda s, a, b: np.abs(s), lambda s, a, b: np.sign(s), _constant(1.0), _constant(0.0),
                   lambda a, b: ((0.0, 2.0),)),
    "sqrt": Eltwise(lambda s, a, b: np.sqrt(s), lambda s, a, b: 0.5 / np.sqrt(s), lambda a, b: None,
                    lambda a, b: None,
                    local_slope=lambda s, e, a, b: _positive_domain(s, e, lambda t: 0.5 / np.sqrt(t)),
                    local_curvature=lambda s, e, a, b: _positive_domain(s, e, lambda t: 0.25 * t**-1.5)),
    "linear": Eltwise(lambda s, a, b: a * s + b, lambda s, a, b: np.full_like(s, a),
                      lambda a, b: abs(a), _constant(0.0), work=2),
    "soft_relu": Eltwise(lambda s, a, b: _softplus(a * s) / a, lambda s, a, b: _logistic(a * s), _constant(1.0),
                         lambda a, b: abs(a) / 4, work=4),
    "mish": Eltwise(lambda s, a, b: s * np.tanh(_softplus(s)), lambda s, a, b: _mish_slope(s),
                    _constant(MISH_SLOPE), _constant(MISH_CURVATURE), work=8),
    "swish": Eltwise(lambda s, a, b: s * _logistic(a * s), lambda s, a, b: _swish_slope(s, a),
                     _constant(SWISH_SLOPE), lambda a, b: 0.5 * abs(a), work=8),
    "exp": Eltwise(lambda s, a, b: np.exp(s), lambda s, a, b: np.exp(s), lambda a, b: None, lambda a, b: None,
                   work=4, local_slope=lambda s, e, a, b: np.exp(s + e),
                   local_curvature=lambda s, e, a, b: np.exp(s + e)),
    "gelu_tanh": Eltwise(lambda s, a, b: _gelu_tanh(s), lambda s, a, b: _gelu_tanh_slope(s),
                         _constant(GELU_SLOPE), _constant(GELU_CURVATURE), work=8),
    "gelu_erf": Eltwise(lambda s, a, b: s * _phi(s), lambda s, a, b: _phi(s) + s * _normal_density(s),
                        _constant(GELU_SLOPE), _constant(GELU_CURVATURE), work=8),
    "log": Eltwise(lambda s, a, b: np.log(s), lambda s, a, b: 1 / s, lambda a, b: None, lambda a, b: None, work=4,
                   local_slope=lambda s, e, a, b: _positive_domain(s, e, lambda t: 1 / t),
                   local_curvature=lambda s, e, a, b: _positive_domain(s, e, lambda t: 1 / (t * t))),
    "clip": Eltwise(lambda s, a, b: np.where(s > b, b, np.maximum(s, a)),
                    lambda s, a, b: np.where((s > a) & (s <= b), 1.0, 0.0), _constant(1.0), _constant(0.0),
                    lambda a, b: ((a, 1.0), (b, 1.0))),
    "pow": Eltwise(lambda s, a, b: a * np.power(s, b), lambda s, a, b: a * b * np.power(s, b - 1),
                   lambda a, b: None, lambda a, b: None, work=4,
                   local_slope=lambda s, e, a, b: _pow_slope(s, e, a, b, 1),
                   local_curvature=lambda s, e, a, b: _pow_slope(s, e, a, b, 2)),
    "hardsigmoid": Eltwise(_hardsigmoid, _hardsigmoid_slope, lambda a, b: abs(a), _constant(0.0), _hardsigmoid_kinks,
                           work=2),
    "hardswish": Eltwise(lambda s, a, b: s * _hardsigmoid(s, a, b),
                         lambda s, a, b: _hardsigmoid(s, a, b) + s * _hardsigmoid_slope(s, a, b),
                         _hardswish_slope_bound, lambda a, b: 2 * abs(a), _hardswish_kinks, work=3),
    "round": Eltwise(lambda s, a, b: np.rint(s), lambda s, a, b: np.zeros_like(s), _constant(0.0), _constant(0.0),
                     work=0),
}
# benchdnn's names for the same forward function (the `_dst` kinds differ only in their backward primitive).
ELTWISE_ALIASES = {"clip_v2": "clip", "srelu": "soft_relu", "relu_dst": "relu", "elu_dst": "elu",
                   "exp_dst": "exp", "logistic_dst": "logistic", "sqrt_dst": "sqrt", "tanh_dst": "tanh",
                   "clip_v2_dst": "clip"}
BINARY = ("binary_add", "binary_sub", "binary_mul", "binary_div", "binary_max", "binary_min")
OPERAND_KINDS = ("sum", *BINARY, "prelu", "batchnorm")
KINDS = (*ELTWISE, *ELTWISE_ALIASES, *OPERAND_KINDS)
# Kinds whose operand a backward pass gives a gradient for (batchnorm's statistics are inference constants).
DIFFERENTIABLE_OPERANDS = ("sum", *BINARY, "prelu")


@dataclass(frozen=True)
class PostOp:
    """One step of a chain (see the module docstring for each kind).

    kind: an eltwise name (ELTWISE or an alias), "sum", a binary kind, "prelu" or "batchnorm".
    alpha, beta: the eltwise parameters (batchnorm: alpha is eps). scale, zero_point: a sum's.
    mask: which of y's dims a binary or prelu operand spans (bit 0 batch, bit 1 channels, bit 2 + i spatial
    dim i). data_type: a sum's or binary's operand data type as benchdnn names it ("" = the destination's); the
    operand's values are drawn exact in it, so it changes no result.
    """

    kind: str
    alpha: float = 0.0
    beta: float = 0.0
    scale: float = 1.0
    zero_point: int = 0
    mask: int = 0
    data_type: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"post-op kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        for field in ("alpha", "beta", "scale"):
            value = getattr(self, field)
            if not isinstance(value, (int, float, np.floating)) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"post-op {self.kind}: {field} must be a finite number, got {value!r}")
            object.__setattr__(self, field, float(value))
        if not isinstance(self.zero_point, (int, np.integer)) or isinstance(self.zero_point, bool):
            raise ValueError(f"post-op {self.kind}: zero_point must be an int, got {self.zero_point!r}")
        if not isinstance(self.mask, (int, np.integer)) or isinstance(self.mask, bool) or not 0 <= self.mask < 32:
            raise ValueError(f"post-op {self.kind}: mask must be an int from 0 to 31, got {self.mask!r}")
        if self.kind == "soft_relu" and self.alpha == 0:
            raise ValueError("post-op soft_relu: alpha must not be 0 (it divides by alpha)")
        if self.kind == "batchnorm" and self.alpha <= 0:
            raise ValueError(f"post-op batchnorm: eps (alpha) must be positive, got {self.alpha!r}")

    @property
    def function(self) -> str:
        """The kind with benchdnn's aliases resolved (clip_v2 -> clip, relu_dst -> relu, ...)."""
        return ELTWISE_ALIASES.get(self.kind, self.kind)

    @property
    def eltwise(self) -> Eltwise | None:
        return ELTWISE.get(self.function)

    @property
    def eps(self) -> float:
        return self.alpha


def operand_shape(op: PostOp, y_shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The shape of a post-op's operand for an output y_shape (N, O, *out), or None for an eltwise step.

    sum: y_shape; binary and prelu: y_shape on the dims in `mask`, 1 elsewhere; batchnorm: (4, O).
    """
    if op.eltwise is not None:
        return None
    if op.kind == "sum":
        return y_shape
    if op.kind == "batchnorm":
        return (4, y_shape[1])
    if op.mask >= 1 << len(y_shape):
        raise ValueError(f"post-op {op.kind}: mask {op.mask} names a dim beyond y's {len(y_shape)}")
    return tuple(size if op.mask >> dim & 1 else 1 for dim, size in enumerate(y_shape))


def _channel(values: Array, ndim: int) -> Array:
    """(O,) as (1, O, 1, ...) against a tensor of `ndim` dims."""
    return values.reshape((1, -1) + (1,) * (ndim - 2))


def batchnorm_terms(operand: Array, eps: float, ndim: int) -> tuple[Array, Array, Array]:
    """(mean, multiplier gamma / sqrt(var + eps), beta), each shaped (1, O, 1, ...)."""
    mean, var, gamma, beta = (np.asarray(row, dtype=np.float64) for row in operand)
    return _channel(mean, ndim), _channel(gamma / np.sqrt(var + eps), ndim), _channel(beta, ndim)


def apply_step(op: PostOp, v: Array, operand: Array | None) -> Array:
    """One step forward: f(v) for v (N, O, *out) in float64."""
    with np.errstate(all="ignore"):
        eltwise = op.eltwise
        if eltwise is not None:
            return eltwise.forward(v, op.alpha, op.beta)
        assert operand is not None, f"post-op {op.kind} needs its operand"
        other = np.asarray(operand, dtype=np.float64)
        if op.kind == "sum":
            return v + op.scale * (other - op.zero_point)
        if op.kind == "prelu":
            return np.where(v > 0, v, v * other)
        if op.kind == "batchnorm":
            mean, multiplier, beta = batchnorm_terms(other, op.eps, v.ndim)
            return (v - mean) * multiplier + beta
        return _binary(op.kind, v, other)


def _binary(kind: str, v: Array, other: Array) -> Array:
    if kind == "binary_add":
        return v + other
    if kind == "binary_sub":
        return v - other
    if kind == "binary_mul":
        return v * other
    if kind == "binary_div":
        return v / other
    if kind == "binary_max":
        return np.maximum(v, other)
    return np.minimum(v, other)


def step_derivative(op: PostOp, v: Array, operand: Array | None) -> Array:
    """d step / d v at v (broadcast to v's shape)."""
    with np.errstate(all="ignore"):
        eltwise = op.eltwise
        if eltwise is not None:
            return np.broadcast_to(eltwise.derivative(v, op.alpha, op.beta), v.shape)
        other = np.asarray(operand, dtype=np.float64)
        derivative = {
            "sum": lambda: np.ones_like(v),
            "prelu": lambda: np.where(v > 0, 1.0, other),
            "batchnorm": lambda: batchnorm_terms(other, op.eps, v.ndim)[1],
            "binary_add": lambda: np.ones_like(v),
            "binary_sub": lambda: np.ones_like(v),
            "binary_mul": lambda: other,
            "binary_div": lambda: 1 / other,
            "binary_max": lambda: np.where(v >= other, 1.0, 0.0),
            "binary_min": lambda: np.where(v <= other, 1.0, 0.0),
        }[op.kind]()
        return np.broadcast_to(derivative, v.shape)


def operand_gradient_terms(op: PostOp, v: Array, operand: Array) -> Array:
    """d step / d operand at v, per element of v (summed over the broadcast dims it gives the operand's gradient)."""
    other = np.asarray(operand, dtype=np.float64)
    with np.errstate(all="ignore"):
        terms = {
            "sum": lambda: np.full_like(v, op.scale),
            "prelu": lambda: np.where(v > 0, 0.0, v),
            "binary_add": lambda: np.ones_like(v),
            "binary_sub": lambda: -np.ones_like(v),
            "binary_mul": lambda: v,
            "binary_div": lambda: -v / (other * other),
            "binary_max": lambda: np.where(v >= other, 0.0, 1.0),
            "binary_min": lambda: np.where(v <= other, 0.0, 1.0),
        }[op.kind]()
    return np.broadcast_to(terms, v.shape)


def reduce_to(values: Array, shape: tuple[int, ...]) -> Array:
    """Sum `values` over the dims where `shape` has 1 (the adjoint of broadcasting `shape` to values.shape)."""
    axes = tuple(dim for dim, (size, full) in enumerate(zip(shape, values.shape)) if size == 1 and full != 1)
    return values.sum(axis=axes, keepdims=True).reshape(shape) if axes else values.reshape(shape)


@dataclass(frozen=True)
class ChainTrace:
    """The values entering each step (inputs[k] is v before step k) and the chain's output."""

    inputs: tuple[Array, ...]
    output: Array


def chain_forward(v: Array, chain: Sequence[PostOp], operands: Sequence[Array | None]) -> ChainTrace:
    """The chain applied to v (N, O, *out), float64; operands[k] is step k's operand (None for eltwise steps)."""
    _check_operands(chain, operands, v.shape)
    inputs = []
    for op, operand in zip(chain, operands):
        inputs.append(v)
        v = apply_step(op, v, operand)
    return ChainTrace(tuple(inputs), v)


@dataclass(frozen=True)
class ChainGradients:
    """The chain run backward: d loss / d c at the convolution's output, {k: d loss / d operand k} for each
    differentiable operand, and entering[k], the gradient arriving at step k from above (dy at the last step)."""

    conv_output: Array
    operands: dict[int, Array]
    entering: tuple[Array, ...]


def chain_backward(trace: ChainTrace, chain: Sequence[PostOp], operands: Sequence[Array | None], dy: Array,
                   ) -> ChainGradients:
    """The gradients of a chain for the output gradient dy (ChainGradients)."""
    gradients: dict[int, Array] = {}
    entering: list[Array] = []
    g = np.asarray(dy, dtype=np.float64)
    for k in reversed(range(len(chain))):
        op, operand, v = chain[k], operands[k], trace.inputs[k]
        entering.append(g)
        if op.kind in DIFFERENTIABLE_OPERANDS:
            assert operand is not None
            gradients[k] = reduce_to(g * operand_gradient_terms(op, v, operand), np.shape(operand))
        with np.errstate(all="ignore"):
            g = g * step_derivative(op, v, operand)
    return ChainGradients(g, dict(sorted(gradients.items())), tuple(reversed(entering)))


def _check_operands(chain: Sequence[PostOp], operands: Sequence[Array | None], y_shape: tuple[int, ...]) -> None:
    if len(operands) != len(chain):
        raise ValueError(f"a chain of {len(chain)} post-ops needs {len(chain)} operands (None for eltwise), "
                         f"got {len(operands)}")
    for index, (op, operand) in enumerate(zip(chain, operands)):
        expected = operand_shape(op, y_shape)
        if expected is None:
            continue
        if operand is None or np.shape(operand) != expected:
            got = None if operand is None else np.shape(operand)
            raise ValueError(f"post-op {index} ({op.kind}) needs an operand of shape {expected}, got {got}")


# -- how far an implementation may stray, per step (convparity.harness.evaluation.chain_bound) ---------------

def slope(op: PostOp, v: Array, e: Array, operand: Array | None) -> Array:
    """sup |d step / d v| over [v - e, v + e], per element (inf where it is unbounded there)."""
    eltwise = op.eltwise
    if eltwise is not None:
        bound = eltwise.slope_bound(op.alpha, op.beta)
        if bound is not None:
            return np.full(v.shape, bound)
        assert eltwise.local_slope is not None
        with np.errstate(all="ignore"):
            return np.broadcast_to(eltwise.local_slope(v, e, op.alpha, op.beta), v.shape)
    if op.kind == "prelu":
        slopes = np.abs(np.broadcast_to(np.asarray(operand, dtype=np.float64), v.shape))
        return np.where(v - e > 0, 1.0, np.where(v + e < 0, slopes, np.maximum(1.0, slopes)))
    with np.errstate(all="ignore"):
        return np.abs(step_derivative(op, v, operand))


def derivative_change(op: PostOp, v: Array, e: Array, operand: Array | None) -> Array:
    """sup |f'(t) - f'(v)| over t in [v - e, v + e]: curvature times e, plus the jump of any kink of f' inside."""
    eltwise = op.eltwise
    with np.errstate(all="ignore"):
        if eltwise is None:  # the operand steps are linear in v but for prelu's and max/min's kink
            if op.kind not in ("prelu", "binary_max", "binary_min"):
                return np.zeros(v.shape)
            other = np.broadcast_to(np.asarray(operand, dtype=np.float64), v.shape)
            if op.kind == "prelu":
                return np.where(np.abs(v) <= e, np.abs(1 - other), 0.0)
            return np.where(np.abs(v - other) <= e, 1.0, 0.0)
        curvature = eltwise.curvature(op.alpha, op.beta)
        if curvature is None:
            assert eltwise.local_curvature is not None
            change = eltwise.local_curvature(v, e, op.alpha, op.beta) * e
        else:
            change = curvature * e
        for point, jump in eltwise.kinks(op.alpha, op.beta):
            change = change + np.where(np.abs(v - point) <= e, jump, 0.0)
        return change


def value_jump(op: PostOp, v: Array, e: Array) -> Array:
    """How far f itself may jump over [v - e, v + e] (round: 1 where a half-integer lies inside), else 0."""
    if op.function != "round":
        return np.zeros(v.shape)
    nearest_half = np.floor(v) + 0.5
    inside = (np.abs(v - nearest_half) <= e) | (np.abs(v - nearest_half + 1) <= e)
    return np.where(inside, 1.0, 0.0)


def operand_size(op: PostOp, v: Array, operand: Array | None) -> Array | float:
    """The size of what a step adds from its operand, per element (0 for an eltwise step): a sum's |scale (r - zp)|,
    a binary's |src1|, batchnorm's multiplier |mean| + |beta|. A step's roundings are relative to these sizes too:
    where the result cancels (batchnorm of a 0 output: (0 - mean) * m + beta near 0) |f(v)| alone would not
    bound them."""
    if op.eltwise is not None or operand is None or op.kind == "prelu":
        return 0.0
    other = np.asarray(operand, dtype=np.float64)
    if op.kind == "batchnorm":
        mean, multiplier, beta = batchnorm_terms(other, op.eps, v.ndim)
        return np.broadcast_to(np.abs(multiplier * mean) + np.abs(beta), v.shape)
    if op.kind == "sum":
        return np.broadcast_to(np.abs(op.scale * (other - op.zero_point)), v.shape)
    return np.broadcast_to(np.abs(other), v.shape)


def work(op: PostOp) -> float:
    """Rounding errors of one step, in unit roundoffs of its scale (an eltwise's `work`; one for the others, two
    for a scaled sum and for batchnorm's multiply-add)."""
    eltwise = op.eltwise
    if eltwise is not None:
        return eltwise.work
    if op.kind == "batchnorm" or (op.kind == "sum" and (op.scale != 1 or op.zero_point)):
        return 3.0
    return 1.0
