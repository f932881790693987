"""Spec features: the yes/no facts about a case that rules are made of.

A feature is a named predicate over a `ConvSpec` (dtype and bias included): structure ("groups > 1",
"any dilation > 1"), padding shape ("padding asymmetric"), and relations between fields
("output_size[-1] == out_channels", the Keras channels_first bias bug). A *literal* is a feature or
its negation; a rule (convparity.harness.search.rules) is a conjunction of literals.

"any" features hold when some spatial dim has the property (dilation only where the kernel is > 1,
the only dims it changes anything in). Relations between sizes require them > 1: sizes of 1
broadcast, so a mix-up of two axes of size 1 changes nothing. `FEATURES` is in order of preference:
when the seen cases cannot tell two equally simple rules apart, the one whose features come first
is tried first (structure before relations before dtypes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from convparity.harness.cases.spec import ConvSpec
from convparity.harness.vocabulary import DTYPES


@dataclass(frozen=True)
class Feature:
    """`text` holds when `test(spec)`; `negation` is how its opposite reads."""

    text: str
    negation: str
    test: Callable[[ConvSpec], bool]


def _any(field: str, predicate: Callable[[int], bool]) -> Callable[[ConvSpec], bool]:
    return lambda spec: any(predicate(v) for v in getattr(spec, field))


def _dilated(spec: ConvSpec) -> bool:
    """Dilation > 1 in a dim whose kernel is > 1: elsewhere it changes nothing."""
    return any(d > 1 and k > 1 for d, k in zip(spec.dilation, spec.kernel_size))


def _is_dtype(name: str, spec: ConvSpec) -> bool:
    return spec.dtype == name


def _depthwise(spec: ConvSpec) -> bool:
    return spec.groups == spec.in_channels > 1


FEATURES: tuple[Feature, ...] = (
    Feature("transposed", "a convolution", lambda s: s.transposed),
    Feature("bias", "no bias", lambda s: s.bias),
    Feature("groups > 1", "groups == 1", lambda s: s.groups > 1),
    Feature("depthwise (groups == in_channels > 1)", "not depthwise", _depthwise),
    Feature("any stride > 1", "stride 1", _any("stride", lambda v: v > 1)),
    Feature("any dilation > 1", "dilation 1", _dilated),
    Feature("any padding before > 0", "no padding before", lambda s: any(lo > 0 for lo, _ in s.padding)),
    Feature("any padding after > 0", "no padding after", lambda s: any(hi > 0 for _, hi in s.padding)),
    Feature("padding asymmetric", "padding symmetric", lambda s: any(lo != hi for lo, hi in s.padding)),
    Feature("negative padding (a crop)", "no negative padding", lambda s: any(min(p) < 0 for p in s.padding)),
    Feature("any output_padding > 0", "no output_padding", lambda s: max(s.output_padding) > 0),
    Feature("any kernel size even", "kernel sizes odd", _any("kernel_size", lambda v: v % 2 == 0)),
    Feature("kernel non-square", "kernel square", lambda s: len(set(s.kernel_size)) > 1),
    Feature("kernel_size == 1", "kernel_size > 1", lambda s: max(s.kernel_size) == 1),
    Feature("rank == 1", "rank != 1", lambda s: s.rank == 1),
    Feature("rank == 2", "rank != 2", lambda s: s.rank == 2),
    Feature("rank == 3", "rank != 3", lambda s: s.rank == 3),
    Feature("batch > 1", "batch == 1", lambda s: s.batch > 1),
    Feature("in_channels > 1", "in_channels == 1", lambda s: s.in_channels > 1),
    Feature("out_channels > 1", "out_channels == 1", lambda s: s.out_channels > 1),
    Feature("output_size[-1] == out_channels > 1", "output_size[-1] != out_channels or out_channels == 1",
            lambda s: s.output_size[-1] == s.out_channels > 1),
    Feature("output_size[-1] == in_channels > 1", "output_size[-1] != in_channels or in_channels == 1",
            lambda s: s.output_size[-1] == s.in_channels > 1),
    Feature("output_size[-1] == batch > 1", "output_size[-1] != batch or batch == 1",
            lambda s: s.output_size[-1] == s.batch > 1),
    Feature("output_size == 1", "output_size > 1", lambda s: max(s.output_size) == 1),
    Feature("input_size == kernel_size", "input_size != kernel_size", lambda s: s.input_size == s.kernel_size),
    Feature("in_channels == out_channels > 1", "in_channels != out_channels or out_channels == 1",
            lambda s: s.in_channels == s.out_channels > 1),
    *(Feature(f"dtype == {name}", f"dtype != {name}", partial(_is_dtype, name)) for name in DTYPES),
)


@dataclass(frozen=True)
class Literal:
    """Feature number `feature` of FEATURES, or its negation when not `positive`."""

    feature: int
    positive: bool = True

    @property
    def text(self) -> str:
        feature = FEATURES[self.feature]
        return feature.text if self.positive else feature.negation

    def holds(self, spec: ConvSpec) -> bool:
        return FEATURES[self.feature].test(spec) == self.positive


def feature_matrix(specs: Sequence[ConvSpec]) -> np.ndarray:
    """(len(specs), len(FEATURES)) booleans: which features each spec has."""
    matrix = np.zeros((len(specs), len(FEATURES)), dtype=bool)
    for row, spec in enumerate(specs):
        matrix[row] = [feature.test(spec) for feature in FEATURES]
    return matrix


def literal_matrix(features: np.ndarray) -> np.ndarray:
    """(cases, 2 * len(FEATURES)) booleans: every feature's literal, then every negation's."""
    return np.concatenate([features, ~features], axis=1)


def literal(index: int) -> Literal:
    """The literal of column `index` of `literal_matrix`."""
    count = len(FEATURES)
    return Literal(index % count, positive=index < count)

