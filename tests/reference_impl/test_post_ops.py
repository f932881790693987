"""The post-op chain in float64 (convparity.reference_impl.post_ops) against independent computations: each
eltwise kind against its formula written with the math module, its derivative against central differences,
the bounds the error bound relies on against dense sampling, and a chain's gradients against differences."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from convparity.reference_impl.post_ops import (
    ELTWISE,
    ChainTrace,
    PostOp,
    chain_backward,
    chain_forward,
    derivative_change,
    operand_shape,
    slope,
    value_jump,
)


def _sigmoid(s: float) -> float:
    return 1 / (1 + math.exp(-s)) if s >= 0 else math.exp(s) / (1 + math.exp(s))


# Each kind written from benchdnn's formulas (dnnl::impl::math) with the math module, one value at a time.
SCALAR = {
    "relu": lambda s, a, b: s if s > 0 else a * s,
    "elu": lambda s, a, b: s if s > 0 else a * math.expm1(s),
    "tanh": lambda s, a, b: math.tanh(s),
    "logistic": lambda s, a, b: _sigmoid(s),
    "square": lambda s, a, b: s * s,
    "abs": lambda s, a, b: abs(s),
    "sqrt": lambda s, a, b: math.sqrt(s),
    "linear": lambda s, a, b: a * s + b,
    "soft_relu": lambda s, a, b: math.log1p(math.exp(a * s)) / a,
    "mish": lambda s, a, b: s * math.tanh(math.log1p(math.exp(s))),
    "swish": lambda s, a, b: s * _sigmoid(a * s),
    "exp": lambda s, a, b: math.exp(s),
    "gelu_tanh": lambda s, a, b: 0.5 * s * (1 + math.tanh(math.sqrt(2 / math.pi) * (s + 0.044715 * s**3))),
    "gelu_erf": lambda s, a, b: 0.5 * s * (1 + math.erf(s / math.sqrt(2))),
    "log": lambda s, a, b: math.log(s),
    "clip": lambda s, a, b: min(max(s, a), b),
    "pow": lambda s, a, b: a * s**b,
    "hardsigmoid": lambda s, a, b: min(max(a * s + b, 0.0), 1.0),
    "hardswish": lambda s, a, b: s * min(max(a * s + b, 0.0), 1.0),
    "round": lambda s, a, b: float(round(s)),  # Python's round is half to even
}
PARAMETERS = {"relu": (0.1, 0.0), "elu": (0.7, 0.0), "linear": (0.5, 0.25), "soft_relu": (1.5, 0.0),
              "swish": (1.3, 0.0), "clip": (-0.5, 0.75), "pow": (0.5, 3.0), "hardsigmoid": (1 / 6, 0.5),
              "hardswish": (1 / 6, 0.5)}
POSITIVE = ("sqrt", "log")  # defined for s > 0 only
SAMPLES = np.linspace(-6, 6, 4001)


def _points(kind: str) -> np.ndarray:
    return np.linspace(0.01, 6, 2001) if kind in POSITIVE else SAMPLES


def test_every_kind_has_an_independent_formula():
    assert set(SCALAR) == set(ELTWISE)


@pytest.mark.parametrize("kind", sorted(ELTWISE))
def test_forward_equals_the_math_module_formula(kind):
    a, b = PARAMETERS.get(kind, (0.0, 0.0))
    s = _points(kind)
    got = ELTWISE[kind].forward(s, a, b)
    expected = np.array([SCALAR[kind](float(v), a, b) for v in s])
    # gelu_tanh's 1 + tanh cancels for large negative s: both lose digits there, absolutely below 1e-15
    np.testing.assert_allclose(got, expected, rtol=4e-15, atol=1e-15)


@pytest.mark.parametrize("kind", sorted(set(ELTWISE) - {"round"}))
def test_derivative_equals_central_differences_away_from_kinks(kind):
    a, b = PARAMETERS.get(kind, (0.0, 0.0))
    eltwise = ELTWISE[kind]
    s = _points(kind)
    kinks = [point for point, _ in eltwise.kinks(a, b)]
    s = s[np.all([np.abs(s - k) > 1e-3 for k in kinks], axis=0)] if kinks else s
    h = 1e-6
    numeric = (eltwise.forward(s + h, a, b) - eltwise.forward(s - h, a, b)) / (2 * h)
    np.testing.assert_allclose(eltwise.derivative(s, a, b), numeric, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind", sorted(ELTWISE))
def test_the_slope_and_curvature_bounds_hold_on_dense_samples(kind):
    # The error bound multiplies errors by these: a bound below the true supremum would make false alarms.
    a, b = PARAMETERS.get(kind, (0.0, 0.0))
    eltwise = ELTWISE[kind]
    s = np.linspace(-30, 30, 600001) if kind not in POSITIVE else np.linspace(1e-3, 30, 300001)
    e = np.full_like(s, 1e-3)
    with np.errstate(over="ignore"):
        derivative = np.abs(eltwise.derivative(s, a, b))
        assert np.all(slope(PostOp(kind, a, b), s, e, None) >= derivative * (1 - 1e-12))
        h = s[1] - s[0]
        second = np.abs(np.diff(eltwise.derivative(s, a, b))) / h
    kinks = [point for point, _ in eltwise.kinks(a, b)]
    smooth = np.all([np.abs(s[:-1] - k) > 2 * h for k in kinks], axis=0) if kinks else np.ones(s.size - 1, bool)
    change = derivative_change(PostOp(kind, a, b), s[:-1], np.full(s.size - 1, h), None)
    assert np.all((change >= second * h * (1 - 1e-6))[smooth])


@pytest.mark.parametrize(("kind", "a", "b"), [("relu", 0.1, 0.0), ("clip", 0.0, 6.0), ("abs", 0.0, 0.0),
                                              ("hardswish", 1 / 6, 0.5), ("elu", 0.5, 0.0)])
def test_a_kink_within_the_interval_counts_its_jump(kind, a, b):
    eltwise = ELTWISE[kind]
    for point, jump in eltwise.kinks(a, b):
        left, right = eltwise.derivative(np.array([point - 1e-9]), a, b), eltwise.derivative(
            np.array([point + 1e-9]), a, b)
        assert abs(float(right[0] - left[0])) == pytest.approx(jump, abs=1e-6)
        change = derivative_change(PostOp(kind, a, b), np.array([point + 0.01]), np.array([0.02]), None)
        assert float(change[0]) >= jump


def test_round_may_jump_where_a_half_integer_is_within_reach():
    op = PostOp("round")
    v = np.array([2.4, 2.49, 2.51, -0.5, 3.0])
    assert list(value_jump(op, v, np.full(5, 0.05))) == [0.0, 1.0, 1.0, 1.0, 0.0]


@pytest.mark.parametrize(("mask", "shape"), [(0, (1, 1, 1, 1)), (2, (1, 5, 1, 1)), (15, (2, 5, 3, 4)),
                                            (13, (2, 1, 3, 4)), (4, (1, 1, 3, 1))])
def test_operand_shapes_follow_the_mask(mask, shape):
    assert operand_shape(PostOp("binary_add", mask=mask), (2, 5, 3, 4)) == shape
    assert operand_shape(PostOp("prelu", mask=mask), (2, 5, 3, 4)) == shape
    assert operand_shape(PostOp("sum"), (2, 5, 3, 4)) == (2, 5, 3, 4)
    assert operand_shape(PostOp("batchnorm", alpha=1e-5), (2, 5, 3, 4)) == (4, 5)
    assert operand_shape(PostOp("relu"), (2, 5, 3, 4)) is None
    with pytest.raises(ValueError, match="mask 16 names a dim beyond y's 4"):
        operand_shape(PostOp("binary_add", mask=16), (2, 5, 3, 4))


def test_batchnorm_sum_binary_and_prelu_follow_their_definitions():
    rng = np.random.default_rng(1)
    v = rng.uniform(-1, 1, (2, 3, 4))
    residual = rng.uniform(-1, 1, v.shape)
    bn = np.stack([rng.uniform(-1, 1, 3), rng.uniform(0.5, 2, 3), rng.uniform(0.5, 1.5, 3), rng.uniform(-1, 1, 3)])
    slopes = rng.uniform(-1, 1, (1, 3, 1))
    chain = (PostOp("sum", scale=0.5, zero_point=2), PostOp("batchnorm", alpha=1e-3), PostOp("prelu", mask=2),
             PostOp("binary_max", mask=0))
    operands = (residual, bn, slopes, np.array(0.1).reshape(1, 1, 1))
    got = chain_forward(v, chain, operands).output
    expected = v + 0.5 * (residual - 2)
    expected = (expected - bn[0][None, :, None]) / np.sqrt(bn[1][None, :, None] + 1e-3) * bn[2][None, :, None] + \
        bn[3][None, :, None]
    expected = np.where(expected > 0, expected, expected * slopes)
    np.testing.assert_allclose(got, np.maximum(expected, 0.1), rtol=1e-14)


def test_chain_gradients_equal_central_differences():
    rng = np.random.default_rng(2)
    v = rng.uniform(-2, 2, (2, 3, 5))
    chain = (PostOp("sum", scale=0.5), PostOp("gelu_erf"), PostOp("binary_mul", mask=2), PostOp("prelu", mask=2),
             PostOp("tanh"), PostOp("binary_add", mask=7))
    operands = [rng.uniform(-1, 1, v.shape), None, rng.uniform(0.5, 1.5, (1, 3, 1)), rng.uniform(-1, 1, (1, 3, 1)),
                None, rng.uniform(-1, 1, v.shape)]
    dy = rng.uniform(-1, 1, v.shape)

    def loss(values, ops):
        return float(np.sum(chain_forward(values, chain, ops).output * dy))

    trace = chain_forward(v, chain, operands)
    gradients = chain_backward(trace, chain, operands, dy)
    h = 1e-6
    numeric = np.zeros_like(v)
    for index in np.ndindex(v.shape):
        bumped = v.copy()
        bumped[index] += h
        lowered = v.copy()
        lowered[index] -= h
        numeric[index] = (loss(bumped, operands) - loss(lowered, operands)) / (2 * h)
    np.testing.assert_allclose(gradients.conv_output, numeric, rtol=1e-6, atol=1e-8)
    assert sorted(gradients.operands) == [0, 2, 3, 5]
    for k in gradients.operands:
        operand = operands[k]
        numeric = np.zeros_like(operand)
        for index in np.ndindex(operand.shape):
            up, down = [o.copy() if o is not None else None for o in operands], [
                o.copy() if o is not None else None for o in operands]
            up[k][index] += h
            down[k][index] -= h
            numeric[index] = (loss(v, up) - loss(v, down)) / (2 * h)
        np.testing.assert_allclose(gradients.operands[k], numeric, rtol=1e-6, atol=1e-8)
    assert len(gradients.entering) == len(chain) and np.array_equal(gradients.entering[-1], dy)
    assert isinstance(trace, ChainTrace) and len(trace.inputs) == len(chain)


@pytest.mark.parametrize(("fields", "message"), [
    (dict(kind="relu6"), "post-op kind must be one of"),
    (dict(kind="relu", alpha=math.inf), "post-op relu: alpha must be a finite number"),
    (dict(kind="sum", zero_point=0.5), "post-op sum: zero_point must be an int"),
    (dict(kind="prelu", mask=32), "post-op prelu: mask must be an int from 0 to 31"),
    (dict(kind="soft_relu"), "post-op soft_relu: alpha must not be 0"),
    (dict(kind="batchnorm", alpha=0.0), "post-op batchnorm: eps (alpha) must be positive"),
])
def test_invalid_post_ops_name_the_field(fields, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        PostOp(**fields)
