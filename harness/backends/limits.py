"""Framework limits as data: which specs a backend cannot run, and the framework's own reason.

Each backend keeps one tuple of `Limit`s; its `supports(spec)` returns the first matching reason, and
reports show the lists (`convparity backends --limits`), so no limit hides in a scattered `if`.
`Unsupported` is what a backend's `run` raises for a spec it finds out only then it cannot run.
This module imports nothing else of the harness, so a plugin can import it cheaply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from convparity.harness.cases.spec import ConvSpec


class Unsupported(Exception):
    """Raised by a backend's `run` for a spec it cannot express; the message is the reason."""


@dataclass(frozen=True)
class Limit:
    """`condition` says in words which specs it covers; `reason` is what the framework says."""

    condition: str
    reason: str
    applies: Callable[[ConvSpec], bool]


def first_limit(limits: Iterable[Limit], spec: ConvSpec) -> str | None:
    """The reason of the first limit that applies to `spec` ("condition: reason"), or None."""
    for limit in limits:
        if limit.applies(spec):
            return f"{limit.condition}: {limit.reason}"
    return None


# For a plugin that adapts its framework's convolution but not (yet) its transposed convolution.
CONVOLUTION_ONLY = Limit(
    condition="transposed convolution",
    reason="this plugin runs the framework's convolution only; its transposed convolution is not adapted yet",
    applies=lambda spec: spec.transposed,
)


class DeclaredLimits:
    """Mixin for backends whose `supports` is answered from their `limits` alone (a class attribute or a property:
    the mixin declares none itself, so either kind may define it)."""

    def supports(self, spec: ConvSpec) -> str | None:
        return first_limit(getattr(self, "limits", ()), spec)
