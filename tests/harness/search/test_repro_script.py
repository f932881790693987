"""Repro scripts: the backend's own program with the case's values and the reference's expectations, run
standalone; exit 0 fixed, 1 still wrong (or still raising, or still crashing, named), 2 cannot run; any text
embedded safely."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from convparity.harness.backends.program import Program
from convparity.harness.cases.inputs import make_inputs
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.search.repro_script import SCRIPT_NAMES, evidence_for, issue_text, script_text
from convparity.harness.search.specialize import specialize, unwrap
from convparity.plugins.reference_backend import ReferenceBackend

SPEC = ConvSpec(batch=1, in_channels=2, out_channels=3, input_size=(5, 4), kernel_size=(3, 2), groups=1,
                padding=((1, 0), (-1, 1)), dtype="float32")


def scaled_reference(*, stride, padding, dilation, groups, dtype, bias, output_padding=None, scale=1.0):
    """The reference, its y scaled: a planted bug of a size the test chooses (self-contained, as programs are)."""
    from convparity import reference_impl

    def step(x, w, b, dy):
        outputs = reference_impl.conv_forward_backward(x, w, b, dy, stride=stride, padding=padding,
                                                       dilation=dilation, groups=groups)
        return tuple(None if t is None else (t * (scale if i == 0 else 1.0)).astype(x.dtype)
                     for i, t in enumerate(outputs))

    return step


def raising(**_):
    def step(x, w, b, dy):
        raise RuntimeError("no kernel for this")

    return step


def crashing(**_):
    def step(x, w, b, dy):
        import os
        import signal

        os.kill(os.getpid(), signal.SIGSEGV)

    return step


def write(tmp_path, program, kind="fail", tensors=("y",), version="1.0", spec=SPEC) -> str:
    evidence = evidence_for(spec, "test-backend", version, kind, tensors, make_inputs(spec, 3),
                            accumulation="float32", tolerance_factor=1.0, rule="every case", message="y is off",
                            program=program)
    text = script_text(evidence)
    (tmp_path / "repro.py").write_text(text)
    return text


def run(tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(tmp_path / "repro.py")], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)


@pytest.mark.parametrize(("scale", "code", "said"), [(1.0, 0, "fixed: they agree"), (1 + 1e-3, 1, "still wrong: y")])
def test_the_program_runs_standalone_and_the_exit_code_says_whether_it_is_wrong(tmp_path, scale, code, said):
    arguments = dict(stride=SPEC.stride, padding=SPEC.padding, dilation=SPEC.dilation, groups=1, dtype="float32",
                     bias=True, scale=scale)
    text = write(tmp_path, Program(scaled_reference, arguments), tensors=("y", "dw"))
    # its statements at the script's top, its arguments in place: no function of the harness to call
    assert "def scaled_reference" not in text and "convparity.harness" not in text and "stride=(1, 1)" in text
    assert "    from convparity import reference_impl\nexcept ImportError as error:" in text
    done = run(tmp_path)
    assert done.returncode == code, done.stdout + done.stderr
    assert said in done.stdout and "expected" in done.stdout and "dy" in done.stdout


def test_the_reference_backends_own_program_agrees_with_itself(tmp_path):
    write(tmp_path, ReferenceBackend().program(SPEC), tensors=("y", "dx", "dw", "db"))
    done = run(tmp_path)
    assert done.returncode == 0 and "fixed: they agree" in done.stdout, done.stdout + done.stderr


def test_the_expected_values_are_the_reference_and_the_allowed_error_the_bound(tmp_path):
    text = write(tmp_path, ReferenceBackend().program(SPEC), tensors=("y",))
    namespace: dict = {}
    exec(compile(text.split("outputs = step(")[0], "repro.py", "exec"), namespace)  # noqa: S102 - no call
    inputs = make_inputs(SPEC, 3)
    np.testing.assert_array_equal(namespace["x"], inputs.x)
    np.testing.assert_array_equal(namespace["b"], inputs.b)
    from convparity.harness.evaluation.reference import reference

    ref = reference(SPEC, inputs)
    np.testing.assert_array_equal(namespace["EXPECTED"]["y"], ref.values["y"])
    assert np.all(namespace["ALLOWED"]["y"] > 0) and np.all(namespace["ALLOWED"]["y"] < 1e-5)


def test_an_error_finding_exits_1_while_it_raises(tmp_path):
    write(tmp_path, Program(raising), kind="error", tensors=())
    done = run(tmp_path)
    assert done.returncode == 1 and "still raises RuntimeError: no kernel for this" in done.stdout


def test_a_crash_finding_names_the_signal_and_exits_1(tmp_path):
    write(tmp_path, Program(crashing), kind="crash", tensors=())
    done = run(tmp_path)
    assert done.returncode == 1 and "still crashes: SIGSEGV" in done.stdout


def test_a_script_that_cannot_load_its_backend_exits_2(tmp_path):
    write(tmp_path, None)  # no program: the script goes through convparity's plugins, and this backend is none
    done = run(tmp_path)
    assert done.returncode == 2 and "cannot run here" in done.stdout, done.stdout + done.stderr


def test_any_text_is_embedded_as_data(tmp_path):
    nasty = 'x""" + __import__("os").system("touch pwned") + """\nimport sys; sys.exit(0)  # \'\n'
    text = write(tmp_path, ReferenceBackend().program(SPEC), version=nasty)
    compile(text, "repro.py", "exec")
    run(tmp_path)
    assert not (tmp_path / "pwned").exists()
    evidence = evidence_for(SPEC, "b\n# x", nasty, "fail", ("y",), make_inputs(SPEC, 3), accumulation="float32",
                            tolerance_factor=1.0)
    report = issue_text(evidence, text)
    assert "```python" in report and "\n# x" not in report.split("```python")[0]


def test_a_transposed_finding_gets_a_script_too(tmp_path):
    spec = ConvSpec(batch=1, in_channels=2, out_channels=2, input_size=(3,), kernel_size=(2,), stride=(2,),
                    transposed=True, dtype="float64")
    write(tmp_path, ReferenceBackend().program(spec), tensors=("y", "dx"), spec=spec)
    done = run(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def branchy(*, stride, transposed, scale=None, mode="plain"):
    """A program with branches a case does not take."""
    import numpy as np

    factor = 2 if stride[0] > 1 else 1
    if transposed:
        def step(x, w, b, dy):
            return (np.flip(x) * factor, None, None, None)
    elif mode == "plain" and scale is None:
        def step(x, w, b, dy):
            return (x * factor, None, None, None)
    else:
        def step(x, w, b, dy):
            return (x * scale, None, None, None)
    return step


@pytest.mark.parametrize("arguments", [dict(stride=(2,), transposed=False), dict(stride=(1,), transposed=True),
                                       dict(stride=(1,), transposed=False, scale=3.0, mode="scaled")])
def test_a_program_specialised_to_its_case_computes_the_same_and_reads_shorter(arguments):
    """The branches the case does not take, the docstring and the names fixed by the case go; the step computes
    what the program's does."""
    program = Program(branchy, arguments)
    text = specialize(program)
    assert '"""' not in text and "if transposed" not in text and len(text.splitlines()) < len(
        program.source().splitlines()) - 5, text
    namespace: dict = {}
    exec(compile(text, "specialised", "exec"), namespace)  # noqa: S102
    x = np.arange(4.0)
    np.testing.assert_array_equal(namespace["branchy"](**arguments)(x, None, None, None)[0],
                                  program.build()(x, None, None, None)[0])


