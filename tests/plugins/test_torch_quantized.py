"""The torch-quantized-ENGINE backends: the contract suite on the int8 grid per engine, every row of that grid
explained, each engine's rounding at exact ties, the x86 engine's routing, the limits in torch's own words, and
planted bugs the step verdict must catch (a wrong rounding declaration, half-away rounding, a bias in the wrong
units, a relu left out, and the 16-bit saturation of pytorch#44939 on non-VNNI kernels)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from convparity.harness.backends.contract import optional_members
from convparity.harness.backends.manager import get_manager
from convparity.harness.cases.attributes import PER_CHANNEL, Quantization, parse_post_ops
from convparity.harness.cases.inputs import Inputs
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.testing.checks import grid_cases, judge_case
from convparity.harness.testing.contract_suite import BackendContract
from convparity.plugin import program_arguments
from convparity.plugins.torch_quantized_backend import (
    ENGINES,
    LIMITS,
    ONEDNN_LIMITS,
    QUANTIZED,
    TorchQuantizedBackend,
    has_avx512_vnni,
    torch_quantized_conv,
)
from convparity.reference_impl.quantized import round_codes
from tests.plugins.conftest import framework_module
from tests.plugins.torch_checks import judged_rows, run_with, statuses

pytestmark = pytest.mark.framework("torch")

NAMES = tuple(f"torch-quantized-{engine}" for engine in ENGINES)


class TestTorchQuantizedX86(BackendContract):
    backend_name = "torch-quantized-x86"
    grid = "int8"


class TestTorchQuantizedFbgemm(BackendContract):
    backend_name = "torch-quantized-fbgemm"
    grid = "int8"


class TestTorchQuantizedOnednn(BackendContract):
    backend_name = "torch-quantized-onednn"
    grid = "int8"


class TestTorchQuantizedQnnpack(BackendContract):
    backend_name = "torch-quantized-qnnpack"
    grid = "int8"


def backend(name: str):
    return get_manager().backends()[name]


@pytest.fixture
def torch():
    return framework_module("torch")


def test_one_backend_per_engine_of_this_build(torch):
    assert set(torch.backends.quantized.supported_engines) >= set(ENGINES)
    for name in NAMES:
        assert backend(name).availability() is None
    missing = TorchQuantizedBackend("torch-quantized-mps", "mps")
    assert "has no quantized engine mps" in missing.availability()


@pytest.mark.parametrize("name", NAMES)
def test_every_row_of_the_int8_grid_is_a_pass_or_explained(name):
    """uint8:int8:uint8 passes but relu6 (no fused clip); the other dtypes are the core's dtype refusal."""
    passed = 0
    for case in grid_cases(["int8"], ["float32"]):
        verdict = judge_case(backend(name), case)
        if case.spec.dtype != QUANTIZED:
            assert verdict.outcome == "unsupported", (case.name, verdict.message)
            assert f"computes float64, float32, float16, bfloat16, {QUANTIZED}" in verdict.message
        elif case.spec.post_ops and case.spec.post_ops[0].kind == "clip":
            assert verdict.outcome == "unsupported" and verdict.message.startswith("post-op clip:"), verdict.message
        else:
            assert verdict.outcome == "pass", (case.name, verdict.message)
            passed += 1
    assert passed >= 14


@pytest.mark.parametrize("name", NAMES)
def test_every_row_of_the_saturation_grid_is_a_pass_or_explained(name):
    """On saturating inputs (x 224-255, w +-112 to +-127) FBGEMM's depthwise kernel saturates int16 pairs: a declared
    deviation on fbgemm (and x86 where it routes to FBGEMM, > 100 groups: not in the grid); every other uint8 case
    is exact or at most the declared rounding away, on every engine."""
    if not has_avx512_vnni():
        pytest.skip("without AVX512-VNNI every FBGEMM and oneDNN kernel saturates (a declared deviation)")
    outcomes = {}
    for case in grid_cases(["int8-saturation"], ["float32"]):
        if case.spec.dtype == QUANTIZED:
            verdict = judge_case(backend(name), case)
            outcomes[case.name] = verdict.outcome
            if verdict.outcome == "xfail":
                assert "44939" in verdict.message and "depthwise" in verdict.message, verdict.message
    expected = {case: "pass" for case in outcomes}
    if name == "torch-quantized-fbgemm":
        expected["depthwise"] = "xfail"
    assert outcomes == expected and len(outcomes) == 6


