"""The tflite-int8 backends: contract suite on the int8 grid, what the converter makes, each op resolver's rounding
measured at exact ties against independent computations, the core's double rounding against TFLite's reference
kernels, and planted wrong declarations that must fail."""

from __future__ import annotations

import math

import numpy as np
import pytest

from convparity.harness.backends.manager import get_manager
from convparity.harness.cases.attributes import Quantization, parse_post_ops
from convparity.harness.cases.builtin_grids import int8
from convparity.harness.cases.inputs import Extras, make_inputs
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.evaluation.verdict import evaluate_case
from convparity.harness.testing.contract_suite import BackendContract
from convparity.plugins.tflite_backend import TFLiteBackend, built_step, tflite_ops
from convparity.reference_impl.quantized import double_rounding_requantize, quantized_accumulator

pytestmark = pytest.mark.framework("tensorflow")


class TestTFLiteInt8(BackendContract):
    backend_name = "tflite-int8"
    grid = "int8"
    dtypes = ("float32",)  # the int8 grid's cases keep their own dtypes


class TestTFLiteInt8Reference(BackendContract):
    backend_name = "tflite-int8-reference"
    grid = "int8"
    dtypes = ("float32",)


class TestTFLiteInt8Optimized(BackendContract):
    backend_name = "tflite-int8-optimized"
    grid = "int8"
    dtypes = ("float32",)


def backend(name):
    return get_manager().backends()[name]


def ties_spec(channels=1, zero_point=3):
    """A 1x1 convolution of one weight 1 per channel with sx = sw = 1 and sy = 4: v = acc / 4 + zp_y, acc = x codes
    -6..5 (every quarter, so exact ties at .5 and off-ties at .25 and .75), an odd zp_y; groups = channels."""
    return ConvSpec(batch=1, in_channels=channels, out_channels=channels, input_size=(12,), kernel_size=(1,),
                    groups=channels, bias=False, dtype="int8",
                    quantization=Quantization(x_scale=1.0, w_scale=1.0, y_scale=4.0, y_zero_point=zero_point))


ACC = np.arange(-6, 6)


def run_ties(name, channels=1, zero_point=3):
    spec = ties_spec(channels, zero_point)
    x = np.tile(ACC.astype(np.int8), (1, channels, 1))
    w = np.ones(spec.w_shape, np.int8)
    quantization = {"x_scale": 1.0, "w_scale": 1.0, "y_scale": 4.0, "x_zero_point": 0, "w_zero_point": 0,
                    "y_zero_point": zero_point}
    y = backend(name).run(spec, x, w, None, None, extras=Extras((), quantization))[0]
    return y.reshape(channels, len(ACC)).astype(int)


def gemmlowp(acc, multiplier_q, shift, second_stage="away"):
    """TFLite's MultiplyByQuantizedMultiplier for one int32 value, written out: SaturatingRoundingDoublingHighMul
    (ties toward +inf: the nudge 2**30, then C division toward 0) then a rounding right shift whose ties go away from
    zero (RoundingDivideByPOT) or up (the optimized kernels' `second_stage="up"`)."""
    product = acc * (1 << max(shift, 0)) * multiplier_q
    nudge = (1 << 30) if product >= 0 else 1 - (1 << 30)
    high = int((product + nudge) / (1 << 31)) if abs(product + nudge) < 2**52 else (product + nudge) // (1 << 31)
    exponent = max(-shift, 0)
    if exponent == 0:
        return high
    if second_stage == "up":
        return (high + (1 << (exponent - 1))) >> exponent
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (1 if high < 0 else 0)
    return (high >> exponent) + (1 if (high & mask) > threshold else 0)


def quarter(acc, second_stage="away"):
    """M = 1/4: QuantizeMultiplier gives q = 2**30, shift = -1."""
    assert math.frexp(0.25) == (0.5, -1)
    return gemmlowp(int(acc), 1 << 30, -1, second_stage)


def test_xnnpack_rounds_half_to_even_before_the_zero_point():
    """v = acc/4 + 3 (odd zp): XNNPACK rounds acc/4 half to even and adds 3, so 0.5 -> 3, 1.5 -> 5, -0.5 -> 3; half to
    even on v itself would give 4, 4, 2 (where rint(acc / 4) + 3 and rint(acc / 4 + 3) differ)."""
    expected = np.rint(ACC / 4) + 3
    np.testing.assert_array_equal(run_ties("tflite-int8")[0], expected)
    assert not np.array_equal(expected, np.rint(ACC / 4 + 3))


def test_reference_kernels_round_twice():
    """BUILTIN_REF: gemmlowp's two roundings, which differ from rounding v once off a tie too (0.25 -> 1, -0.75 ->
    -1, the tensorflow#25087 behaviour)."""
    expected = np.array([quarter(a) for a in ACC]) + 3
    np.testing.assert_array_equal(run_ties("tflite-int8-reference")[0], expected)
    assert quarter(1) == 1 and quarter(-3) == -1 and quarter(-6) == -2  # 0.25 -> 1, -0.75 -> -1, -1.5 -> -2


