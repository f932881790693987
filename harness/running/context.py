"""`RunContext`: a run folder open for writing, the one way run, resume, search, triage and merge write one.

A context holds, for as long as it is open:
- the folder's lock (harness.running.folder_lock): one writer at a time;
- its record (harness.running.run_record.RunRecord), saved whole at every change of state;
- its logs (harness.running.run_logs): results.csv and cases.csv, appended as the run goes;
- when asked, an executor (`executor()`: harness.running.launch), whose description and time per pool
  go into the record.

`RunContext.new(path, record)` makes a fresh folder (refusing one that holds anything: a run never
overwrites another); `RunContext.reopen(path)` continues one (resume, triage). Leaving the context
closes the logs and saves the record with its final status: "finished" after `finish()`, else
"interrupted". An interrupt (Ctrl-C, SIGTERM: harness.running.interrupts) becomes `RunInterrupted`, a
ConvparityError whose message says that every finished row is kept and names the command that continues
the run; its exit code is 130 or 143. A disk that fills up or turns read-only is a RunFolderError that
says the same.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

from convparity.harness.errors import ConvparityError
from convparity.harness.files import RunFolderError
from convparity.harness.results import RESULTS_FILE, ResultsWriter
from convparity.harness.running import run_folder
from convparity.harness.running.executor import Executor, PoolTiming
from convparity.harness.running.folder_lock import lock
from convparity.harness.running.interrupts import Interrupted
from convparity.harness.running.launch import ExecutorChoice, OpenedExecutor, open_executor
from convparity.harness.running.run_logs import CASES_FILE, CaseLog
from convparity.harness.running.run_record import RunRecord, now


class RunInterrupted(ConvparityError):
    """The run stopped on an interrupt; every finished row is kept and `resume_command` continues it."""

    prefix = ""

    def __init__(self, path: Path, exit_code: int, resume_command: str) -> None:
        if not (path / run_folder.RUN_FILE).exists():
            message = f"interrupted before any case ran; {path} was not kept"
        elif _status(path) == "finished":  # the work was done: only what follows it (the reports) is not
            message = (f"interrupted after the run finished; every row is kept in {path}; its reports are not "
                       f"written: write them with: convparity report {path}")
        else:
            message = f"interrupted; every finished row is kept in {path}; continue with: {resume_command}"
        super().__init__(message)
        self.path = path
        self.exit_code = exit_code


def _status(path: Path) -> str:
    try:
        return run_folder.read_record(path).status
    except (ConvparityError, OSError):
        return ""


def resume_command(path: Path, kind: str) -> str:
    """The command that continues the run in `path` (a merge cannot be continued: it is made again)."""
    return f"convparity {'search' if kind == 'search' else 'run'} --resume {path}"


class RunContext:
    """A run folder open for writing (see the module docstring)."""

    def __init__(self, path: Path, record: RunRecord) -> None:
        self.path = path
        self.record = record
        self.results: ResultsWriter | None = None
        self.cases: CaseLog | None = None
        self._finished = False
        self._kept_status: str | None = None  # a context that leaves the run's status as it found it
        self._opened = time.perf_counter()
        self._seconds_before = record.seconds

    # -- opening and closing -------------------------------------------------------------------------

    @classmethod
    @contextmanager
    def new(cls, path: Path, record: RunRecord, prepared: tuple[str, ...] = ()) -> Iterator[RunContext]:
        """A fresh run folder at `path` (created; refused when it holds anything but the entries `prepared` names,
        which the starting run wrote there itself) with `record` as its run.json."""
        run_folder.create(path, prepared)
        with _interrupts_reported(path, record.kind), _removed_if_nothing_ran(path), lock(path):
            context = cls(path, record)
            context.save()
            with context._closing():
                yield context

    @classmethod
    @contextmanager
    def reopen(cls, path: Path, *, continuing: bool = True) -> Iterator[RunContext]:
        """The run folder at `path`, its record read and checked. `continuing`: the run itself goes on (a resume:
        "running" while open, then finished or interrupted); else the run stays as it was (a triage adding
        its findings), whatever happens."""
        record = run_folder.read_record(path)  # a folder that is no run is refused before the lock is taken
        with _interrupts_reported(path, record.kind if continuing else ""), lock(path):
            context = cls(path, run_folder.read_record(path))
            if continuing:
                context.record.status = "running"
                context.save()
            else:
                context._kept_status = context.record.status
            with context._closing():
                yield context

    @contextmanager
    def _closing(self) -> Iterator[None]:
        try:
            yield
        except RunFolderError as error:  # a disk that filled up or went read-only
            had_rows = self.results is not None
            self._close_quietly()
            if not had_rows:
                raise
            raise RunFolderError(f"{error}; every row written before is kept: once it can be written again, "
                                 f"continue with: {resume_command(self.path, self.record.kind)}") from None
        except BaseException:
            self._close_quietly()
            raise
        self._close("finished" if self._finished else "interrupted")

    def finish(self) -> None:
        """Mark the work done: leaving the context then saves the status "finished"."""
        self._finished = True

    def _close_quietly(self) -> None:
        try:
            self._close("interrupted")
        except (OSError, RunFolderError):
            pass  # a full disk: what was flushed is kept, the rest is the interrupted case's

    def _close(self, status: str) -> None:
        for log in (self.results, self.cases):
            try:
                if log is not None:
                    log.close()
            except OSError:
                pass
        self.results = self.cases = None
        if self._kept_status is not None:
            self.record.status = self._kept_status
        else:
            self.record.status = status
            self.record.finished = now()
            self.record.seconds = round(self._seconds_before + time.perf_counter() - self._opened, 3)
        self.save()

    # -- what is written -----------------------------------------------------------------------------

    def save(self) -> None:
        """Write run.json whole from the record as it is now."""
        run_folder.write_record(self.path, self.record)

    def open_logs(self, *, cases: bool = True) -> None:
        """Open results.csv (and cases.csv) for appending."""
        try:
            self.results = ResultsWriter(self.path)
        except OSError as error:
            raise run_folder.os_error(self.path / RESULTS_FILE, error) from None
        if cases:
            self.cases = CaseLog(self.path)

    @contextmanager
    def executor(self, choice: ExecutorChoice | Executor) -> Iterator[OpenedExecutor]:
        """The executor `choice` asks for (or an Executor given as it is: the caller opens and closes it), its
        workers logging to workers.log; its description and each pool's time are added to the record when it
        closes."""
        manager: AbstractContextManager[OpenedExecutor]
        if isinstance(choice, ExecutorChoice):
            manager = open_executor(choice, self.record.settings, self.path / "workers.log")
        else:
            given = {"kind": "given", "class": type(choice).__name__}
            manager = nullcontext(OpenedExecutor(choice, self.record.settings.jobs, given))
        with manager as opened:
            self.record.executor = opened.description
            try:
                yield opened
            finally:
                self.record.timing = PoolTiming.add(self.record.timing, opened.executor.timing())


@contextmanager
def _removed_if_nothing_ran(path: Path) -> Iterator[None]:
    """A new run that stops before it logged any case or row (a setting refused at start, a cluster that cannot be
    reached) leaves no folder behind: the same -o can be given again."""
    try:
        yield
    except BaseException:
        logs = [path / RESULTS_FILE, path / CASES_FILE]
        if not any(_has_records(log) for log in logs):
            shutil.rmtree(path, ignore_errors=True)
        raise


def _has_records(path: Path) -> bool:
    """Whether a CSV log holds more than its header."""
    try:
        with path.open("rb") as file:
            return len(file.read(1 << 16).splitlines()) > 1
    except OSError:
        return False


@contextmanager
def _interrupts_reported(path: Path, kind: str) -> Iterator[None]:
    """An interrupt anywhere while the folder is open (its lock being taken or released included) leaves
    run.json "interrupted" and is reported as RunInterrupted."""
    try:
        yield
    except (KeyboardInterrupt, Interrupted) as error:
        if kind and (path / run_folder.RUN_FILE).exists():
            try:
                record = run_folder.read_record(path)
                if record.status == "running":
                    record.status = "interrupted"
                    run_folder.write_record(path, record)
            except (ConvparityError, OSError):
                pass
        code = error.exit_code if isinstance(error, Interrupted) else 130
        raise RunInterrupted(path, code, resume_command(path, kind) if kind else "the same command again") from None
