"""What a backend says of itself beyond its results: what a case costs it, and its convolution as a program.

`BackendCost` is the first guess of a case's time before this machine has measured the backend
(harness.running.cost_model learns the real figures from every run). `Program` is the backend's
convolution for one spec as one self-contained function, the function its `run` calls and the one a
repro script prints (harness.search.repro_script): `function(**arguments)` builds the computation
(a layer, a session, a compiled function) and returns `step`, and `step(x, w, b, dy)` returns
`(y, dx, dw, db)` as NumPy arrays in canonical layouts (None for a tensor it does not compute). For a
spec with a post-op chain, scales or other data types the step also takes `operands` and `quantization`
as keywords (plain data: harness.backends.contract.step_extras) and may return the operands' gradients
as a fifth element, {"dpost{k}": array}.

Self-contained means: a top-level `def` whose body imports what it uses (its framework and NumPy)
and reads no name of its module, and whose `arguments` are plain Python literals (ints, floats,
strings, bools, None, tuples). Then its source alone, pasted into a file, runs: the contract suite
checks exactly that (harness.testing.checks.check_program), on a namespace holding only builtins.
"""

from __future__ import annotations

import ast
import inspect
import math
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class BackendCost:
    """fixed: seconds per case whatever its size (dispatch, tracing, compiling); per_gflop: seconds per
    10^9 floating-point operations of y, dx and dw (ConvSpec.multiply_adds)."""

    fixed: float
    per_gflop: float

    def __post_init__(self) -> None:
        for name in ("fixed", "per_gflop"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not (math.isfinite(value)
                                                                                      and value >= 0):
                raise ValueError(f"BackendCost.{name} must be a finite number >= 0, got {value!r}")


def _literal(value: Any) -> bool:
    """Whether `repr(value)` reads back as `value` with ast.literal_eval (and so can be pasted into a script)."""
    try:
        return ast.literal_eval(repr(value)) == value
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


@dataclass(frozen=True)
class Program:
    """`function(**arguments)` -> step; step(x, w, b, dy) -> (y, dx, dw, db) (see the module docstring)."""

    function: Callable[..., Callable[..., tuple]]
    arguments: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not inspect.isfunction(self.function) or "." in self.function.__qualname__:
            raise ValueError(f"Program.function must be a top-level function, got {self.function!r}")
        for name, value in self.arguments.items():
            if not _literal(value):
                raise ValueError(f"Program.arguments[{name!r}] must be a plain literal, got {value!r}")
        object.__setattr__(self, "arguments", dict(self.arguments))

    @property
    def name(self) -> str:
        return self.function.__name__

    def build(self) -> Callable[..., tuple]:
        """The step for these arguments."""
        return self.function(**self.arguments)

    def source(self) -> str:
        """The function's source, as in its module (dedented)."""
        return textwrap.dedent(inspect.getsource(self.function))

    def call(self) -> str:
        """`name(key=value, ...)`: the call that builds the step, as Python text."""
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.arguments.items())
        return f"{self.name}({arguments})"