# -- rounding at exact ties --------------------------------------------------------------------------------

def _tie_case(y_zero_point: int, w_zero_point: int = 0, groups: int = 1) -> tuple[ConvSpec, Inputs]:
    """A 1x1 convolution with w = 1, sx = sw = 1, sy = 2 (depthwise over `groups` channels): y's exact value before
    rounding is v = (x - 106) / 2 + zp_y, every other element an exact tie (v from -3 to 2.5 around zp_y)."""
    values = dict(x_scale=1.0, w_scale=1.0, y_scale=2.0, x_zero_point=106, w_zero_point=w_zero_point,
                  y_zero_point=y_zero_point)
    spec = ConvSpec(batch=1, in_channels=groups, out_channels=groups, input_size=(12,), kernel_size=(1,),
                    groups=groups, bias=False, dtype=QUANTIZED, quantization=Quantization(**values))
    x = np.broadcast_to((np.arange(12) + 100).astype(np.uint8), (1, groups, 12)).copy()
    w = np.full((groups, 1, 1), 1 + w_zero_point, dtype=np.int8)
    return spec, Inputs(x=x, w=w, b=None, dy=None, quantization=values)


def _codes(y_zero_point: int, rounding: str, groups: int = 1) -> np.ndarray:
    v = np.tile((np.arange(12) - 6) / 2 + y_zero_point, groups)
    return round_codes(v, v != np.floor(v), rounding, y_zero_point=y_zero_point)


@pytest.mark.parametrize("y_zero_point", [100, 101])
@pytest.mark.parametrize(("engine", "rounding"), [("fbgemm", "half_even_before_zero_point"),
                                                  ("qnnpack", "half_even_before_zero_point"),
                                                  ("onednn", "half_even"), ("x86", "half_even")])
def test_each_engine_rounds_exact_ties_as_declared(engine, rounding, y_zero_point):
    """FBGEMM and QNNPACK round v - zp_y half to even, then add zp_y; oneDNN rounds v itself half to even. They
    differ only at an odd zp_y (v = 98.5: 98 + 1 = 99 or 98), where the declaration is what the verdict allows."""
    spec, inputs = _tie_case(y_zero_point)
    name = f"torch-quantized-{engine}"
    y = run_with(backend(name), spec, inputs)[0].ravel()
    assert (y == _codes(y_zero_point, rounding)).all(), y
    fbgemm_only = engine == "x86" and not has_avx512_vnni()  # then x86 is FBGEMM throughout, and says so
    assert optional_members(backend(name)).rounding[QUANTIZED] == (
        "half_even_before_zero_point" if fbgemm_only else rounding)
    if y_zero_point % 2:  # the two rules part at every tie here: the other rule would fail
        other = "half_even" if rounding != "half_even" else "half_even_before_zero_point"
        assert (y != _codes(y_zero_point, other)).sum() == 6
    assert statuses(judged_rows(backend(name), spec, inputs, run_with(backend(name), spec, inputs))) == {"y": "pass"}


@pytest.mark.parametrize(("w_zero_point", "groups", "route"), [(0, 1, "onednn"), (0, 100, "onednn"),
                                                               (1, 1, "fbgemm"), (0, 101, "fbgemm")])
