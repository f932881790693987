"""What one evaluated case says about one backend: passed, failed which tensors, or told us nothing.

The rows of a case (harness.evaluation.verdict, through a sweep's workers or read back from a run's
results.csv) are folded per backend into an `Observation`:

- kind "fail": some tensors are `fail` or `xfail` (a declared deviation): `failing` names them, and
  `known` is true when every one of them is `xfail`;
- kind "error" or "crash": the backend raised or its worker died (`failing` is empty: no tensor came back);
- kind "pass": nothing failed and at least one tensor was compared (`xpass` is a pass);
- kind "skip": nothing to learn: unsupported, timeout (a hang is not shrunk: every step could take
  the whole timeout), reference-error (the harness's own failure).

A failure's `Signature` is what "fails the same way" compares: backend, dtype, bias, kind and the
failing tensors.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.cases.descriptor import parse_case
from harness.cases.spec import ConvSpec
from harness.results import TENSORS, bias_word

FAILING_STATUSES = ("fail", "xfail")
BROKEN_STATUSES = ("error", "crash")
PASSING_STATUSES = ("pass", "xpass")


@dataclass(frozen=True, order=True)
class Signature:
    """How a case fails on a backend: two failures are "the same way" when their signatures are equal."""

    backend: str
    dtype: str
    bias: bool
    kind: str
    tensors: tuple[str, ...]

    def describe(self) -> str:
        return (f"{self.backend} {self.dtype} bias {bias_word(self.bias)}: {self.kind} "
                f"{' '.join(self.tensors)}")


@dataclass(frozen=True)
class Observation:
    """One case (spec with dtype and bias) on one backend.

    ratios: err_ratio of every compared tensor; err_ratio: the worst of them over `failing` when it
    fails, over all compared tensors when it passes (NaN when nothing was compared).
    """

    spec: ConvSpec
    backend: str
    version: str
    kind: str
    failing: tuple[str, ...] = ()
    known: bool = False
    err_ratio: float = math.nan
    ratios: dict[str, float] = field(default_factory=dict, compare=False)
    message: str = ""
    deviation: str = ""
    accumulation: str = ""

    @property
    def fails(self) -> bool:
        return self.kind in ("fail", *BROKEN_STATUSES)

    @property
    def signature(self) -> Signature | None:
        if not self.fails:
            return None
        return Signature(self.backend, self.spec.dtype, self.spec.bias, self.kind, self.failing)


def _ordered(tensors: Iterable[str]) -> tuple[str, ...]:
    chosen = set(tensors)
    return tuple(t for t in TENSORS if t in chosen)


def observe(spec: ConvSpec, backend: str, rows: list[Any]) -> Observation:
    """Fold the rows of one case on one backend (objects with tensor, status, err_ratio, message,
    deviation, accumulation and backend_version: `Row`s, or results.csv records) into an Observation."""
    version = str(rows[0].backend_version) if rows else ""
    accumulation = next((_text(r.accumulation) for r in rows if _text(r.accumulation)), "")
    ratios = {str(r.tensor): float(r.err_ratio) for r in rows if not _missing(r.err_ratio)}
    broken = [r for r in rows if r.status in BROKEN_STATUSES]
    if broken:
        return Observation(spec, backend, version, str(broken[0].status), (), err_ratio=math.inf, ratios=ratios,
                           message=_text(broken[0].message), accumulation=accumulation)
    failing = [r for r in rows if r.status in FAILING_STATUSES]
    if failing:
        worst = max(failing, key=lambda r: -1.0 if _missing(r.err_ratio) else float(r.err_ratio))
        return Observation(spec, backend, version, "fail", _ordered(str(r.tensor) for r in failing),
                           known=all(r.status == "xfail" for r in failing),
                           err_ratio=math.inf if _missing(worst.err_ratio) else float(worst.err_ratio),
                           ratios=ratios, message=_text(worst.message), deviation=_text(worst.deviation),
                           accumulation=accumulation)
    if any(r.status in PASSING_STATUSES for r in rows):
        return Observation(spec, backend, version, "pass", err_ratio=max(ratios.values(), default=math.nan),
                           ratios=ratios, accumulation=accumulation)
    return Observation(spec, backend, version, "skip", message=_text(rows[0].message) if rows else "")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def observations_from_rows(rows: Iterable[Any]) -> list[Observation]:
    """One Observation per (case, dtype, bias, backend) among `rows`, in the order first seen.

    `rows`: `Row`s or results.csv records (e.g. pandas itertuples of harness.results.read_results).
    """
    grouped: dict[tuple, list[Any]] = {}
    specs: dict[tuple, ConvSpec] = {}
    for row in rows:
        key = (str(row.case), str(row.dtype), bool(row.bias))
        grouped.setdefault((*key, str(row.backend)), []).append(row)
        if key not in specs:
            specs[key] = parse_case(key[0], dtype=key[1], bias=key[2]).spec
    return [observe(specs[key[:3]], key[3], group) for key, group in grouped.items()]
