"""The tolerance model: a correct float32 convolution passes, each classic bug fails."""

from __future__ import annotations

import math

import numpy as np
import pytest

from convparity import reference_impl
from convparity.harness.backends.manager import get_manager
from convparity.harness.cases.inputs import make_inputs
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.evaluation.bound import compare_tensor, gamma
from convparity.harness.evaluation.verdict import evaluate_case
from tests.stub_backend import StubBackend

# Large reductions: y sums 128 * 3 * 3 = 1152 products, dw and db sum 2 * 24 * 24 = 1152.
BIG = ConvSpec(batch=2, in_channels=128, out_channels=8, input_size=(24, 24), kernel_size=(3, 3), padding=1,
               dtype="float32")


def float32_conv(x, w, b, dy, pad):
    """A correct 2-D stride-1 convolution accumulating in float32, sequentially and in reverse
    order (channels and kernel offsets last to first), written independently of reference_impl.

    x (N, C, H, W), w (O, C, KH, KW), b (O,), dy (N, O, OH, OW) -> y, dx, dw, db (float32)."""
    x, w, b, dy = (a.astype(np.float32) for a in (x, w, b, dy))
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.zeros((n, c, h + 2 * pad, wd + 2 * pad), np.float32)
    xp[:, :, pad:pad + h, pad:pad + wd] = x
    oh, ow = h + 2 * pad - kh + 1, wd + 2 * pad - kw + 1
    y = np.broadcast_to(b[None, :, None, None], (n, o, oh, ow)).astype(np.float32)
    dw = np.zeros_like(w)
    dxp = np.zeros_like(xp)
    for ci in reversed(range(c)):
        for p in reversed(range(kh)):
            for q in reversed(range(kw)):
                window = xp[:, ci, p:p + oh, q:q + ow]  # (N, OH, OW)
                y += w[None, :, ci, p, q, None, None] * window[:, None]
                dxp[:, ci, p:p + oh, q:q + ow] += np.einsum("o,noij->nij", w[:, ci, p, q], dy)
    for ni in reversed(range(n)):
        for i in reversed(range(oh)):
            dw += np.einsum("oj,cpqj->ocpq", dy[ni, :, i], np.stack(
                [np.stack([xp[ni, :, i + p, q:q + ow] for q in range(kw)], 1) for p in range(kh)], 1))
    db = np.zeros(o, np.float32)
    for ni in reversed(range(n)):
        for i in reversed(range(oh)):
            db += dy[ni, :, i].sum(axis=-1, dtype=np.float32)
    return y, dxp[:, :, pad:pad + h, pad:pad + wd], dw, db


def statuses(spec, outputs, seed=0):
    _, rows = evaluate_case(StubBackend("under-test", outputs), spec, seed=seed)
    return {row.tensor: row for row in rows}


def test_correct_float32_with_other_summation_order_passes_on_large_reductions():
    inputs = make_inputs(BIG, 0)
    rows = statuses(BIG, float32_conv(inputs.x, inputs.w, inputs.b, inputs.dy, pad=1))
    assert BIG.reductions["y"] == 1153 and BIG.reductions["dw"] == 1152
    for tensor, row in rows.items():
        assert row.status == "pass", (tensor, row.err_ratio, row.message)
        assert 0 < row.err_ratio < 1, (tensor, row.err_ratio)  # real float32 error, inside the bound


def _outputs(spec, x, w, b, dy, **changes):
    """float64 reference with some parameters changed (the bug), rounded to float32 like a backend."""
    kwargs = dict(stride=spec.stride, padding=spec.padding, dilation=spec.dilation, groups=spec.groups) | changes
    return tuple(None if t is None else t.astype(np.float32)
                 for t in reference_impl.conv_forward_backward(x, w, b, dy, **kwargs))


SMALL = ConvSpec(batch=2, in_channels=4, out_channels=6, input_size=(9, 9), kernel_size=(3, 3), stride=2,
                 padding=1, groups=2, dtype="float32")


def _bugs():
    def off_by_one_padding(s, x, w, b, dy):
        return _outputs(s, x, w, b, dy, padding=((2, 0), (2, 0)))

    def flipped_kernel(s, x, w, b, dy):
        y, dx, dw, db = _outputs(s, x, w[..., ::-1, ::-1].copy(), b, dy)
        return y, dx, dw[..., ::-1, ::-1].copy(), db

    def missing_bias_gradient(s, x, w, b, dy):
        y, dx, dw, _ = _outputs(s, x, w, b, dy)
        return y, dx, dw, np.zeros(s.out_channels, np.float32)

    def wrong_stride(s, x, w, b, dy):
        y = _outputs(s, x, w, b, np.zeros((2, 6, 9, 9)), stride=1)[0]
        return (y, *_outputs(s, x, w, b, dy)[1:])

    def mixed_up_groups(s, x, w, b, dy):
        half = s.in_channels // 2
        swapped = np.concatenate([x[:, half:], x[:, :half]], axis=1)
        y, dx, dw, db = _outputs(s, swapped, w, b, dy)
        return y, np.concatenate([dx[:, half:], dx[:, :half]], axis=1), dw, db

    def scale_error_1e3(s, x, w, b, dy):
        y, dx, dw, db = _outputs(s, x, w, b, dy)
        return (y * np.float32(1 + 1e-3), dx, dw, db)

    return {
        "off-by-one padding": (off_by_one_padding, {"y", "dx", "dw"}),
        "flipped kernel": (flipped_kernel, {"y", "dx", "dw"}),
        "missing bias gradient": (missing_bias_gradient, {"db"}),
        "wrong stride": (wrong_stride, {"y"}),
        "mixed-up groups": (mixed_up_groups, {"y", "dx", "dw"}),
        "1e-3 relative scale error": (scale_error_1e3, {"y"}),
    }


