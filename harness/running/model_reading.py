"""Reading models (`--model SOURCE`) in worker processes: a reader imports its framework in a worker of its own.

`read_models(sources, options)` finds the reader that claims each source (harness.backends.model_readers), then
reads every source in a worker of the pool `reader:<name>` (harness.running.worker, through a
LocalProcessExecutor): the framework is imported there, never in the calling process and never beside another
reader's or a backend's framework. Several sources read at once, one core each.

Whatever goes wrong is one line naming the source: input the reader cannot read (its ModelReadError: the field
at fault), a reader that raises something else (its exception, innermost frame), a worker that dies (the signal,
and the last line it printed) or takes longer than the timeout.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from convparity.harness.backends.manager import PluginSelection
from convparity.harness.cases.models import Model, ModelError, ModelReadError, ReadOptions
from convparity.harness.inert_text import abbreviated
from convparity.harness.running.local_executor import LocalProcessExecutor
from convparity.harness.running.placement import WorkerSetup
from convparity.harness.settings import DEFAULT_STARTUP_TIMEOUT

DEFAULT_READ_TIMEOUT = 600.0


def reader_pool(reader: str) -> str:
    """The pool of workers that run `reader` (apart from every backend's and the reference's)."""
    return f"reader:{reader}"


@dataclass(frozen=True)
class ReadFailed:
    """A reader's refusal of its input (a ModelReadError), sent back as a value: its message is the user's."""

    message: str


@dataclass(frozen=True)
class ReadModel:
    """One source read by one reader, in a worker of the reader's pool."""

    reader: str
    source: str
    options: ReadOptions = ReadOptions()
    plugins: PluginSelection = field(default_factory=PluginSelection)
    setup: WorkerSetup | None = None
    prepare = None

    @property
    def pool(self) -> str:
        return reader_pool(self.reader)

    def __call__(self) -> Model | ReadFailed:
        reader = self.plugins.manager().model_readers()[self.reader]
        try:
            model = reader.read(self.source, self.options)
        except ModelReadError as error:
            return ReadFailed(str(error))
        if not isinstance(model, Model):
            raise TypeError(f"the {self.reader} model reader returned {type(model).__name__}, not a Model")
        return model


def reader_for(source: str, plugins: PluginSelection | None = None) -> str:
    """The name of the first registered reader that claims `source`; ModelError listing the readers otherwise."""
    manager = (plugins or PluginSelection.from_environment()).manager()
    readers = manager.model_readers()
    for name, reader in readers.items():
        if reader.claims(source):
            return name
    known = "; ".join(f"{name}: {reader.sources}" for name, reader in readers.items()) or "none is registered"
    broken = [f"{name} ({why})" for name, why in manager.broken.items() if name.endswith("models")]
    raise ModelError(f"model {abbreviated(source)}: no model reader reads it (readers: {known})"
                     + (f"; broken: {', '.join(broken)}" if broken else ""))


def read_models(sources: Sequence[str], options: ReadOptions | None = None, *, jobs: int | None = None,
                timeout: float = DEFAULT_READ_TIMEOUT, startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
                plugins: PluginSelection | None = None) -> list[Model]:
    """Every source's Model, in the order given (a source given twice is read once); see the module docstring."""
    plugins = plugins or PluginSelection.from_environment()
    options = options or ReadOptions()
    sources = list(dict.fromkeys(sources))
    if not sources:
        return []
    for source in sources:
        if not isinstance(source, str) or not source.strip():
            raise ModelError(f"--model: a model source must be non-empty text, got {source!r}")
    readers = {source: reader_for(source, plugins) for source in sources}
    found: dict[str, Model] = {}
    jobs = jobs or min(len(sources), os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="convparity-models-") as folder:
        log = Path(folder) / "workers.log"
        with LocalProcessExecutor(jobs, log=log, startup_timeout=startup_timeout) as executor:
            for source, reader in readers.items():
                executor.submit(ReadModel(reader, source, options, plugins, WorkerSetup.here(None, plugins, "off")),
                                source, timeout)
            outcomes = [executor.next_outcome() for _ in sources]
        said = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
    for outcome in outcomes:
        source, reader = outcome.tag, readers[outcome.tag]
        where = f"model {abbreviated(source)}"
        if outcome.failure == "error":
            raise ModelError(f"{where}: the {reader} reader raised {outcome.message}")
        if outcome.failure:
            last = [line for line in said if line.strip() and "[convparity worker" not in line][-1:]
            raise ModelError(f"{where}: the {reader} reader's worker ended in {outcome.failure}: {outcome.message}"
                             + (f" (it said: {abbreviated(last[0].strip())})" if last else ""))
        if isinstance(outcome.value, ReadFailed):
            raise ModelError(f"{where}: {outcome.value.message}")
        model = outcome.value
        if not model.layers:
            raise ModelError(f"{where}: the {reader} reader found no convolution in it")
        found[source] = model
    return [found[source] for source in sources]


def resolve_models(models: Sequence[str | Model], input_shapes: object = None, *, epilogues: bool = True,
                   weights: str | Path | None = None, startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
                   ) -> tuple[Model, ...]:
    """`models` as Model objects: sources read (read_models, with --input-shape's `input_shapes`: texts or a
    mapping; with their own weights written to the folder `weights` where it is given and the reader has them),
    Model objects (convparity.cases_from_model's) kept as they are; without their post-ops when not `epilogues`."""
    if isinstance(models, (str, Model)):
        models = [models]
    sources = [m for m in models if isinstance(m, str)]
    if input_shapes and not sources:
        raise ModelError("--input-shape goes with --model SOURCE")
    if weights and not sources:
        raise ModelError("--weights goes with --model SOURCE")
    options = ReadOptions.of(input_shapes or None, weights)  # type: ignore[arg-type]
    read = iter(read_models(sources, options, startup_timeout=startup_timeout)) if sources else iter(())
    found = {source: model for source, model in zip(dict.fromkeys(sources), read)}
    resolved = [found[m] if isinstance(m, str) else m for m in models]
    for model in resolved:
        if not isinstance(model, Model):
            raise ModelError(f"models: a model source (text) or a Model, got {type(model).__name__}")
    if weights:
        resolved = [_weights_noted(model) for model in resolved]
    if not epilogues:
        resolved = [model.without_epilogues() for model in resolved]
    return tuple(dict.fromkeys(resolved))


def _weights_noted(model: Model) -> Model:
    """The model, with a note where --weights was asked for and its reader gave some layers' weights or none."""
    given = sum(1 for layer in model.layers if layer.weights)
    if given == len(model.layers):
        return model
    note = (f"--weights: the {model.reader} reader gives no weights (a model built without them): drawn" if not given
            else f"--weights: {len(model.layers) - given} of {len(model.layers)} layers have no constant weights: "
                 "drawn")
    return dataclasses.replace(model, notes=(*model.notes, note))
