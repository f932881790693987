"""Each framework's repro script runs the framework as its plugin does (the backend's own program, printed into
the script): on cases the framework computes right, the script agrees with the reference and exits 0. Skipped
where a framework is missing."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from convparity.harness.backends.contract import declared_accumulation
from convparity.harness.backends.manager import get_manager
from convparity.harness.cases.inputs import make_inputs
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.evaluation.verdict import run_backend
from convparity.harness.search.repro_script import evidence_for, script_text

SPECS = (
    ConvSpec(batch=2, in_channels=3, out_channels=2, input_size=(7,), kernel_size=(3,), stride=(2,),
             padding=((2, 0),), bias=True, dtype="float32"),
    ConvSpec(batch=1, in_channels=4, out_channels=4, input_size=(5, 6), kernel_size=(2, 3), dilation=(2, 1),
             padding=((1, 0), (0, 2)), groups=2, bias=False, dtype="float64"),
    ConvSpec(batch=1, in_channels=2, out_channels=4, input_size=(4, 3, 5), kernel_size=(2, 1, 2),
             padding=((0, 1), (1, 1), (-1, 0)), groups=2, bias=True, dtype="float32"),
)
FRAMEWORKS = {"torch": "torch", "torch-channels_last": "torch", "tensorflow": "tensorflow", "jax": "jax",
              "onnxruntime": "onnxruntime", "keras": "keras"}


@pytest.mark.parametrize("backend_name", list(FRAMEWORKS))
def test_template_agrees_where_the_framework_is_right(backend_name, tmp_path):
    if importlib.util.find_spec(FRAMEWORKS[backend_name]) is None:
        pytest.skip(f"{FRAMEWORKS[backend_name]} is not installed")
    backend = get_manager().backends()[backend_name]
    specs = [s for s in SPECS if not backend.supports(s)]
    if backend_name == "keras":  # the bias bug: last output size == out_channels
        specs = [s for s in specs if not (s.bias and s.output_size[-1] == s.out_channels > 1)]
    assert specs
    environment = {key: value for key, value in os.environ.items() if not key.startswith("CONVPARITY")}
    running = []
    for number, spec in enumerate(specs):
        path = tmp_path / f"{backend_name}-{number}.py"
        computed = run_backend(backend, spec, 5).outputs  # a forward-only backend's script checks y alone
        tensors = tuple(t for t, out in computed.items() if out is not None)
        evidence = evidence_for(spec, backend_name, backend.version(), "fail", tensors, make_inputs(spec, 5),
                                accumulation=declared_accumulation(backend, spec.dtype), tolerance_factor=1.0,
                                rule="every case", program=backend.program(spec))
        path.write_text(script_text(evidence))
        running.append((spec, subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE,
                                               stderr=subprocess.STDOUT, text=True, env=environment, cwd=tmp_path)))
    for spec, process in running:
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, (spec.descriptor, output[-3000:])
        assert "fixed: " in output
