"""A search's or a triage's output: findings.csv, findings.md and one repro script per group.

findings.csv has one row per group (convparity.harness.search.group), new findings first, then the groups a
backend declares as known deviations (`known` true):

    group            id, also the name of its script: repro/<group>.py
    backend, backend_version
    dtype, bias      every dtype and bias setting its cases fail in ("float32 float64", "on")
    tensors          every tensor its cases fail on
    kind             fail (numbers), error (the backend raised) or crash (its worker died)
    rule             the simplest rule over spec features separating its cases from the passing ones
    rule_check       how the rule fared on fresh cases (a search), or "not checked" (triage)
    also_consistent  rules the cases seen could not tell from it, if any
    rule_exceptions  passing cases seen that the rule holds on (0 when it separates them exactly)
    value_dependent  no rule separates its cases from passing ones: the failure depends on the values (a
                     bias that happens to cancel the convolution, ...); its rule is the one covering the most
    passing_twins    failing cases whose spec features equal a passing case's (no rule can separate those)
    minimal_case     the canonical descriptor of its minimal case; minimal_dtype, minimal_bias with it
    local_minimum    yes: shrunk until no single simplification failed the same way; budget: shrinking
                     stopped at its budget; no: not shrunk (triage: the simplest case seen)
    err_ratio        the minimal case's worst err_ratio over its failing tensors
    cases_seen       failing cases (case x dtype x bias) of the group seen
    known, deviation whether a declared deviation covers it, and the declaration's reason
    message          the minimal case's message (worst element, or the exception)
    repro_script     repro/<group>.py: the backend's own program on the minimal case, standalone (NumPy and the
                     framework) where the backend has a program; exit 1 while the bug is there
                     (harness.search.repro_script); repro/<group>.md beside it is the report to paste upstream
    repro            the `convparity explain` command for the minimal case
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from convparity.harness.backends.manager import PluginSelection
from convparity.harness.cases.inputs import make_inputs
from convparity.harness.evaluation.verdict import repro
from convparity.harness.files import atomic_write
from convparity.harness.inert_text import markdown
from convparity.harness.results import bias_word, csv_cell
from convparity.harness.search.check import RuleCheck
from convparity.harness.search.group import Group, exceptions
from convparity.harness.search.observations import Observation
from convparity.harness.search.repro_script import Evidence, evidence_for, issue_text, script_text, write_script

FINDINGS_CSV = "findings.csv"
FINDINGS_MD = "findings.md"
REPRO_DIR = "repro"


@dataclass
class Finding:
    """One row of findings.csv (see the module docstring)."""

    group: str
    backend: str
    backend_version: str
    dtype: str
    bias: str
    tensors: str
    kind: str
    rule: str
    rule_check: str
    also_consistent: str
    rule_exceptions: int
    value_dependent: bool
    passing_twins: int
    minimal_case: str
    minimal_dtype: str
    minimal_bias: str
    local_minimum: str
    err_ratio: float
    cases_seen: int
    known: bool
    deviation: str
    message: str
    repro_script: str
    repro: str


COLUMNS = tuple(f.name for f in fields(Finding))


def group_name(backend: str, number: int) -> str:
    """"keras-1": the backend's name made safe for a file name, and the group's number."""
    return f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', backend)}-{number}"


def finding(group: Group, name: str, check: RuleCheck | None, observations: Sequence[Observation], *,
            seed: int, tolerance_factor: float, local_minimum: str) -> Finding:
    minimal = group.minimal
    spec = minimal.spec
    return Finding(
        group=name, backend=group.backend, backend_version=group.version, dtype=" ".join(group.dtypes),
        bias=" ".join(bias_word(b) for b in group.bias), tensors=" ".join(group.tensors), kind=group.kind,
        rule=group.rule.text, rule_check=check.describe() if check is not None else "not checked",
        also_consistent="; ".join(t.rule.text for t in group.ties if t.rule != group.rule),
        rule_exceptions=len(exceptions(group, observations)), value_dependent=group.value_dependent,
        passing_twins=group.twins,
        minimal_case=spec.descriptor, minimal_dtype=spec.dtype, minimal_bias=bias_word(spec.bias),
        local_minimum=local_minimum, err_ratio=minimal.err_ratio,
        cases_seen=len(group.members), known=group.known, deviation=minimal.deviation, message=minimal.message,
        repro_script=f"{REPRO_DIR}/{name}.py", repro=repro(spec, group.backend, seed, tolerance_factor),
    )


def write_findings(directory: Path, checked: Sequence[tuple[Group, RuleCheck | None]],
                   observations: Sequence[Observation], *, seed: int, tolerance_factor: float = 1.0,
                   local_minima: dict[tuple, bool] | None = None, plugins: PluginSelection | None = None,
                   title: str = "") -> list[Finding]:
    """Write findings.csv, findings.md and repro/<group>.py for every group; return the rows.

    local_minima: {(minimal spec, backend): reached a local minimum} for the shrunk cases (None: a triage).
    """
    found = []
    numbers: dict[str, int] = {}
    for group, check in checked:
        numbers[group.backend] = numbers.get(group.backend, 0) + 1
        name = group_name(group.backend, numbers[group.backend])
        key = (group.minimal.spec, group.backend)
        if local_minima is None or key not in local_minima:
            state = "no"
        else:
            state = "yes" if local_minima[key] else "budget"
        row = finding(group, name, check, observations, seed=seed, tolerance_factor=tolerance_factor,
                      local_minimum=state)
        evidence = _evidence(group, row, seed=seed, tolerance_factor=tolerance_factor, plugins=plugins)
        text = script_text(evidence)
        write_script(directory / row.repro_script, text)
        report = issue_text(evidence, text)
        atomic_write((directory / row.repro_script).with_suffix(".md"), _writer(report))
        found.append(row)

    def write_csv(file) -> None:
        writer = csv.writer(file)
        writer.writerow(COLUMNS)
        for row in found:
            writer.writerow([csv_cell(getattr(row, column)) for column in COLUMNS])

    atomic_write(directory / FINDINGS_CSV, write_csv)
    text = findings_markdown(title or directory.name, found)
    atomic_write(directory / FINDINGS_MD, lambda file: file.write(text))
    return found


def _evidence(group: Group, row: Finding, *, seed: int, tolerance_factor: float,
              plugins: PluginSelection | None) -> Evidence:
    """What the group's script shows: its minimal case, with the backend's program when it declares one."""
    minimal = group.minimal
    spec = minimal.spec
    backend = (plugins or PluginSelection.from_environment()).manager().backends().get(group.backend)
    program_of = getattr(backend, "program", None)
    program = program_of(spec) if program_of is not None else None
    accumulation = minimal.accumulation or ("float64" if spec.dtype == "float64" else "float32")
    return evidence_for(spec, group.backend, group.version, group.kind, minimal.undeclared or minimal.failing,
                        make_inputs(spec, seed), accumulation=accumulation, tolerance_factor=tolerance_factor,
                        rule=row.rule, message=minimal.message, program=program, plugins=plugins)


def _ratio(value: float) -> str:
    return "inf" if math.isinf(value) else "—" if math.isnan(value) else f"{value:.3g}"


def findings_markdown(title: str, found: Sequence[Finding]) -> str:
    """findings.md: one section per group, new findings first."""
    new = [f for f in found if not f.known]
    lines = [f"# convparity findings: {markdown(title)}", "",
             f"{len(new)} new finding(s), {len(found) - len(new)} known deviation(s)."]
    for row in found:
        state = "known deviation" if row.known else "new"
        what = f"{row.tensors} {row.kind}" if row.tensors else row.kind
        lines += ["", f"## {row.group}: {what} when `{row.rule}` ({state})", "",
                  f"- backend: {markdown(row.backend)} {markdown(row.backend_version)}; dtype {row.dtype}; "
                  f"bias {row.bias}",
                  f"- rule: `{row.rule}`; {row.rule_check}; passing cases seen it holds on: {row.rule_exceptions}"]
        if row.also_consistent:
            lines.append(f"- the cases seen fit as well: `{row.also_consistent}`")
        if row.value_dependent:
            lines.append(f"- depends on the values: no rule separates its cases from passing ones; the rule covers the "
                         f"most of them ({row.passing_twins} of its {row.cases_seen} failing cases have a passing twin "
                         "with the very same spec features)")
        shrunk = {"yes": "a local minimum", "budget": "shrinking stopped at its budget",
                  "no": "the simplest case seen (not shrunk)"}[row.local_minimum]
        lines += [f"- minimal case ({shrunk}): `{row.minimal_case}` {row.minimal_dtype}, bias {row.minimal_bias}; "
                  f"err_ratio {_ratio(row.err_ratio)}; {row.cases_seen} failing case(s) seen",
                  f"- message: {markdown(row.message)}" if row.message else "- message: (none)"]
        if row.deviation:
            lines.append(f"- declared: {markdown(row.deviation)}")
        lines += [f"- script: `python {row.repro_script}` (exit 1 while the bug is there; the report to paste upstream "
                  f"is beside it: `{row.repro_script[:-3]}.md`)",
                  f"- explain: `{row.repro}`"]
    return "\n".join(lines) + "\n"


def summary_text(found: Sequence[Finding], directory: Path) -> str:
    """A few lines for the terminal: one per group, then where the files are."""
    lines = [f"{len([f for f in found if not f.known])} new finding(s), {len([f for f in found if f.known])} "
             "known deviation(s)"]
    for row in found:
        what = f"{row.tensors} {row.kind}" if row.tensors else row.kind
        lines.append(f"  {row.group:24} {'known' if row.known else 'NEW':5} {what}: {row.rule}  "
                     f"[{row.minimal_case} {row.minimal_dtype} bias {row.minimal_bias}]")
    lines += [f"findings: {directory / FINDINGS_MD}", f"scripts:  {directory / REPRO_DIR}"]
    return "\n".join(lines)


def read_findings(directory: str | Path):
    """findings.csv as a pandas DataFrame (known as booleans), or None when the folder has none."""
    import pandas as pd

    path = Path(directory) / FINDINGS_CSV
    if not path.is_file():
        return None
    frame = pd.read_csv(path, keep_default_na=False, dtype=str)
    for column in frame.columns:
        frame[column] = frame[column].map(lambda v: v[1:] if v.startswith("'") else v)
    for column in ("known", "value_dependent"):
        frame[column] = frame[column].map({"true": True, "false": False})
    return frame


def _writer(text: str) -> Callable[[Any], None]:
    """A function writing `text` into the file it is given (for atomic_write)."""
    def write(file: Any) -> None:
        file.write(text)

    return write