def test_optimized_kernels_round_the_second_stage_half_up():
    """Evidence for OPTIMIZED_HALF_UP: CONV_2D without groups rounds the second stage up (-0.75 -> 0, not -1), and
    DEPTHWISE_CONV_2D with 12 channels does so in channels 0-7 while channels 8-11 round as the reference kernels."""
    up = np.array([quarter(a, "up") for a in ACC]) + 3
    away = np.array([quarter(a) for a in ACC]) + 3
    assert not np.array_equal(up, away)
    np.testing.assert_array_equal(run_ties("tflite-int8-optimized")[0], up)
    depthwise = run_ties("tflite-int8-optimized", channels=12)
    np.testing.assert_array_equal(depthwise[:8], np.tile(up, (8, 1)))
    np.testing.assert_array_equal(depthwise[8:], np.tile(away, (4, 1)))
    np.testing.assert_array_equal(run_ties("tflite-int8-reference", channels=12), np.tile(away, (12, 1)))


def test_the_core_double_rounding_is_tflites_reference_kernels():
    """convparity's double_rounding (reference_impl.quantized) gives TFLite's reference kernels' codes bit for bit on
    irregular scales (multipliers far from powers of two), where only the fixed-point arithmetic decides."""
    spec = ConvSpec(batch=2, in_channels=16, out_channels=8, input_size=(6, 6), kernel_size=(3, 3), padding=1,
                    dtype="uint8:int8:uint8", quantization=Quantization(x_scale=0.1, w_scale=0.0371, y_scale=0.00913,
                                                                        x_zero_point=3, y_zero_point=120))
    inputs = make_inputs(spec, 4)
    y = backend("tflite-int8-reference").run(spec, inputs.x, inputs.w, inputs.b, None, extras=inputs.extras)[0]
    acc = quantized_accumulator(inputs.x, inputs.w, padding=((1, 1), (1, 1)), x_zero_point=3) + \
        inputs.b.astype(np.int64).reshape(1, -1, 1, 1)
    multiplier = 0.1 * 0.0371 / 0.00913
    expected = np.clip(double_rounding_requantize(acc, [multiplier] * 8, 120), 0, 255)
    np.testing.assert_array_equal(y, expected)


def test_the_converter_makes_one_int8_convolution_with_the_activation_fused():
    plain, depthwise, relu6 = (case.spec for case in int8() if case.name in (
        "2d asym pad uint8:int8:uint8", "2d depthwise uint8:int8:uint8", "relu6"))
    # The converter folds a tf.pad that is TensorFlow's "same" into the convolution's padding; an asymmetric one
    # stays a PAD op (which pads with the zero point).
    for spec, ops in ((plain, ["PAD", "CONV_2D"]), (depthwise, ["DEPTHWISE_CONV_2D"]), (relu6, ["CONV_2D"])):
        inputs = make_inputs(spec, 0)
        step = built_step(spec, "AUTO")
        step(inputs.x, inputs.w, inputs.b, None, quantization=inputs.quantization)
        assert tflite_ops(step) == ops, spec.descriptor  # no RELU6 op: the clamp is the convolution's


def test_what_tflite_cannot_run_is_unsupported_with_its_reason():
    tflite = backend("tflite-int8")
    base = ConvSpec(batch=1, in_channels=2, out_channels=2, input_size=(5, 5), kernel_size=(3, 3),
                    dtype="uint8:int8:uint8")
    assert "CONV_3D" in tflite.supports(ConvSpec(batch=1, in_channels=2, out_channels=2, input_size=(4, 4, 4),
                                                 kernel_size=(2, 2, 2), dtype="uint8:int8:uint8"))
    assert "zero_point" in tflite.supports(base.replace(quantization=Quantization(w_zero_point=2)))
    assert "8-bit y" in tflite.supports(base.replace(dtype="float32"))
    assert "RELU6" in tflite.supports(base.replace(post_ops=parse_post_ops("clip:0:5", 2)))
    assert tflite.supports(base.replace(post_ops=parse_post_ops("clip:0:6", 2))) is None


class Declaring(TFLiteBackend):
    """tflite-int8 (XNNPACK) with a rounding declaration of the test's choosing: a planted wrong declaration."""

    def __init__(self, rounding):
        super().__init__("AUTO")
        self.name = f"tflite-int8-declaring-{rounding}"
        self.rounding = dict.fromkeys(self.rounding, rounding)


ODD_ZERO_POINT_TIES = [case for case in int8()
                       if case.name in ("2d 1x1 uint8:int8:uint8", "2d batch 1 uint8:int8:uint8")]


@pytest.mark.parametrize("rounding", ["half_away", "half_even"])
def test_a_wrong_rounding_declaration_fails_at_exact_ties(rounding):
    """XNNPACK's codes at exact ties with an odd zero point fit only half_even_before_zero_point: declaring half away
    from zero, or half to even on v (the default), must fail those cases, in the tie bin."""
    for case in ODD_ZERO_POINT_TIES:
        _, rows = evaluate_case(Declaring(rounding), case.spec, name=case.name, seed=0)
        (row,) = rows
        assert row.status == "fail" and "tie" in row.message, (case.name, row.status, row.message)
        _, honest = evaluate_case(backend("tflite-int8"), case.spec, name=case.name, seed=0)
        assert [r.status for r in honest] == ["pass"]
