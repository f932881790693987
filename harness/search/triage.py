"""`triage(run_dir)`: the failures of an existing run, grouped by cause, as a search reports them.

The run's rows are folded into observations (convparity.harness.search.observations) and grouped
(convparity.harness.search.group): each group gets the simplest rule separating its failing cases from the
run's passing ones, its simplest failing case as the minimal case (not shrunk: nothing is run), and
a repro script. `fail` rows make new groups, `xfail` rows (declared deviations) known ones.
findings.csv, findings.md and repro/ are written into the run folder (replacing an earlier
triage's) and report.html is rewritten with its findings section. The rules are not checked on
fresh cases: `rule_check` says so.
"""

from __future__ import annotations

from pathlib import Path

from convparity.harness.files import RunFolderError
from convparity.harness.results import read_results
from convparity.harness.running import run_folder
from convparity.harness.running.context import RunContext
from convparity.harness.search.findings import Finding, write_findings
from convparity.harness.search.group import group_failures
from convparity.harness.search.observations import observations_from_rows


def triage(run_dir: str | Path) -> list[Finding]:
    """Group the failures of the run in `run_dir`; write its findings files; return the groups. A search's folder
    is refused: its findings are the search's own, grouped and checked on fresh cases."""
    directory = Path(run_dir)
    record = run_folder.read_record(directory)  # a folder that is no run is refused before anything is written
    if record.kind == "search":
        raise RunFolderError(f"{directory} holds a search, whose findings.csv is already its grouping, checked on "
                             "fresh cases: read it there (triage groups the failures of a sweep)")
    with RunContext.reopen(directory, continuing=False) as context:
        settings = context.record.settings
        observations = observations_from_rows(read_results(directory).itertuples(index=False))
        groups = group_failures(observations)
        found = write_findings(directory, [(group, None) for group in groups], observations, seed=settings.seed,
                               tolerance_factor=settings.tolerance_factor)
    return found
