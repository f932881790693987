"""Rules recover the predicate that labelled the cases; failures with two causes make two groups; one cause
failing different tensors in different dtypes makes one; a cause with rare exceptions keeps its one rule;
hangs, crashes and errors are groups of their own kind."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from convparity.harness.cases.spec import ConvSpec
from convparity.harness.search.features import FEATURES, SpecTable
from convparity.harness.search.group import exceptions, group_failures
from convparity.harness.search.observations import Observation
from convparity.harness.search.rules import Rule, fit_rules, pair_counts
from convparity.harness.search.shrink import complexity
from convparity.harness.search.space import SpecSpace

SPACE = SpecSpace(("float64", "float32", "float16"))


def _specs(count: int, seed: int) -> list[ConvSpec]:
    rng = random.Random(seed)
    found = {SPACE.draw(rng) for _ in range(count)}
    return sorted(found, key=lambda spec: (complexity(spec), repr(spec)))  # a set: its order varies by hash seed


@pytest.mark.parametrize("text", [
    "every case", "bias", "dtype == float16", "any stride > 1 and no bias", "rank == 3 and any padding after > 0",
    "output_size[-1] == in_channels > 1", "groups > 1 and kernel_size > 1", "depthwise (groups == in_channels > 1)",
    "negative padding (a crop) and dtype != float64",
])
def test_the_labelling_rule_is_the_one_learnt(text):
    rule = Rule.from_text(text)
    assert rule.text == text
    specs = _specs(600, seed=len(text))
    positives = [s for s in specs if rule.holds(s)]
    negatives = [s for s in specs if not rule.holds(s)]
    learned = fit_rules(positives[:1], positives, negatives)
    assert set(learned.best.rule.literals) == set(rule.literals)
    assert learned.best.false_positives == 0 and learned.best.covered == len(positives)


def test_rules_the_cases_cannot_tell_apart_tie():
    """Every grouped case seen is depthwise: 'groups > 1' and 'depthwise' fit equally (groups first by order)."""
    specs = [s for s in _specs(400, seed=3) if s.groups == 1 or s.groups == s.in_channels]
    positives = [s for s in specs if s.groups > 1]
    negatives = [s for s in specs if s.groups == 1]
    learned = fit_rules(positives[:1], positives, negatives)
    assert [fit.rule.text for fit in learned.ties] == ["groups > 1", "depthwise (groups == in_channels > 1)"]


def test_features_are_named_once_and_negations_differ():
    texts = [f.text for f in FEATURES] + [f.negation for f in FEATURES]
    assert len(texts) == len(set(texts))
    spec = ConvSpec(batch=1, in_channels=2, out_channels=2, input_size=(2,), kernel_size=(1,), groups=2, bias=True)
    def features(spec: ConvSpec) -> set[str]:
        return {feature.text for feature in FEATURES if feature.test(spec)}

    assert features(spec) >= {"bias", "groups > 1", "depthwise (groups == in_channels > 1)",
                              "output_size[-1] == out_channels > 1", "in_channels == out_channels > 1"}
    assert "any dilation > 1" not in features(spec.replace(dilation=2))  # a dilated 1-wide kernel is dense


def _observe(spec: ConvSpec, failing: tuple[str, ...]) -> Observation:
    """A new failure of `failing` (none: a pass)."""
    return Observation(spec, "b", "1", "fail" if failing else "pass", failing, undeclared=failing,
                       err_ratio=9.0 if failing else 0.2)


def test_two_causes_with_the_same_symptoms_are_two_groups():
    """y fails when groups > 1 (one bug) or when dilation > 1 (another): each gets its own rule and cases."""
    observations = []
    for spec in _specs(500, seed=11):
        grouped, dilated = spec.groups > 1, Rule.from_text("any dilation > 1").holds(spec)
        observations.append(_observe(spec, ("y",) if grouped or dilated else ()))
    groups = group_failures(observations)
    assert sorted(g.rule.text for g in groups) == ["any dilation > 1", "groups > 1"]
    for group in groups:
        assert all(group.rule.holds(m.spec) for m in group.members)
        assert not exceptions(group, observations)
    assert sum(len(g.members) for g in groups) == sum(o.fails for o in observations)


def test_one_cause_with_other_tensors_in_another_dtype_is_one_group():
    """Like the Keras bias bug: y and db in float64, only db in float32 (where a fusion happens to fix y)."""
    observations = []
    for spec in _specs(500, seed=5):
        hit = spec.bias and spec.output_size[-1] == spec.out_channels > 1
        failing = (("db",) if spec.dtype == "float32" else ("y", "db")) if hit else ()
        observations.append(_observe(spec, failing))
    (group,) = group_failures(observations)
    assert group.rule.text == "bias and output_size[-1] == out_channels > 1"
    assert group.tensors == ("y", "db") and set(group.dtypes) == {"float16", "float32", "float64"}
    assert group.minimal.failing == ("y", "db")  # the case that shows the whole bug
    assert len(group.members) == sum(o.fails for o in observations)


def test_declared_and_new_failures_stay_apart():
    observations = []
    for spec in _specs(300, seed=8):
        known = spec.dtype == "float16"
        observations.append(Observation(spec, "b", "1", "fail", ("db",), known=known, deviation="d" if known else "",
                                        undeclared=() if known else ("db",)) if spec.bias else _observe(spec, ()))
    groups = group_failures(observations)
    assert [(g.known, g.rule.text) for g in groups] == [(False, "bias and dtype != float16"),
                                                        (True, "bias and dtype == float16")]


def test_failures_that_depend_on_the_values_are_one_group():
    """A bias that fails y at random (half the cases with a bias, whatever their features) is one group with
    the rule covering them all, its twins counted, rather than many small rules fitted to chance."""
    rng = random.Random(2)
    observations = [_observe(spec, ("y",) if spec.bias and rng.random() < 0.5 else ()) for spec in _specs(400, 9)]
    (group,) = group_failures(observations)
    assert group.rule.text == "bias" and group.value_dependent
    assert group.twins > 0 and len(group.members) == sum(o.fails for o in observations)


def test_a_cause_with_rare_exceptions_is_one_rule_not_many_conjunctions():
    """groups > 1 fails y, but 6% of grouped cases pass anyway (their output sees only padding, say): one group,
    "groups > 1", with its exceptions counted, where an exact learner would cut it into conjunctions."""
    rng = random.Random(4)
    observations = [_observe(spec, ("y",) if spec.groups > 1 and rng.random() > 0.06 else ())
                    for spec in _specs(600, seed=21)]
    (group,) = group_failures(observations)
    assert group.rule.text == "groups > 1" and not group.value_dependent
    grouped_passes = sum(o.spec.groups > 1 and not o.fails for o in observations)
    assert group.rule_exceptions == grouped_passes > 0 and len(group.members) == sum(o.fails for o in observations)


def test_one_cause_learnt_per_tensor_merges_under_the_broader_rule():
    """dx fails when groups > 1, y only when also strided: the y group's cases all fall under groups > 1, so the
    broader rule explains both: one group, tensors y and dx."""
    observations = []
    for spec in _specs(500, seed=13):
        grouped, strided = spec.groups > 1, max(spec.stride) > 1
        observations.append(_observe(spec, tuple(t for t, hit in (("y", grouped and strided), ("dx", grouped)) if hit)))
    (group,) = group_failures(observations)
    assert (group.rule.text, group.tensors) == ("groups > 1", ("y", "dx"))


def test_failures_no_rule_explains_beside_a_cause_are_its_misses():
    """Two stray failures beside a cause: not a value-dependent group of their own, but the cause's misses."""
    specs = _specs(400, seed=17)
    strays = [s for s in specs if s.groups == 1][:2]
    observations = [_observe(spec, ("y",) if spec.groups > 1 or spec in strays else ()) for spec in specs]
    (group,) = group_failures(observations)
    assert (group.rule.text, group.misses) == ("groups > 1", 2)
    assert {m.spec for m in group.missed} == set(strays)


