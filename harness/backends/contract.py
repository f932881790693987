"""The backend contract: every member of a backend that the harness reads, required or optional.

A backend is any object with these members (no base class needed):

required
- `name: str`: unique, e.g. "torch" or "torch-channels_last".
- `version() -> str`: the framework's version (called only when available). Its first word is
  the version that `Deviation.versions` ranges are matched against ("3.15.0 (tensorflow 2.21)").
- `availability() -> str | None`: None when usable here, else why not ("torch is not installed").
- `supports(spec) -> str | None`: None when the backend can run `spec`, else the reason it cannot.
- `run(spec, x, w, b, dy) -> (y, dx, dw, db)`: NumPy arrays in canonical layout, any floating
  dtype at least as wide as `spec.dtype`; `x (N, C, *in)`, `w (O, C/groups, *kernel)`, `b (O,)` or
  None when `spec.bias` is false, `dy (N, O, *out)`, all of `spec.dtype`. A forward-only backend
  returns None for the gradients. `run` may raise `Unsupported` when it finds out only while
  running that it cannot run the spec.
  A backend that declares `post_ops` or `data_types` is called `run(spec, x, w, b, dy, extras=...)` for
  a spec with a chain, scales or other data types (harness.cases.inputs.Extras: each post-op's operand,
  every scale and zero point). x, w, dy then have the spec's per-tensor data types (ConvSpec.data_types,
  dy None without gradients), b `spec.bias_dtype`; an integer y is returned as codes (an integer array,
  or floats holding integers), and the gradients of post-op operands as a fifth element,
  {"dpost{k}": array} (ConvSpec.tensors names them).

optional (read with `optional_members`, validated by `check_backend` at registration)
- `limits: tuple[Limit, ...]`: the specs it cannot run, with the framework's reason (listed by
  `convparity backends --limits`; `supports` usually answers from them with `first_limit`).
- `deviations: tuple[Deviation, ...]`: known wrong results, turning matching fails into xfail.
- `accumulation: Mapping[str, str]`: {input dtype: accumulation dtype} where it accumulates in
  other than the default (float64 for float64, float32 for the other floats, exact "int32" for 8-bit
  integer sources), e.g. {"float16": "float16"}, {"uint8:int8:uint8": "float32"} (an unfused QDQ graph).
  Never narrower than the input dtype, so no declaration can widen the bound past the dtype itself.
- `post_ops: Collection[str]`: the post-op kinds it computes fused after its convolution
  (reference_impl.post_ops.KINDS, benchdnn's aliases resolved: "relu", "clip", "sum", "binary_add",
  "prelu", "batchnorm", ...). A spec with another kind is unsupported, saying which.
- `data_types: Collection[str]`: the dtypes it computes beyond float64, float32, float16 and bfloat16
  (check_dtype's forms: "uint8:int8:uint8", "float8_e4m3"), and the float dtypes it computes with scales
  and zero points ("any": all of them, the reference's). Another spec of those kinds is unsupported,
  saying so.
- `rounding: Mapping[str, str]`: {dtype: rounding mode} of its integer outputs where it is not
  "half_even" (reference_impl.quantized.ROUNDING_MODES), e.g. {"uint8:int8:uint8": "double_rounding"}.
- `resources: Mapping[str, float]`: worker resources a task of this backend needs on a cluster,
  e.g. {"GPU": 1} (Dask resource restrictions).
- `cost: BackendCost`: what a case costs it before this machine has measured it (seconds per case
  and per GFLOP); the runner learns the real figures from each run (harness.running.cost_model).
- `thread_environment(threads) -> Mapping[str, str]`: variables a worker process of this backend needs to
  use `threads` threads (beyond OMP_NUM_THREADS and the BLAS variables every worker gets).
- `cache_environment(folder, current) -> Mapping[str, str]`: variables that put the framework's compile
  cache in `folder` (a folder per machine; the backend picks its own subfolder), or turn it off for
  None; `current` is the environment the worker starts from, whose own settings should win.
  Both are called where workers start, in a process that must not import the framework.
- `compile_seconds() -> float | None`: seconds this process has spent compiling so far, as the framework
  reports it, or None where it cannot tell (called in the backend's worker, around each case).
- `program(spec) -> Program | None`: the backend's convolution for `spec` as one self-contained function
  (harness.backends.program); `run` calls it and repro scripts print it.
"""

