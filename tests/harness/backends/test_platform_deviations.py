"""Deviations that hold only on some machines: a rule over the platform detected in the backend's worker."""

from __future__ import annotations

import pytest

from convparity.harness.backends import deviations
from convparity.harness.backends.deviations import Deviation, Platform, PlatformRule, cpu_with, cpu_without, matching
from convparity.harness.cases.descriptor import parse_case
from convparity.harness.cases.inputs import make_inputs
from convparity.harness.evaluation.verdict import evaluate_case, reference
from tests.stub_backend import StubBackend

WITHOUT = Platform("x86_64", frozenset({"avx2", "f16c"}), True)
WITH = Platform("x86_64", frozenset({"avx2", "avx512_fp16", "amx_fp16"}), True)
UNKNOWN = Platform("x86_64", frozenset(), False)
HALF = Deviation("float16 backward", "accumulates in float16", dtypes=("float16",), tensors=("dx", "dw"),
                 platform=cpu_without("avx512_fp16", "amx_fp16"))


def test_rules_decide_from_the_detected_features_never_from_unknown_ones():
    rule = cpu_without("AVX512_FP16", "amx_fp16")
    assert rule.words == "CPU without avx512_fp16 or amx_fp16"
    assert [rule.applies(p) for p in (WITHOUT, WITH, UNKNOWN)] == [True, False, False]
    assert [cpu_with("avx512_fp16").applies(p) for p in (WITHOUT, WITH, UNKNOWN)] == [False, True, False]
    assert cpu_without("avx2").applies(Platform("x86_64", frozenset({"avx"}), True))


def test_matching_on_each_platform():
    spec = parse_case("mb1ic2iw5oc2kw3").spec.replace(dtype="float16")
    assert [len(matching([HALF], spec, "2.13.0", p)) for p in (WITHOUT, WITH, UNKNOWN)] == [1, 0, 0]
    (record,) = matching([HALF], spec, "2.13.0", WITHOUT)
    assert record.condition == "float16 backward; on a CPU without avx512_fp16 or amx_fp16"
    assert not matching([HALF], spec.replace(dtype="float32"), "2.13.0", WITHOUT)


def test_detection_reads_the_cpu_flags(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 AVX2 avx512_bf16\n\nprocessor\t: 1\nflags\t: fpu\n")
    monkeypatch.setattr(deviations, "Path", lambda _: cpuinfo)
    assert deviations._cpu_features() == {"fpu", "sse2", "avx2", "avx512_bf16"}
    monkeypatch.setattr(deviations, "Path", lambda _: tmp_path / "missing")
    assert deviations._cpu_features() is None


def test_a_rule_is_checked_where_the_backend_runs_and_decides_the_row(monkeypatch):
    spec = parse_case("mb1ic2iw9oc2kw3").spec.replace(dtype="float16")
    ref = reference(spec, make_inputs(spec, 0))
    wrong_dx = ref.values["dx"] * 1.01  # far beyond any float16 bound
    outputs = (ref.values["y"], wrong_dx, ref.values["dw"], ref.values["db"])
    asked = []

    def here_without(platform: Platform) -> bool:
        asked.append(platform)
        return True

    here = PlatformRule("a machine like this one", here_without)
    elsewhere = PlatformRule("another machine", lambda p: False)
    for rule, status in ((here, "xfail"), (elsewhere, "fail")):
        backend = StubBackend(outputs=outputs, deviations=(
            Deviation("any float16 case", "dx off", tensors=("dx",), dtypes=("float16",), platform=rule),))
        _, rows = evaluate_case(backend, spec)
        assert {r.tensor: r.status for r in rows}["dx"] == status
    assert asked == [Platform.here()]


def test_describe_says_where_it_holds():
    text = HALF.describe()
    assert "on a CPU without avx512_fp16 or amx_fp16 (" in text
    assert ("applies here" in text) == HALF.covers_platform(Platform.here())


def test_a_platform_that_is_no_rule_is_refused():
    with pytest.raises(ValueError, match="Deviation.platform must be a PlatformRule"):
        Deviation("c", "r", platform="avx512_fp16")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="PlatformRule.words"):
        PlatformRule("", lambda p: True)
