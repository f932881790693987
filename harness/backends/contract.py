"""The backend contract: what a plugin registers and the harness calls.

A backend is any object with these members (no base class needed):

- `name`: unique string, e.g. "torch" or "torch-channels_last".
- `version() -> str`: the framework's version (called only when available).
- `availability() -> str | None`: None when usable here, else why not ("torch is not installed").
- `supports(spec) -> str | None`: None when the backend can run `spec`, else the reason it cannot.
- `run(spec, x, w, b, dy) -> (y, dx, dw, db)`: NumPy arrays in canonical layout, any floating
  dtype; `x (N, C, *in)`, `w (O, C/groups, *kernel)`, `b (O,)` or None when `spec.bias` is false,
  `dy (N, O, *out)`, all of `spec.dtype`. A forward-only backend returns None for the gradients.
  `run` may raise `Unsupported` when it discovers only while running that it cannot run the spec.
- optional `accumulation`: {input dtype: accumulation dtype} where it accumulates in other than
  float32 (float64 for float64 inputs), e.g. {"float16": "float16"}; the error bound follows it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from harness.cases.spec import ConvSpec

Outputs = tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]


@runtime_checkable
class Backend(Protocol):
    name: str

    def version(self) -> str: ...

    def availability(self) -> str | None: ...

    def supports(self, spec: ConvSpec) -> str | None: ...

    def run(
        self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray
    ) -> Outputs: ...


def missing_framework(load: Callable[[], object], framework: str, extra: str) -> str | None:
    """None when `load()` imports the framework, else why not and how to install it (for `availability`)."""
    try:
        load()
    except ImportError as error:
        return f"{framework} is not installed (pip install 'convparity[{extra}]'): {error}"
    return None


def declared_accumulation(backend: object, dtype: str) -> str | None:
    """The accumulation dtype `backend` declares for inputs of `dtype`, or None for the default.

    A backend declares it as an attribute mapping input dtypes to accumulation dtypes, e.g.
    `accumulation = {"float16": "float16"}`; dtypes it does not name keep the default bound.
    """
    return dict(getattr(backend, "accumulation", None) or {}).get(dtype)


def check_backend(backend: object) -> None:
    """Raise TypeError naming the missing member when `backend` does not meet the contract."""
    for member in ("name", "version", "availability", "supports", "run"):
        if not hasattr(backend, member):
            raise TypeError(f"backend {backend!r} has no {member!r}: see docs/writing-a-backend.md")
    if not isinstance(backend.name, str) or not backend.name:  # type: ignore[attr-defined]
        raise TypeError(f"backend {backend!r} must have a non-empty string name")
