"""Which cases a run executes: named grids, grid and batch files, descriptors, models' layers and random samples.

A `CaseSelection` is plain data (saved in run.json, so a resume can draw the same stream again);
`stream()` tells up front how many cases there can be (a selection larger than the limit is refused
before anything runs) and streams them lazily and without repeats, in bounded memory. `expand` puts
them in the run's dtypes, except batch file cases, which keep the dtype their `--dt` gives them.
`describe` lists what a run executes (`convparity cases`). A model (`--model`) is held as the layers its reader
found (harness.cases.models: read before the selection is made, in the reader's own worker), so a resume draws
the same cases without reading the model again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from convparity.harness.cases.batch_file import BatchFile, find_batch_file, shipped_batch_files
from convparity.harness.cases.dedupe import SeenSet
from convparity.harness.cases.descriptor import Case, parse_case
from convparity.harness.cases.descriptor_format import DECONV_PREFIX
from convparity.harness.cases.grids import GridError, random_cases, read_toml_grid
from convparity.harness.cases.models import Model, ModelError

BIAS_CHOICES = {"on": (True,), "off": (False,), "both": (True, False)}
DEFAULT_MAX_CASES = 1_000_000


@dataclass(frozen=True)
class CaseSelection:
    """grids: named grids or TOML / batch file paths; cases: descriptors (each with `bias`: on, off or
    both); batch_files: benchdnn batch files; random: that many random cases drawn with `seed`; models: the layers
    of models, one case per distinct layer (harness.cases.models)."""

    grids: tuple[str, ...] = ()
    cases: tuple[str, ...] = ()
    batch_files: tuple[str, ...] = ()
    random: int = 0
    seed: int = 0
    bias: str = "on"
    models: tuple[Model, ...] = ()

    def __post_init__(self) -> None:
        for name in ("grids", "cases", "batch_files"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise GridError(f"{name} must be a list of strings, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        if self.bias not in BIAS_CHOICES:
            raise GridError(f"bias must be one of {', '.join(BIAS_CHOICES)}, got {self.bias!r}")
        if not isinstance(self.random, int) or isinstance(self.random, bool) or self.random < 0:
            raise GridError(f"random must be a number of cases >= 0, got {self.random!r}")
        if isinstance(self.models, Model) or not all(isinstance(m, Model) for m in self.models):
            raise GridError(f"models must be a list of Model, got {self.models!r}")
        object.__setattr__(self, "models", tuple(self.models))
        if not (self.grids or self.cases or self.batch_files or self.random or self.models):
            raise GridError("no cases: give -g GRID, --case DESC, --batch FILE, --model SOURCE or --random N")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.models:
            data["models"] = [model.to_json() for model in self.models]
        else:
            del data["models"]  # the record of a run without models stays as it was
        return data

    @classmethod
    def from_json(cls, stored: object) -> CaseSelection:
        if not isinstance(stored, dict):
            raise GridError(f"the case selection must be a JSON object, got {type(stored).__name__}")
        stored = dict(stored)
        try:
            models = stored.pop("models", [])
            if not isinstance(models, list):
                raise GridError(f"the case selection's models must be a list, got {type(models).__name__}")
            return cls(**stored, models=tuple(Model.from_json(m, f"the case selection's model {i}")
                                              for i, m in enumerate(models)))
        except ModelError as error:
            raise GridError(str(error)) from None
        except TypeError as error:
            raise GridError(f"the case selection is not understood: {error}") from None

    @cached_property
    def _sources(self) -> list:
        """The case lists, TOML grids and batch files to draw from, read and validated on first use (a bad
        file fails before any case runs)."""
        from convparity.harness.backends.manager import get_manager

        named = get_manager().grids()
        sources: list = []
        for grid in self.grids:
            if grid in named:
                sources.append(named[grid].cases())
            elif Path(grid).is_file():
                sources.append(read_toml_grid(grid) if grid.endswith(".toml") else BatchFile(grid))
            elif (shipped := find_batch_file(grid)) is not None:
                sources.append(BatchFile(shipped))
            else:
                raise GridError(f"unknown grid {grid!r}: not a named grid ({', '.join(named)}), a file, nor a shipped "
                                f"batch file ({', '.join(shipped_batch_files())})")
        for path in self.batch_files:
            driver, file = ("deconv", path[len(DECONV_PREFIX):]) if path.startswith(DECONV_PREFIX) and not \
                Path(path).is_file() else ("conv", path)
            found = find_batch_file(file)
            if found is None:
                raise GridError(f"no batch file {file!r}: no such file, nor a shipped one of that name "
                                f"({', '.join(shipped_batch_files())})")
            sources.append(BatchFile(found, driver=driver))
        descriptors = [parse_case(text, bias=bias) for text in self.cases for bias in BIAS_CHOICES[self.bias]]
        if descriptors:
            sources.append(descriptors)
        for model in self.models:
            sources.append(model.cases())
        return sources

    def stream(self, limit: int | None = DEFAULT_MAX_CASES) -> tuple[int, Iterator[Case]]:
        """(size, cases): how many cases the selection can yield at most (before dtypes multiply them),
        and every case once, lazily, in order: grids, batch files, descriptors, models, then random samples.

        GridError when the size exceeds `limit` (None: no limit), before any case is drawn.
        """
        sources = self._sources
        size = self.random + sum(source.size if hasattr(source, "size") else len(source) for source in sources)
        if limit is not None and size > limit:
            raise GridError(f"the selection has up to {size:,} cases, more than the limit of {limit:,} "
                            "(raise it with --max-cases)")
        return size, self._cases(sources)

    def _cases(self, sources: list) -> Iterator[Case]:
        seen = SeenSet()
        try:
            for source in sources:
                for case in source:
                    if seen.add(case.spec, case.fixed_dtype, case.inputs_key):
                        yield case
            if self.random:
                yield from random_cases(self.random, self.seed, seen)
        finally:
            seen.close()

    def batch_summaries(self) -> dict[str, dict]:
        """Per batch file: benchdnn problems read, computed and skipped (by reason), cases, ignored options."""
        return {str(source.path): source.summary for source in self._sources if isinstance(source, BatchFile)}

    def describe(self, dtypes: tuple[str, ...], limit: int | None = DEFAULT_MAX_CASES) -> Iterator[str]:
        """What a run in `dtypes` executes: one line per case (canonical descriptor with its name, dtype,
        bias, tensors compared, and how its values are drawn when not the default), the count, then each batch
        file's counts and what it skipped or ignored. Each model's layers (names, multiplicity, descriptor) come
        first."""
        for model in self.models:
            yield from model.describe()
        count = 0
        for case in expand(self.stream(limit)[1], dtypes):
            count += 1
            drawn = "" if case.inputs.is_default else f"\tinputs={case.inputs.kind}"
            yield (f"{case.descriptor}\t{case.spec.dtype}\tbias={'on' if case.spec.bias else 'off'}"
                   f"\t{','.join(case.compared)}{drawn}")
        yield f"{count} cases"
        for path, summary in self.batch_summaries().items():
            yield (f"{path}: {summary['problems']} benchdnn problems read, {summary['computed']} computed as "
                   f"{summary['cases']} cases, {summary['skipped']} skipped")
            by_reason = summary["skipped_by_reason"]
            if sum(entry["problems"] for entry in by_reason.values()) > summary["skipped"]:
                yield (f"  (a problem skipped for several reasons counts under each: the {summary['skipped']} skipped "
                       f"problems add up to {sum(e['problems'] for e in by_reason.values())} below)")
            for why, entry in sorted(by_reason.items(), key=lambda kv: -kv[1]["problems"]):
                yield f"  skipped {entry['problems']}: {why} (first: {entry['first']})"
            for name, entry in sorted(summary["ignored_options"].items(), key=lambda kv: -kv[1]["tokens"]):
                yield f"  ignored {name} x{entry['tokens']}: {entry['why']}"


def expand(cases: Iterable[Case], dtypes: tuple[str, ...]) -> Iterator[Case]:
    """Every case in every dtype, case-major, lazily; a case with a `fixed_dtype` once, in its own."""
    for case in cases:
        if case.fixed_dtype:
            yield case
        else:
            for dtype in dtypes:
                yield dataclasses.replace(case, spec=case.spec.replace(dtype=dtype))
