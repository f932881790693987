"""How long a task should take before it runs: for longest-first scheduling and for balancing shards.

A backend's expected seconds on a case = fixed + gflop(spec) x per_gflop (x HALF_SLOWDOWN for 16-bit
dtypes, which most CPUs convert), with (fixed, per_gflop), in order of preference:
1. learned: this machine's own measurements of the backend, kept between runs in a `CostBook`
   (cache_home()/costs/<machine>.json, beside the compile caches) and updated by every sweep from
   the time each backend's `run` took on each case;
2. declared: the backend's `cost` member (harness.backends.program.BackendCost), its author's guess;
3. DEFAULT_COST.
Only the ratios matter (which task first, which shard). Shards use declared costs only (`learn=False`):
every machine of a CI matrix must compute the same assignment, and each machine learns its own figures.

Learning (`CostBook.learned`): of a backend's last MAX_SAMPLES (gflop, seconds) samples, `fixed` is the
median seconds of the smaller half by gflop, and `per_gflop` the median of (seconds - fixed) / gflop over
the larger half (0 when that is negative): a per-case overhead plus a throughput, robust to a few slow
outliers (a worker's first case pays its imports). MIN_SAMPLES samples are needed; a new backend version
starts over.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from convparity.harness.backends.contract import optional_members
from convparity.harness.backends.manager import get_manager
from convparity.harness.backends.program import BackendCost
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.files import RunFolderError, atomic_write
from convparity.harness.running.compile_cache import cache_home, machine_fingerprint

DEFAULT_COST = BackendCost(0.01, 0.05)  # a fast framework on one core: 10 ms a case, 20 GFLOP/s
REFERENCE_COST = BackendCost(0.001, 0.1)  # the evaluation: reference outputs, magnitudes, comparisons
HALF_SLOWDOWN = 4.0
MAX_SAMPLES = 400
MIN_SAMPLES = 8


def gflop(spec: ConvSpec) -> float:
    """10^9 floating-point operations of y, dx and dw together: 3 x 2 x the exact multiply-adds of y."""
    return 6 * spec.multiply_adds / 1e9


def seconds(cost: BackendCost, spec: ConvSpec) -> float:
    slowdown = HALF_SLOWDOWN if spec.dtype in ("float16", "bfloat16") else 1.0
    return cost.fixed + gflop(spec) * cost.per_gflop * slowdown


@dataclass
class CostBook:
    """This machine's measured (gflop, seconds) samples per backend, with the backend version they are of."""

    path: Path
    entries: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def default_path(cls) -> Path:
        return cache_home() / "costs" / f"{machine_fingerprint()}.json"

    @classmethod
    def load(cls, path: Path | None = None) -> CostBook:
        """The book at `path` (default: this machine's); empty when there is none or it cannot be read (a cost
        book is a hint: a damaged one is started afresh, never an error)."""
        path = path or cls.default_path()
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls(path)
        if not isinstance(entries, dict):
            return cls(path)
        return cls(path, {name: entry for name, entry in entries.items() if _valid(entry)})

    def record(self, backend: str, version: str, samples: Iterable[tuple[float, float]]) -> None:
        """Add samples of `backend` at `version` (a new version replaces the old one's samples)."""
        entry = self.entries.get(backend)
        if entry is None or entry["version"] != version:
            entry = self.entries[backend] = {"version": version, "samples": []}
        entry["samples"] = (entry["samples"] + [[float(g), float(s)] for g, s in samples])[-MAX_SAMPLES:]

    def save(self) -> None:
        """Write the book whole; a folder that cannot be written leaves it unsaved (it is a hint)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            text = json.dumps(self.entries)
            atomic_write(self.path, lambda file: file.write(text))
        except (OSError, RunFolderError):
            pass

    def learned(self, backend: str) -> BackendCost | None:
        """The backend's measured cost (see the module docstring), or None with too few samples."""
        entry = self.entries.get(backend)
        if entry is None or len(entry["samples"]) < MIN_SAMPLES:
            return None
        samples = sorted(entry["samples"])
        half = len(samples) // 2
        fixed = statistics.median(s for _, s in samples[:half])
        rates = [(s - fixed) / g for g, s in samples[half:] if g > 0]
        per_gflop = max(statistics.median(rates), 0.0) if rates else 0.0
        return BackendCost(fixed, per_gflop)


def _valid(entry: object) -> bool:
    return (isinstance(entry, dict) and isinstance(entry.get("version"), str) and isinstance(entry.get("samples"), list)
            and all(isinstance(s, list) and len(s) == 2 and all(isinstance(v, (int, float)) and math.isfinite(v)
                                                                for v in s) for s in entry["samples"]))


def declared_costs(backends: Iterable[str]) -> dict[str, BackendCost | None]:
    """Each backend's declared `cost` (None where it declares none or is not registered), read without
    importing any framework."""
    registered = get_manager().backends()
    return {name: optional_members(registered[name], computed=False).cost if name in registered else None
            for name in backends}


@dataclass(frozen=True)
class CostModel:
    """Each backend's cost for this sweep (see the module docstring)."""

    costs: Mapping[str, BackendCost]

    @classmethod
    def of(cls, declared: Mapping[str, BackendCost | None], book: CostBook | None = None) -> CostModel:
        """From the backends' declared costs (`declared_costs`) and, unless `book` is None, what this machine
        learned."""
        costs = {}
        for name, cost in declared.items():
            learned = book.learned(name) if book is not None else None
            costs[name] = learned or cost or DEFAULT_COST
        return cls(costs)

    def expected_seconds(self, spec: ConvSpec, backend: str) -> float:
        """Estimated seconds for `backend` to run `spec` (outputs and gradients) in its worker."""
        return seconds(self.costs.get(backend, DEFAULT_COST), spec)

    def expected_evaluation_seconds(self, spec: ConvSpec, backends: int) -> float:
        """Estimated seconds to evaluate `spec`: the reference once, then comparing `backends` backends' outputs."""
        return seconds(REFERENCE_COST, spec) * (1 + 0.1 * backends)

    def expected_item_seconds(self, spec: ConvSpec, backends: Iterable[str]) -> float:
        """Estimated seconds of every task of one case in one dtype: each backend's run and the evaluation."""
        names = tuple(backends)
        return sum(self.expected_seconds(spec, b) for b in names) + self.expected_evaluation_seconds(spec, len(names))
