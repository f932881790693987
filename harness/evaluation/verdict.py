"""The one path from (backend, spec, seed) to rows: every verdict in convparity is decided here.

It has two halves, so that each runs where it belongs:

- `run_backend(backend, spec, seed)`, in the backend's own worker: asks `supports`, draws the
  inputs, calls `run`, and validates everything it returned (a tuple of four, each tensor a
  floating array of the right shape and at least the input's precision, or None for a gradient it
  does not compute). The result is `Ran` (outputs plus the problems found, the accumulation the
  bound will use and the declared deviations covering the case) or `Status` (unsupported, error).
  Whatever a backend returns, nothing malformed leaves its worker.
- `case_rows(spec, name, seed, tolerance_factor, results)`, in a reference worker: computes the
  float64 reference once for every backend that ran, compares each tensor under the bound, and
  applies the declared deviations (fail -> xfail, pass -> xpass). If the reference itself fails,
  every backend that ran gets `reference-error` rows, never a status charged to the backend.

`evaluate_case` runs both halves in this process: the contract suite, `convparity explain` and the
tests call it, the sweep's workers call the halves, and no other code judges outputs.
"""

from __future__ import annotations

import math
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from convparity.harness.backends.contract import (
    Backend,
    accumulation_of,
    attribute_refusal,
    declared_rounding,
    optional_members,
    takes_extras,
)
from convparity.harness.backends.deviations import DeviationRecord, matching
from convparity.harness.backends.limits import Unsupported
from convparity.harness.cases.inputs import UNIFORM, Inputs, InputStyle, make_inputs
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.errors import describe_exception
from convparity.harness.evaluation.bound import TensorComparison, compare_with_bound
from convparity.harness.evaluation.chain_bound import code_window, tensor_bounds
from convparity.harness.evaluation.reference import Reference, codes_under, reference
from convparity.harness.evaluation.steps import StepComparison, compare_steps
from convparity.harness.results import Row, bias_word
from convparity.harness.vocabulary import INTEGER_RANGE, TENSORS, UNIT_ROUNDOFF


@dataclass(frozen=True)
class Ran:
    """A backend's validated outputs for one case.

    outputs: {tensor: array} for spec.tensors: y (N, O, *out), dx (N, C, *in), dw (O, C/groups, *kernel),
    db (O,), dpost{k} (post-op k's operand's shape) as NumPy arrays (floats; an integer y as codes), or None
    where the backend computes no such tensor.
    problems: (tensor, why) for tensors that fail before any comparison (wrong shape, narrower dtype).
    accumulation: the precision the bound assumes for this backend and dtype; rounding: its declared rounding
    of an integer y.
    deviations: the backend's declared deviations that cover this case.
    compile_seconds: the part of `seconds` the framework reported compiling (None: it does not report it).
    """

    outputs: dict[str, np.ndarray | None]
    seconds: float
    accumulation: str
    problems: tuple[tuple[str, str], ...] = ()
    deviations: tuple[DeviationRecord, ...] = ()
    compile_seconds: float | None = None
    rounding: str = "half_even"


@dataclass(frozen=True)
class Status:
    """A result without outputs: unsupported, error, crash, timeout or reference-error, with why."""

    status: str
    message: str
    seconds: float = math.nan


@dataclass(frozen=True)
class BackendResult:
    """One backend's part in a case: its name, version and what it returned."""

    backend: str
    version: str
    result: Ran | Status


# -- the backend's half ----------------------------------------------------------------------------

