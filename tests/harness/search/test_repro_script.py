"""Repro scripts: their written-out loops compute the convolution (checked against reference_impl), their
bound is the harness's, and a script for a correct backend exits 0."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from hypothesis import given, settings

from convparity import reference_impl
from convparity.harness.cases.inputs import make_inputs
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.evaluation.bound import compare_tensor
from convparity.harness.search.repro_script import TEMPLATES, is_standalone, script_text
from convparity.harness.vocabulary import TENSORS
from tests.strategies import conv_specs


def _namespace(spec: ConvSpec, backend: str = "reference", tensors=("y",)) -> dict:
    """The script's definitions (everything before it runs the backend), executed here."""
    text = script_text(spec, backend=backend, version="1", tensors=tensors, seed=3, rule="every case")
    definitions = text[:text.index("\nframework_name = ")]
    namespace: dict = {"__name__": "repro"}
    exec(compile(definitions, "repro.py", "exec"), namespace)  # noqa: S102 - our own generated code
    return namespace


@settings(max_examples=40, deadline=None)
@given(conv_specs(max_rank=3))
def test_the_scripts_loops_compute_the_convolution(spec):
    namespace = _namespace(spec)
    x, w, b, dy = (namespace[name] for name in ("x", "w", "b", "dy"))
    loops = namespace["loops"](x, w, b, dy)
    expected = reference_impl.conv_forward_backward(x, w, b, dy, stride=spec.stride, padding=spec.padding,
                                                    dilation=spec.dilation, groups=spec.groups)
    assert namespace["OUT"] == spec.output_size
    for tensor, value in zip(TENSORS, expected):
        if value is None:
            assert loops[tensor] is None
        else:
            np.testing.assert_allclose(loops[tensor], value, rtol=1e-12, atol=1e-12)


def test_the_scripts_inputs_are_convparitys_and_its_bound_the_harness_bound():
    spec = ConvSpec(batch=2, in_channels=4, out_channels=6, input_size=(5, 4), kernel_size=(3, 2), groups=2,
                    padding=((1, 0), (-1, 1)), dtype="float16")
    namespace = _namespace(spec)
    inputs = make_inputs(spec, 3)
    for name in ("x", "w", "b", "dy"):
        np.testing.assert_array_equal(namespace[name].astype(np.float16), getattr(inputs, name))
    used = [np.asarray(getattr(inputs, n), dtype=np.float64) for n in ("x", "w", "b", "dy")]
    ref = namespace["loops"](*used)
    mag = namespace["loops"](*(np.abs(a) for a in used))
    out = (ref["y"] * (1 + 2.0**-10)).astype(np.float16).astype(np.float64)  # off by ~2 units in the last place
    k = spec.reductions["y"]
    harness = compare_tensor("y", out, ref["y"], mag["y"], reduction=k, dtype="float16", accumulation="float32")
    namespace["framework_name"] = "test"
    assert namespace["check"]("y", out, ref["y"], mag["y"], k) == harness.passed
    assert namespace["check"]("y", ref["y"], ref["y"], mag["y"], k)


def test_a_script_for_a_correct_backend_exits_0(tmp_path):
    spec = ConvSpec(batch=1, in_channels=2, out_channels=4, input_size=(4, 3, 3), kernel_size=(2, 1, 2),
                    stride=(2, 1, 1), padding=((1, 0), (0, 0), (-1, 1)), dilation=(1, 1, 2), groups=2, dtype="float32")
    path = tmp_path / "reference.py"
    path.write_text(script_text(spec, backend="reference", version="1", tensors=("y", "db"), seed=0, rule="r"))
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "fixed: y db agree" in done.stdout
    assert "No standalone template for backend 'reference'" in path.read_text()


def test_standalone_templates_import_only_numpy_and_their_framework():
    spec = ConvSpec(batch=1, in_channels=1, out_channels=2, input_size=(3,), kernel_size=(2,))
    frameworks = {"torch": {"torch"}, "torch-channels_last": {"torch"}, "torch-cuda": {"torch"},
                  "tensorflow": {"tensorflow"}, "keras": {"keras", "tensorflow"}, "jax": {"jax"},
                  "onnxruntime": {"onnx", "onnxruntime"}}
    assert set(frameworks) == set(TEMPLATES)
    for backend, allowed in frameworks.items():
        assert is_standalone(backend)
        text = script_text(spec, backend=backend, version="1", tensors=("y",), seed=0, rule="every case")
        imported = {line.split()[1].split(".")[0] for line in text.splitlines()
                    if line.startswith(("import ", "from "))}
        assert imported == {"itertools", "math", "sys", "numpy"} | allowed | ({"os"} if "os." in text else set()), (
            backend, imported)
        assert "harness" not in text and len(text.splitlines()) < 140