def test_x86_hands_weights_with_a_zero_point_or_many_groups_to_fbgemm(w_zero_point, groups, route):
    """On a VNNI CPU the x86 engine runs symmetric weights in up to 100 groups on oneDNN and the rest on FBGEMM
    (should_use_onednn_quant): its ties follow that engine's rule; the declared deviation covers FBGEMM's route."""
    if not has_avx512_vnni():
        pytest.skip("the x86 engine uses FBGEMM alone without AVX512-VNNI")
    x86, engine = backend("torch-quantized-x86"), backend(f"torch-quantized-{route}")
    spec, inputs = _tie_case(101, w_zero_point, groups)
    y = run_with(x86, spec, inputs)[0]
    assert (y == run_with(engine, spec, inputs)[0]).all()
    rounding = "half_even" if route == "onednn" else "half_even_before_zero_point"
    assert (y.ravel() == _codes(101, rounding, groups)).all()
    assert statuses(judged_rows(x86, spec, inputs, (y, None, None, None))) == {"y": "pass" if route == "onednn"
                                                                                else "xfail"}


# -- what the int8 grid does not reach ------------------------------------------------------------------------

BEYOND_THE_GRID = (
    # a weight zero point, per tensor and per channel (not onednn), asymmetric and negative pads, float32 bias
    ConvSpec(batch=2, in_channels=4, out_channels=6, input_size=(7, 8), kernel_size=(3, 2), padding=((2, 0), (-1, 1)),
             groups=2, dtype=QUANTIZED, quantization=Quantization(x_scale=0.25, w_scale=0.5, y_scale=0.25,
                                                                  x_zero_point=3, w_zero_point=2, y_zero_point=101)),
    ConvSpec(batch=1, in_channels=3, out_channels=4, input_size=(6, 5, 7), kernel_size=(2, 3, 2), stride=(2, 1, 1),
             dilation=(1, 2, 1), padding=((1, 0), (0, 2), (-1, 0)), dtype=QUANTIZED,
             quantization=Quantization(x_scale=0.5, w_scale=PER_CHANNEL, y_scale=0.125, x_zero_point=5,
                                       w_zero_point=1, y_zero_point=77)),
    ConvSpec(batch=2, in_channels=2, out_channels=3, input_size=(11,), kernel_size=(3,), stride=2, padding=((0, 3),),
             dtype=QUANTIZED, quantization=Quantization(x_scale=0.1, w_scale=0.0371, y_scale=0.00413, x_zero_point=7,
                                                        y_zero_point=99, bias_dtype="float32")),
    ConvSpec(batch=2, in_channels=8, out_channels=8, input_size=(5, 5), kernel_size=(3, 3), padding=1, groups=8,
             dtype=QUANTIZED, post_ops=parse_post_ops("relu", 2),
             quantization=Quantization(x_scale=0.5, w_scale=PER_CHANNEL, y_scale=0.25, x_zero_point=4,
                                       y_zero_point=128)),
)


@pytest.mark.parametrize("name", NAMES)
def test_agrees_beyond_the_grid(name):
    """Weight zero points, per-channel scales, asymmetric and negative pads (an F.pad of x's codes with its zero
    point), a float bias, a relu above a zero point of 128; onednn refuses weight zero points in its own words."""
    for spec in BEYOND_THE_GRID:
        verdict = judge_case(backend(name), _case(spec), seed=3)
        if name == "torch-quantized-onednn" and spec.quantization.w_zero_point:
            assert verdict.outcome == "unsupported" and ONEDNN_LIMITS[0].reason in verdict.message
        elif name == "torch-quantized-x86" and spec.quantization.w_zero_point:
            assert verdict.outcome in ("pass", "xfail"), verdict.message  # FBGEMM's route (declared)
        else:
            assert verdict.outcome == "pass", verdict.message


def _case(spec: ConvSpec):
    from convparity.harness.cases.descriptor import Case

    return Case(spec, "", fixed_dtype=True)


