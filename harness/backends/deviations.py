"""Known deviations as data: where a framework is known to compute a convolution wrongly, and why.

A backend declares them beside its limits (`deviations = (Deviation(...), ...)`). A deviation names
the cases it covers by fields, never by descriptor text: a predicate over the spec, the dtypes, the
tensors, bias on or off, and the framework versions (a PEP 440 specifier set). It carries a one-line
reason and where it is reported upstream.

In a sweep a `fail` row that a declaration covers reads `xfail`, with the reason in its message; a
row it covers that passes reads `xpass`: the declaration is stale (the framework was fixed, or the
declaration is too wide) and says so. Deviations never hide a row.

The backend's worker decides which declarations cover a case (`matching`), since only it holds the
predicates; what travels on to the evaluation is a picklable `DeviationRecord` per match.

Platform: a deviation may hold only on some machines (a CPU kernel that accumulates float16 in float16
where the CPU has no native float16 arithmetic; one GPU generation). Its `platform` is a `PlatformRule`,
checked in the backend's worker against the `Platform` detected there at run time (`Platform.here()`:
the CPU's feature flags as the operating system reports them), never assumed: where the features cannot
be read, a rule that needs them does not apply, so the rows show as they are. `cpu_without(...)` and
`cpu_with(...)` build the common rules; any other check (a device's compute capability, asked of the
framework in the worker) is a `PlatformRule(words, predicate)`.
This module imports nothing else of the harness but the spec's type, so plugins import it cheaply.
"""

from __future__ import annotations

import platform as _platform
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from convparity.harness.vocabulary import TENSORS

if TYPE_CHECKING:
    from convparity.harness.cases.spec import ConvSpec

NOT_REPORTED = "not reported yet"


def _every_spec(spec: ConvSpec) -> bool:
    return True


@dataclass(frozen=True)
class Platform:
    """The machine a backend's worker runs on: its architecture and, where the OS tells, its CPU's features
    (lower-case flags as Linux's /proc/cpuinfo names them: "avx512_fp16", "amx_fp16", "avx2", ...)."""

    machine: str
    cpu_features: frozenset[str]
    features_known: bool

    @staticmethod
    @cache
    def here() -> Platform:
        """This process's platform, detected once."""
        features = _cpu_features()
        return Platform(_platform.machine(), frozenset(features or ()), features is not None)

    def has(self, feature: str) -> bool:
        return feature.lower() in self.cpu_features


def _cpu_features() -> set[str] | None:
    """The CPU's feature flags (Linux: /proc/cpuinfo's `flags`, or `Features` on Arm), None where unknown."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() in ("flags", "features"):
            return set(value.lower().split())
    return None


@dataclass(frozen=True)
class PlatformRule:
    """Where a deviation holds: `words` for people ("CPU without avx512_fp16"), `applies(platform)` decides,
    in the backend's worker."""

    words: str
    applies: Callable[[Platform], bool]

    def __post_init__(self) -> None:
        if not isinstance(self.words, str) or not self.words.strip() or "\n" in self.words:
            raise ValueError(f"PlatformRule.words must be one non-empty line, got {self.words!r}")
        if not callable(self.applies):
            raise ValueError(f"PlatformRule.applies must be a predicate over the Platform, got {self.applies!r}")


def cpu_without(*features: str) -> PlatformRule:
    """Holds on a CPU that has none of `features` (known to have none: unknown features never match)."""
    wanted = tuple(f.lower() for f in features)
    return PlatformRule(f"CPU without {' or '.join(wanted)}",
                        lambda p: p.features_known and not any(p.has(f) for f in wanted))


def cpu_with(*features: str) -> PlatformRule:
    """Holds on a CPU that has every one of `features`."""
    wanted = tuple(f.lower() for f in features)
    return PlatformRule(f"CPU with {' and '.join(wanted)}", lambda p: all(p.has(f) for f in wanted))


@dataclass(frozen=True)
class DeviationRecord:
    """What a row needs of a matching declaration: its words, the tensors it covers, strictness."""

    condition: str
    reason: str
    upstream: str
    tensors: tuple[str, ...]
    strict: bool

    def covers(self, tensor: str) -> bool:
        return not self.tensors or tensor in self.tensors

    @property
    def text(self) -> str:
        """"reason (upstream)" for messages and the `deviation` column."""
        return f"{self.reason} ({self.upstream})"


