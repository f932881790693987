"""Shrinking a failing case to a local minimum, greedily (delta debugging, as C-Reduce does for programs).

`simplifications(spec)` lists every case one simplification away, biggest steps first: a spatial
dim dropped (rank down), batch 1, groups 1, fewer channels, no bias, a convolution for a transposed
one (or no output_padding), a simpler dtype, stride 1,
dilation 1, a smaller kernel or input, padding toward 0 or made symmetric; and moves that shrink two
fields together so that a size they share stays put (a smaller kernel with a smaller input keeps the
output size; out_channels - 1 with output_size[-1] - 1 keeps them equal), without which a bug that
needs two sizes to coincide could never shrink (padding toward 0 with the input grown or cut to match
is one such move too). Every candidate is strictly smaller by `complexity`,
so shrinking ends.

`shrink` evaluates candidates in order, `jobs` at a time (one sweep per chunk, so `-j` shrinks in
parallel), and moves to the first that still fails the same way: same backend, same kind (fail,
error, crash) and the same failing tensors, whether declared (xfail) or not (`fails_the_same_way`). It stops when no
candidate does: then no single simplification of the result fails the same way (a local minimum),
or when its budget of evaluations or its time is spent (the result says which). Candidates `avoid`
says no to are never run: a search shrinking a failure that its known causes do not explain avoids
the cases they do explain, so that it does not slide into one of them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from convparity.harness.cases.spec import ConvSpec
from convparity.harness.search.evaluations import Evaluator
from convparity.harness.search.observations import Observation
from convparity.harness.search.space import build, drop_dim, with_channels, with_dim

# Simplest first: a float32 case is what a framework's users and maintainers run by default.
SIMPLER_DTYPES = ("float32", "float64", "float16", "bfloat16")


def complexity(spec: ConvSpec) -> int:
    """A size that every simplification lowers: the sum of every field's magnitude (pads count twice, and
    one more for each asymmetric dim, so that both a step toward 0 and a step toward symmetry lower it)."""
    pads = sum(2 * (abs(lo) + abs(hi)) + (lo != hi) for lo, hi in spec.padding)  # a pad toward 0 may break symmetry
    dtype = SIMPLER_DTYPES.index(spec.dtype) if spec.dtype in SIMPLER_DTYPES else len(SIMPLER_DTYPES)
    return (spec.rank + spec.batch + spec.in_channels + spec.out_channels + spec.groups + sum(spec.input_size)
            + sum(spec.kernel_size) + sum(spec.stride) + sum(spec.dilation) + pads + spec.bias
            + dtype + spec.transposed + sum(spec.output_padding) + 2 * len(spec.post_ops))


def _effective(spec: ConvSpec, dim: int) -> int:
    return (spec.kernel_size[dim] - 1) * spec.dilation[dim] + 1


def _input_for_output(spec: ConvSpec, dim: int, output: int, *, kernel: int | None = None, stride: int | None = None,
                      dilation: int | None = None, padding: tuple[int, int] | None = None) -> int:
    """The smallest input size of `dim` giving `output` outputs with the given kernel, stride, dilation, padding."""
    k = spec.kernel_size[dim] if kernel is None else kernel
    s = spec.stride[dim] if stride is None else stride
    d = spec.dilation[dim] if dilation is None else dilation
    before, after = spec.padding[dim] if padding is None else padding
    return (output - 1) * s + (k - 1) * d + 1 - before - after


def _simpler_pads(pair: tuple[int, int]) -> list[tuple[int, int]]:
    """(0, 0), then one side one step toward 0, then both sides as the one nearer 0 (symmetric)."""
    before, after = pair
    side = before if abs(before) <= abs(after) else after
    return [(0, 0), (before - (before > 0) + (before < 0), after), (before, after - (after > 0) + (after < 0)),
            (side, side)]


def _candidates(spec: ConvSpec, dtypes: tuple[str, ...]) -> Iterator[ConvSpec | None]:
    g = spec.groups
    in_per_group, out_per_group = spec.in_channels // g, spec.out_channels // g
    dims = range(spec.rank - 1, -1, -1)
    for dim in range(spec.rank):
        yield drop_dim(spec, dim)
    yield build(spec, batch=1)
    yield build(spec, groups=1)
    yield with_channels(spec, 1, in_per_group, out_per_group)
    yield with_channels(spec, g, 1, out_per_group)
    yield with_channels(spec, g, in_per_group, 1)
    yield build(spec, bias=False)
    for index in range(len(spec.post_ops)):  # a post-op left out
        yield build(spec, post_ops=spec.post_ops[:index] + spec.post_ops[index + 1:])
    if spec.transposed:  # the convolution it is the adjoint of, then no output_padding
        yield build(spec, transposed=False, output_padding=0)
        yield build(spec, output_padding=0)
    simpler = SIMPLER_DTYPES[:SIMPLER_DTYPES.index(spec.dtype)] if spec.dtype in SIMPLER_DTYPES else ()
    for dtype in simpler:
        if dtype in dtypes:
            yield build(spec, dtype=dtype)
    for dim in dims:
        yield with_dim(spec, dim, stride=1)
        yield with_dim(spec, dim, dilation=1)
        yield with_dim(spec, dim, kernel_size=1)
        yield with_dim(spec, dim, padding=(0, 0))
        yield with_dim(spec, dim, input_size=max(1, spec.input_size[dim] // 2))
    # Output-size-preserving moves: the output keeps its shape, so relations on it survive.
    for dim in dims:
        output = spec.output_size[dim]
        yield with_dim(spec, dim, stride=1, input_size=_input_for_output(spec, dim, output, stride=1))
        yield with_dim(spec, dim, dilation=1, input_size=_input_for_output(spec, dim, output, dilation=1))
        yield with_dim(spec, dim, kernel_size=1, input_size=_input_for_output(spec, dim, output, kernel=1))
        if spec.kernel_size[dim] > 1:
            k = spec.kernel_size[dim] - 1
            yield with_dim(spec, dim, kernel_size=k, input_size=_input_for_output(spec, dim, output, kernel=k))
        for pads in _simpler_pads(spec.padding[dim]):
            yield with_dim(spec, dim, padding=pads, input_size=_input_for_output(spec, dim, output, padding=pads))
    # Two sizes down together: the batch or a channel count, and the last output size by as much.
    last = spec.rank - 1

    def fewer_outputs(changed: ConvSpec | None, count: int) -> ConvSpec | None:
        size = spec.input_size[last] - count * spec.stride[last]  # exactly `count` fewer outputs
        return with_dim(changed, last, input_size=size) if changed is not None and size >= 1 else None

    if spec.batch > 1:
        yield fewer_outputs(build(spec, batch=spec.batch - 1), 1)
    if out_per_group > 1:
        yield fewer_outputs(build(spec, out_channels=spec.out_channels - g), g)
    if in_per_group > 1:
        yield fewer_outputs(build(spec, in_channels=spec.in_channels - g), g)
    if g > 2:
        yield with_channels(spec, g - 1, in_per_group, out_per_group)
    # Unit steps last: they make the result a local minimum for each field on its own.
    if spec.batch > 2:
        yield build(spec, batch=spec.batch - 1)
    if in_per_group > 2:
        yield with_channels(spec, g, in_per_group - 1, out_per_group)
    if out_per_group > 2:
        yield with_channels(spec, g, in_per_group, out_per_group - 1)
    if in_per_group > 1 and out_per_group > 1:
        yield with_channels(spec, g, in_per_group - 1, out_per_group - 1)
    for dim in dims:
        for pads in _simpler_pads(spec.padding[dim])[1:]:
            yield with_dim(spec, dim, padding=pads)
        yield with_dim(spec, dim, input_size=spec.input_size[dim] - 1)
        yield with_dim(spec, dim, kernel_size=spec.kernel_size[dim] - 1)
        if spec.stride[dim] > 2:
            yield with_dim(spec, dim, stride=spec.stride[dim] - 1)
        if spec.dilation[dim] > 2:
            yield with_dim(spec, dim, dilation=spec.dilation[dim] - 1)


def simplifications(spec: ConvSpec, dtypes: tuple[str, ...] = SIMPLER_DTYPES) -> list[ConvSpec]:
    """Every valid case one simplification away from `spec`, each strictly simpler, without repeats,
    biggest steps first. `dtypes`: the dtypes a simpler dtype may be taken from."""
    size = complexity(spec)
    seen: set[ConvSpec] = set()
    found = []
    for candidate in _candidates(spec, dtypes):
        if candidate is not None and candidate not in seen and complexity(candidate) < size:
            seen.add(candidate)
            found.append(candidate)
    return found


def fails_the_same_way(observation: Observation, target: Observation) -> bool:
    """Same backend, same kind of failure, same failing tensors (xfail counts as fail). For a target with
    undeclared failures, the same undeclared tensors, whatever else fails as declared (a declared deviation
    that depends on the values comes and goes as the case shrinks)."""
    if not (observation.fails and observation.backend == target.backend and observation.kind == target.kind):
        return False
    if target.undeclared:
        return observation.undeclared == target.undeclared
    return observation.failing == target.failing


@dataclass
class Shrunk:
    """The result of shrinking one failing observation.

    minimal: the last case that failed the same way; local_minimum: whether every simplification of
    it was tried (False when the budget or the time ran out first); path: the cases moved through, first
    to last. A search adds what it learnt of the minimal case after shrinking (harness.search.values):
    `reruns` (is it deterministic?), `values` (the case failing the same way on small integer values,
    if it does) and `state` when it was not shrunk at all (a hang; a flaky failure; an earlier finding).
    """

    start: Observation
    minimal: Observation
    local_minimum: bool
    evaluations: int
    path: list[ConvSpec] = field(default_factory=list)
    reruns: object = None  # harness.search.values.Reruns
    values: Observation | None = None
    state: str = ""


def shrink(failing: Observation, evaluator: Evaluator, *, dtypes: tuple[str, ...], budget: int = 400,
           jobs: int = 1, deadline: float = math.inf, avoid: Callable[[ConvSpec], bool] | None = None) -> Shrunk:
    """Shrink `failing` to a local minimum with at most `budget` new evaluations, `jobs` candidates at a time,
    until `deadline` (time.perf_counter()); candidates `avoid` is true of are skipped."""
    current = failing
    path = [failing.spec]
    spent = 0
    chunk = max(1, jobs)
    while True:
        candidates = [spec for spec in simplifications(current.spec, dtypes) if avoid is None or not avoid(spec)]
        moved = False
        for start in range(0, len(candidates), chunk):
            batch = candidates[start:start + chunk]
            fresh = sum((spec, current.backend) not in evaluator.cache for spec in batch)
            if spent + fresh > budget or (fresh and time.perf_counter() >= deadline):
                return Shrunk(failing, current, False, spent, path)
            spent += fresh
            observed = evaluator.observe(batch, [current.backend], phase="shrink", deadline=deadline)
            if any(current.backend not in found for found in observed):  # the time ran out
                return Shrunk(failing, current, False, spent, path)
            accepted = next((found[current.backend] for found in observed
                             if current.backend in found and fails_the_same_way(found[current.backend], current)),
                            None)
            if accepted is not None:
                current = accepted
                path.append(accepted.spec)
                moved = True
                break
        if not moved:
            return Shrunk(failing, current, True, spent, path)


def simplest(observations: list[Observation]) -> Observation:
    """The observation with the least complex case (ties: the first)."""
    best, size = observations[0], math.inf
    for observation in observations:
        if complexity(observation.spec) < size:
            best, size = observation, complexity(observation.spec)
    return best