def test_limits_quote_torch(torch):
    """The onednn weight zero point and the per-tensor x: torch's own messages, raised by torch itself here."""
    quantized = torch.ops.quantized
    torch.backends.quantized.engine = "onednn"
    w = torch._make_per_tensor_quantized_tensor(torch.ones(2, 1, 1, 1, dtype=torch.int8), 1.0, 1)
    with pytest.raises(RuntimeError) as raised:
        quantized.conv2d_prepack(w, None, [1, 1], [0, 0], [1, 1], 1)
    assert ONEDNN_LIMITS[0].reason in str(raised.value)
    torch.backends.quantized.engine = "fbgemm"
    scales, zero_points = torch.ones(2, dtype=torch.float64), torch.zeros(2, dtype=torch.int64)
    x = torch._make_per_channel_quantized_tensor(torch.ones(1, 2, 3, 3, dtype=torch.uint8), scales, zero_points, 1)
    w = torch._make_per_tensor_quantized_tensor(torch.ones(2, 2, 1, 1, dtype=torch.int8), 1.0, 0)
    with pytest.raises(RuntimeError) as raised:
        quantized.conv2d(x, quantized.conv2d_prepack(w, None, [1, 1], [0, 0], [1, 1], 1), 1.0, 0)
    per_tensor_x = next(limit for limit in LIMITS if limit.condition.startswith("x scale"))
    assert str(raised.value).split("(Could")[0].strip() in per_tensor_x.reason


def test_refuses_float_specs_and_the_torch_backends_refuse_quantized_ones():
    spec = ConvSpec(batch=1, in_channels=2, out_channels=2, input_size=(5, 5), kernel_size=(3, 3))
    assert backend("torch-quantized-x86").supports(spec).startswith("float dtypes:")
    case = grid_cases(["int8"], ["float32"])[0]
    verdict = judge_case(backend("torch"), case)
    assert verdict.outcome == "unsupported" and "dtype uint8:int8:uint8: torch computes" in verdict.message


def test_program_is_the_engines_quantized_conv():
    case = grid_cases(["int8"], ["float32"])[0]
    for name, engine in zip(NAMES, ENGINES):
        program = backend(name).program(case.spec)
        assert program.function is torch_quantized_conv
        assert program.arguments == program_arguments(case.spec, engine=engine)


# -- planted bugs: each must fail, where the honest engine passes ---------------------------------------------

@dataclass(frozen=True)
class Planted:
    """A real engine with one mistake: a wrong rounding declaration, a bias passed in accumulator steps as if it
    were real units, the relu left out of the op."""

    name: str
    engine: str
    rounding: dict
    mistake: str
    post_ops: tuple = ("relu",)
    data_types: tuple = (QUANTIZED,)

    def version(self):
        return backend(f"torch-quantized-{self.engine}").version()

    def availability(self):
        return None

    def supports(self, spec):
        return None

    def run(self, spec, x, w, b, dy, extras=None):
        if self.mistake == "bias units" and b is not None:
            b = b.astype(np.float32)  # the int32 bias handed over as if in real units
        if self.mistake == "relu left out":
            spec = spec.replace(post_ops=())
        step = torch_quantized_conv(**program_arguments(spec, engine=self.engine))
        return step(x, w, b, dy, quantization=extras.quantization)


def _tie_grid_case():
    """The int8 grid's "2d stride 2 same": per-channel power-of-two multipliers and zp_y 65, 52 exact ties."""
    return next(case for case in grid_cases(["int8"], ["float32"]) if case.name == f"2d stride 2 same {QUANTIZED}")


def test_a_wrong_rounding_declaration_fails_at_exact_ties():
    """FBGEMM declared half_even (oneDNN's rule): the ties it rounds before adding zp_y fail."""
    case = _tie_grid_case()
    honest = judge_case(backend("torch-quantized-fbgemm"), case)
    assert honest.outcome == "pass" and _bins(honest.rows[0].steps)["tie"] == 52
    planted = judge_case(Planted("fbgemm-declared-half-even", "fbgemm", {QUANTIZED: "half_even"}, ""), case)
    assert planted.outcome == "fail" and _bins(planted.rows[0].steps)["tie"] == 52, planted.message