from __future__ import annotations

import inspect
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from convparity.harness.backends.deviations import Deviation
from convparity.harness.backends.limits import Limit
from convparity.harness.backends.program import BackendCost, Program
from convparity.harness.cases.spec import ConvSpec

if TYPE_CHECKING:
    from convparity.harness.cases.inputs import Extras
from convparity.harness.errors import ConvparityError
from convparity.harness.vocabulary import DTYPES, UNIT_ROUNDOFF, check_dtype, data_types, is_integer
from convparity.reference_impl.post_ops import KINDS
from convparity.reference_impl.quantized import ROUNDING_MODES

Outputs = tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]


@runtime_checkable
class Backend(Protocol):
    """The required members (see the module docstring for the optional ones)."""

    name: str

    def version(self) -> str: ...

    def availability(self) -> str | None: ...

    def supports(self, spec: ConvSpec) -> str | None: ...

    def run(
        self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray | None
    ) -> Outputs: ...


class OptionalMethods(Protocol):
    """The optional methods, typed (see the module docstring); a backend may have any of them or none."""

    def thread_environment(self, threads: int) -> Mapping[str, str]: ...

    def cache_environment(self, folder: Path | None, current: Mapping[str, str]) -> Mapping[str, str]: ...

    def compile_seconds(self) -> float | None: ...

    def program(self, spec: ConvSpec) -> Program | None: ...


@dataclass(frozen=True)
class OptionalMembers:
    """A backend's optional members, validated, with their defaults where it has none."""

    limits: tuple[Limit, ...] = ()
    deviations: tuple[Deviation, ...] = ()
    accumulation: Mapping[str, str] = None  # type: ignore[assignment]  # {} after __post_init__
    resources: Mapping[str, float] = None  # type: ignore[assignment]
    cost: BackendCost | None = None
    post_ops: frozenset[str] = frozenset()
    data_types: frozenset[str] = frozenset()
    rounding: Mapping[str, str] = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        object.__setattr__(self, "accumulation", dict(self.accumulation or {}))
        object.__setattr__(self, "resources", dict(self.resources or {}))
        object.__setattr__(self, "rounding", dict(self.rounding or {}))


class BackendContractError(ConvparityError, TypeError):
    """A backend that does not meet the contract; the message names the backend and the member."""


REQUIRED_METHODS = ("version", "availability", "supports", "run")
ANY_DTYPE = "any"  # `data_types` entry of a backend that computes every dtype and scale convparity has (the reference)
OPTIONAL_METHODS = tuple(name for name in vars(OptionalMethods) if not name.startswith("_"))


def _fail(backend: object, member: str, problem: str) -> BackendContractError:
    name = getattr(backend, "name", None)
    who = f"backend {name!r}" if isinstance(name, str) and name else f"backend {backend!r}"
    return BackendContractError(f"{who}: {member} {problem} (see docs/writing-a-backend.md)")


