"""A search's or a triage's output: findings.csv, findings.md and one repro script per group.

findings.csv has one row per group (convparity.harness.search.group), new findings first, then the groups a
backend declares as known deviations (`known` true), then earlier findings that are fixed now:

    group            id, also the name of its script: repro/<group>.py
    status           new; declared (a known deviation); seen before (an earlier finding, replayed, that still
                     fails: `earlier` says where); fixed (an earlier finding whose minimal case passes now)
    backend, backend_version
    dtype, bias      every dtype and bias setting its cases fail in ("float32 float64", "on")
    tensors          every tensor its cases fail on
    kind             fail (numbers), error (the backend raised), crash (its worker died), timeout (it hung)
    rule             the broadest rule over spec features that holds where its failure happens and (nearly)
                     nowhere else (convparity.harness.search.rules)
    rule_check       how the rule fared on fresh cases, both sides (a search, or a triage that could run the
                     backend), or "not checked" and why
    also_consistent  rules the cases seen could not tell from it, if any
    rule_exceptions  cases seen that its rule holds on but that do not fail this way (its rare exceptions)
    rule_misses      cases seen failing this way that its rule does not hold on
    value_dependent  no rule separates its cases from passing ones: the failure depends on the values (a
                     bias that happens to cancel the convolution, ...); its rule is the one covering the most
    flaky, fail_rate the minimal case, run again with the same values, did not always fail this way; the share
                     of runs that did (convparity.harness.search.values); reruns says how many
    reruns           "deterministic: failed this way in all 5 runs", "flaky: ... 6 of 20 runs (30%)", or why not
    passing_twins    failing cases whose spec features equal a passing case's (no rule can separate those)
    minimal_case     the canonical descriptor of its minimal case; minimal_dtype, minimal_bias with it
    minimal_inputs   how its values are drawn: integers:K (small whole numbers, when the failure survives them)
                     or uniform
    local_minimum    yes: shrunk until no single simplification failed the same way; budget: shrinking
                     stopped at its budget or time; no: not shrunk (triage: the simplest case seen; a hang; a
                     flaky failure; an earlier finding's own minimal case)
    err_ratio        the minimal case's worst err_ratio over its failing tensors
    cases_seen       failing cases (case x dtype x bias) of the group seen
    known, deviation whether a declared deviation covers it, and the declaration's reason
    earlier          where an earlier finding of it is (folder and group), for seen before and fixed
    message          the minimal case's message (worst element, or the exception)
    repro_script     repro/<group>.py: the backend's own program on the minimal case, standalone (NumPy and the
                     framework) where the backend has a program; exit 1 while the bug is there
                     (harness.search.repro_script); repro/<group>.md beside it is the report to paste upstream
    repro            the `convparity explain` command for the minimal case

Every file is written whole or not at all (harness.files.atomic_write): scripts first, then findings.csv and
findings.md, so a folder whose findings.csv is there has every script it names.
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
from convparity.harness.cases.descriptor import parse_case
from convparity.harness.cases.inputs import InputStyle, make_inputs
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.evaluation.verdict import repro
from convparity.harness.files import atomic_write
from convparity.harness.inert_text import markdown
from convparity.harness.results import bias_word, csv_cell
from convparity.harness.search.check import RuleCheck
from convparity.harness.search.group import Group
from convparity.harness.search.observations import Observation
from convparity.harness.search.repro_script import Evidence, evidence_for, issue_text, script_text, write_script
from convparity.harness.search.shrink import Shrunk
from convparity.harness.search.values import Reruns

FINDINGS_CSV = "findings.csv"
FINDINGS_MD = "findings.md"
REPRO_DIR = "repro"
STATUSES = ("new", "declared", "seen before", "fixed")


@dataclass
class Finding:
    """One row of findings.csv (see the module docstring)."""

    group: str
    status: str
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
    rule_misses: int
    value_dependent: bool
    flaky: bool
    fail_rate: float
    reruns: str
    passing_twins: int
    minimal_case: str
    minimal_dtype: str
    minimal_bias: str
    minimal_inputs: str
    local_minimum: str
    err_ratio: float
    cases_seen: int
    known: bool
    deviation: str
    earlier: str
    message: str
    repro_script: str
    repro: str

    @classmethod
    def from_record(cls, row: dict[str, Any]) -> Finding:
        """A row of `read_findings` back as a Finding (columns it lacks take empty values)."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            value = row.get(f.name, "")
            if f.type == "int":
                value = int(value or 0)
            elif f.type == "float":
                value = float(value) if value not in ("", None) else math.nan
            elif f.type == "bool":
                value = value is True or value == "true"
            values[f.name] = value if f.type != "str" else str(value)
        return cls(**values)


