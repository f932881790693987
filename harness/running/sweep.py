"""The sweep: every case of a selection in every dtype on every backend, rows written as each case finishes.

`sweep(...)` starts a run in a fresh folder and `resume(path)` continues an interrupted one with the
settings in its run.json; both return a `SweepRun` when every row is written. (`convparity.sweep` and
`convparity run` write the reports afterwards: harness.api.) A sweep draws its cases lazily from a
`CaseSelection`, logs each to cases.csv before it runs, and appends its rows to results.csv as it
finishes, in a `RunContext` (harness.running.context: the folder's lock, its record, its logs, its
executor); an interrupt leaves the record "interrupted" and raises RunInterrupted, naming the resume
command.

Where tasks run is an `ExecutorChoice` (harness.running.launch: local processes, or a Dask cluster);
`shard` runs a deterministic 1/N of the cases (harness.running.shards; harness.running.merge joins the
shards). Costs (harness.running.cost_model) order the tasks, and what each backend took on each case
is learned for the next run; run.json records the executor, the shard and each pool's time (`timing`).
"""

from __future__ import annotations

import contextlib
import math
import re
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from convparity.harness.backends.manager import PluginSelection, get_manager
from convparity.harness.cases.descriptor import Case
from convparity.harness.cases.models import WEIGHTS_FOLDER, Model, write_models
from convparity.harness.cases.selection import DEFAULT_MAX_CASES, CaseSelection, expand
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.errors import ConvparityError
from convparity.harness.evaluation.verdict import Ran
from convparity.harness.files import RunFolderError
from convparity.harness.results import Row
from convparity.harness.running import run_folder
from convparity.harness.running.context import RunContext
from convparity.harness.running.cost_model import CostBook, CostModel, declared_costs, gflop
from convparity.harness.running.executor import PoolTiming
from convparity.harness.running.identity import VersionCheck, check_registered
from convparity.harness.running.launch import ExecutorChoice
from convparity.harness.running.model_reading import resolve_models
from convparity.harness.running.placement import thread_variables
from convparity.harness.running.progress import SweepProgress
from convparity.harness.running.run_logs import count_cases, read_cases, repair_results, status_counts
from convparity.harness.running.run_record import RunRecord
from convparity.harness.running.runner import Item, OnProbed, SweepVersions, done_key, run_sweep
from convparity.harness.running.shards import Shard, shard_cases
from convparity.harness.running.tasks import backend_pool
from convparity.harness.settings import DEFAULT_REFERENCE_TIMEOUT, DEFAULT_STARTUP_TIMEOUT, DEFAULT_TIMEOUT, RunSettings
from convparity.harness.vocabulary import BAD_STATUSES, HARNESS_STATUSES, STALE_STATUSES, check_dtypes

DEFAULT_DTYPES = ("float64", "float32")


class SweepError(ConvparityError, ValueError):
    """A sweep that cannot start as asked (unknown backend or dtype, ...); the message names the field."""


