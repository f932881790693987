"""Which cases a run executes: named grids, grid and batch files, descriptors and random samples.

A `CaseSelection` is plain data (saved in run.json, so a resume can draw the same stream again);
`stream()` tells up front how many cases there can be (a selection larger than the limit is refused
before anything runs) and streams them lazily and without repeats, in bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.cases.dedupe import SeenSet
from harness.cases.descriptor import Case, parse_case
from harness.cases.grids import GridError, random_cases, read_batch_file, read_toml_grid

BIAS_CHOICES = {"on": (True,), "off": (False,), "both": (True, False)}
DEFAULT_MAX_CASES = 1_000_000


@dataclass(frozen=True)
class CaseSelection:
    """grids: named grids or TOML / batch file paths; cases: descriptors (each with `bias`: on, off or
    both); batch_files: benchdnn batch files; random: that many random cases drawn with `seed`."""

    grids: tuple[str, ...] = ()
    cases: tuple[str, ...] = ()
    batch_files: tuple[str, ...] = ()
    random: int = 0
    seed: int = 0
    bias: str = "on"

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
        if not (self.grids or self.cases or self.batch_files or self.random):
            raise GridError("no cases: give -g GRID, --case DESC, --batch FILE or --random N")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, stored: object) -> CaseSelection:
        if not isinstance(stored, dict):
            raise GridError(f"the case selection must be a JSON object, got {type(stored).__name__}")
        try:
            return cls(**stored)
        except TypeError as error:
            raise GridError(f"the case selection is not understood: {error}") from None

    def _sources(self) -> list:
        """The case lists and TOML grids to draw from, read and validated now (a bad file fails before
        any case runs)."""
        from harness.backends.manager import get_manager

        named = get_manager().grids()
        sources: list = []
        for grid in self.grids:
            if grid in named:
                sources.append(named[grid].cases())
            elif Path(grid).is_file():
                sources.append(read_toml_grid(grid) if grid.endswith(".toml") else read_batch_file(grid))
            else:
                raise GridError(f"unknown grid {grid!r}: not a named grid ({', '.join(named)}) nor a file")
        for path in self.batch_files:
            sources.append(read_batch_file(path))
        descriptors = [parse_case(text, bias=bias) for text in self.cases for bias in BIAS_CHOICES[self.bias]]
        if descriptors:
            sources.append(descriptors)
        return sources

    def stream(self, limit: int | None = DEFAULT_MAX_CASES) -> tuple[int, Iterator[Case]]:
        """(size, cases): how many cases the selection can yield at most (before dtypes multiply them),
        and every case once, lazily, in order: grids, batch files, descriptors, then random samples.

        GridError when the size exceeds `limit` (None: no limit), before any case is drawn.
        """
        sources = self._sources()
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
                    if seen.add(case.spec):
                        yield case
            if self.random:
                yield from random_cases(self.random, self.seed, seen)
        finally:
            seen.close()
