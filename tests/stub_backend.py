"""A minimal backend for tests that exercise the harness rather than a framework.

`StubBackend(name, outputs=..., accumulation=...)` is available, supports every spec and returns
`outputs` from `run` (raising if none were given), so the one evaluation path judges exactly them.
"""

from __future__ import annotations

from typing import Any


class StubBackend:
    def __init__(self, name: str = "stub", outputs: Any = None, **members: Any):
        self.name = name
        self.outputs = outputs
        for member, value in members.items():  # optional contract members, e.g. accumulation
            setattr(self, member, value)

    def version(self) -> str:
        return "1"

    def availability(self) -> None:
        return None

    def supports(self, spec) -> None:
        return None

    def run(self, spec, x, w, b, dy):
        if self.outputs is None:
            raise AssertionError(f"backend {self.name!r} is not meant to run")
        return self.outputs
