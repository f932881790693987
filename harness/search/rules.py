"""Rules: the simplest conjunction of spec features that separates failing cases from passing ones.

A `Rule` is a conjunction of up to two literals (convparity.harness.search.features): "every case", "groups > 1",
"bias and output_size[-1] == out_channels". `fit_rules` scores every rule against three sets of
cases:

- `required`: cases the rule must hold on (a group's minimal case);
- `optional`: more failing cases of the same kind, which a good rule also covers;
- `negatives`: cases that passed, on which the rule should not hold.

Rules are ranked by how many passing cases they wrongly include (fewest first), then by how many
optional cases they cover (most first: one rule for what one cause explains), then by size (fewer
literals, then fewer negations), then by the order of `FEATURES`. Rules that tie on everything but
that order are ones the cases seen cannot tell apart: `Learned.ties` lists them, and the search draws
fresh cases that separate them.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from convparity.harness.cases.spec import ConvSpec
from convparity.harness.search.features import FEATURES, Literal, feature_matrix, literal, literal_matrix

MAX_LITERALS = 2


@dataclass(frozen=True)
class Rule:
    """A conjunction of literals; no literals is the rule that holds on every case."""

    literals: tuple[Literal, ...] = ()

    @property
    def text(self) -> str:
        return " and ".join(lit.text for lit in self.literals) or "every case"

    def holds(self, spec: ConvSpec) -> bool:
        return all(lit.holds(spec) for lit in self.literals)

    @classmethod
    def from_text(cls, text: str) -> Rule:
        """The rule whose `text` this is (as findings.csv writes it); ValueError naming an unknown literal."""
        if text == "every case":
            return cls()
        known = {feature.text: Literal(i) for i, feature in enumerate(FEATURES)}
        known.update({feature.negation: Literal(i, False) for i, feature in enumerate(FEATURES)})
        unknown = [part for part in text.split(" and ") if part not in known]
        if unknown:
            raise ValueError(f"rule {text!r}: unknown feature {unknown[0]!r}")
        return cls(tuple(known[part] for part in text.split(" and ")))

    @property
    def size(self) -> tuple[int, int]:
        """(literals, negated literals): smaller is simpler."""
        return len(self.literals), sum(not lit.positive for lit in self.literals)


@dataclass(frozen=True)
class Fit:
    """How a rule fares: `false_positives` passing cases it holds on, `covered` optional cases it holds on."""

    rule: Rule
    false_positives: int
    covered: int
    order: tuple[int, ...]

    @property
    def key(self) -> tuple:
        return (self.false_positives, -self.covered, self.rule.size, self.order)

    @property
    def rank(self) -> tuple:
        """The key without the tie-break by feature order: equal ranks are rules the data cannot separate."""
        return self.key[:3]


@dataclass(frozen=True)
class Learned:
    """The best fit and the fits that tie with it (same rank), best first."""

    best: Fit
    ties: tuple[Fit, ...]


def fit_rules(required: Sequence[ConvSpec], optional: Sequence[ConvSpec], negatives: Sequence[ConvSpec],
              max_literals: int = MAX_LITERALS, *, coverage_first: bool = False) -> Learned:
    """The best rule holding on every `required` case (see the module docstring for the ranking).

    coverage_first: rank by coverage before false positives, for failures that depend on the values
    (no rule separates them exactly; the one that covers the most of them describes them best).
    """
    if not required:
        raise ValueError("required: a rule is fitted to at least one failing case")
    must = literal_matrix(feature_matrix(required)).all(axis=0)  # (L,) literals true on every required case
    optional_l = literal_matrix(feature_matrix(optional)).astype(np.int64)  # (P, L)
    negative_l = literal_matrix(feature_matrix(negatives)).astype(np.int64)  # (M, L)
    fits = [Fit(Rule(), len(negatives), len(optional), ())]
    usable = [int(i) for i in np.flatnonzero(must)]
    if max_literals >= 1:
        false_positives = negative_l.sum(axis=0)  # (L,)
        covered = optional_l.sum(axis=0)
        fits += [Fit(Rule((literal(i),)), int(false_positives[i]), int(covered[i]), (_order(i),)) for i in usable]
    if max_literals >= 2:
        both_negative = negative_l.T @ negative_l  # (L, L): passing cases where both literals hold
        both_optional = optional_l.T @ optional_l
        for a, b in itertools.combinations(usable, 2):
            if literal(a).feature == literal(b).feature:
                continue
            fits.append(Fit(Rule((literal(a), literal(b))), int(both_negative[a, b]), int(both_optional[a, b]),
                            tuple(sorted((_order(a), _order(b))))))
    def rank(fit: Fit) -> tuple:
        return (fit.covered * -1, fit.false_positives, fit.rule.size) if coverage_first else fit.rank

    fits.sort(key=lambda fit: (rank(fit), fit.order))
    best = fits[0]
    return Learned(best, tuple(fit for fit in fits if rank(fit) == rank(best)))


def _order(index: int) -> int:
    """Preference of a literal: features in FEATURES order, a feature before its negation."""
    lit = literal(index)
    return 2 * lit.feature + (not lit.positive)