def optional_members(backend: object, *, computed: bool = True) -> OptionalMembers:
    """The optional members of `backend`, checked: a wrong type or value raises BackendContractError.

    With `computed` False, a member that is a property (computed on access, e.g. limits probed from the
    framework) is left unread and taken as its default: registration must not import a framework.
    """

    def value(member: str) -> object:
        if not computed and isinstance(inspect.getattr_static(backend, member, None), property):
            return None
        return getattr(backend, member, None)

    limits = _tuple_of(backend, "limits", Limit, value("limits"))
    deviations = _tuple_of(backend, "deviations", Deviation, value("deviations"))
    accumulation = value("accumulation") or {}
    if not isinstance(accumulation, Mapping):
        raise _fail(backend, "accumulation", f"must be a mapping of dtype names, got {type(accumulation).__name__}")
    for dtype, accumulated in accumulation.items():
        source = _dtype_name(backend, "accumulation", dtype)
        if accumulated not in (*DTYPES, "int32"):
            raise _fail(backend, "accumulation", f"maps {dtype!r} to {accumulated!r}: an accumulation is one of "
                                                 f"{', '.join(DTYPES)} or int32")
        if accumulated == "int32" and not is_integer(source):
            raise _fail(backend, "accumulation", f"declares exact int32 accumulation for {dtype}: only integer "
                                                 "sources accumulate exactly")
        if source in UNIT_ROUNDOFF and accumulated in UNIT_ROUNDOFF and (
                UNIT_ROUNDOFF[accumulated] > UNIT_ROUNDOFF[source]):
            raise _fail(backend, "accumulation", f"declares {accumulated} accumulation for {dtype} inputs: "
                                                 "an accumulation may not be narrower than its input dtype")
    post_ops = _names(backend, "post_ops", value("post_ops"), KINDS)
    data_types = frozenset(name if name == ANY_DTYPE else _dtype_name(backend, "data_types", name, whole=True)
                           for name in _names(backend, "data_types", value("data_types"), None))
    rounding = value("rounding") or {}
    if not isinstance(rounding, Mapping) or not all(mode in ROUNDING_MODES for mode in rounding.values()):
        raise _fail(backend, "rounding", f"must map dtypes to rounding modes ({', '.join(ROUNDING_MODES)}), "
                                         f"got {rounding!r}")
    rounding = {_dtype_name(backend, "rounding", dtype, whole=True): mode for dtype, mode in rounding.items()}
    resources = value("resources") or {}
    if not isinstance(resources, Mapping) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
            for k, v in resources.items()):
        raise _fail(backend, "resources", f"must map resource names to positive numbers, got {resources!r}")
    cost = value("cost")
    if cost is not None and not isinstance(cost, BackendCost):
        raise _fail(backend, "cost", f"must be a BackendCost, got {type(cost).__name__}: {cost!r}")
    for method in OPTIONAL_METHODS:
        if getattr(backend, method, None) is not None and not callable(getattr(backend, method)):
            raise _fail(backend, method, "is not callable")
    return OptionalMembers(limits, deviations, accumulation, resources, cost, post_ops, data_types, rounding)


def _dtype_name(backend: object, member: str, name: object, whole: bool = False) -> str:
    """A dtype named in a declaration, canonical; its source data type unless `whole`."""
    try:
        canonical = check_dtype(name, member)
    except ValueError as error:
        raise _fail(backend, member, str(error)) from None
    return canonical if whole else data_types(canonical)[0]


def _names(backend: object, member: str, value: object, known: tuple[str, ...] | None) -> frozenset[str]:
    """A collection of names (not one string), each of `known` where given."""
    if value is None:
        return frozenset()
    if isinstance(value, str) or not isinstance(value, Collection) or not all(isinstance(v, str) for v in value):
        raise _fail(backend, member, f"must be a collection of names, got {value!r}")
    unknown = [v for v in value if known is not None and v not in known]
    if unknown:
        raise _fail(backend, member, f"names {unknown[0]!r}, not one of {', '.join(known or ())}")
    return frozenset(value)


def attribute_refusal(name: str, members: OptionalMembers, spec: ConvSpec) -> str | None:
    """Why `spec` is beyond what the backend declares (post-op kinds, data types, scales), or None."""
    missing = [op.kind for op in spec.post_ops if op.function not in members.post_ops and op.kind not in
               members.post_ops]
    if missing:
        have = ", ".join(sorted(members.post_ops)) if members.post_ops else "none"
        return f"post-op {missing[0]}: {name} declares the fused post-ops it computes ({have})"
    if ANY_DTYPE in members.data_types:
        return None
    if spec.dtype not in DTYPES and spec.dtype not in members.data_types:
        return (f"dtype {spec.dtype}: {name} computes float64, float32, float16, bfloat16"
                + "".join(f", {t}" for t in sorted(members.data_types)))
    if not spec.quantization.is_identity and spec.dtype not in members.data_types:
        return f"scales and zero points: {name} declares none for dtype {spec.dtype}"
    return None


