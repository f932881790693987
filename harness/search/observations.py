"""What one evaluated case says about one backend: passed, failed which tensors, or told us nothing.

The rows of a case (convparity.harness.evaluation.verdict, through a sweep's workers or read back from a run's
results.csv) are folded per backend into an `Observation`:

- kind "fail": some tensors are `fail` or `xfail` (a declared deviation): `failing` names them,
  `undeclared` those that are `fail`, and `known` is true when every one of them is `xfail`;
- kind "error", "crash" or "timeout": the backend raised, its worker died, or it hung past the case
  timeout (`failing` is empty: no tensor came back). Each is a finding of its own kind, with its own
  rule: a backend that hangs is a bug, not a case to skip;
- kind "pass": nothing failed and at least one tensor was compared (`xpass` is a pass);
- kind "skip": nothing to learn: unsupported, reference-error (the harness's own failure).

`inputs` is the style the case's values were drawn in (harness.cases.inputs): uniform for every
evaluation in results.csv; a search also re-draws a minimal case as small integers.

Whether two failures are "the same way" is decided by convparity.harness.search.shrink.fails_the_same_way
(backend, kind and failing tensors); how failures are grouped, by convparity.harness.search.group.Key.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from convparity.harness.cases.descriptor import parse_case
from convparity.harness.cases.inputs import UNIFORM, InputStyle
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.results import bias_word
from convparity.harness.vocabulary import TENSORS

FAILING_STATUSES = ("fail", "xfail")
BROKEN_STATUSES = ("error", "crash", "timeout")
PASSING_STATUSES = ("pass", "xpass")


@dataclass(frozen=True)
class Observation:
    """One case (spec with dtype and bias) on one backend.

    err_ratio: the worst over `failing` when it fails (inf for an error, a crash or a timeout), over all
    compared tensors when it passes (NaN when nothing was compared).
    """

    spec: ConvSpec
    backend: str
    version: str
    kind: str
    failing: tuple[str, ...] = ()
    known: bool = False
    undeclared: tuple[str, ...] = ()
    err_ratio: float = math.nan
    message: str = ""
    deviation: str = ""
    accumulation: str = ""
    inputs: InputStyle = UNIFORM

    @property
    def fails(self) -> bool:
        return self.kind in ("fail", *BROKEN_STATUSES)

    def describe(self) -> str:
        """"keras float64 bias on: fail y db" for logs."""
        what = " ".join((self.kind, *self.failing))
        return f"{self.backend} {self.spec.dtype} bias {bias_word(self.spec.bias)}: {what}"


def _ordered(tensors: Iterable[str]) -> tuple[str, ...]:
    """y, dx, dw, db in that order, then any other (a post-op operand's gradient, dpost{k}) by name."""
    chosen = set(tensors)
    return tuple(t for t in TENSORS if t in chosen) + tuple(sorted(chosen - set(TENSORS)))


def observe(spec: ConvSpec, backend: str, rows: list[Any], inputs: InputStyle = UNIFORM) -> Observation:
    """Fold the rows of one case on one backend (objects with tensor, status, err_ratio, message,
    deviation, accumulation and backend_version: `Row`s, or results.csv records) into an Observation;
    `inputs`: the style the case's values were drawn in."""
    version = str(rows[0].backend_version) if rows else ""
    accumulation = next((_text(r.accumulation) for r in rows if _text(r.accumulation)), "")
    ratios = {str(r.tensor): float(r.err_ratio) for r in rows if not _missing(r.err_ratio)}
    broken = [r for r in rows if r.status in BROKEN_STATUSES]
    if broken:
        return Observation(spec, backend, version, str(broken[0].status), (), err_ratio=math.inf,
                           message=_text(broken[0].message), accumulation=accumulation, inputs=inputs)
    failing = [r for r in rows if r.status in FAILING_STATUSES]
    if failing:
        worst = max(failing, key=lambda r: -1.0 if _missing(r.err_ratio) else float(r.err_ratio))
        return Observation(spec, backend, version, "fail", _ordered(str(r.tensor) for r in failing),
                           known=all(r.status == "xfail" for r in failing),
                           undeclared=_ordered(str(r.tensor) for r in failing if r.status == "fail"),
                           err_ratio=math.inf if _missing(worst.err_ratio) else float(worst.err_ratio),
                           message=_text(worst.message),
                           deviation=next((_text(r.deviation) for r in failing if r.status == "xfail"), ""),
                           accumulation=accumulation, inputs=inputs)
    if any(r.status in PASSING_STATUSES for r in rows):
        return Observation(spec, backend, version, "pass", err_ratio=max(ratios.values(), default=math.nan),
                           accumulation=accumulation, inputs=inputs)
    return Observation(spec, backend, version, "skip", message=_text(rows[0].message) if rows else "", inputs=inputs)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def observations_from_rows(rows: Iterable[Any]) -> list[Observation]:
    """One Observation per (case, dtype, bias, backend, inputs) among `rows`, in the order first seen, in the
    style its values were drawn in (the rows' `inputs` column: a model layer's own weights, say).

    `rows`: `Row`s or results.csv records (e.g. pandas itertuples of convparity.harness.results.read_results).
    """
    grouped: dict[tuple, list[Any]] = {}
    specs: dict[tuple, ConvSpec] = {}
    for row in rows:
        key = (str(row.case), str(row.dtype), bool(row.bias))
        grouped.setdefault((*key, str(row.backend), str(getattr(row, "inputs", "") or "")), []).append(row)
        if key not in specs:
            specs[key] = parse_case(key[0], dtype=key[1], bias=key[2]).spec
    return [observe(specs[key[:3]], key[3], group, InputStyle.parse(key[4])) for key, group in grouped.items()]
