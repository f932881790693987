"""`triage(run_dir)`: the failures of an existing run, grouped by cause, as a search reports them.

The run's rows are folded into observations (convparity.harness.search.observations) and grouped
(convparity.harness.search.group): each group gets the broadest rule that says where its failure
happens, its simplest failing case as the minimal case (not shrunk), and a repro script. `fail` rows
make new groups, `xfail` rows (declared deviations) known ones, and `error`, `crash` and `timeout`
rows groups of their own kind: a backend that hangs is a finding, never dropped.

With `check` (the default), each group's backend is run on fresh cases to check its rule on both sides
(convparity.harness.search.check, as a search does), and its minimal case is run again (is it flaky?)
and tried on small integer values (harness.search.values). Those evaluations go to the run folder's
triage/ (results.csv, reruns.csv, workers.log), never into the run's own results. A backend that is
not available here (another machine's framework) leaves its groups "not checked", saying why.

findings.csv, findings.md and repro/ are written into the run folder (replacing an earlier triage's)
and report.html is rewritten with its findings section. Every repro script holds the run's tolerance
factor.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from convparity.harness.backends.manager import PluginSelection
from convparity.harness.cases.inputs import InputStyle
from convparity.harness.files import RunFolderError
from convparity.harness.results import COLUMNS, CsvAppender, ResultsWriter, Row, bias_word, csv_cell, read_results
from convparity.harness.running import run_folder
from convparity.harness.running.context import RunContext
from convparity.harness.running.executor import Executor
from convparity.harness.running.launch import ExecutorChoice, open_executor
from convparity.harness.search.check import RuleCheck, check_rules
from convparity.harness.search.evaluations import Evaluator
from convparity.harness.search.findings import Finding, write_findings
from convparity.harness.search.group import Group, group_failures
from convparity.harness.search.observations import Observation, observations_from_rows
from convparity.harness.search.shrink import Shrunk
from convparity.harness.search.space import SpecSpace
from convparity.harness.search.values import rerun_check, simpler_values

CHECKS_DIR = "triage"
DEFAULT_CHECK_ROUNDS = 2


def triage(run_dir: str | Path, *, check: bool = True, jobs: int | None = None,
           executor: ExecutorChoice | Executor | None = None, compile_cache: str | None = None,
           check_rounds: int = DEFAULT_CHECK_ROUNDS, log: TextIO | None = None) -> list[Finding]:
    """Group the failures of the run in `run_dir`; check the rules on fresh cases (unless not `check`); write its
    findings files; return the groups. A search's folder is refused: its findings are the search's own,
    grouped and checked on fresh cases. jobs, executor, compile_cache: where the checks run (default: as the
    run did, on local workers)."""
    directory = Path(run_dir)
    record = run_folder.read_record(directory)  # a folder that is no run is refused before anything is written
    if record.kind == "search":
        raise RunFolderError(f"{directory} holds a search, whose findings.csv is already its grouping, checked on "
                             "fresh cases: read it there (triage groups the failures of a sweep)")
    with RunContext.reopen(directory, continuing=False) as context:
        settings = context.record.settings
        observations = observations_from_rows(read_results(directory).itertuples(index=False))
        groups = group_failures(observations)
        checked: list[tuple[Group, RuleCheck | None]] = [(group, None) for group in groups]
        settled: dict[tuple, Shrunk] = {}
        if check and groups:
            wanted = tuple(dict.fromkeys(group.backend for group in groups))
            registered = PluginSelection.from_environment().manager().backends()
            missing = {name: "no plugin installed here registers it" for name in wanted if name not in registered}
            settings = replace(settings, backends=tuple(name for name in wanted if name in registered),
                               jobs=jobs or settings.jobs, compile_cache=compile_cache or settings.compile_cache)
            checked, settled = _checked(directory, settings, observations, executor, check_rounds, log, missing)
        found = write_findings(directory, checked, observations, seed=settings.seed,
                               tolerance_factor=settings.tolerance_factor, shrunk=settled)
    return found


def _checked(directory: Path, settings, observations: Sequence[Observation],
             executor: ExecutorChoice | Executor | None, rounds: int, log: TextIO | None, missing: dict[str, str]
             ) -> tuple[list[tuple[Group, RuleCheck | None]], dict[tuple, Shrunk]]:
    """The groups with their rules checked on fresh cases, and each minimal case run again and redrawn;
    `missing`: backends no plugin here registers, with why (their groups are not checked)."""
    if not settings.backends:
        return _check(settings, None, observations, None, None, rounds, log, missing)
    folder = directory / CHECKS_DIR
    try:
        folder.mkdir(exist_ok=True)
        results = ResultsWriter(folder)
        reruns = CsvAppender(folder / "reruns.csv", ("inputs", "attempt", *COLUMNS))
    except OSError as error:
        raise run_folder.os_error(folder, error) from None

    def write(rows: list[Row]) -> None:
        try:
            results.write(rows)
        except OSError as error:
            raise run_folder.os_error(results.path, error) from None

    def write_rerun(rows: list[Row], inputs: InputStyle, attempt: int) -> None:
        try:
            reruns.append([[inputs.text, attempt] + [bias_word(row.bias) if column == "bias"
                                                     else csv_cell(getattr(row, column)) for column in COLUMNS]
                           for row in rows])
        except OSError as error:
            raise run_folder.os_error(reruns.path, error) from None

    try:
        if isinstance(executor, ExecutorChoice) or executor is None:
            with open_executor(executor or ExecutorChoice(), settings, folder / "workers.log") as opened:
                return _check(settings, opened.executor, observations, write, write_rerun, rounds, log, missing)
        return _check(settings, executor, observations, write, write_rerun, rounds, log, missing)
    finally:
        results.close()
        reruns.close()


def _check(settings, executor: Executor | None, observations: Sequence[Observation], write, write_rerun, rounds: int,
           log: TextIO | None, missing: dict[str, str]
           ) -> tuple[list[tuple[Group, RuleCheck | None]], dict[tuple, Shrunk]]:
    evaluator = Evaluator(settings, executor, PluginSelection.from_environment(), write, write_rerun)  # type: ignore
    evaluator.replay(observations)
    if settings.backends:
        evaluator.probe()
    evaluator.unavailable.update(missing)
    for name, reason in evaluator.unavailable.items():
        if log is not None:
            print(f"convparity triage: backend {name} is unavailable here, its rules are not checked: {reason}",
                  file=log, flush=True)
    rng = random.Random(settings.seed)
    available = [obs for obs in observations if obs.backend not in evaluator.unavailable]
    checked: list[tuple[Group, RuleCheck | None]] = list(
        check_rules(evaluator, SpecSpace(settings.dtypes), rng, available, [], rounds=rounds)) if available else []
    for group in group_failures([obs for obs in observations if obs.backend in evaluator.unavailable]):
        checked.append((group, RuleCheck(note=f"backend {group.backend} is unavailable here: "
                                              f"{evaluator.unavailable[group.backend]}")))
    settled = {}
    for group, _ in checked:
        if group.backend in evaluator.unavailable:
            continue
        minimal = group.minimal
        reruns = rerun_check(minimal, evaluator)
        values = None if reruns.flaky else simpler_values(minimal, evaluator)
        settled[(minimal.spec, minimal.backend)] = Shrunk(minimal, minimal, False, 0, [minimal.spec], reruns, values,
                                                          state="the simplest case seen (not shrunk)")
    checked.sort(key=lambda pair: (pair[0].known, pair[0].backend, pair[0].kind, -len(pair[0].members),
                                   pair[0].rule.text))
    return checked, settled