def test_hangs_crashes_and_errors_are_groups_of_their_own_kind():
    """A call that hung, died or raised is its own channel, negative for it only where the call got further."""
    observations = []
    for spec in _specs(300, seed=19):
        if spec.rank == 3:
            observations.append(Observation(spec, "b", "1", "timeout", err_ratio=math.inf))
        elif max(spec.stride) > 1:
            observations.append(Observation(spec, "b", "1", "crash", err_ratio=math.inf))
        else:
            observations.append(_observe(spec, ()))
    groups = group_failures(observations)
    assert sorted((g.kind, g.rule.text) for g in groups) == [("crash", "any stride > 1"), ("timeout", "rank == 3")]


def test_the_feature_matrix_agrees_with_the_specs_own_sizes():
    """Features are computed on a table of many specs at once: its output sizes are ConvSpec's own."""
    specs = _specs(400, seed=23)
    table = SpecTable.of(specs)
    assert all(tuple(table.output_size[i, :spec.rank]) == spec.output_size for i, spec in enumerate(specs))
    for feature in FEATURES:
        assert [feature.test(spec) for spec in specs[:40]] == list(feature.test_all(SpecTable.of(specs[:40])))


@pytest.mark.parametrize("rows", [0, 1, 7, 64, 1001])
def test_pair_counts_are_the_products_of_the_feature_columns(rows):
    """Rules are counted on packed bits, not by a floating-point product: the counts are exact either way."""
    features = np.random.default_rng(rows).random((rows, len(FEATURES))) < 0.4
    expected = features.astype(np.int64).T @ features.astype(np.int64)
    np.testing.assert_array_equal(pair_counts(features), expected)