def step_extras(spec: ConvSpec, extras: Extras) -> dict[str, Any]:
    """What a program's step takes beyond x, w, b, dy (harness.backends.program): `operands` (one per post-op,
    None for an eltwise step) and `quantization` (every scale and zero point) as plain data; nothing for a
    plain spec."""
    if not takes_extras(spec):
        return {}
    return {"operands": tuple(extras.operands), "quantization": dict(extras.quantization)}


def takes_extras(spec: ConvSpec) -> bool:
    """Whether `run` is given `extras` for this spec: it has a chain, scales or non-float data types."""
    return bool(spec.post_ops) or not spec.quantization.is_identity or spec.dtype not in DTYPES


def _tuple_of(backend: object, member: str, kind: type, value: object) -> tuple:
    value = value or ()
    if not isinstance(value, (tuple, list)):
        raise _fail(backend, member, f"must be a tuple of {kind.__name__}, got {type(value).__name__}")
    for index, item in enumerate(value):
        if not isinstance(item, kind):
            raise _fail(backend, f"{member}[{index}]",
                        f"must be a {kind.__name__}, got {type(item).__name__}: {item!r}")
    return tuple(value)


def check_backend(backend: object) -> None:
    """Raise BackendContractError naming the backend and member where `backend` breaks the contract."""
    name = getattr(backend, "name", None)
    if not isinstance(name, str) or not name.strip():
        raise _fail(backend, "name", f"must be a non-empty string, got {name!r}")
    for member in REQUIRED_METHODS:
        if not callable(getattr(backend, member, None)):
            raise _fail(backend, member, "is missing or not callable")
    members = optional_members(backend, computed=False)
    if (members.post_ops or members.data_types) and not _accepts_extras(backend.run):  # type: ignore[attr-defined]
        raise _fail(backend, "run", "must accept the keyword argument extras: the backend declares post_ops or "
                                    "data_types")


def _accepts_extras(run: object) -> bool:
    try:
        parameters = inspect.signature(run).parameters  # type: ignore[arg-type]
    except (TypeError, ValueError):  # a builtin or extension callable: nothing to check
        return True
    return "extras" in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def declared_accumulation(backend: object, dtype: str) -> str:
    """The accumulation precision of the bound for inputs of `dtype` on `backend` (declared or default)."""
    return accumulation_of(optional_members(backend), dtype)


def accumulation_of(members: OptionalMembers, dtype: str) -> str:
    """The declared accumulation for `dtype` (the whole dtype first, then its source type), else the default."""
    return (members.accumulation.get(dtype) or members.accumulation.get(data_types(dtype)[0])
            or default_accumulation(dtype))


def default_accumulation(dtype: str) -> str:
    """float64 accumulates in float64, 8-bit integer sources exactly ("int32"); every other dtype in float32
    unless a backend declares otherwise."""
    source = data_types(dtype)[0]
    return "float64" if source == "float64" else "int32" if is_integer(source) else "float32"


def declared_rounding(members: OptionalMembers, dtype: str) -> str:
    """The rounding mode of the backend's integer outputs for `dtype` ("half_even" unless declared)."""
    return members.rounding.get(dtype, "half_even")


def environment_of(backend: object, method: str, *arguments: object) -> dict[str, str]:
    """What the backend's optional `thread_environment` or `cache_environment` returns ({} without one),
    checked to be text; BackendContractError naming the member otherwise."""
    function = getattr(backend, method, None)
    if function is None:
        return {}
    variables = function(*arguments)
    if not isinstance(variables, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                     for k, v in variables.items()):
        raise _fail(backend, method, f"must return a mapping of variable names to text, got {variables!r}")
    return dict(variables)