@pytest.mark.parametrize("bug", list(_bugs()))
def test_each_classic_bug_fails(bug):
    implementation, broken = _bugs()[bug]
    inputs = make_inputs(SMALL, 0)
    x, w, b, dy = (np.asarray(a, np.float64) for a in (inputs.x, inputs.w, inputs.b, inputs.dy))
    rows = statuses(SMALL, implementation(SMALL, x, w, b, dy))
    failing = {tensor for tensor, row in rows.items() if row.status == "fail"}
    assert failing == broken, (bug, {t: (r.status, r.err_ratio) for t, r in rows.items()})
    if bug == "wrong stride":
        assert "has shape (2, 6, 9, 9), expected (2, 6, 5, 5)" in rows["y"].message


def test_bound_formula_and_worst_element():
    ref = np.array([1.0, -2.0, 4.0])
    mag = np.array([3.0, 2.0, 4.0])
    u32 = 2.0**-24
    bound = gamma(10, u32) * mag + u32 * np.abs(ref)
    out = ref + np.array([0.5, 0.0, 0.9]) * bound  # element 2 is the worst at 0.9 of its bound
    result = compare_tensor("y", out, ref, mag, reduction=10, dtype="float32", accumulation="float32")
    assert result.passed and result.worst_index == (2,)
    assert result.err_ratio == pytest.approx(0.9, rel=1e-9)
    assert result.max_abs_err == pytest.approx(0.9 * bound[2], rel=1e-9)
    assert gamma(10, u32) == pytest.approx(10 * u32 / (1 - 10 * u32))
    scaled = compare_tensor("y", ref + 1.5 * bound, ref, mag, reduction=10, dtype="float32", accumulation="float32",
                            tolerance_factor=2.0)
    assert scaled.passed and scaled.err_ratio == pytest.approx(0.75, rel=1e-9)


def test_non_finite_output_fails_with_infinite_ratio():
    ref = np.ones((2, 2))
    out = ref.copy()
    out[1, 0] = np.nan
    result = compare_tensor("dx", out, ref, ref, reduction=4, dtype="float32", accumulation="float32")
    assert not result.passed and math.isinf(result.err_ratio) and result.worst_index == (1, 0)
    assert "1 non-finite" in result.message


def test_allclose_verdict_uses_torch_defaults():
    ref = np.array([1.0])
    mag = np.array([1e6])  # a huge magnitude makes the bound loose: only allclose catches 1e-4 here
    result = compare_tensor("y", ref + 1e-4, ref, mag, reduction=100, dtype="float32", accumulation="float32")
    assert result.passed and not result.allclose
    assert compare_tensor("y", ref + 1e-6, ref, mag, reduction=100, dtype="float32", accumulation="float32").allclose


def test_float16_subnormal_results_are_bounded_absolutely():
    # 3e-6 is subnormal in float16 (spacing 2**-24 ~ 6e-8): rounding errs by up to 2**-25 absolutely,
    # which is 10x more than u_out * |ref| = 2**-11 * 3e-6 ~ 1.5e-9 allows.
    ref = np.array([3.0e-6])
    out = ref.astype(np.float16).astype(np.float64)
    assert abs(out[0] - ref[0]) > 2.0**-11 * 3.0e-6
    result = compare_tensor("y", out, ref, np.zeros(1), reduction=1, dtype="float16", accumulation="float32")
    assert result.passed, result.err_ratio
    wrong = compare_tensor("y", out + 2.0**-24, ref, np.zeros(1), reduction=1, dtype="float16", accumulation="float32")
    assert not wrong.passed


def test_transposed_reference_and_magnitudes_come_from_the_transposed_reference():
    from convparity.harness.evaluation.reference import reference

    spec = ConvSpec(batch=2, in_channels=4, out_channels=6, input_size=(3, 4), kernel_size=(3, 2), stride=2,
                    padding=((1, 1), (0, 1)), output_padding=(1, 0), groups=2, transposed=True, dtype="float32")
    inputs = make_inputs(spec, 5)
    ref = reference(spec, inputs)
    as64 = [np.asarray(a, dtype=np.float64) for a in (inputs.x, inputs.w, inputs.b, inputs.dy)]
    options = dict(stride=spec.stride, padding=spec.padding, output_padding=spec.output_padding, groups=2)
    expected = reference_impl.conv_transpose_forward_backward(*as64, **options)
    magnitudes = reference_impl.conv_transpose_forward_backward(*[np.abs(a) for a in as64], **options)
    for tensor, value, magnitude in zip(("y", "dx", "dw", "db"), expected, magnitudes):
        np.testing.assert_array_equal(ref.values[tensor], value)
        np.testing.assert_array_equal(ref.magnitudes[tensor], magnitude)
    # out = (i - 1) * 2 - pads + (k - 1) + 1 + output_padding: 4 - 2 + 3 + 1 = 6, 6 - 1 + 2 = 7
    assert ref.values["y"].shape == spec.y_shape == (2, 6, 6, 7)
    # The reference backend through the one evaluation path: float32 rounding of float64 results passes.
    _, rows = evaluate_case(get_manager().backends()["reference"], spec, seed=5)
    assert [row.status for row in rows] == ["pass"] * 4 and {row.op for row in rows} == {"deconv"}
    assert rows[0].case == spec.descriptor and rows[0].output_padding == "1x0" and rows[0].reduction == \
        spec.reductions["y"]
