"""Shrinking: every simplification is a valid, strictly simpler case; greedy shrinking ends at a local
minimum of the predicate it is given, and takes batch, rank, dtype, bias and sizes down as far as they go."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from convparity.harness.cases.spec import ConvSpec
from convparity.harness.search.observations import Observation
from convparity.harness.search.shrink import complexity, fails_the_same_way, shrink, simplifications
from tests.strategies import conv_specs


class PredicateEvaluator:
    """Stands in for the Evaluator: a case "fails y" on backend "b" exactly when `predicate(spec)`."""

    def __init__(self, predicate: Callable[[ConvSpec], bool]) -> None:
        self.predicate = predicate
        self.cache: dict = {}
        self.batches: list[int] = []

    def observe(self, specs, backends, phase="explore", deadline=None):
        self.batches.append(len(specs))
        for spec in specs:
            self.cache[(spec, "b")] = self.observation(spec)
        return [{"b": self.cache[(spec, "b")]} for spec in specs]

    def observation(self, spec: ConvSpec) -> Observation:
        if self.predicate(spec):
            return Observation(spec, "b", "1", "fail", ("y",), undeclared=("y",), err_ratio=5.0)
        return Observation(spec, "b", "1", "pass", err_ratio=0.1)


@settings(max_examples=60, deadline=None)
@given(conv_specs())
def test_simplifications_are_valid_distinct_and_strictly_simpler(spec):
    found = simplifications(spec)
    assert len(found) == len(set(found))
    for simpler in found:
        assert isinstance(simpler, ConvSpec) and simpler != spec
        assert complexity(simpler) < complexity(spec)


PREDICATES = {
    "groups > 1 and some stride > 1": lambda s: s.groups > 1 and max(s.stride) > 1,
    "a dim with padding before > after": lambda s: any(lo > hi for lo, hi in s.padding),
    "bias and last output == out_channels > 1": lambda s: s.bias and s.output_size[-1] == s.out_channels > 1,
    "float16 and in_channels >= 3": lambda s: s.dtype == "float16" and s.in_channels >= 3,
}


@settings(max_examples=25, deadline=None)
@given(conv_specs(), st.sampled_from(sorted(PREDICATES)), st.integers(1, 3))
def test_shrinking_ends_at_a_local_minimum(spec, name, jobs):
    predicate = PREDICATES[name]
    evaluator = PredicateEvaluator(predicate)
    start = evaluator.observation(spec)
    if not start.fails:
        return
    result = shrink(start, evaluator, dtypes=("float32", "float64", "float16", "bfloat16"), budget=10_000, jobs=jobs)
    minimal = result.minimal.spec
    assert result.local_minimum and predicate(minimal)
    assert all(not predicate(simpler) for simpler in simplifications(minimal))
    assert [complexity(s) for s in result.path] == sorted((complexity(s) for s in result.path), reverse=True)
    assert max(evaluator.batches) <= jobs
    assert minimal.batch == 1 and minimal.rank == 1
    assert minimal.dtype == ("float16" if name.startswith("float16") else "float32")
    assert minimal.bias == name.startswith("bias")


def test_relation_shrinks_to_its_smallest_sizes():
    """Two sizes that must stay equal go down together: out_channels 6 == output width 6 ends at 2 == 2."""
    spec = ConvSpec(batch=3, in_channels=4, out_channels=6, input_size=(5, 14), kernel_size=(3, 4), stride=(1, 2),
                    padding=((1, 1), (0, 0)), dtype="float64")
    assert spec.output_size[-1] == 6
    predicate = PREDICATES["bias and last output == out_channels > 1"]
    evaluator = PredicateEvaluator(predicate)
    result = shrink(evaluator.observation(spec), evaluator, dtypes=("float64", "float32"), budget=10_000)
    minimal = result.minimal.spec
    assert (minimal.batch, minimal.in_channels, minimal.out_channels, minimal.input_size, minimal.kernel_size,
            minimal.stride, minimal.padding, minimal.bias, minimal.dtype) == (
        1, 1, 2, (2,), (1,), (1,), ((0, 0),), True, "float32")


def test_a_grouped_relation_shrinks_its_channels_and_outputs_by_the_group_count():
    """Keras' float32 bias bug shows in y only when grouped: groups 2, out_channels 8 == width 8 ends at 2 == 2."""
    spec = ConvSpec(batch=1, in_channels=2, out_channels=8, input_size=(8,), kernel_size=(1,), groups=2)
    evaluator = PredicateEvaluator(lambda s: s.groups > 1 and PREDICATES["bias and last output == out_channels > 1"](s))
    result = shrink(evaluator.observation(spec), evaluator, dtypes=("float32",), budget=10_000)
    minimal = result.minimal.spec
    assert (minimal.groups, minimal.in_channels, minimal.out_channels, minimal.input_size) == (2, 2, 2, (2,))


def test_budget_stops_shrinking_and_says_so():
    spec = ConvSpec(batch=3, in_channels=4, out_channels=4, input_size=(9, 9), kernel_size=(3, 3), groups=2)
    evaluator = PredicateEvaluator(lambda s: s.groups > 1)
    result = shrink(evaluator.observation(spec), evaluator, dtypes=("float32",), budget=3)
    assert not result.local_minimum and result.evaluations <= 3 and result.minimal.spec.groups > 1


def test_fails_the_same_way_needs_the_same_kind_and_tensors():
    spec = ConvSpec(batch=1, in_channels=1, out_channels=1, input_size=(3,), kernel_size=(1,))
    declared = Observation(spec, "b", "1", "fail", ("y", "db"), known=True)
    assert fails_the_same_way(Observation(spec.replace(dtype="float64"), "b", "1", "fail", ("y", "db"),
                                          undeclared=("db",)), declared)  # xfail or fail alike
    assert not fails_the_same_way(Observation(spec, "b", "1", "fail", ("y",), known=True), declared)
    assert not fails_the_same_way(Observation(spec, "c", "1", "fail", ("y", "db"), known=True), declared)
    assert not fails_the_same_way(Observation(spec, "b", "1", "error"), Observation(spec, "b", "1", "crash"))
    new = Observation(spec, "b", "1", "fail", ("y", "dx"), undeclared=("dx",))
    # a new failure of dx: whatever declared tensors fail beside it
    assert fails_the_same_way(Observation(spec, "b", "1", "fail", ("dx", "db"), undeclared=("dx",)), new)
    assert not fails_the_same_way(Observation(spec, "b", "1", "fail", ("y", "dx"), undeclared=("y", "dx")), new)
