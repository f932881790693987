"""The functions `convparity` exports, each the whole of one job: the work, then the reports.

    import convparity

    run = convparity.sweep(backends=["torch", "jax"], grids=["smoke"], dtypes=["float32"], jobs=2)
    print(run.summary)                       # per backend x dtype x tensor counts and worst ratios
    print(run.results.query("status == 'fail'"))
    found = convparity.search(["keras"], budget=100, jobs=2)

The command line (harness.cli) calls these same functions. The running and search layers never write
reports themselves (they sit below reporting): writing them is this module's explicit last step.
Workers are fresh interpreters started with convparity's own entry point (harness.running.worker), so
these functions work from a script without a `__main__` guard, from stdin and from a notebook.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from convparity.harness.backends.contract import Backend
from convparity.harness.backends.manager import get_manager
from convparity.harness.cases.models import Model
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.errors import ConvparityError
from convparity.harness.evaluation import verdict
from convparity.harness.reporting import summaries
from convparity.harness.running import merge as merging
from convparity.harness.running import sweep as sweeping
from convparity.harness.running.interrupts import Interrupted
from convparity.harness.running.merge import MergedRun
from convparity.harness.running.model_reading import resolve_models
from convparity.harness.running.sweep import SweepError, SweepRun
from convparity.harness.search import search as searching
from convparity.harness.search import triage as triaging
from convparity.harness.search.findings import Finding
from convparity.harness.search.search import SearchResult


class ReportsInterrupted(ConvparityError):
    """The work is done and kept; writing its reports was interrupted."""

    prefix = ""

    def __init__(self, path: Path, exit_code: int) -> None:
        super().__init__(f"interrupted while writing the reports of {path}; every row is kept; write them with: "
                         f"convparity report {path}")
        self.exit_code = exit_code


def write_reports(path: str | Path) -> Any:
    """summary.csv, summary.md and report.html of the folder (harness.reporting.summaries); an interrupt while
    they are written is ReportsInterrupted."""
    try:
        return summaries.write_reports(path)
    except (KeyboardInterrupt, Interrupted) as error:
        raise ReportsInterrupted(Path(path), getattr(error, "exit_code", 130)) from None


def sweep(*args: Any, **kwargs: Any) -> SweepRun:
    """Run a sweep (harness.running.sweep.sweep takes the same arguments), then write its reports."""
    run = sweeping.sweep(*args, **kwargs)
    run.summary = write_reports(run.path)
    return run


def resume(path: str | Path, *args: Any, **kwargs: Any) -> SweepRun:
    """Continue an interrupted sweep (harness.running.sweep.resume), then write its reports."""
    run = sweeping.resume(path, *args, **kwargs)
    run.summary = write_reports(run.path)
    return run


def search(*args: Any, **kwargs: Any) -> SearchResult:
    """Hunt for disagreements (harness.search.search.search), then write the reports of what it ran."""
    return _reported(searching.search(*args, **kwargs))


def resume_search(path: str | Path, *args: Any, **kwargs: Any) -> SearchResult:
    """Continue an interrupted search (harness.search.search.resume_search), then write its reports."""
    return _reported(searching.resume_search(path, *args, **kwargs))


def _reported(result: SearchResult) -> SearchResult:
    if result.counts.total or (result.path / "results.csv").is_file():
        write_reports(result.path)
    return result


def triage(path: str | Path, *args: Any, **kwargs: Any) -> list[Finding]:
    """Group a sweep's failures by cause and check the rules on fresh cases (harness.search.triage takes the same
    arguments), then rewrite its reports with them."""
    found = triaging.triage(path, *args, **kwargs)
    write_reports(path)
    return found


def merge(out: str | Path, folders: list[str | Path]) -> MergedRun:
    """Join the shards of a sweep into one run folder (harness.running.merge), then write its reports."""
    merged = merging.merge(out, folders)
    write_reports(merged.path)
    return merged


def read_models(sources: Any, *, input_shapes: Any = None, epilogues: bool = True,
                weights: str | Path | None = None) -> tuple[Model, ...]:
    """Several model sources read into Models, each by its reader in a worker of its own (harness.running.
    model_reading); `input_shapes` as --input-shape gives them (texts "NAME=1x3x224x224" or {name: shape});
    `epilogues=False`: the layers' convolutions without their post-ops; `weights`: a folder to write each layer's
    own weights to, where the reader has them (each such layer's case is then drawn with them)."""
    return resolve_models(sources, input_shapes, epilogues=epilogues, weights=weights)


def cases_from_model(source: str, *, input_shapes: Any = None, epilogues: bool = True,
                     weights: str | Path | None = None) -> Model:
    """Every convolution of one model: the Model a reader finds in `source` (a model file or name, read in a
    worker of the reader's own, which imports its framework there). `model.layers`: each layer with its names,
    depth and ConvSpec (its epilogue as post-ops, its data types and quantization); `model.groups()`: identical
    layers together with their count; `model.cases()`: one Case per distinct layer (evaluate_case(backend, case.spec)
    computes one); sweep(models=[model]) runs them all, with the model view in the reports. `epilogues=False`:
    each layer's convolution without the post-ops its graph fuses. `weights`: a folder to write the layers' own
    weights to (as read_models); the files must stay while the cases run."""
    (model,) = resolve_models([source], input_shapes, epilogues=epilogues, weights=weights)
    return model


def evaluate_case(backend: str | Backend, spec: ConvSpec, *, name: str = "", seed: int = 0,
                  tolerance_factor: float = 1.0) -> tuple[verdict.Ran | verdict.Status, list]:
    """One case on one backend in this process (the framework is imported here): what the backend returned and
    the case's rows. `backend`: a registered backend's name or a backend object."""
    if isinstance(backend, str):
        registered = get_manager().backends()
        if backend not in registered:
            broken = get_manager().broken.get(backend)
            raise SweepError(f"unknown backend {backend!r}" + (f": {broken}" if broken else
                                                               f" (known: {', '.join(registered) or 'none'})"))
        backend = registered[backend]
    return verdict.evaluate_case(backend, spec, name=name, seed=seed, tolerance_factor=tolerance_factor)