@dataclass
class SweepRun:
    """A finished sweep: its folder, the status counts of its rows, and its tables on demand.

    `summary` is set when the reports are written (harness.api does it after every sweep)."""

    path: Path
    counts: Counter = field(default_factory=Counter)
    unavailable: dict[str, str] = field(default_factory=dict)
    resumed_items: int = 0
    dropped_duplicates: int = 0
    summary: Any = None

    @property
    def results(self):
        """results.csv as a pandas DataFrame (the dtypes `convparity.read_results` documents)."""
        from convparity.harness.results import read_results

        return read_results(self.path)

    def exit_code(self, strict: bool = False) -> int:
        """0: nothing failed; 1: a backend failed (or, with `strict`, a declared deviation went stale);
        3: only the harness's side failed (the reference, or drawing the inputs: never the backend's)."""
        if any(self.counts[s] for s in BAD_STATUSES) or (strict and any(self.counts[s] for s in STALE_STATUSES)):
            return 1
        return 3 if any(self.counts[s] for s in HARNESS_STATUSES) else 0


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
    perf: bool = False,
    models: Sequence[str | Model] = (),
    input_shapes: Sequence[str] | dict[str, tuple[int, ...]] | None = None,
    epilogues: bool = True,
    weights: bool = False,
) -> SweepRun:
    """Run `cases` (descriptors), `grids` (named, TOML or batch files), `batch_files`, `models` and `random`
    samples in every dtype on every backend (None or ["all"]: every registered one; unavailable ones
    are named once, in run.json, and run nothing). `bias` ("on", "off", "both") applies to `cases`.
    `models`: model sources (read by the model readers, each in a worker of its own; `input_shapes` as
    --input-shape gives them) or Models already read; each distinct layer is a case, and the run folder's
    models.json keeps every layer for the model view of the reports; `epilogues=False` runs each layer's
    convolution without the post-ops its graph fuses; `weights`: each layer with the model's own weights (where
    its reader has them), kept in the run folder's weights/ (every such layer is a case of its own).

    `out`: the run folder (default: a fresh one under reports/). Returns when every row is written.
    `executor`: where tasks run (default: local processes); `shard`: run only that shard of the cases;
    `compile_cache`: "default", "off" or a folder (harness.running.compile_cache); `perf`: time every case
    that passes on a backend (the speed columns of its pass rows).
    """
    try:
        dtypes = check_dtypes(list(dtypes))
    except ValueError as error:
        raise SweepError(str(error)) from None
    settings = RunSettings(backends=available_backends(backends), dtypes=dtypes, grids=tuple(grids), seed=seed,
                           timeout=timeout, jobs=jobs, tolerance_factor=tolerance_factor,
                           startup_timeout=startup_timeout, reference_timeout=reference_timeout,
                           compile_cache=compile_cache, perf=perf)
    path = Path(out) if out is not None else run_folder.default_run_dir(
        Path("reports"), settings.grids or tuple(_label(model) for model in models)[:3] or ("cases",))
    prepared = (WEIGHTS_FOLDER,) if weights else ()
    if weights and not models:
        raise SweepError("weights: the models' own weights need models (--weights goes with --model SOURCE)")
    if weights:
        run_folder.create(path)  # refused before any weight is written, if it is no fresh folder
    try:
        read = resolve_models(models, input_shapes, epilogues=epilogues, startup_timeout=startup_timeout,
                              weights=path / WEIGHTS_FOLDER if weights else None) if models or input_shapes else ()
        selection = CaseSelection(grids=tuple(grids), cases=tuple(cases), batch_files=tuple(batch_files),
                                  random=random, seed=seed, bias=bias, models=read)
        size, stream = selection.stream(max_cases)
        record = RunRecord("sweep", settings, selection, harness_commit=run_folder.harness_commit(),
                           batch_files=selection.batch_summaries(), max_cases=max_cases, shard=shard,
                           worker_environment=thread_variables())
    except BaseException:
        if weights:  # the weights written so far go, and the folder made for them when nothing else is in it
            shutil.rmtree(path / WEIGHTS_FOLDER, ignore_errors=True)
            with contextlib.suppress(OSError):
                path.rmdir()
        raise
    with RunContext.new(path, record, prepared) as context:
        if read:
            write_models(path, read)
        drawn, total = _sharded(expand(stream, settings.dtypes), size * len(settings.dtypes), shard, settings)
        run = _execute(context, drawn, total, done=set(), logged=0, progress=progress,
                       executor=executor or ExecutorChoice())
        context.finish()
    return run


def _label(model: str | Model) -> str:
    """What a model is called in a default run folder's name: its title, or its source's last part."""
    return model.title if isinstance(model, Model) else Path(re.split(r"[:/\\]", model)[-1]).stem


def _sharded(cases: Iterator[Case], total: int, shard: Shard | None, settings: RunSettings,
             ) -> tuple[Iterator[Case], int]:
    """The cases of `shard` (all without one) and about how many there are."""
    if shard is None:
        return cases, total
    return shard_cases(cases, shard, settings.backends), math.ceil(total / shard.count)


def resumable(path: Path) -> RunRecord:
    """The record of the sweep in `path`, refused (RunFolderError saying what to do instead) when it is no sweep
    that can be continued."""
    record = run_folder.read_record(path)
    if record.kind == "search":
        raise RunFolderError(f"{path} holds a search, not a sweep: continue it with: convparity search --resume {path}")
    if record.kind == "merge":
        raise RunFolderError(f"{path} is a merge of shards ({', '.join(record.merged_from)}): it is complete; "
                             "resume the shards before merging them instead")
    if record.selection is None:
        raise RunFolderError(f"{path / run_folder.RUN_FILE} has no case selection: it was written by an older "
                             "convparity and cannot be resumed")
    return record