def run_backend(backend: Backend, spec: ConvSpec, seed: int, version: str = "",
                inputs: InputStyle = UNIFORM) -> Ran | Status:
    """One case on one backend in this process: validated outputs, or unsupported / error with the reason.

    `version` is the backend's version (the first word selects the declared deviations); asked of the
    backend when not given. `inputs`: how the case's values are drawn (harness.cases.inputs).
    """
    try:
        members = optional_members(backend)
    except Exception as error:  # noqa: BLE001 - a broken declaration is the backend's error
        return Status("error", describe_exception(error))
    refusal = attribute_refusal(backend.name, members, spec)
    if refusal:
        return Status("unsupported", refusal)
    try:
        reason = backend.supports(spec)
    except Exception as error:  # noqa: BLE001 - a plugin's exception is a result, not a harness failure
        return Status("error", f"supports() raised {describe_exception(error)}")
    if reason is not None and not (isinstance(reason, str) and reason.strip()):
        return Status("error", f"supports() returned {reason!r}: it must return None or the reason it cannot run")
    if reason:
        return Status("unsupported", reason)
    try:
        drawn = drawn_inputs(spec, seed, inputs)
    except InputsTooLarge as error:  # beyond this machine: no backend can be asked
        return Status("unsupported", str(error))
    except MemoryError as error:  # our side, before the backend's own call: never its row
        return Status("harness-error", f"drawing the inputs failed: {describe_exception(error)}")
    compiled = _compile_seconds(backend)
    start = time.perf_counter()
    try:
        if takes_extras(spec):
            run_with_extras: Any = backend.run  # the contract's optional keyword (harness.backends.contract)
            outputs = run_with_extras(spec, drawn.x, drawn.w, drawn.b, drawn.dy, extras=drawn.extras)
        else:
            outputs = backend.run(spec, drawn.x, drawn.w, drawn.b, drawn.dy)
    except Unsupported as error:
        return Status("unsupported", str(error) or "run() raised Unsupported", time.perf_counter() - start)
    except Exception as error:  # noqa: BLE001
        return Status("error", describe_exception(error), time.perf_counter() - start)
    seconds = time.perf_counter() - start
    after = _compile_seconds(backend) if compiled is not None else None
    try:
        arrays, problems = validate_outputs(spec, outputs)
        accumulation = accumulation_of(members, spec.dtype)
        deviations = matching(members.deviations, spec, version or backend.version())
    except InvalidOutputs as error:
        return Status("error", str(error), seconds)
    except Exception as error:  # noqa: BLE001 - a broken declaration or version() is the backend's error
        return Status("error", describe_exception(error), seconds)
    return Ran(arrays, seconds, accumulation, problems, deviations,
               None if compiled is None or after is None else max(after - compiled, 0.0),
               declared_rounding(members, spec.dtype))


def _compile_seconds(backend: Backend) -> float | None:
    """What the backend's optional `compile_seconds()` says (None without one, or when it fails)."""
    report = getattr(backend, "compile_seconds", None)
    if report is None:
        return None
    try:
        value = report()
    except Exception:  # noqa: BLE001 - a timing aid, never a reason to fail the case
        return None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class InputsTooLarge(Exception):
    """A case whose inputs need more memory than this machine has available (the message says how much)."""


def drawn_inputs(spec: ConvSpec, seed: int, inputs: InputStyle = UNIFORM) -> Inputs:
    """make_inputs(spec, seed, inputs), refused up front (InputsTooLarge) when drawing them would need more memory than
    is available here: each of x, w, b, dy is drawn in float64, then cast."""
    need = 16 * sum(math.prod(shape) for name, shape in spec.shapes.items() if name in ("x", "w", "dy")
                    or name.startswith("post")) + 16 * spec.out_channels
    available = available_memory()
    if available is not None and need > available:
        raise InputsTooLarge(f"this machine cannot hold the case: its inputs need about {need / 2**30:.3g} GiB to "
                             f"draw, more than the {available / 2**30:.3g} GiB available here")
    return make_inputs(spec, seed, inputs)