COLUMNS = tuple(f.name for f in fields(Finding))


@dataclass
class Earlier:
    """A finding read back from an earlier search or triage (`source`: its folder and group), to replay: its
    minimal case with the seed and input style that drew its values; `now`: how it fares today."""

    source: str
    group: str
    backend: str
    spec: ConvSpec
    kind: str
    tensors: tuple[str, ...]
    inputs: InputStyle
    seed: int
    rule: str
    row: dict[str, Any]
    now: Observation | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any], folder: Path, seed: int) -> Earlier:
        spec = parse_case(str(row["minimal_case"]), dtype=str(row["minimal_dtype"]),
                          bias=str(row["minimal_bias"]) == "on").spec
        inputs = InputStyle.parse(str(row.get("minimal_inputs", "") or ""))
        return cls(f"{folder} {row['group']}", str(row["group"]), str(row["backend"]), spec, str(row["kind"]),
                   tuple(str(row["tensors"]).split()), inputs, seed, str(row["rule"]), dict(row))

    def fails_like(self, observation: Observation) -> bool:
        """Whether `observation` (its minimal case run now) fails as this finding did."""
        if not observation.fails or observation.kind != self.kind:
            return False
        return self.kind != "fail" or bool(set(observation.undeclared) & set(self.tensors))


def group_name(backend: str, number: int) -> str:
    """"keras-1": the backend's name made safe for a file name, and the group's number."""
    return f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', backend)}-{number}"


def _shown(group: Group, shrunk: dict[tuple, Shrunk] | None) -> tuple[Observation, Shrunk | None]:
    """The observation a group's script shows (its minimal case, on small integers when it fails on them) and
    what settling it found (None when it was not settled: a triage's simplest case)."""
    settled = (shrunk or {}).get((group.minimal.spec, group.minimal.backend))
    if settled is not None and settled.values is not None:
        return settled.values, settled
    return group.minimal, settled


def finding(group: Group, name: str, check: RuleCheck | None, *, seed: int, tolerance_factor: float,
            settled: Shrunk | None, shown: Observation, earlier: Earlier | None = None) -> Finding:
    minimal = group.minimal
    spec = minimal.spec
    reruns = settled.reruns if settled is not None and isinstance(settled.reruns, Reruns) else None
    if settled is None:
        state = "no"
    elif settled.state:
        state = "no"
    else:
        state = "yes" if settled.local_minimum else "budget"
    checked = check.describe() if check is not None else "not checked"
    flaky = reruns is not None and reruns.flaky
    status = "declared" if group.known else "seen before" if earlier is not None else "new"
    return Finding(
        group=name, status=status, backend=group.backend, backend_version=group.version,
        dtype=" ".join(group.dtypes), bias=" ".join(bias_word(b) for b in group.bias), tensors=" ".join(group.tensors),
        kind=group.kind, rule=group.rule.text, rule_check=checked,
        also_consistent="; ".join(t.rule.text for t in group.ties if t.rule != group.rule),
        rule_exceptions=group.rule_exceptions, rule_misses=group.misses,
        value_dependent=group.value_dependent and not flaky, flaky=flaky,
        fail_rate=reruns.rate if reruns is not None else math.nan,
        reruns=reruns.describe() if reruns is not None and reruns.attempts else (
            settled.state if settled is not None and settled.state else "not run again"),
        passing_twins=group.twins,
        minimal_case=spec.descriptor, minimal_dtype=spec.dtype, minimal_bias=bias_word(spec.bias),
        minimal_inputs=shown.inputs.text, local_minimum=state, err_ratio=shown.err_ratio,
        cases_seen=len(group.members), known=group.known, deviation=minimal.deviation,
        earlier=earlier.source if earlier is not None else "", message=shown.message,
        repro_script=f"{REPRO_DIR}/{name}.py", repro=repro(spec, group.backend, seed, tolerance_factor, shown.inputs),
    )


def fixed_finding(earlier: Earlier, name: str, *, tolerance_factor: float) -> Finding:
    """An earlier finding whose minimal case passes now (no script: there is nothing left to show)."""
    row, now = earlier.row, earlier.now
    assert now is not None
    return Finding(
        group=name, status="fixed", backend=earlier.backend, backend_version=now.version,
        dtype=earlier.spec.dtype, bias=bias_word(earlier.spec.bias), tensors=" ".join(earlier.tensors),
        kind=earlier.kind, rule=earlier.rule, rule_check=f"fixed: its minimal case is {now.kind} now",
        also_consistent="", rule_exceptions=0, rule_misses=0, value_dependent=False, flaky=False,
        fail_rate=math.nan, reruns="", passing_twins=0, minimal_case=earlier.spec.descriptor,
        minimal_dtype=earlier.spec.dtype, minimal_bias=bias_word(earlier.spec.bias),
        minimal_inputs=earlier.inputs.text, local_minimum=str(row.get("local_minimum", "")), err_ratio=now.err_ratio,
        cases_seen=0, known=False, deviation="", earlier=earlier.source, message=now.message, repro_script="",
        repro=repro(earlier.spec, earlier.backend, earlier.seed, tolerance_factor, earlier.inputs))


