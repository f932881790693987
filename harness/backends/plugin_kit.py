"""What most backend plugins need and would otherwise each write again (reached through convparity.plugin).

- `Framework`: the framework's module, imported lazily, once per process, with the variables it must see
  before its first import set (a user's own values win); `missing()` says why it does not import and
  which extra installs it, for `availability()`; `version()` is its distribution's version without
  importing it.
- `installed_version(*distributions)`: the first installed one's version, without importing anything.
- `widened(array)`: an input array as a framework can read it: contiguous, and bfloat16 (which few
  frameworks read from NumPy) as the float32 array of the same values.
- `program_arguments(spec)`: a spec's geometry and dtype as the plain keyword arguments of a `Program`.
- `BuildClock`: the seconds this process spent building steps (a compiler's `compile_seconds`).
- probed limits: `Probe` (a feature, the specs that have it, a tiny example), `tiny_spec`, `dtype_probes`
  and `probed_limits`, which runs each example and turns the framework's refusal into a `Limit` whose
  reason is the framework's own message. A newer framework that runs the example drops the limit.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from importlib import metadata
from types import ModuleType
from typing import Any, TypeVar

import numpy as np

from convparity.harness.backends.contract import takes_extras
from convparity.harness.backends.limits import Limit
from convparity.harness.cases.inputs import make_inputs
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.vocabulary import DTYPES

_LOADED: dict[str, ModuleType] = {}
T = TypeVar("T")


class BuildClock:
    """Seconds this process has spent building steps, for a compiling backend's `compile_seconds` (where the
    framework does not report its own compile time: building a step is nearly all compiling)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def timed(self, build: Callable[[], T]) -> T:
        """build(), its time added to `seconds` (a failed build's too)."""
        start = time.perf_counter()
        try:
            return build()
        finally:
            self.seconds += time.perf_counter() - start


@dataclass(frozen=True)
class Framework:
    """module: the import name ("torch", "mlx.core"); extra: convparity's extra that installs it;
    distribution: its package on the index, for `version` (default: the module's top-level name);
    environment: variables set before the first import unless already set; configure: called once with
    the module right after it is imported (e.g. to enable float64)."""

    module: str
    extra: str
    distribution: str = ""
    environment: Mapping[str, str] = field(default_factory=dict)
    configure: Callable[[ModuleType], None] | None = None

    def load(self) -> ModuleType:
        """The module, imported (and configured) on the first call in this process."""
        if self.module not in _LOADED:
            for name, value in self.environment.items():
                os.environ.setdefault(name, value)
            module = importlib.import_module(self.module)
            if self.configure is not None:
                self.configure(module)
            _LOADED[self.module] = module
        return _LOADED[self.module]

    def missing(self) -> str | None:
        """None when the module imports, else why not and how to install it (an `availability()` answer)."""
        try:
            self.load()
        except ImportError as error:
            return f"{self.module} is not installed (pip install 'convparity[{self.extra}]'): {error}"
        return None

    def version(self) -> str:
        """The installed distribution's version, read from its metadata (nothing is imported)."""
        name = self.distribution or self.module.split(".")[0]
        return installed_version(name) or "not installed"


def installed_version(*distributions: str) -> str | None:
    """The version of the first of `distributions` that is installed, or None (nothing is imported)."""
    for distribution in distributions:
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return None


def widened(array: np.ndarray) -> np.ndarray:
    """`array` contiguous, bfloat16 as float32 (which holds every bfloat16 value exactly)."""
    if array.dtype.name == "bfloat16":
        return array.astype(np.float32)
    return np.ascontiguousarray(array)


def program_arguments(spec: ConvSpec, **extra: Any) -> dict[str, Any]:
    """stride, padding ((before, after) per dim), dilation, groups, dtype, bias, and for a transposed spec
    output_padding: the spec as plain keyword arguments (plus `extra`, e.g. a device). A spec with a post-op
    chain adds `post_ops` (post_op_arguments); one with scales or integer types `quantization` (its bias data type
    and rounding: the values themselves come to the step)."""
    arguments: dict[str, Any] = dict(stride=spec.stride, padding=spec.padding, dilation=spec.dilation,
                                     groups=spec.groups, dtype=spec.dtype, bias=spec.bias)
    if spec.transposed:
        arguments["output_padding"] = spec.output_padding
    if spec.post_ops:
        arguments["post_ops"] = post_op_arguments(spec)
    if spec.quantized or spec.integer_output or not spec.quantization.is_identity:
        arguments["quantization"] = (("bias_dtype", spec.bias_dtype), ("rounding", spec.quantization.rounding))
    return {**arguments, **extra}


def post_op_arguments(spec: ConvSpec) -> tuple[tuple[tuple[str, Any], ...], ...]:
    """The chain as plain data: per step (("kind", k), ("alpha", a), ("beta", b), ("scale", s), ("zero_point", z),
    ("mask", m)), the kind with benchdnn's aliases resolved (reference_impl.post_ops)."""
    return tuple((("kind", op.function), ("alpha", op.alpha), ("beta", op.beta), ("scale", op.scale),
                  ("zero_point", op.zero_point), ("mask", op.mask)) for op in spec.post_ops)


@dataclass(frozen=True)
class Probe:
    """A feature a framework may refuse: `applies` picks the specs with it, `example` is a tiny one."""

    condition: str
    applies: Callable[[ConvSpec], bool]
    example: ConvSpec


def tiny_spec(rank: int = 1, **fields: Any) -> ConvSpec:
    """The smallest convolution that shows one feature: x (1, 1, 4, ...), w (1, 1, 2, ...), unless `fields` say
    otherwise."""
    shape: dict[str, Any] = dict(batch=1, in_channels=1, out_channels=1, input_size=(4,) * rank,
                                 kernel_size=(2,) * rank)
    return ConvSpec(**{**shape, **fields})


def has_dtype(dtype: str, spec: ConvSpec) -> bool:
    return spec.dtype == dtype


def dtype_probes(rank: int = 2, **fields: Any) -> tuple[Probe, ...]:
    """One probe per dtype: does the framework run a tiny convolution of that dtype at all."""
    return tuple(Probe(f"dtype {dtype}", partial(has_dtype, dtype), tiny_spec(rank, dtype=dtype, **fields))
                 for dtype in DTYPES)


def probed_limits(probes: Iterable[Probe], run: Callable[..., object], refused: tuple[type[BaseException], ...],
                  reason: Callable[[BaseException], str]) -> tuple[Limit, ...]:
    """A Limit for each probe whose example `run(spec, x, w, b, dy)` (with `extras=` for a spec with a chain, scales
    or other data types) refuses with one of `refused`; its reason is `reason(error)` (the framework's own words).
    Anything else `run` raises propagates."""
    limits = []
    for probe in probes:
        inputs = make_inputs(probe.example, 0)
        extras = {"extras": inputs.extras} if takes_extras(probe.example) else {}
        try:
            run(probe.example, inputs.x, inputs.w, inputs.b, inputs.dy, **extras)
        except refused as error:
            limits.append(Limit(probe.condition, reason(error), probe.applies))
    return tuple(limits)
