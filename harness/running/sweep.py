"""`convparity.sweep(...)`: the one way to assemble and run a sweep; `convparity run` is a thin layer over it.

    import convparity
    run = convparity.sweep(backends=["torch", "jax"], grids=["smoke"], dtypes=["float32"], jobs=2)
    print(run.summary)                       # per backend x dtype x tensor counts and worst ratios
    failing = run.results.query("status == 'fail'")
    print(run.path)                          # the run folder, e.g. reports/20261201-101500-smoke

A sweep draws its cases lazily from a `CaseSelection`, logs each to cases.csv before it runs, appends
its rows to results.csv as it finishes, and holds the folder's lock throughout. `resume(path)`
continues an interrupted run with the settings in its run.json. On an interrupt (KeyboardInterrupt,
or `Interrupted` from convparity.harness.running.interrupts) run.json's status becomes "interrupted" and
`SweepInterrupted` is raised, naming the resume command.

Where tasks run is an `ExecutorChoice` (convparity.harness.running.launch: local processes, or a Dask cluster);
`shard` runs a deterministic 1/N of the cases (convparity.harness.running.shards;
`convparity.harness.running.merge` joins the shards); run.json records the executor, the shard and each
pool's time (`timing`).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from convparity.harness.backends.manager import PluginSelection, get_manager
from convparity.harness.cases.descriptor import Case
from convparity.harness.cases.grids import GridError
from convparity.harness.cases.selection import DEFAULT_MAX_CASES, CaseSelection, expand
from convparity.harness.cases.spec import DTYPES
from convparity.harness.results import (
    BAD_STATUSES,
    REFERENCE_STATUSES,
    RESULTS_FILE,
    STALE_STATUSES,
    ResultsWriter,
    Row,
)
from convparity.harness.running import run_folder
from convparity.harness.running.executor import PoolTiming
from convparity.harness.running.interrupts import Interrupted
from convparity.harness.running.launch import ExecutorChoice, open_executor, worker_environment
from convparity.harness.running.progress import SweepProgress
from convparity.harness.running.run_folder import RunFolderError
from convparity.harness.running.runner import SweepVersions, done_key, run_sweep
from convparity.harness.running.shards import Shard, ShardError, shard_cases
from convparity.harness.running.tasks import backend_pool
from convparity.harness.settings import DEFAULT_REFERENCE_TIMEOUT, DEFAULT_STARTUP_TIMEOUT, DEFAULT_TIMEOUT, RunSettings

DEFAULT_DTYPES = ("float64", "float32")


class SweepError(ValueError):
    """A sweep that cannot start as asked (unknown backend or dtype, ...); the message names the field."""


class SweepInterrupted(Exception):
    """The sweep stopped on an interrupt; every finished row is kept and `resume(path)` continues it."""

    def __init__(self, path: Path, exit_code: int) -> None:
        super().__init__(f"interrupted; every finished row is kept in {path}; continue with: "
                         f"convparity run --resume {path}")
        self.path = path
        self.exit_code = exit_code


@dataclass
class SweepRun:
    """A finished sweep: its folder, the status counts of its rows, and its tables on demand."""

    path: Path
    counts: Counter = field(default_factory=Counter)
    unavailable: dict[str, str] = field(default_factory=dict)
    resumed_items: int = 0
    dropped_duplicates: int = 0
    _summary: Any = None

    @property
    def results(self):
        """results.csv as a pandas DataFrame (the dtypes `convparity.read_results` documents)."""
        from convparity.harness.results import read_results

        return read_results(self.path)

    @property
    def summary(self):
        """Per backend x dtype x tensor: the count of every status and the worst err_ratio."""
        if self._summary is None:
            from convparity.harness.reporting.summaries import write_reports

            self._summary = write_reports(self.path)
        return self._summary

    def exit_code(self, strict: bool = False) -> int:
        """0: nothing failed; 1: a backend failed (or, with `strict`, a declared deviation went stale);
        3: only the reference side failed (the harness's own failure, never the backend's)."""
        if any(self.counts[s] for s in BAD_STATUSES) or (strict and any(self.counts[s] for s in STALE_STATUSES)):
            return 1
        return 3 if any(self.counts[s] for s in REFERENCE_STATUSES) else 0


def available_backends(names: Sequence[str] | None) -> tuple[str, ...]:
    """The backends a sweep runs: the named ones (checked), or every registered one for None / ["all"]."""
    registered = get_manager().backends()
    if not names or list(names) == ["all"]:
        return tuple(registered)
    unknown = [n for n in names if n not in registered]
    if unknown:
        broken = get_manager().broken.get(unknown[0])
        why = f": {broken}" if broken else f" (known: {', '.join(registered) or 'none'})"
        raise SweepError(f"unknown backend {unknown[0]!r}{why}")
    return tuple(dict.fromkeys(names))


def sweep(
    backends: Sequence[str] | None = None,
    grids: Sequence[str] = (),
    cases: Sequence[str] = (),
    batch_files: Sequence[str] = (),
    dtypes: Sequence[str] = DEFAULT_DTYPES,
    bias: str = "on",
    random: int = 0,
    seed: int = 0,
    jobs: int = 1,
    timeout: float = DEFAULT_TIMEOUT,
    tolerance_factor: float = 1.0,
    out: str | Path | None = None,
    *,
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
    reference_timeout: float = DEFAULT_REFERENCE_TIMEOUT,
    max_cases: int | None = DEFAULT_MAX_CASES,
    progress: bool = False,
    executor: ExecutorChoice | None = None,
    shard: Shard | None = None,
    compile_cache: str = "default",
) -> SweepRun:
    """Run `cases` (descriptors), `grids` (named, TOML or batch files), `batch_files` and `random`
    samples in every dtype on every backend (None or ["all"]: every registered one; unavailable ones
    are named once, in run.json, and run nothing). `bias` ("on", "off", "both") applies to `cases`.

    `out`: the run folder (default: a fresh one under reports/). Returns when every row is written.
    `executor`: where tasks run (default: local processes); `shard`: run only that shard of the cases;
    `compile_cache`: "default", "off" or a folder (convparity.harness.running.compile_cache).
    """
    dtypes = tuple(dtypes)
    unknown = [d for d in dtypes if d not in DTYPES]
    if unknown or not dtypes:
        raise SweepError(f"unknown dtype {unknown[0]!r} (known: {', '.join(DTYPES)})" if unknown else "no dtypes")
    settings = RunSettings(backends=available_backends(backends), dtypes=tuple(dict.fromkeys(dtypes)),
                           grids=tuple(grids), seed=seed, timeout=timeout, jobs=jobs, tolerance_factor=tolerance_factor,
                           startup_timeout=startup_timeout, reference_timeout=reference_timeout,
                           compile_cache=compile_cache)
    selection = CaseSelection(grids=tuple(grids), cases=tuple(cases), batch_files=tuple(batch_files), random=random,
                              seed=seed, bias=bias)
    size, stream = selection.stream(max_cases)
    path = Path(out) if out is not None else run_folder.default_run_dir(Path("reports"), settings.grids or ("cases",))
    run_folder.create(path)
    with _interrupts_marked(path), run_folder.lock(path):
        metadata = run_folder.new_metadata(settings, selection)
        metadata["worker_environment"] = worker_environment()
        metadata["max_cases"] = max_cases
        if shard is not None:
            metadata["shard"] = shard.to_json()
        drawn, total = _sharded(expand(stream, settings.dtypes), size * len(settings.dtypes), shard, settings)
        return _execute(path, metadata, settings, drawn, total, done=set(), logged=0, progress=progress,
                        executor=executor or ExecutorChoice())


def _sharded(cases: Iterator[Case], total: int, shard: Shard | None, settings: RunSettings,
             ) -> tuple[Iterator[Case], int]:
    """The cases of `shard` (all without one) and about how many there are."""
    if shard is None:
        return cases, total
    return shard_cases(cases, shard, settings.backends), math.ceil(total / shard.count)


def resume(path: str | Path, jobs: int | None = None, *, progress: bool = False,
           executor: ExecutorChoice | None = None, compile_cache: str | None = None) -> SweepRun:
    """Continue the interrupted run in `path` with its own settings (only the number of jobs, the executor
    and the compile cache may change); a shard continues as the same shard."""
    path = Path(path)
    with _interrupts_marked(path), run_folder.lock(path):
        metadata = run_folder.read_metadata(path)
        if metadata.get("merged_from"):
            raise RunFolderError(f"{path} is a merge of shards ({', '.join(metadata['merged_from'])}): it is "
                                 "complete; resume the shards before merging them instead")
        settings = run_folder.read_settings(path)
        if jobs is not None:
            settings = replace(settings, jobs=jobs)
        if compile_cache is not None:
            settings = replace(settings, compile_cache=compile_cache)
        try:
            shard = Shard.from_json(metadata["shard"]) if metadata.get("shard") else None
        except ShardError as error:
            raise RunFolderError(f"{path / run_folder.RUN_FILE}: {error}") from None
        selection = run_folder.read_selection(path)
        logged = run_folder.count_cases(path)
        # Cases that compare fewer tensors than all (a batch file's --dir) are few: their counts fit in memory.
        fewer = {(c.spec.descriptor, c.spec.bias, c.spec.dtype): len(c.compared)
                 for c in run_folder.read_cases(path) if len(c.compared) != (4 if c.spec.bias else 3)}
        repair = run_folder.repair_results(path, lambda case, bias, dtype: fewer.get((case, bias, dtype),
                                                                                     4 if bias else 3))
        size, stream = selection.stream(metadata.get("max_cases", DEFAULT_MAX_CASES))
        shard_stream, total = _sharded(expand(stream, settings.dtypes), size * len(settings.dtypes), shard, settings)
        cases = _continue(run_folder.read_cases(path), shard_stream, path)
        previous = run_folder.status_counts(path)
        run = _execute(path, metadata, settings, cases, total, done=repair.done, logged=logged,
                       progress=progress, executor=executor or ExecutorChoice())
        run.resumed_items = logged
        run.dropped_duplicates = repair.dropped_duplicates
        run.counts.update(previous)
        return run


@contextmanager
def _interrupts_marked(path: Path) -> Iterator[None]:
    """An interrupt outside the sweep proper (taking or releasing the folder's lock, reading its files) still
    leaves run.json `interrupted`, when there is one, and is reported as SweepInterrupted."""
    try:
        yield
    except (KeyboardInterrupt, Interrupted) as error:
        if (path / run_folder.RUN_FILE).exists():
            run_folder.mark_interrupted(path)
        raise SweepInterrupted(path, error.exit_code if isinstance(error, Interrupted) else 130) from None


def _continue(logged: Iterable[Case], stream: Iterator[Case], path: Path) -> Iterator[Case]:
    """The logged cases, then the selection's stream after them (checked to begin with the same cases)."""
    for number, case in enumerate(logged, start=1):
        again = next(stream, None)
        if again is None or again.spec != case.spec:
            raise RunFolderError(f"{path / run_folder.CASES_FILE}: case {number} is no longer what the run's selection "
                                 "yields (a grid or file changed since the run started); start a new run")
        yield case
    yield from stream


def _execute(path: Path, metadata: dict, settings: RunSettings, cases: Iterable[Case], total: int, *,
             done: set, logged: int, progress: bool, executor: ExecutorChoice) -> SweepRun:
    """Run the cases not done, logging each new one (after the first `logged`) to cases.csv."""
    run = SweepRun(path)
    started = time.perf_counter()
    writer: ResultsWriter | None = None
    case_log: run_folder.CaseLog | None = None

    def log_new(stream: Iterable[Case]) -> Iterator[Case]:
        for index, case in enumerate(stream):
            if index >= logged:
                assert case_log is not None
                case_log.log(case)
            yield case

    def items():
        from convparity.harness.running.runner import Item

        for case in log_new(cases):
            missing = [b for b in settings.backends if done_key(case, b) not in done]
            if missing:
                yield Item(case, missing)
            else:
                bar.advance([])

    run_seconds: Counter = Counter()  # per backend pool: its run() time, the rows' `seconds` (once per backend)

    def write(rows: list[Row]) -> None:
        assert writer is not None
        try:
            writer.write(rows)
        except OSError as error:
            raise run_folder.os_error(writer.path, error) from None
        run.counts.update(row.status for row in rows)
        run_seconds.update({backend_pool(row.backend): row.seconds for row in rows if row.seconds == row.seconds})
        bar.advance(rows)

    def found(versions: SweepVersions) -> None:
        metadata["backend_versions"] = versions.versions
        metadata["unavailable"] = versions.unavailable
        run.unavailable = versions.unavailable
        run_folder.write_metadata(path, metadata)

    bar = SweepProgress(total=total, done=0, enabled=progress)
    try:
        metadata["status"] = "running"
        run_folder.write_metadata(path, metadata)
        try:
            writer = ResultsWriter(path)
        except OSError as error:
            raise run_folder.os_error(path / RESULTS_FILE, error) from None
        case_log = run_folder.CaseLog(path)
        with open_executor(executor, settings, path / "workers.log") as opened, bar:
            metadata["executor"] = opened.description
            try:
                run_sweep(items(), settings, opened.executor, write, on_versions=found,
                          plugins=PluginSelection.from_environment(), window=4 * opened.slots + 4)
            finally:
                metadata["timing"] = PoolTiming.add(metadata.get("timing", {}), opened.executor.timing(),
                                                    {pool: {"run_seconds": s} for pool, s in run_seconds.items()})
        _close(writer, case_log, path, metadata, started, "finished")
    except (KeyboardInterrupt, Interrupted) as error:
        code = error.exit_code if isinstance(error, Interrupted) else 130
        _close(writer, case_log, path, metadata, started, "interrupted")
        raise SweepInterrupted(path, code) from None
    except RunFolderError as error:  # a disk that filled up or went read-only mid-sweep
        try:
            _close(writer, case_log, path, metadata, started, "interrupted")
        except (OSError, RunFolderError):
            pass
        if not (path / run_folder.RUN_FILE).exists():
            raise
        raise RunFolderError(f"{error}; every row written before is kept: once it can be written again, "
                             f"continue with: convparity run --resume {path}") from None
    except BaseException:
        _close(writer, case_log, path, metadata, started, "interrupted")
        raise
    return run


def _close(writer: ResultsWriter | None, case_log: run_folder.CaseLog | None, path: Path, metadata: dict,
           started: float, status: str) -> None:
    from datetime import UTC, datetime

    for closing in (writer, case_log):
        try:
            if closing is not None:
                closing.close()
        except OSError:
            pass  # a full disk: what was flushed is kept, the rest is the interrupted case's
    metadata["status"] = status
    metadata["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    metadata["seconds"] = round(metadata.get("seconds", 0.0) + time.perf_counter() - started, 3)
    run_folder.write_metadata(path, metadata)


__all__ = ["GridError", "SweepError", "SweepInterrupted", "SweepRun", "resume", "sweep"]