def available_memory() -> int | None:
    """Bytes of memory available to this process now (Linux: MemAvailable), or None where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


class InvalidOutputs(ValueError):
    """What `run` returned is not (y, dx, dw, db) of floating arrays: an `error` row, with why."""


def validate_outputs(spec: ConvSpec, outputs: object,
                     ) -> tuple[dict[str, np.ndarray | None], tuple[tuple[str, str], ...]]:
    """{tensor: plain NumPy array or None} for spec.tensors, and the tensors that fail as returned.

    `outputs` is (y, dx, dw, db), or (y, dx, dw, db, {"dpost{k}": array}) for a chain whose operands have
    gradients. Raises InvalidOutputs for what cannot be compared at all: not such a tuple, y None, a tensor that
    is not an array of floats (an integer y: of integers or floats). A wrong shape or a dtype narrower than the
    tensor's data type (ConvSpec.dtype_of) is a problem of that tensor: its row fails, saying so.
    """
    if not isinstance(outputs, (tuple, list)) or len(outputs) not in (len(TENSORS), len(TENSORS) + 1):
        raise InvalidOutputs(f"run() must return (y, dx, dw, db), got {_kind(outputs)}")
    returned: dict[str, object] = dict(zip(TENSORS, outputs))
    if len(outputs) > len(TENSORS):
        extra = outputs[len(TENSORS)]
        if extra is not None and not isinstance(extra, dict):
            raise InvalidOutputs(f"run() returned {_kind(extra)} as its fifth element: expected a dict of post-op "
                                 "operand gradients {'dpost0': array, ...}")
        returned.update(extra or {})
    if returned.get("y") is None:
        raise InvalidOutputs("run() returned None for y: every backend computes the forward output")
    expected = spec.shapes
    arrays: dict[str, np.ndarray | None] = {}
    problems: list[tuple[str, str]] = []
    for tensor in spec.tensors:
        out = returned.get(tensor)
        if out is None:
            arrays[tensor] = None
            continue
        try:
            array = np.asarray(out)
        except Exception as error:  # noqa: BLE001 - an object NumPy cannot read
            raise InvalidOutputs(f"run() returned {tensor} as {_kind(out)}: {describe_exception(error)}") from None
        integer_codes = tensor == "y" and spec.integer_output and array.dtype.kind in "iu"
        width = float_precision(array.dtype)
        if width is None and not integer_codes:
            raise InvalidOutputs(f"run() returned {tensor} as {_kind(out)} of dtype {array.dtype}, "
                                 "expected an array of floats" + (" or integers" if tensor == "y" and
                                                                  spec.integer_output else ""))
        array = np.ascontiguousarray(array).view(np.ndarray)
        dtype = spec.dtype_of(tensor)
        if array.shape != expected[tensor]:
            problems.append((tensor, f"{tensor} has shape {array.shape}, expected {expected[tensor]}"))
        elif width is not None and dtype in UNIT_ROUNDOFF and width > UNIT_ROUNDOFF[dtype]:
            problems.append((tensor, f"{tensor} returned as {array.dtype}, narrower than the {dtype} inputs"))
        arrays[tensor] = array
    return arrays, tuple(problems)


def float_precision(dtype: np.dtype) -> float | None:
    """The unit roundoff of a floating dtype (bfloat16 and other ml_dtypes floats included), else None."""
    if dtype.names is not None or dtype.subdtype is not None:
        return None
    if dtype.kind == "f":
        return float(np.finfo(dtype).eps) / 2
    if dtype.kind == "V":
        try:
            import ml_dtypes

            return float(ml_dtypes.finfo(dtype).eps) / 2
        except (ImportError, TypeError, ValueError):
            return None
    return None


def _kind(value: object) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return type(value).__name__


# -- the reference's half --------------------------------------------------------------------------

def repro(spec: ConvSpec, backend: str, seed: int, tolerance_factor: float = 1.0,
          inputs: InputStyle = UNIFORM) -> str:
    """The command line that re-runs and explains this case alone, with the same inputs and under the same bound."""
    words = ["convparity", "explain", spec.descriptor, "-b", backend, "--dtype", spec.dtype, "--seed", str(seed),
             "--bias", bias_word(spec.bias)]
    if tolerance_factor != 1.0:
        words += ["--tolerance-factor", repr(tolerance_factor)]
    if not inputs.is_default:
        words += ["--inputs", inputs.text]
    return shlex.join(words)


def case_rows(spec: ConvSpec, name: str, seed: int, tolerance_factor: float,
              results: Sequence[BackendResult], compared: Sequence[str] | None = None,
              inputs: InputStyle = UNIFORM) -> list[Row]:
    """The rows of one case for every backend in `results`, in that order, for the tensors in `compared`
    (default spec.tensors; a benchdnn batch file's --dir may ask for fewer than all); `inputs`: the style
    the backends' values were drawn in.

    The reference is computed once, only when some backend ran; if computing it raises, every
    backend that ran gets `reference-error` rows with the reason.
    """
    ref: Reference | Status | None = None
    rows: list[Row] = []
    for part in results:
        result = part.result
        if isinstance(result, Ran) and ref is None:
            try:
                ref = reference(spec, make_inputs(spec, seed, inputs))
            except Exception as error:  # noqa: BLE001 - MemoryError included: the reference's own failure
                ref = Status("reference-error", f"the reference failed: {describe_exception(error)}")
        if isinstance(result, Ran) and isinstance(ref, Status):
            result = Status(ref.status, ref.message, result.seconds)
        if isinstance(result, Status):
            rows += status_rows(spec, name, part.backend, part.version, seed, result.status, result.message,
                                result.seconds, inputs=inputs)
        else:
            assert isinstance(ref, Reference)
            rows += compare_rows(spec, name, part.backend, part.version, seed, result, ref,
                                 tolerance_factor=tolerance_factor, inputs=inputs)
    chosen = spec.tensors if compared is None else compared
    return [row for row in rows if row.tensor in chosen]


def _base(spec: ConvSpec, name: str, backend: str, version: str, seed: int, tolerance_factor: float = 1.0,
          inputs: InputStyle = UNIFORM) -> dict:
    return {**Row.spec_columns(spec), "name": name, "backend": backend, "backend_version": version,
            "reduction": 0, "repro": repro(spec, backend, seed, tolerance_factor, inputs),
            "inputs": "" if inputs.is_default else inputs.text}


def status_rows(
    spec: ConvSpec, name: str, backend: str, version: str, seed: int, status: str, message: str,
    seconds: float = math.nan, *, inputs: InputStyle = UNIFORM,
) -> list[Row]:
    """The same status for every tensor of the case (unsupported, error, crash, timeout, reference-error)."""
    base = _base(spec, name, backend, version, seed, inputs=inputs)
    return [Row(**base, tensor=t, status=status, message=message, seconds=seconds) for t in spec.tensors]


def compare_rows(spec: ConvSpec, name: str, backend: str, version: str, seed: int, ran: Ran, ref: Reference, *,
                 tolerance_factor: float = 1.0, inputs: InputStyle = UNIFORM) -> list[Row]:
    """One row per tensor: pass/fail under the bound (an integer y: in steps), then xfail/xpass where a declared
    deviation covers it."""
    base = _base(spec, name, backend, version, seed, tolerance_factor, inputs)
    base["compile_seconds"] = math.nan if ran.compile_seconds is None else ran.compile_seconds
    reductions = spec.reductions
    problems = dict(ran.problems)
    bounds = tensor_bounds(spec, ref, accumulation=ran.accumulation, tolerance_factor=tolerance_factor)
    rows = []
    for tensor in spec.tensors:
        out = ran.outputs.get(tensor)
        base.update(reduction=reductions.get(tensor, 0), accumulation=ran.accumulation)
        if out is None:
            rows.append(Row(**base, tensor=tensor, status="unsupported", seconds=ran.seconds,
                            message=f"{backend} computes no {tensor}" + (" (forward only)" if tensor in (
                                "dx", "dw", "db") else "")))
            continue
        if tensor in problems:
            row = Row(**base, tensor=tensor, status="fail", err_ratio=math.inf, message=problems[tensor],
                      seconds=ran.seconds)
        elif tensor == "y" and spec.integer_output:
            result = compare_codes(spec, out, ref, ran, tolerance_factor)
            row = Row(**base, tensor=tensor, seconds=ran.seconds, rounding=ran.rounding, **step_columns(result))
        else:
            comparison = compare_with_bound(tensor, out, ref.values[tensor], bounds[tensor],
                                            dtype=spec.dtype_of(tensor))
            row = Row(**base, tensor=tensor, seconds=ran.seconds, **comparison_columns(comparison))
        rows.append(apply_deviations(row, ran.deviations))
    return rows


def compare_codes(spec: ConvSpec, out: np.ndarray, ref: Reference, ran: Ran, tolerance_factor: float,
                  ) -> StepComparison:
    """An integer y against the spec's rounding, the backend's declared rounding and the window of its arithmetic."""
    codes = ref.codes
    assert codes is not None
    if out.shape != ref.values["y"].shape:
        return StepComparison(False, {}, 0, 0, math.inf, None, math.nan, math.nan,
                              f"y has shape {tuple(out.shape)}, expected {tuple(ref.values['y'].shape)}")
    try:
        declared = codes_under(spec, codes, ran.rounding)
    except ValueError:  # a rounding the reference cannot apply to this case (double_rounding with a float source)
        declared = ref.values["y"]
    window = code_window(spec, ref, accumulation=ran.accumulation, tolerance_factor=tolerance_factor)
    low, high = INTEGER_RANGE[spec.data_types[2]]
    return compare_steps(out, ref.values["y"], declared, codes.real, codes.hard_ties, window,
                         rounding=ran.rounding, low=low, high=high)


def step_columns(result: StepComparison) -> dict:
    """The Row fields of an integer tensor's comparison in steps."""
    return dict(
        status="pass" if result.passed else "fail", err_ratio=result.err_ratio, max_abs_err=float(result.max_steps),
        max_rel_err=math.nan,
        worst_index="" if result.worst_index is None else "(" + ", ".join(map(str, result.worst_index)) + ")",
        worst_value=result.worst_value, worst_reference=result.worst_reference, allclose=result.histogram.get(
            "exact", 0) == sum(result.histogram.values()) and result.passed,
        message=result.message, steps=result.steps_text if result.histogram else "", max_steps=result.max_steps,
    )


def comparison_columns(result: TensorComparison) -> dict:
    """The Row fields of one tensor comparison."""
    return dict(
        status="pass" if result.passed else "fail", err_ratio=result.err_ratio, max_abs_err=result.max_abs_err,
        max_rel_err=result.max_rel_err,
        worst_index="" if result.worst_index is None else "(" + ", ".join(map(str, result.worst_index)) + ")",
        worst_value=result.worst_value, worst_reference=result.worst_reference, allclose=result.allclose,
        message=result.message,
    )


def apply_deviations(row: Row, deviations: Sequence[DeviationRecord]) -> Row:
    """`row` with a covering declaration applied: fail -> xfail, pass -> xpass (strict ones); else as it is."""
    covering = [d for d in deviations if d.covers(row.tensor)]
    if not covering or row.status not in ("pass", "fail"):
        return row
    if row.status == "fail":
        declared = covering[0]
        row.status = "xfail"
        row.message = f"known deviation: {declared.reason}; {row.message}".rstrip("; ")
    else:
        strict = [d for d in covering if d.strict]
        if not strict:
            return row
        declared = strict[0]
        row.status = "xpass"
        row.message = f"declared deviation did not happen (stale declaration?): {declared.reason}"
    row.deviation = declared.text
    return row


def evaluate_case(backend: Backend, spec: ConvSpec, *, name: str = "", seed: int = 0,
                  tolerance_factor: float = 1.0, inputs: InputStyle = UNIFORM) -> tuple[Ran | Status, list[Row]]:
    """Both halves in this process: what the backend returned and the case's rows (no availability check)."""
    version = backend.version()
    result = run_backend(backend, spec, seed, version, inputs)
    rows = case_rows(spec, name, seed, tolerance_factor, (BackendResult(backend.name, version, result),),
                     inputs=inputs)
    return result, rows
