"""Repro scripts: one short Python file per finding, for a framework's maintainers, and the issue text around it.

A script holds the backend's own program (its `program(spec)` member: one self-contained function that
imports only its framework and NumPy, the very function the backend's `run` calls), the call that builds
it for the minimal case, the case's inputs as literal arrays, and what convparity expects: the float64
reference of each tensor the finding is about and its allowed error (convparity's bound,
|out - ref| <= factor * (gamma(K, u_acc) * mag + u_out * |ref| + eta), the run's tolerance factor
included). It runs the program, prints inputs, outputs, expected values and differences, and exits
- 0 once every tensor it checks agrees (fixed),
- 1 while one does not, or while the call still raises (a finding of kind error) or still kills its
  process (kind crash: the call runs in a child process, and a signal is reported by name),
- 2 when it cannot run at all (the framework is not installed).
Everything it embeds is written as Python literals (`repr`), never inside a docstring or a comment that
text could close; a version or a name can hold any character.

A backend without a program gets a script that runs it through convparity's plugin manager instead
(not standalone; it says so). `issue_text` wraps a script in a ready-to-paste report: title, versions,
the script, what was expected and what came out.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from convparity.harness.backends.manager import PluginSelection
from convparity.harness.backends.program import Program
from convparity.harness.cases.inputs import Inputs
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.evaluation.chain_bound import code_window, tensor_bounds
from convparity.harness.evaluation.reference import reference
from convparity.harness.files import atomic_write
from convparity.harness.inert_text import markdown, one_line

FAILING = "fail"


@dataclass(frozen=True)
class Evidence:
    """What a script shows: one case on one backend, the tensors it is wrong on (none for an error or a
    crash), its inputs, and per tensor checked the expected values and their allowed error."""

    spec: ConvSpec
    backend: str
    version: str
    kind: str  # "fail", "error" or "crash"
    tensors: tuple[str, ...]
    inputs: Inputs
    expected: Mapping[str, np.ndarray] = field(default_factory=dict)
    allowed: Mapping[str, np.ndarray] = field(default_factory=dict)
    rule: str = ""
    message: str = ""
    program: Program | None = None
    plugins: PluginSelection | None = None


def _array(values: np.ndarray | None) -> str:
    """A NumPy array as Python source: exact (repr of each float64 value) and as short as the values allow."""
    if values is None:
        return "None"
    as64 = np.asarray(values, dtype=np.float64)
    if np.all(np.isfinite(as64)) and np.all(as64 == np.round(as64)) and np.all(np.abs(as64) < 2**53):
        body = repr(as64.astype(np.int64).tolist())
    else:
        body = repr(as64.tolist()).replace("inf", "float('inf')").replace("nan", "float('nan')")
    return f"np.array({body}, dtype=np.float64).reshape({tuple(as64.shape)!r})"


def script_text(evidence: Evidence) -> str:
    """The whole script (see the module docstring)."""
    spec, program = evidence.spec, evidence.program
    what = (f"{' and '.join(evidence.tensors)} of a convolution differ from convparity's float64 reference"
            if evidence.kind == FAILING else "a convolution " + ("raises" if evidence.kind == "error"
                                                                  else "kills its process"))
    info = {"backend": evidence.backend, "version": evidence.version, "case": spec.descriptor,
            "dtype": spec.dtype, "bias": spec.bias, "cases seen failing this way": evidence.rule}
    if program is not None:
        header = [program.source().rstrip(), "", ""]
        build = f"step = {program.call()}"
    else:
        header = [_through_convparity(evidence), "", ""]
        build = "step = through_convparity()"
    cast = "" if spec.dtype != "bfloat16" else "import ml_dtypes\n"
    dtype = "ml_dtypes.bfloat16" if spec.dtype == "bfloat16" else f"np.{spec.dtype}"
    inputs = evidence.inputs
    lines = [
        "#!/usr/bin/env python3",
        f"# {one_line(evidence.backend)}: {what}.",
        "# Exit 0: fixed; 1: still wrong; 2: cannot run here.",
        f"INFO = {info!r}",
        "import sys",
        "",
        "import numpy as np",
        *([cast.strip()] if cast else []),
        "",
        "",
        *header,
        f"x, w, b, dy = ({_array(inputs.x)}.astype({dtype}), {_array(inputs.w)}.astype({dtype}),",
        f"                {_array(inputs.b)}{'.astype(' + dtype + ')' if inputs.b is not None else ''}, "
        f"{_array(inputs.dy)}.astype({dtype}))",
        f"EXPECTED = {{{', '.join(f'{t!r}: {_array(v)}' for t, v in evidence.expected.items())}}}",
        f"ALLOWED = {{{', '.join(f'{t!r}: {_array(v)}' for t, v in evidence.allowed.items())}}}"
        "  # |got - expected| may be this much",
        *_run_part(evidence.kind, build),
    ]
    return "\n".join(lines) + "\n"


def _run_part(kind: str, build: str) -> list[str]:
    """The lines that run the step and judge it; for a crash, in a child process so that a signal is seen."""
    compare = [
        "np.set_printoptions(precision=6, suppress=True, linewidth=110, threshold=60)",
        "print('x', x, 'w', w, 'b', b, 'dy', dy, sep='\\n')",
        "wrong = []",
        "for name, got in zip(('y', 'dx', 'dw', 'db'), outputs):",
        "    if name in EXPECTED:",
        "        difference = np.asarray(got, dtype=np.float64) - EXPECTED[name]",
        "        ok = bool(np.all(np.abs(difference) <= ALLOWED[name]))",
        "        print(f'{name}: {\"ok\" if ok else \"WRONG\"}', 'got', got, 'expected', EXPECTED[name], sep='\\n')",
        "        wrong += [] if ok else [name]",
        "print('still wrong: ' + ' '.join(wrong) if wrong else 'fixed: they agree')",
        "sys.exit(1 if wrong else 0)",
    ]
    run = ["try:", f"    {build}", "except ImportError as error:",
           "    print(f'cannot run here: {error}')", "    sys.exit(2)"]
    if kind == "crash":
        return [*run, "if sys.argv[1:] != ['--child']:  # run the call in a child, so that its death can be told",
                "    import signal, subprocess",
                "    code = subprocess.run([sys.executable, __file__, '--child']).returncode",
                "    print(f'still crashes: {signal.Signals(-code).name}' if code < 0 else 'fixed: it runs')",
                "    sys.exit(1 if code < 0 else 0)", "outputs = step(x, w, b, dy)", "sys.exit(0)"]
    if kind == "error":
        return [*run, "try:", "    outputs = step(x, w, b, dy)", "except Exception as error:",
                "    print(f'still raises {type(error).__name__}: {error}')", "    sys.exit(1)",
                "print('fixed: it runs')", "sys.exit(0)"]
    return [*run, "outputs = step(x, w, b, dy)", *compare]


def _through_convparity(evidence: Evidence) -> str:
    """A stand-in program for a backend without one: the backend as convparity's plugin manager finds it."""
    plugins = evidence.plugins or PluginSelection.from_environment()
    fields = {"batch": evidence.spec.batch, "in_channels": evidence.spec.in_channels,
              "out_channels": evidence.spec.out_channels, "input_size": evidence.spec.input_size,
              "kernel_size": evidence.spec.kernel_size, "stride": evidence.spec.stride,
              "padding": evidence.spec.padding, "dilation": evidence.spec.dilation, "groups": evidence.spec.groups,
              "bias": evidence.spec.bias, "dtype": evidence.spec.dtype, "transposed": evidence.spec.transposed,
              "output_padding": evidence.spec.output_padding}
    return textwrap.dedent(f'''\
        def through_convparity():
            """{one_line(evidence.backend)!r} declares no standalone program: run it as convparity does."""
            import os

            os.environ.setdefault("CONVPARITY_PLUGINS", {",".join(plugins.only or ()) if plugins.only else ""!r})
            os.environ.setdefault("CONVPARITY_EXTRA_PLUGINS", {",".join(plugins.extra)!r})
            try:
                from convparity.harness.backends.manager import get_manager
                from convparity.harness.cases.spec import ConvSpec

                backend = get_manager().backends()[{evidence.backend!r}]
            except Exception as error:  # convparity or the backend's plugin is not installed here
                raise ImportError(f"convparity cannot load backend {evidence.backend!r} here: {{error}}") from None
            spec = ConvSpec(**{fields!r})
            return lambda x, w, b, dy: backend.run(spec, x, w, b, dy)''')