def resume(path: str | Path, jobs: int | None = None, *, progress: bool = False,
           executor: ExecutorChoice | None = None, compile_cache: str | None = None,
           new_segment: bool = False) -> SweepRun:
    """Continue the interrupted run in `path` with its own settings (only the number of jobs, the executor
    and the compile cache may change); a shard continues as the same shard. Its backends must still be
    registered, at the versions it ran (harness.running.identity), unless `new_segment`: then a backend at
    another version goes on as a new segment of the run, recorded in run.json."""
    path = Path(path)
    check_registered(resumable(path), path)
    with RunContext.reopen(path) as context:
        record = context.record
        settings = record.settings
        if jobs is not None:
            settings = replace(settings, jobs=jobs)
        if compile_cache is not None:
            settings = replace(settings, compile_cache=compile_cache)
        record.settings = settings
        assert record.selection is not None  # `resumable` checked it
        logged = count_cases(path)
        # Cases that compare fewer tensors than all (a batch file's --dir) are few: their counts fit in memory.
        fewer = {(c.spec.descriptor, c.spec.bias, c.spec.dtype): len(c.compared)
                 for c in read_cases(path) if len(c.compared) != (4 if c.spec.bias else 3)}
        repair = repair_results(path, lambda case, bias, dtype: fewer.get((case, bias, dtype), 4 if bias else 3))
        size, stream = record.selection.stream(record.max_cases)
        shard_stream, total = _sharded(expand(stream, settings.dtypes), size * len(settings.dtypes), record.shard,
                                       settings)
        cases = _continue(read_cases(path), shard_stream, path)
        previous = status_counts(path)
        versions = VersionCheck(record, path, f"convparity run --resume {path}", new_segment)
        run = _execute(context, cases, total, done=repair.done, logged=logged, progress=progress,
                       executor=executor or ExecutorChoice(), on_probed=versions)
        run.resumed_items = logged
        run.dropped_duplicates = repair.dropped_duplicates
        run.counts.update(previous)
        context.finish()
    return run


def _continue(logged: Iterable[Case], stream: Iterator[Case], path: Path) -> Iterator[Case]:
    """The logged cases, then the selection's stream after them (checked to begin with the same cases); each as
    the selection gives it, so that what cases.csv does not log (a grid case's input style) is kept."""
    for number, case in enumerate(logged, start=1):
        again = next(stream, None)
        if again is None or again.spec != case.spec:
            raise RunFolderError(f"{path / 'cases.csv'}: case {number} is no longer what the run's selection "
                                 "yields (a grid or file changed since the run started); start a new run")
        yield replace(again, tensors=case.tensors)
    yield from stream


class _Measurements:
    """What the backends' results say of their cost: (gflop, seconds) samples and compile time, per backend."""

    def __init__(self) -> None:
        self.samples: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self.timing: dict[str, dict[str, Any]] = defaultdict(lambda: {"run_seconds": 0.0, "compile_seconds": 0.0,
                                                                      "compile_measured": False})

    def ran(self, backend: str, spec: ConvSpec, ran: Ran) -> None:
        self.samples[backend].append((gflop(spec), ran.seconds))
        pool = self.timing[backend_pool(backend)]
        pool["run_seconds"] += ran.seconds
        if ran.compile_seconds is not None:
            pool["compile_seconds"] += ran.compile_seconds
            pool["compile_measured"] = True


def _execute(context: RunContext, cases: Iterable[Case], total: int, *, done: set, logged: int, progress: bool,
             executor: ExecutorChoice, on_probed: OnProbed | None = None) -> SweepRun:
    """Run the cases not done in the open `context`, logging each new one (after the first `logged`) to cases.csv."""
    record, path = context.record, context.path
    settings = record.settings
    run = SweepRun(path)
    context.open_logs()
    book = CostBook.load()
    costs = CostModel.of(declared_costs(settings.backends), book)
    measured = _Measurements()

    def items() -> Iterator[Item]:
        for index, case in enumerate(cases):
            if index >= logged:
                assert context.cases is not None
                context.cases.log(case)
            missing = [b for b in settings.backends if done_key(case, b) not in done]
            if missing:
                yield Item(case, missing, inputs=case.inputs)
            else:
                bar.advance([])

    def write(rows: list[Row]) -> None:
        assert context.results is not None
        try:
            context.results.write(rows)
        except OSError as error:
            raise run_folder.os_error(context.results.path, error) from None
        run.counts.update(row.status for row in rows)
        bar.advance(rows)

    def found(versions: SweepVersions) -> None:
        record.backend_versions = {**record.backend_versions, **versions.versions}
        record.unavailable = versions.unavailable
        run.unavailable = versions.unavailable
        context.save()

    bar = SweepProgress(total=total, done=0, enabled=progress)
    try:
        with context.executor(executor) as opened, bar:
            run_sweep(items(), settings, opened.executor, write, on_versions=found,
                      plugins=PluginSelection.from_environment(), window=4 * opened.slots + 4, costs=costs,
                      on_ran=measured.ran, on_probed=on_probed)
    finally:
        record.timing = PoolTiming.add(record.timing, measured.timing)
        for backend, samples in measured.samples.items():
            book.record(backend, record.backend_versions.get(backend, ""), samples)
        book.save()
    return run


__all__ = ["SweepError", "SweepRun", "resume", "sweep"]