def test_the_reference_program_specialised_agrees_with_itself(tmp_path):
    for spec in (SPEC, SPEC.replace(transposed=True, stride=2, output_padding=1, padding=0)):
        program = ReferenceBackend().program(spec)
        assert len(specialize(program).splitlines()) < len(program.source().splitlines())
        write(tmp_path, program, tensors=spec.tensors, spec=spec)
        done = run(tmp_path)
        assert done.returncode == 0 and "fixed: they agree" in done.stdout, done.stdout + done.stderr


def gathering(*, scale, names=("y",)):
    """A program that fills a list and a dict it assigns once: specialising must not put `[]` or `{}` in their
    place, or the filled containers would read empty (self-contained, as programs are)."""
    kept = []
    found = {}

    def step(values):
        for value in values:
            kept.append(value * scale)
        found[names[0]] = len(kept)
        return kept, found

    return step


def test_a_container_assigned_once_and_filled_keeps_its_name():
    program = Program(gathering, {"scale": 2, "names": ("y",)})
    text = specialize(program)
    assert "kept.append(value * 2)" in text and "found['y'] = len(kept)" in text, text
    defined: dict = {}
    exec(text, defined)  # noqa: S102 - the specialised program, as a repro script runs it
    assert defined["gathering"](scale=2)([1, 3]) == ([2, 6], {"y": 2}) == program.build()([1, 3])