@dataclass(frozen=True)
class Deviation:
    """One known deviation of a backend; every field left at its default matches everything.

    condition: the predicate in words ("bias and output_size[-1] == out_channels").
    reason:    one line, what the framework does wrong.
    upstream:  URL of the upstream report, or "not reported yet".
    applies:   predicate over the ConvSpec (its dtype and bias included).
    dtypes:    the spec dtypes covered; () for all.
    tensors:   the tensors covered, of y, dx, dw, db; () for all.
    bias:      True or False to cover only cases with or without a bias; None for both.
    versions:  PEP 440 specifier set over the framework version (">=3.15,<3.16"); "" for all.
    strict:    a covered row that passes is `xpass` (stale); False for a deviation that shows
               only on some inputs, so a pass proves nothing.
    platform:  a PlatformRule: the machines it holds on (detected in the worker); None for all.
    """

    condition: str
    reason: str
    upstream: str = NOT_REPORTED
    applies: Callable[[ConvSpec], bool] = _every_spec
    dtypes: tuple[str, ...] = ()
    tensors: tuple[str, ...] = ()
    bias: bool | None = None
    versions: str = ""
    strict: bool = True
    platform: PlatformRule | None = None

    def __post_init__(self) -> None:
        for field in ("condition", "reason", "upstream"):
            value = getattr(self, field)
            if not isinstance(value, str) or not value.strip() or "\n" in value:
                raise ValueError(f"Deviation.{field} must be one non-empty line, got {value!r}")
        unknown = [t for t in self.tensors if t not in TENSORS]
        if unknown:
            raise ValueError(f"Deviation.tensors: unknown tensor {unknown[0]!r} (known: {', '.join(TENSORS)})")
        if not callable(self.applies):
            raise ValueError(f"Deviation.applies must be a predicate over the spec, got {self.applies!r}")
        if self.versions:
            _specifier(self.versions)  # raises ValueError naming the field
        if self.platform is not None and not isinstance(self.platform, PlatformRule):
            raise ValueError("Deviation.platform must be a PlatformRule (cpu_without(...), ...), "
                             f"got {self.platform!r}")

    def covers_version(self, version: str) -> bool:
        """Whether `version` (the framework's, e.g. "3.15.0") is in the declared range."""
        if not self.versions:
            return True
        from packaging.version import InvalidVersion, Version

        try:
            return Version(version) in _specifier(self.versions)
        except InvalidVersion:
            return False

    def covers_platform(self, platform: Platform | None = None) -> bool:
        """Whether this declaration holds on `platform` (default: the one this process runs on)."""
        return self.platform is None or bool(self.platform.applies(platform or Platform.here()))

    def covers_case(self, spec: ConvSpec, version: str, platform: Platform | None = None) -> bool:
        """Whether this declaration covers `spec` (with its dtype and bias) on framework `version`, here."""
        return (
            (not self.dtypes or spec.dtype in self.dtypes)
            and (self.bias is None or spec.bias == self.bias)
            and self.covers_version(version)
            and bool(self.applies(spec))
            and self.covers_platform(platform)
        )

    def record(self) -> DeviationRecord:
        condition = self.condition + (f"; on a {self.platform.words}" if self.platform else "")
        return DeviationRecord(condition, self.reason, self.upstream, self.tensors, self.strict)

    def describe(self) -> str:
        """One line for `convparity backends --limits`: what it covers, why, where it is reported."""
        parts = [self.condition]
        if self.dtypes:
            parts.append("dtype " + "/".join(self.dtypes))
        if self.bias is not None:
            parts.append("bias " + ("on" if self.bias else "off"))
        if self.tensors:
            parts.append("tensors " + ", ".join(self.tensors))
        if self.versions:
            parts.append("versions " + self.versions)
        if self.platform is not None:
            parts.append(f"on a {self.platform.words} ({'applies' if self.covers_platform() else 'not'} here)")
        return f"{'; '.join(parts)}: {self.reason} ({self.upstream})"


def _specifier(text: str):
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        raise ValueError(f"Deviation.versions: {text!r} is not a PEP 440 specifier set "
                         "such as '>=3.15,<3.16'") from None


def matching(deviations: Iterable[Deviation], spec: ConvSpec, backend_version: str,
             platform: Platform | None = None) -> tuple[DeviationRecord, ...]:
    """The records of every declaration covering `spec`, in declaration order, on `platform` (default: this
    process's, detected). `backend_version` is what the backend's version() says; its first word is the
    framework version ("3.15.1 (tensorflow 2.21.0)" -> 3.15.1)."""
    words = str(backend_version).split()
    version = words[0] if words else ""
    return tuple(d.record() for d in deviations if d.covers_case(spec, version, platform))
