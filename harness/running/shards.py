"""Shards: a deterministic 1/N of a sweep's cases, each run anywhere, merged into one run afterwards.

`convparity run --shard K/N ...` runs shard K (from 1) of N: a CI job matrix runs the N shards on
N machines with the same options, and `convparity merge` (convparity.harness.running.merge) joins their folders.

Assignment (`shard_cases`): the sweep's stream of (case, dtype) items is walked in its order, and each
item goes to the shard with the least expected work so far (the expected seconds of every backend's
run and of the evaluation, from the backends' declared costs only: harness.running.cost_model;
ties to the lowest-numbered shard). Every shard walks the same stream and computes the same assignment
on whichever machine, holding only N running totals, so it needs no coordination and no memory per
case; each shard ends within one item's cost of an even share. A case's backends stay together, so the
reference is computed once per case, as in an unsharded run.

A shard's run folder records its shard in run.json; its cases.csv logs only its own cases, and
`--resume` draws the same shard of the same stream again.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from convparity.harness.cases.descriptor import Case
from convparity.harness.errors import ConvparityError
from convparity.harness.running.cost_model import CostModel, declared_costs


class ShardError(ConvparityError, ValueError):
    """A shard that is not K/N with 1 <= K <= N (the message quotes it)."""


@dataclass(frozen=True, order=True)
class Shard:
    """Shard `index` (1..count) of `count`."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (self.index, self.count)):
            raise ShardError(f"shard must be two integers K/N, got {self.index!r}/{self.count!r}")
        if not 1 <= self.index <= self.count:
            raise ShardError(f"shard {self.index}/{self.count}: K must be between 1 and N")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """"K/N", e.g. "2/8"."""
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match:
            raise ShardError(f"--shard must be K/N (e.g. 2/8), got {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def to_json(self) -> dict[str, int]:
        return {"index": self.index, "count": self.count}

    @classmethod
    def from_json(cls, stored: Any) -> Shard:
        if not isinstance(stored, dict) or set(stored) != {"index", "count"}:
            raise ShardError(f"shard must be {{'index': K, 'count': N}}, got {stored!r}")
        return cls(stored["index"], stored["count"])


def shard_costs(backends: tuple[str, ...]) -> CostModel:
    """The cost model shards are balanced by: the backends' declared costs, alike on every machine."""
    return CostModel.of(declared_costs(backends))


def assign(cases: Iterable[Case], count: int, backends: tuple[str, ...]) -> Iterator[tuple[int, Case]]:
    """(shard index, case) for every case in order: each to the least-loaded of `count` shards so far (ties: the
    lowest index). O(log) per case and memory only for shards that hold a case, however large `count` is:
    a shard still empty has the least load of all, so the next empty one is taken before any other."""
    costs = shard_costs(backends)
    loaded: list[tuple[float, int]] = []  # (load, index) of the shards that hold a case: a heap
    unused = 0  # shards 0..unused-1 hold a case; the rest are empty
    for case in cases:
        cost = costs.expected_item_seconds(case.spec, backends)
        if unused < count and (not loaded or loaded[0][0] > 0):
            target, load = unused, 0.0
            unused += 1
        else:
            load, target = heapq.heappop(loaded)
        heapq.heappush(loaded, (load + cost, target))
        yield target + 1, case


def shard_cases(cases: Iterable[Case], shard: Shard, backends: tuple[str, ...]) -> Iterator[Case]:
    """The cases (each with its dtype) that fall to `shard`, lazily, in the stream's order."""
    return (case for index, case in assign(cases, shard.count, backends) if index == shard.index)