def test_half_away_rounding_declared_half_even_fails():
    """A QDQ convolution in torch (dequantized codes, F.conv2d in float64) that rounds half away from zero while it
    declares half to even fails at the ties; the same graph rounding with torch.round (half to even) passes."""
    case = _tie_grid_case()

    @dataclass(frozen=True)
    class QDQ:
        name: str
        half_away: bool
        post_ops: tuple = ()
        data_types: tuple = (QUANTIZED,)
        rounding = {QUANTIZED: "half_even"}

        def version(self):
            return backend("torch-quantized-x86").version()

        def availability(self):
            return None

        def supports(self, spec):
            return None

        def run(self, spec, x, w, b, dy, extras=None):
            torch = framework_module("torch")
            q = extras.quantization
            sw = torch.as_tensor(np.asarray(q["w_scale"], dtype=np.float64)).reshape(-1, 1, 1, 1)
            real_x = (torch.from_numpy(x.astype(np.float64)) - q["x_zero_point"]) * q["x_scale"]
            real_w = (torch.from_numpy(w.astype(np.float64)) - q["w_zero_point"]) * sw
            bias = torch.from_numpy(b.astype(np.float64)) * q["x_scale"] * sw.reshape(-1)
            v = torch.nn.functional.conv2d(real_x, real_w, bias, stride=spec.stride, padding=spec.padding[0][0])
            v = v / q["y_scale"] + q["y_zero_point"]
            codes = torch.where(v >= 0, torch.floor(v + 0.5), torch.ceil(v - 0.5)) if self.half_away else torch.round(v)
            return torch.clamp(codes, 0, 255).to(torch.uint8).numpy(), None, None, None

    assert judge_case(QDQ("qdq-half-even", half_away=False), case).outcome == "pass"
    planted = judge_case(QDQ("qdq-half-away", half_away=True), case)
    assert planted.outcome == "fail" and _bins(planted.rows[0].steps)["tie"] > 0, planted.message
    assert _bins(planted.rows[0].steps)["more"] == _bins(planted.rows[0].steps)["off-tie"] == 0


def _bins(steps: str) -> dict[str, int]:
    """"exact 148, near-tie 0, tie 52, ..." as {bin: count}."""
    return {name: int(count) for name, count in (part.rsplit(" ", 1) for part in steps.split(", "))}


def test_a_bias_in_the_wrong_units_fails():
    """The int32 bias (accumulator steps) handed to torch unscaled, as real units: the grid's biased cases fail
    (but "saturating", whose sx * sw is 1)."""
    planted = Planted("bias-unscaled", "fbgemm", {QUANTIZED: "half_even_before_zero_point"}, "bias units")
    outcomes = [judge_case(planted, case).outcome for case in grid_cases(["int8"], ["float32"])
                if case.spec.dtype == QUANTIZED and case.spec.bias and not case.spec.post_ops
                and case.spec.quantization.x_scale != 1]
    assert outcomes and set(outcomes) == {"fail"}


def test_a_relu_left_out_fails_above_a_zero_point():
    """conv2d instead of conv2d_relu: invisible at zp_y 0 (quint8 saturates negatives to 0, as the grid's relu case
    has it), a fail at zp_y 128, where the honest engines pass."""
    relu = next(case for case in grid_cases(["int8"], ["float32"]) if case.name == "relu")
    planted = Planted("relu-left-out", "fbgemm", {QUANTIZED: "half_even_before_zero_point"}, "relu left out")
    assert judge_case(planted, relu).outcome == "pass"  # the grid's relu case cannot tell
    above = replace(relu, spec=relu.spec.replace(quantization=replace(relu.spec.quantization, y_zero_point=128)))
    assert judge_case(planted, above).outcome == "fail"
    for name in NAMES:
        assert judge_case(backend(name), above).outcome == "pass"


# -- pytorch#44939: 16-bit saturation on kernels without VNNI ---------------------------------------------------