def issue_text(evidence: Evidence, script: str, *, title_prefix: str = "") -> str:
    """A ready-to-paste upstream report: title, versions, the script, expected against what came out."""
    spec = evidence.spec
    title = (f"{title_prefix}{' and '.join(evidence.tensors)} of a {spec.rank}-D "
             f"{'transposed ' if spec.transposed else ''}convolution wrong in {spec.dtype}"
             if evidence.kind == FAILING else f"{title_prefix}a {spec.rank}-D convolution "
             + ("raises" if evidence.kind == "error" else "crashes"))
    lines = [f"## {markdown(title)}", "",
             f"- {markdown(evidence.backend)}: {markdown(evidence.version)}",
             f"- case: `{spec.descriptor}`, dtype {spec.dtype}, bias {'on' if spec.bias else 'off'}",
             f"- seen failing this way on: {markdown(evidence.rule)}" if evidence.rule else "",
             "", "The script below needs only NumPy and the framework; it prints the inputs, what the framework "
             "returns and what it should return, and exits 1 while they disagree.", "",
             "```python", script.rstrip(), "```", "",
             "What convparity saw: " + (markdown(evidence.message) or "(no message)"), ""]
    return "\n".join(line for line in lines if line is not None)


def write_script(path: Path, text: str) -> Path:
    """Write the script whole or not at all (executable by its owner) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda file: file.write(text))
    path.chmod(0o755)
    return path


def evidence_for(spec: ConvSpec, backend: str, version: str, kind: str, tensors: Sequence[str], inputs: Inputs, *,
                 accumulation: str, tolerance_factor: float, rule: str = "", message: str = "",
                 program: Program | None = None, plugins: PluginSelection | None = None) -> Evidence:
    """The Evidence of a finding: the reference and allowed error of each tensor it is about, from `inputs`."""
    checked = tuple(t for t in spec.tensors if t in tensors)
    expected, allowed = {}, {}
    if kind == FAILING and checked:
        ref = reference(spec, inputs)
        bounds = tensor_bounds(spec, ref, accumulation=accumulation, tolerance_factor=tolerance_factor)
        for tensor in checked:
            if tensor == "y" and ref.codes is not None:  # codes: within half a step (and the window) of the value
                expected[tensor] = ref.codes.real
                allowed[tensor] = 0.5 + code_window(spec, ref, accumulation=accumulation,
                                                    tolerance_factor=tolerance_factor)
            elif tensor in ref.values:
                expected[tensor] = ref.values[tensor]
                allowed[tensor] = bounds[tensor]
    return Evidence(spec, backend, version, kind, checked, inputs, expected, allowed, rule, message, program,
                    plugins)