def write_findings(directory: Path, checked: Sequence[tuple[Group, RuleCheck | None]],
                   observations: Sequence[Observation] = (), *, seed: int, tolerance_factor: float = 1.0,
                   shrunk: dict[tuple, Shrunk] | None = None, plugins: PluginSelection | None = None,
                   title: str = "", earlier: Sequence[Earlier] = ()) -> list[Finding]:
    """Write findings.csv, findings.md and repro/<group>.py for every group; return the rows.

    shrunk: {(minimal spec, backend): what settling it found} for the settled cases (None: a triage);
    earlier: replayed earlier findings (those that pass now are listed as fixed).
    """
    found = []
    numbers: dict[str, int] = {}
    claimed: set[int] = set()
    for group, check in checked:
        numbers[group.backend] = numbers.get(group.backend, 0) + 1
        name = group_name(group.backend, numbers[group.backend])
        shown, settled = _shown(group, shrunk)
        before = next((e for i, e in enumerate(earlier) if i not in claimed and e.now is not None
                       and e.fails_like(e.now) and e.backend == group.backend and e.now in group.members), None)
        if before is not None:
            claimed.add(earlier.index(before))
        row = finding(group, name, check, seed=seed, tolerance_factor=tolerance_factor, settled=settled, shown=shown,
                      earlier=before)
        evidence = _evidence(group, row, shown, seed=seed, tolerance_factor=tolerance_factor, plugins=plugins,
                             reruns=settled.reruns if settled is not None and isinstance(settled.reruns, Reruns)
                             else None)
        text = script_text(evidence)
        write_script(directory / row.repro_script, text)
        report = issue_text(evidence, text)
        atomic_write((directory / row.repro_script).with_suffix(".md"), _writer(report))
        found.append(row)
    for item in earlier:
        if item.now is not None and not item.fails_like(item.now):
            numbers[item.backend] = numbers.get(item.backend, 0) + 1
            found.append(fixed_finding(item, group_name(item.backend, numbers[item.backend]),
                                       tolerance_factor=tolerance_factor))

    def write_csv(file) -> None:
        writer = csv.writer(file)
        writer.writerow(COLUMNS)
        for row in found:
            writer.writerow([csv_cell(getattr(row, column)) for column in COLUMNS])

    atomic_write(directory / FINDINGS_CSV, write_csv)
    text = findings_markdown(title or directory.name, found)
    atomic_write(directory / FINDINGS_MD, lambda file: file.write(text))
    return found


def _writer(text: str) -> Callable[[Any], None]:
    """What atomic_write calls to fill a file with `text`."""
    return lambda file: file.write(text)


def _evidence(group: Group, row: Finding, shown: Observation, *, seed: int, tolerance_factor: float,
              plugins: PluginSelection | None, reruns: Reruns | None) -> Evidence:
    """What the group's script shows: its minimal case (on small integers when it fails on them), with the
    backend's program when it declares one."""
    spec = shown.spec
    backend = (plugins or PluginSelection.from_environment()).manager().backends().get(group.backend)
    program_of = getattr(backend, "program", None)
    program = program_of(spec) if program_of is not None else None
    accumulation = shown.accumulation or ("float64" if spec.dtype == "float64" else "float32")
    return evidence_for(spec, group.backend, group.version, group.kind, shown.undeclared or shown.failing,
                        make_inputs(spec, seed, shown.inputs), accumulation=accumulation,
                        tolerance_factor=tolerance_factor, rule=row.rule, message=shown.message, program=program,
                        plugins=plugins, runs=FLAKY_RUNS if reruns is not None and reruns.flaky else 1)


FLAKY_RUNS = 20  # how many times a flaky finding's script calls the step


def _ratio(value: float) -> str:
    return "inf" if math.isinf(value) else "—" if math.isnan(value) else f"{value:.3g}"