# Runs one backend on saved x and w in a process of its own (the ISA variables are read when torch loads).
SATURATION_SCRIPT = """
import json, sys
import numpy as np
from convparity.harness.backends.manager import get_manager
from convparity.harness.cases.descriptor import parse_case
from convparity.harness.cases.inputs import Extras
name, folder, descriptor, values = sys.argv[1:]
spec = parse_case(descriptor, dtype="uint8:int8:uint8").spec.replace(bias=False)
x, w = np.load(folder + "/x.npy"), np.load(folder + "/w.npy")
y = get_manager().backends()[name].run(spec, x, w, None, None, extras=Extras((), json.loads(values)))[0]
np.save(folder + "/y.npy", y)
"""
SATURATING_VALUES = dict(x_scale=1.0, w_scale=1.0, y_scale=2.0**17, x_zero_point=0, w_zero_point=0, y_zero_point=0)
# u8 x from 240 to 255 against s8 w from 112 to 127, 64 channels: a pair of products (vpmaddubsw) reaches
# 2 * 255 * 127 = 64770, beyond int16, where kernels without VNNI saturate; VNNI's vpdpbusd sums in int32.
SATURATING = ConvSpec(batch=1, in_channels=64, out_channels=8, input_size=(5, 5), kernel_size=(3, 3), padding=1,
                      bias=False, dtype=QUANTIZED, quantization=Quantization(**{
                          k: v for k, v in SATURATING_VALUES.items() if not k.endswith("zero_point")}))


def _saturation_inputs() -> Inputs:
    rng = np.random.default_rng(44939)
    x = rng.integers(240, 255, SATURATING.x_shape, endpoint=True).astype(np.uint8)
    w = rng.integers(112, 127, SATURATING.w_shape, endpoint=True).astype(np.int8)
    return Inputs(x=x, w=w, b=None, dy=None, quantization=SATURATING_VALUES)


def _y_in_a_process(name: str, environment: dict, folder: Path, inputs: Inputs) -> np.ndarray:
    np.save(folder / "x.npy", inputs.x)
    np.save(folder / "w.npy", inputs.w)
    subprocess.run([sys.executable, "-c", SATURATION_SCRIPT, name, str(folder), SATURATING.descriptor,
                    json.dumps(SATURATING_VALUES)], env={**os.environ, **environment}, check=True)
    return np.load(folder / "y.npy")


@pytest.mark.parametrize(("name", "isa"), [("torch-quantized-fbgemm", {"FBGEMM_ENABLE_INSTRUCTIONS": "AVX2"}),
                                           ("torch-quantized-onednn", {"ONEDNN_MAX_CPU_ISA": "AVX2"}),
                                           ("torch-quantized-x86", {"ONEDNN_MAX_CPU_ISA": "AVX2"})])
def test_sixteen_bit_saturation_without_vnni_fails(name, isa, tmp_path):
    """pytorch#44939: with the kernels held to AVX2 (no VNNI), u8 x s8 pairs saturate at int16 and every element
    of y fails by dozens of steps; on this CPU's own (VNNI) kernels the same inputs are exact. qnnpack sums in int32
    whatever the ISA."""
    if not has_avx512_vnni():
        pytest.skip("needs a CPU with AVX512-VNNI for the exact run")
    inputs = _saturation_inputs()
    exact = judged_rows(backend(name), SATURATING, inputs, (run_with(backend(name), SATURATING, inputs)[0],
                                                            None, None, None))
    assert statuses(exact) == {"y": "pass"} and exact[0].steps.startswith("exact 200,")
    y = _y_in_a_process(name, isa, tmp_path, inputs)
    (row,) = judged_rows(backend(name), SATURATING, inputs, (y, None, None, None))
    assert row.status == "fail" and row.max_steps > 50, (row.steps, row.max_steps)
    saturated = _y_in_a_process("torch-quantized-qnnpack", {**isa, "FBGEMM_ENABLE_INSTRUCTIONS": "AVX2",
                                                            "ONEDNN_MAX_CPU_ISA": "AVX2"}, tmp_path, inputs)
    assert statuses(judged_rows(backend("torch-quantized-qnnpack"), SATURATING, inputs,
                                (saturated, None, None, None))) == {"y": "pass"}


def test_registering_imports_no_torch():
    script = ("import json, sys\nfrom convparity.harness.backends.manager import PluginManager\n"
              "backends = PluginManager({'reference', 'torch-quantized'}).backends()\n"
              "print(json.dumps([sorted(backends), 'torch' in sys.modules]))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == [sorted(("reference", *NAMES)), False]
