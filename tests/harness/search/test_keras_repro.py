"""The Keras bias bug's repro script, from the plugin's own program specialised to the minimal case: small integer
inputs (the bug survives them), x, w, b, dy and both outputs printed, exit 1 while the bug is there.

Needs Keras (the keras tox env: `tox -e keras -- tests/harness/search/test_keras_repro.py`); skipped elsewhere.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytest.importorskip("keras")

from convparity.harness.cases.inputs import InputStyle, make_inputs  # noqa: E402
from convparity.harness.cases.spec import ConvSpec  # noqa: E402
from convparity.harness.evaluation.verdict import evaluate_case  # noqa: E402
from convparity.harness.search.observations import observe  # noqa: E402
from convparity.harness.search.repro_script import evidence_for, script_text  # noqa: E402
from convparity.plugins.keras_backend import KerasBackend  # noqa: E402

# the minimal case a search shrinks the bug to: the bias lands along the last axis when its size equals out_channels
MINIMAL = ConvSpec(batch=1, in_channels=1, out_channels=2, input_size=(2,), kernel_size=(1,), bias=True,
                   dtype="float64")


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    backend = KerasBackend()
    if backend.availability():
        pytest.skip(backend.availability())
    style = next(style for style in (InputStyle("integers", 1), InputStyle("integers", 2))
                 if observe(MINIMAL, "keras", evaluate_case(backend, MINIMAL, inputs=style)[1], style).failing
                 == ("y", "db"))
    evidence = evidence_for(MINIMAL, "keras", backend.version(), "fail", ("y", "db"), make_inputs(MINIMAL, 0, style),
                            accumulation="float64", tolerance_factor=1.0,
                            rule="bias and output_size[-1] == out_channels > 1", program=backend.program(MINIMAL))
    path = tmp_path_factory.mktemp("keras") / "keras-1.py"
    path.write_text(script_text(evidence))
    return path


def test_the_keras_repro_prints_small_integers_and_both_outputs_and_exits_1(script):
    text = script.read_text()
    # specialised, the layer and the tape at the script's top level: only the branch taken, no chain, no plumbing
    assert "\nlayer = keras.layers.Conv1D(" in text and "Transpose" not in text and "chain" not in text
    assert "def keras_conv" not in text and "post_ops" not in text
    x_line = next(line for line in text.splitlines() if line.startswith("x = "))
    assert re.fullmatch(r"x = np\.array\(\[\[\[-?\d+, -?\d+\]\]\], dtype=np\.float64\)", x_line), x_line  # integers
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    printed = done.stdout.splitlines()
    for name in ("x", "w", "b", "dy", "y: WRONG", "db: WRONG"):
        assert name in printed, done.stdout
    assert printed[-1] == "still wrong: y db"


def test_the_keras_repro_is_under_40_lines(script):
    assert len(script.read_text().splitlines()) < 40