def findings_markdown(title: str, found: Sequence[Finding]) -> str:
    """findings.md: one section per group, new findings first."""
    counts = {status: len([f for f in found if f.status == status]) for status in STATUSES}
    lines = [f"# convparity findings: {markdown(title)}", "",
             f"{counts['new']} new finding(s), {counts['declared']} known deviation(s)."
             + (f" Earlier findings: {counts['seen before']} still failing, {counts['fixed']} fixed."
                if counts["seen before"] or counts["fixed"] else "")]
    for row in found:
        state = {"declared": "known deviation"}.get(row.status, row.status)
        what = f"{row.tensors} {row.kind}" if row.tensors else row.kind
        lines += ["", f"## {row.group}: {what} when `{row.rule}` ({state})", "",
                  f"- backend: {markdown(row.backend)} {markdown(row.backend_version)}; dtype {row.dtype}; "
                  f"bias {row.bias}"]
        if row.status == "fixed":
            lines += [f"- found before: {markdown(row.earlier)}; its minimal case `{row.minimal_case}` "
                      f"{row.minimal_dtype}, bias {row.minimal_bias} ({row.minimal_inputs} values) passes now",
                      f"- explain: `{row.repro}`"]
            continue
        lines.append(f"- rule: `{row.rule}`; {row.rule_check}; cases seen it holds on that do not fail this way: "
                     f"{row.rule_exceptions}; failing this way where it does not hold: {row.rule_misses}")
        if row.earlier:
            lines.append(f"- seen before: {markdown(row.earlier)}")
        if row.also_consistent:
            lines.append(f"- the cases seen fit as well: `{row.also_consistent}`")
        if row.flaky:
            lines.append(f"- flaky: its minimal case, run again with the very same values, {row.reruns[7:]}: the "
                         "backend is not deterministic here (its script calls it many times)")
        elif row.value_dependent:
            lines.append(f"- depends on the values: no rule separates its cases from passing ones; the rule covers the "
                         f"most of them ({row.passing_twins} of its {row.cases_seen} failing cases have a passing twin "
                         "with the very same spec features)")
        if row.kind == "timeout":
            lines.append("- a hang: the backend did not finish these cases within the case timeout")
        shrunk = {"yes": "a local minimum", "budget": "shrinking stopped at its budget or time",
                  "no": "not shrunk"}[row.local_minimum]
        lines += [f"- minimal case ({shrunk}): `{row.minimal_case}` {row.minimal_dtype}, bias {row.minimal_bias}, "
                  f"{row.minimal_inputs} values; err_ratio {_ratio(row.err_ratio)}; {row.cases_seen} failing "
                  f"case(s) seen; {row.reruns}",
                  f"- message: {markdown(row.message)}" if row.message else "- message: (none)"]
        if row.deviation:
            lines.append(f"- declared: {markdown(row.deviation)}")
        lines += [f"- script: `python {row.repro_script}` (exit 1 while the bug is there; the report to paste upstream "
                  f"is beside it: `{row.repro_script[:-3]}.md`)",
                  f"- explain: `{row.repro}`"]
    return "\n".join(lines) + "\n"


def summary_text(found: Sequence[Finding], directory: Path) -> str:
    """A few lines for the terminal: one per group, then where the files are (only those that exist)."""
    counts = {status: len([f for f in found if f.status == status]) for status in STATUSES}
    head = f"{counts['new']} new finding(s), {counts['declared']} known deviation(s)"
    if counts["seen before"] or counts["fixed"]:
        head += f"; earlier findings: {counts['seen before']} still failing, {counts['fixed']} fixed"
    lines = [head]
    for row in found:
        what = f"{row.tensors} {row.kind}" if row.tensors else row.kind
        label = {"new": "NEW", "declared": "known", "seen before": "again", "fixed": "FIXED"}[row.status]
        extra = " (flaky)" if row.flaky else ""
        lines.append(f"  {row.group:24} {label:5} {what}: {row.rule}{extra}  "
                     f"[{row.minimal_case} {row.minimal_dtype} bias {row.minimal_bias}]")
    if (directory / FINDINGS_MD).is_file():
        lines.append(f"findings: {directory / FINDINGS_MD}")
    if any(row.repro_script and (directory / row.repro_script).is_file() for row in found):
        lines.append(f"scripts:  {directory / REPRO_DIR}")
    return "\n".join(lines)


def read_findings(directory: str | Path):
    """findings.csv as a pandas DataFrame (known, value_dependent and flaky as booleans), or None when the
    folder has none."""
    import pandas as pd

    path = Path(directory) / FINDINGS_CSV
    if not path.is_file():
        return None
    frame = pd.read_csv(path, keep_default_na=False, dtype=str)
    for column in frame.columns:
        frame[column] = frame[column].map(lambda v: v[1:] if v.startswith("'") else v)
    for column in ("known", "value_dependent", "flaky"):
        if column in frame.columns:
            frame[column] = frame[column].map({"true": True, "false": False})
    if "status" not in frame.columns:  # written before statuses: a declared group or a new one
        frame["status"] = frame["known"].map({True: "declared", False: "new"})
    return frame
