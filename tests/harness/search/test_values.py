"""Values a maintainer reads: a shrunk failure that survives small integer inputs is shown on them (the style
travels with the case through the sweep's tasks, reruns.csv and the repro command); one that needs rounding
keeps its uniform values; the script embeds the integers, prints inputs and outputs, and stays short."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from convparity.harness.api import search
from convparity.harness.backends.manager import PluginSelection
from convparity.harness.backends.program import Program
from convparity.harness.cases.inputs import UNIFORM, InputStyle, make_inputs
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.running.sweep import RunSettings
from convparity.harness.search.evaluations import Evaluator
from convparity.harness.search.observations import Observation
from convparity.harness.search.repro_script import evidence_for, script_text
from convparity.harness.search.search import read_reruns
from convparity.harness.search.values import Reruns, rerun_check, simpler_values
from tests.harness.search import planted_backends
from tests.harness.search.inline import InlineExecutor

SPEC = ConvSpec(batch=1, in_channels=1, out_channels=2, input_size=(2,), kernel_size=(1,), bias=True)


def test_a_bug_that_survives_integers_is_shown_on_them(planted_plugins, tmp_path):
    result = search(["planted-last-size"], budget=40, seed=2, out=tmp_path / "hunt", executor=InlineExecutor())
    (finding,) = result.findings
    assert finding.minimal_inputs.startswith("integers:") and f"--inputs {finding.minimal_inputs}" in finding.repro
    script = (result.path / finding.repro_script).read_text()
    x_line = next(line for line in script.splitlines() if line.startswith("x = "))
    assert re.fullmatch(r"x = np\.array\(\[[-\d, \[\]]+\], dtype=np\.float(32|64)\)", x_line), x_line  # whole numbers
    root = str(Path(__file__).resolve().parents[3])
    done = subprocess.run([sys.executable, str(result.path / finding.repro_script)], capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": root,
                                            "CONVPARITY_EXTRA_PLUGINS": planted_backends.__name__,
                                            "CONVPARITY_PLUGINS": "reference"})
    assert done.returncode == 1 and "still wrong: y db" in done.stdout, done.stdout + done.stderr
    printed = done.stdout.splitlines()
    for name in ("x", "w", "b", "dy", "y: WRONG", "db: WRONG"):
        assert name in printed, (name, done.stdout)
    assert printed.count("got") == 2 and printed.count("expected") == 2
    # the redraw is kept apart from results.csv (one row per case there), with its style, and read back
    redrawn = [obs for obs, attempt in read_reruns(result.path) if obs.inputs.kind == "integers"]
    assert redrawn and all(obs.spec.descriptor and obs.backend == "planted-last-size" for obs in redrawn)
    assert "integers:" not in (result.path / "results.csv").read_text()


class RoundingEvaluator:
    """Stands in for the Evaluator: a case fails y on uniform values (a rounding bug) and passes on integers, whose
    sums are exact; or, with `survives`, fails the same way on integers of scale 2 and up only."""

    def __init__(self, survives: bool = False) -> None:
        self.survives = survives
        self.asked: list[InputStyle] = []

    def rerun(self, spec, backend, *, times=1, inputs=UNIFORM, phase="rerun", deadline=None, seed=None):
        self.asked.append(inputs)
        fails = inputs.kind == "uniform" or (self.survives and inputs.scale >= 2)
        kind, failing = ("fail", ("y",)) if fails else ("pass", ())
        return [Observation(spec, backend, "1", kind, failing, undeclared=failing, inputs=inputs)] * times


def test_a_bug_that_needs_rounding_keeps_its_uniform_values():
    failing = Observation(SPEC, "b", "1", "fail", ("y",), undeclared=("y",))
    evaluator = RoundingEvaluator()
    assert simpler_values(failing, evaluator) is None  # type: ignore[arg-type]
    assert [style.text for style in evaluator.asked] == ["integers:1", "integers:2", "integers:3"]
    survives = RoundingEvaluator(survives=True)
    assert simpler_values(failing, survives).inputs == InputStyle("integers", 2)  # type: ignore[arg-type,union-attr]
    assert rerun_check(failing, evaluator) == Reruns(5, 5)  # type: ignore[arg-type]


def test_a_rerun_carries_its_style_through_the_sweeps_tasks(planted_plugins):
    written = []
    settings = RunSettings(backends=("reference",), dtypes=("float32",))
    evaluator = Evaluator(settings, InlineExecutor(), PluginSelection.from_environment(), lambda rows: None,
                          lambda rows, inputs, attempt: written.append((rows, inputs, attempt)))
    evaluator.probe()
    (again,) = evaluator.rerun(SPEC, "reference", inputs=InputStyle("integers", 1))
    assert (again.kind, again.inputs) == ("pass", InputStyle("integers", 1))
    (rows, inputs, attempt), = written
    assert (inputs.text, attempt) == ("integers:1", 1) and all("--inputs integers:1" in row.repro for row in rows)
    assert evaluator.rerun(SPEC, "reference", inputs=InputStyle("integers", 1)) == [again]  # not run again
    assert len(written) == 1


def short_conv(*, stride, padding, dilation, groups):
    """A short program, as a framework's plain API gives one (the reference's own, here)."""
    import numpy as np

    from convparity import reference_impl

    def step(x, w, b, dy):
        outputs = reference_impl.conv_forward_backward(x, w, b, dy, stride=stride, padding=padding,
                                                       dilation=dilation, groups=groups)
        return tuple(None if t is None else np.asarray(t, dtype=x.dtype) for t in outputs)

    return step


def test_a_script_on_small_integers_reads_in_a_minute():
    """A 10-line program on small integers: the script around it adds under 30 lines, the values whole numbers."""
    spec = SPEC.replace(dtype="float32")
    style = InputStyle("integers", 1)
    inputs = make_inputs(spec, 0, style)
    program = Program(short_conv, dict(stride=spec.stride, padding=spec.padding, dilation=spec.dilation, groups=1))
    text = script_text(evidence_for(spec, "reference", "1", "fail", ("y",), inputs, accumulation="float32",
                                    tolerance_factor=1.0, program=program))
    assert len(text.splitlines()) - len(program.source().splitlines()) < 30, text
    assert re.search(r"^x = np\.array\(\[\[\[-?1, -?1\]\]\], dtype=np\.float32\)$", text, re.MULTILINE), text
