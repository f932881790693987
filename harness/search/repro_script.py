"""Repro scripts: one short Python file per finding, for a framework's maintainers, and the issue text around it.

A script holds the backend's own program (its `program(spec)` member: one self-contained function that
imports only its framework and NumPy, the very function the backend's `run` calls), the call that builds
it for the minimal case, the case's inputs as literal arrays, and what convparity expects: the float64
reference of each tensor the finding is about and its allowed error (convparity's bound,
|out - ref| <= factor * (gamma(K, u_acc) * mag + u_out * |ref| + eta), the run's tolerance factor
included). It reads top to bottom as the bug report: the program (the framework's plain API), the inputs (small
integers when the failure survives them: harness.search.values), the expected values and allowed
error, then the call, x, w, b, dy and both outputs printed, and exits
- 0 once every tensor it checks agrees (fixed),
- 1 while one does not, or while the call still raises (a finding of kind error) or still kills its
  process (kind crash: the call runs in a child process, and a signal is reported by name),
- 2 when it cannot run at all (the framework is not installed).
A flaky finding's script calls the step `runs` times and exits 1 when any call is wrong, saying in how
many. A hang's script runs the call in a child process under a time limit.
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
from convparity.harness.search.specialize import specialize, unwrap

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
    runs: int = 1
    hang_seconds: float = 60.0


def _array(values: np.ndarray | None, dtype: str = "np.float64") -> str:
    """A NumPy array as Python source: exact (repr of each value as a float64, which every dtype's values are),
    as short as the values allow (whole numbers without a point), its shape read from the nesting."""
    if values is None:
        return "None"
    as64 = np.asarray(values, dtype=np.float64)
    if np.all(np.isfinite(as64)) and np.all(as64 == np.round(as64)) and np.all(np.abs(as64) < 2**53):
        body = repr(as64.astype(np.int64).tolist())
    else:
        body = repr(as64.tolist()).replace("inf", "float('inf')").replace("nan", "float('nan')")
    if 0 in as64.shape:  # an empty dim has no nesting to read it from
        return f"np.array({body}, dtype={dtype}).reshape({tuple(as64.shape)!r})"
    return f"np.array({body}, dtype={dtype})"


def script_text(evidence: Evidence) -> str:
    """The whole script (see the module docstring)."""
    spec, program = evidence.spec, evidence.program
    what = (f"{' and '.join(evidence.tensors)} of a convolution differ from convparity's float64 reference"
            if evidence.kind == FAILING else "a convolution " + {"error": "raises", "crash": "kills its process",
                                                                  "timeout": "hangs"}.get(evidence.kind, evidence.kind))
    seen = f"; seen failing where {evidence.rule}" if evidence.rule else ""
    about = (f"{evidence.backend} {evidence.version}: {what} (case {spec.descriptor} {spec.dtype} bias "
             f"{'on' if spec.bias else 'off'}{seen})")
    imports = ["import sys", "import numpy as np", *(["import ml_dtypes"] if spec.dtype == "bfloat16" else [])]
    flat = None
    if program is not None:
        text = specialize(program)
        flat = unwrap(text, taken=SCRIPT_NAMES, present=imports)
        header, build = [text.rstrip(), ""], f"step = {program.call()}"
    else:
        header, build = [_through_convparity(evidence), ""], "step = through_convparity()"
    if flat is not None:  # the program's own statements, its imports where a missing framework exits 2
        header = [*(_exit_2_unless(textwrap.indent("\n".join(flat.imports), "    ")) if flat.imports else []),
                  *flat.body, *([f"step = {flat.result}"] if flat.result != "step" else []), ""]
        build = ""
    dtype = "ml_dtypes.bfloat16" if spec.dtype == "bfloat16" else f"np.{spec.dtype}"
    inputs = evidence.inputs
    lines = [
        "#!/usr/bin/env python3",
        f"# {one_line(about)}. Exit 0: fixed; 1: still wrong; 2: cannot run here.",
        *imports,
        *([""] if flat is None else []),
        *header,
        f"x = {_array(inputs.x, dtype)}",
        f"w = {_array(inputs.w, dtype)}",
        f"b = {_array(inputs.b, dtype)}",
        f"dy = {_array(inputs.dy, dtype)}",
        f"EXPECTED = {{{', '.join(f'{t!r}: {_array(v)}' for t, v in evidence.expected.items())}}}",
        f"ALLOWED = {{{', '.join(f'{t!r}: {_array(v)}' for t, v in evidence.allowed.items())}}}"
        "  # |got - expected| may be this much",
        *_run_part(evidence.kind, build, evidence.runs, evidence.hang_seconds),
    ]
    return "\n".join(lines) + "\n"


_PRINT_INPUTS = "print('x', x, 'w', w, 'b', b, 'dy', dy, sep='\\n')"
_JUDGE = ("[n for n, got in zip(('y', 'dx', 'dw', 'db'), outputs) if n in EXPECTED and (np.shape(got) != "
          "EXPECTED[n].shape or not np.all(np.abs(np.asarray(got, dtype=np.float64) - EXPECTED[n]) <= ALLOWED[n]))]")


# The names a script binds itself (a program's statements put in the script must not bind them; a program's own
# `import ml_dtypes` is the script's, or the only one).
SCRIPT_NAMES = frozenset({"sys", "np", "x", "w", "b", "dy", "EXPECTED", "ALLOWED", "step", "outputs", "wrong", "error",
                          "RUNS", "bad", "attempt", "code", "signal", "subprocess"})


def _exit_2_unless(statements: str) -> list[str]:
    """`statements` (indented) under a try whose ImportError exits 2: the framework is not installed here."""
    return ["try:", statements, "except ImportError as error:  # the framework is not installed here: exit 2",
            "    sys.exit(print(f'cannot run here: {error}') or 2)"]


def _run_part(kind: str, build: str, runs: int, hang_seconds: float) -> list[str]:
    """The lines that build the step (`build`: none where the script's statements define it), run it and judge it;
    for a crash or a hang, in a child process so that its death or its time can be told."""
    run = _exit_2_unless(f"    {build}") if build else []
    if kind in ("crash", "timeout"):
        limit = f", timeout={hang_seconds!r}" if kind == "timeout" else ""
        verdict = ("    print(f'still crashes: {signal.Signals(-code).name}' if code < 0 else 'fixed: it runs')",
                   "    sys.exit(1 if code < 0 else 0)") if kind == "crash" else (
                   "    print('still hangs' if code is None else 'fixed: it ends')",
                   "    sys.exit(1 if code is None else 0)")
        return [*run, "if sys.argv[1:] != ['--child']:  # run the call in a child, so that its end can be told",
                "    import signal, subprocess",
                "    try:",
                f"        code = subprocess.run([sys.executable, __file__, '--child']{limit}).returncode",
                "    except subprocess.TimeoutExpired:",
                "        code = None",
                *verdict, "outputs = step(x, w, b, dy)", "sys.exit(0)"]
    if kind == "error":
        return [*run, "try:", "    outputs = step(x, w, b, dy)", "except Exception as error:",
                "    print(f'still raises {type(error).__name__}: {error}')", "    sys.exit(1)",
                "print('fixed: it runs')", "sys.exit(0)"]
    show = [_PRINT_INPUTS]
    if runs > 1:
        return [*run, *show, f"RUNS, bad = {runs}, 0  # flaky: it was wrong on some calls only, so call it many times",
                "for attempt in range(RUNS):",
                "    outputs = step(x, w, b, dy)",
                f"    wrong = {_JUDGE}",
                "    if wrong and not bad:",
                "        print('wrong:', *wrong, *[a for n, got in zip(('y', 'dx', 'dw', 'db'), outputs) if n in wrong",
                "                                  for a in (n, 'got', got, 'expected', EXPECTED[n])], sep='\\n')",
                "    bad += bool(wrong)",
                "print(f'still wrong in {bad} of {RUNS} calls' if bad else f'fixed: right in all {RUNS} calls')",
                "sys.exit(1 if bad else 0)"]
    return [*run, "outputs = step(x, w, b, dy)",
            f"wrong = {_JUDGE}",
            "print('x', x, 'w', w, 'b', b, 'dy', dy, *[f'{n}: {\"WRONG\" if n in wrong else \"ok\"}\\ngot\\n{got}\\n"
            "expected\\n{EXPECTED[n]}' for n, got in zip(('y', 'dx', 'dw', 'db'), outputs) if n in EXPECTED], "
            "sep='\\n')",
            "print('still wrong: ' + ' '.join(wrong) if wrong else 'fixed: they agree')",
            "sys.exit(1 if wrong else 0)"]


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
             + {"error": "raises", "crash": "crashes", "timeout": "hangs"}.get(evidence.kind, evidence.kind))
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
                 program: Program | None = None, plugins: PluginSelection | None = None, runs: int = 1,
                 hang_seconds: float = 60.0) -> Evidence:
    """The Evidence of a finding: the reference and allowed error of each tensor it is about, from `inputs`."""
    checked = tuple(t for t in spec.tensors if t in tensors)
    expected: dict[str, np.ndarray] = {}
    allowed: dict[str, np.ndarray] = {}
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
                    plugins, runs, hang_seconds)