def chained(*, chain=(), scale=1.0):
    """A program with a chain of steps, most cases without any: its loops, comprehensions and helpers over the chain
    are dead code there (self-contained, as programs are)."""
    steps = tuple(dict(step) for step in chain)
    names = [step["kind"] for step in steps]

    def describe(step):
        return f"{step['kind']}({step['alpha']})"

    def step(values):
        out = [value * scale for value in values]
        for op, name in zip(steps, names):
            out = [v + op["alpha"] for v in out] if name == "add" else out
        return out

    return step


@pytest.mark.parametrize("chain", [(), ({"kind": "add", "alpha": 1.0},)])
def test_an_empty_chain_s_loops_and_helpers_fold_away(chain):
    program = Program(chained, {"chain": chain, "scale": 2.0})
    text = specialize(program)
    defined: dict = {}
    exec(text, defined)  # noqa: S102 - the specialised program, as a repro script runs it
    assert defined["chained"](chain=chain, scale=2.0)([1.0, 3.0]) == program.build()([1.0, 3.0])
    if not chain:
        assert "for op" not in text and "def describe" not in text and "names" not in text, text
    else:
        assert "for op, name in zip(steps, names)" in text, text


def spreading(*, rank, bias, extra=()):
    """A program whose plain case spreads empty and one-item lists, a dict of keywords and a range (self-contained,
    as programs are)."""
    import numpy as np

    def combine(*parts, scale=1.0, shift=0.0):
        return sum(parts) * scale + shift

    def step(x, w, b, dy):
        parts = [x, *([b] if bias else []), *[part for part in extra]]
        y = combine(*parts, **({"scale": 2.0} if rank == 1 else {"shift": 1.0}))
        return (np.transpose(y[None, None], (*range(2, rank + 2), 1, 0)), None, None, None)

    return step


def test_spread_lists_keywords_and_ranges_fold_to_what_a_person_writes():
    program = Program(spreading, {"rank": 1, "bias": True})
    text = specialize(program)
    assert "parts = [x, b]" in text and "combine(*parts, scale=2.0)" in text and "(2, 1, 0)" in text, text
    defined: dict = {}
    exec(text, defined)  # noqa: S102 - the specialised program, as a repro script runs it
    x, b = np.arange(3.0), np.ones(3)
    np.testing.assert_array_equal(defined["spreading"](rank=1, bias=True)(x, None, b, None)[0],
                                  program.build()(x, None, b, None)[0])


def binding_x(*, scale):
    """A program that binds `x` at its top level, a name the script's inputs have (self-contained)."""
    x = [scale]  # a list: it stays a name

    def step(inputs, w, b, dy):
        return (inputs * x[0], None, None, None)

    return step


def counting(*, scale):
    """A program whose step rebinds a name of its builder's (nonlocal: no top-level form for it)."""
    calls = 0

    def step(x, w, b, dy):
        nonlocal calls
        calls += 1
        return (x * scale, None, None, None)

    return step


@pytest.mark.parametrize("function", [binding_x, counting])
def test_a_program_whose_statements_would_clash_at_the_top_level_stays_a_function(tmp_path, function):
    text = specialize(Program(function, {"scale": 1.0}))
    assert unwrap(text, taken=SCRIPT_NAMES) is None
    script = write(tmp_path, Program(function, {"scale": 1.0}), tensors=("y",),
                   spec=ConvSpec(batch=1, in_channels=1, out_channels=1, input_size=(2,), kernel_size=(1,),
                                 dtype="float64"))
    assert f"def {function.__name__}(" in script and f"step = {function.__name__}(scale=1.0)" in script
    done = run(tmp_path)  # y = x * 1: wrong against a convolution with w, unless w is 1; either way it runs
    assert done.returncode in (0, 1) and ("fixed" in done.stdout or "still wrong" in done.stdout), done.stderr
