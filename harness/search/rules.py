"""Rules: the broadest conjunction of spec features that holds where a failure happens, and (nearly) nowhere else.

A `Rule` is a conjunction of up to two literals (convparity.harness.search.features): "every case", "groups > 1",
"bias and output_size[-1] == out_channels". A rule is scored against two sets of cases, given as
literal matrices (convparity.harness.search.features.literal_matrix):

- `positives`: cases that fail the way being explained;
- `negatives`: cases known not to fail that way.

`covered` is how many positives a rule holds on, `false_positives` how many negatives. A rule is
*acceptable* when at most EXCEPTION_SHARE of the cases it holds on are negatives: a cause has rare
exceptions (a stride that changes nothing where the output has one element, outputs that see only
padding), and a rule that must have none would be cut to fit them ("groups > 1 and kernel square",
"groups > 1 and stride 1", ... instead of "groups > 1").

Among acceptable rules the one covering the most positives wins (one cause, one rule), then the one with
fewer literals (a single feature before a conjunction), then fewer negations, then the order of
`FEATURES`. Then it is *narrowed* while an acceptable narrower rule (one that holds on no case seen where
it does not) and keeps all but EXCEPTION_SHARE of its failures leaves out a region that mostly passes and
fails far less often than the narrower rule's own cases do (at least SIGNIFICANT_EXCEPTIONS passing cases
there, and so few failures that the narrower rule's rate would give as few with probability under
NARROWING_LEVEL; every case known counts: explained or not, walked through while shrinking or not):
"every case" does not swallow a cause that most cases happen to have ("padding asymmetric"), a
relation that fails only with a bias gets its "bias", and a rule never grows a literal to dodge its
scattered exceptions. Rules that tie on all but that order are ones the cases seen cannot tell apart:
`Learned.ties` lists them, and the search draws fresh cases that separate them
(convparity.harness.search.check).

`coverage_first` ranks by coverage alone (any rule, acceptable or not), then narrows the same way: for
failures no acceptable rule explains (they depend on the values, or on chance), the rule that covers the
most of them describes them best.

Counting is vectorised: single literals by column sums, pairs by one matrix product (literals x
literals), so a rule over 50,000 cases is chosen in well under a second.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from convparity.harness.cases.spec import ConvSpec
from convparity.harness.search.features import FEATURES, Literal, feature_matrix, literal, literal_matrix

MAX_LITERALS = 2
EXCEPTION_SHARE = 0.1  # the share of the cases an acceptable rule holds on that may be exceptions
SIGNIFICANT_EXCEPTIONS = 3  # passing cases a narrower rule must leave out to be taken


@dataclass(frozen=True)
class Rule:
    """A conjunction of literals; no literals is the rule that holds on every case."""

    literals: tuple[Literal, ...] = ()

    @property
    def text(self) -> str:
        return " and ".join(lit.text for lit in self.literals) or "every case"

    def holds(self, spec: ConvSpec) -> bool:
        return bool(self.holds_all([spec])[0])

    def holds_all(self, specs: Sequence[ConvSpec]) -> np.ndarray:
        """(len(specs),) booleans: where the rule holds."""
        return self.holds_on(feature_matrix(specs))

    def holds_on(self, features: np.ndarray) -> np.ndarray:
        """Where the rule holds, given the cases' feature matrix (cases, len(FEATURES))."""
        held = np.ones(len(features), dtype=bool)
        for lit in self.literals:
            held &= features[:, lit.feature] == lit.positive
        return held

    def implies(self, other: Rule) -> bool:
        """Whether every case this rule holds on is one `other` holds on, by their literals alone."""
        return set(other.literals) <= set(self.literals)

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
    """How a rule fares: `false_positives` negatives it holds on, `covered` positives it holds on."""

    rule: Rule
    false_positives: int
    covered: int
    order: tuple[int, ...]

    @property
    def acceptable(self) -> bool:
        """At most EXCEPTION_SHARE of the cases it holds on are negatives (and it holds on some positive)."""
        return self.covered > 0 and self.false_positives <= EXCEPTION_SHARE * (self.covered + self.false_positives)


@dataclass(frozen=True)
class Learned:
    """The best fit and the fits that tie with it (same rank), best first; `supported`: the best is acceptable and
    has the support asked for (see `learn`)."""

    best: Fit
    ties: tuple[Fit, ...]
    supported: bool = True


def learn(positives: np.ndarray, negatives: np.ndarray, *, required: np.ndarray | None = None,
          max_literals: int = MAX_LITERALS, coverage_first: bool = False,
          known_positives: np.ndarray | None = None, known_negatives: np.ndarray | None = None,
          seeds: np.ndarray | None = None, support: int = 1, unseeded_support: int = 1) -> Learned:
    """The best rule for `positives` against `negatives` (literal matrices, (cases, 2 * len(FEATURES)) booleans).

    required: literal rows (cases, 2 * len(FEATURES)) the rule must hold on (none: any rule). known_positives,
    known_negatives: every case known to fail this way (`positives`, those still to explain, among them) and
    every case known not to (`negatives`, those a rule is chosen by, among them); they tell a narrower rule's
    region apart (see the module docstring). Default: the same as positives and negatives. seeds: literal rows
    of the cases shrinking reached; a rule takes part only when it covers `support` positives and holds on a
    seed, or covers `unseeded_support` (among 2,000 rules, one fits a few failures that chance scattered).
    Every candidate is counted and ranked on arrays; Fit objects are made for the best one and its ties only.
    """
    width = 2 * len(FEATURES)
    must = np.ones(width, dtype=bool) if required is None or not len(required) else required.all(axis=0)
    usable = np.flatnonzero(must)
    known = positives if known_positives is None else known_positives
    passed = negatives if known_negatives is None else known_negatives
    candidates = _Candidates(usable, max_literals, positives, negatives, known, passed)
    hits, wrong, literals, negations = candidates.hits, candidates.wrong, candidates.literals, candidates.negations
    seeded = candidates.holds_on_some(seeds) if seeds is not None and len(seeds) else np.zeros(len(hits), dtype=bool)
    acceptable = ((hits > 0) & (wrong <= EXCEPTION_SHARE * (hits + wrong))
                  & (((hits >= support) & seeded) | (hits >= unseeded_support)))
    eligible = (hits > 0) if coverage_first else acceptable
    best = candidates.first((~eligible, -hits, literals, negations))
    for _ in range(max_literals):  # narrow the rule while a narrower one leaves out a region that mostly passes
        if not eligible[best]:
            break
        inside = candidates.inside(best, np.concatenate([known, passed]))
        region_hits = candidates.known_hits[best] - candidates.known_hits
        region_wrong = candidates.known_wrong[best] - candidates.known_wrong
        narrower = (eligible & inside & (hits >= (1 - EXCEPTION_SHARE) * hits[best])  # keeps nearly every failure
                    & (region_wrong >= SIGNIFICANT_EXCEPTIONS) & (2 * region_hits < region_hits + region_wrong))
        narrower[best] = False
        for index in np.flatnonzero(narrower):  # does the region fail far less often than the narrower rule's cases?
            hit, miss = candidates.known_hits[index], candidates.known_wrong[index]
            rate = (hit + 1) / (hit + miss + 2)
            narrower[index] = _at_most(int(region_hits[index]), int(region_hits[index] + region_wrong[index]),
                                       rate) < NARROWING_LEVEL
        if not narrower.any():
            break
        best = candidates.first((~narrower, -hits, literals, wrong, negations))
    ranks = (-hits, wrong, literals, negations)
    tied = np.flatnonzero(np.all([rank == rank[best] for rank in ranks], axis=0))
    tied = tied[np.lexsort((candidates.high[tied], candidates.low[tied]))]
    ties = tuple(candidates.fit(int(i)) for i in tied[:MAX_TIES_KEPT])
    return Learned(ties[0], ties, bool(acceptable[best]))


class _Candidates:
    """Every rule over the usable literals (none, one, or two of different features) as arrays: its literals,
    how many positives (`hits`), negatives (`wrong`), known positives and known negatives it holds on."""

    def __init__(self, usable: np.ndarray, max_literals: int, positives: np.ndarray, negatives: np.ndarray,
                 known: np.ndarray, passed: np.ndarray) -> None:
        self.usable = usable
        count = len(usable)
        feature_of = usable % len(FEATURES)
        one, two = [np.array([-1])], [np.array([-1])]
        if max_literals >= 1 and count:
            one.append(np.arange(count))
            two.append(np.full(count, -1))
        if max_literals >= 2 and count > 1:
            a, b = np.triu_indices(count, k=1)
            keep = feature_of[a] != feature_of[b]
            one.append(a[keep])
            two.append(b[keep])
        self.one, self.two = np.concatenate(one), np.concatenate(two)
        self.hits, self.wrong = self.counts(positives), self.counts(negatives)
        self.known_hits, self.known_wrong = self.counts(known), self.counts(passed)
        self.literals = (self.one >= 0).astype(np.int64) + (self.two >= 0)
        negated = (usable >= len(FEATURES)).astype(np.int64)
        self.negations = (np.where(self.one >= 0, negated[np.maximum(self.one, 0)], 0)
                          + np.where(self.two >= 0, negated[np.maximum(self.two, 0)], 0))
        orders = np.array([_order(int(i)) for i in usable], dtype=np.int64)
        first = np.where(self.one >= 0, orders[np.maximum(self.one, 0)], -1)
        second = np.where(self.two >= 0, orders[np.maximum(self.two, 0)], first)
        self.low, self.high = np.minimum(first, second), np.maximum(first, second)  # the order tie-break

    def counts(self, rows: np.ndarray) -> np.ndarray:
        """How many of `rows` (literal matrix) each candidate holds on. Only the features' own counts are
        computed (a negated literal's follow: n(a and not b) = n(a) - n(a and b)): singles by column sums,
        pairs by `pair_counts`."""
        total = len(rows)
        if not total:
            return np.zeros(len(self.one), dtype=np.int64)
        count = len(FEATURES)
        features = rows[:, :count]
        held = features.sum(axis=0, dtype=np.int64)  # (F,)
        both = pair_counts(features)  # (F, F)
        literal_index = self.usable[np.maximum(self.one, 0)], self.usable[np.maximum(self.two, 0)]
        (fa, pa), (fb, pb) = ((index % count, index < count) for index in literal_index)
        single = np.where(pa, held[fa], total - held[fa])
        a_and_b = both[fa, fb]
        pair = np.select([pa & pb, pa & ~pb, ~pa & pb],
                         [a_and_b, held[fa] - a_and_b, held[fb] - a_and_b], total - held[fa] - held[fb] + a_and_b)
        return np.where(self.one < 0, total, np.where(self.two < 0, single, pair)).astype(np.int64)

    def inside(self, index: int, rows: np.ndarray) -> np.ndarray:
        """Which candidates hold on none of `rows` where candidate `index` does not: rules narrower than it."""
        holds = np.ones(len(rows), dtype=bool)
        for literal_index in (self.one[index], self.two[index]):
            if literal_index >= 0:
                holds &= rows[:, self.usable[literal_index]]
        return self.counts(rows[~holds]) == 0

    def holds_on_some(self, rows: np.ndarray) -> np.ndarray:
        """Which candidates hold on at least one of `rows` (literal matrix)."""
        one = rows[:, self.usable[np.maximum(self.one, 0)]] | (self.one < 0)  # (rows, candidates)
        two = rows[:, self.usable[np.maximum(self.two, 0)]] | (self.two < 0)
        return np.asarray((one & two).any(axis=0), dtype=bool)

    def first(self, ranks: tuple[np.ndarray, ...]) -> int:
        return int(np.lexsort((self.high, self.low, *reversed(ranks)))[0])  # the last key sorts first

    def fit(self, index: int) -> Fit:
        chosen = [int(self.usable[i]) for i in (self.one[index], self.two[index]) if i >= 0]
        return Fit(Rule(tuple(literal(i) for i in chosen)), int(self.wrong[index]), int(self.hits[index]),
                   tuple(sorted(_order(i) for i in chosen)))


MAX_TIES_KEPT = 8  # rules tying with the best one that are kept (the check separates the first few)
NARROWING_LEVEL = 0.01  # how unlikely a region's failures must be, at the narrower rule's rate, to narrow


def _at_most(count: int, trials: int, rate: float) -> float:
    """P(X <= count) for X ~ Binomial(trials, rate)."""
    if count >= trials:
        return 1.0
    if rate >= 1.0:
        return 0.0
    terms = [math.lgamma(trials + 1) - math.lgamma(i + 1) - math.lgamma(trials - i + 1) + i * math.log(rate)
             + (trials - i) * math.log1p(-rate) for i in range(count + 1)]
    top = max(terms)
    return math.exp(top) * sum(math.exp(t - top) for t in terms)


def pair_counts(features: np.ndarray) -> np.ndarray:
    """(F, F) int64: for each pair of columns of the boolean matrix `features` (cases, F), how many rows have
    both. Each column is packed into bits and every pair's AND counted: no floating-point product, so no BLAS
    threads (which, on a busy machine, spin and wait for a core for longer than the counting takes)."""
    packed = np.packbits(features, axis=0).T  # (F, cases / 8)
    width = -(-packed.shape[1] // 8) * 8
    words = np.zeros((packed.shape[0], width), dtype=np.uint8)
    words[:, :packed.shape[1]] = packed
    if hasattr(np, "bitwise_count"):  # NumPy 2
        wide = words.view(np.uint64)
        return np.bitwise_count(wide[:, None, :] & wide[None, :, :]).sum(axis=2, dtype=np.int64)
    return _BITS[words[:, None, :] & words[None, :, :]].sum(axis=2, dtype=np.int64)


_BITS = np.array([bin(byte).count("1") for byte in range(256)], dtype=np.uint8)


def fit_rules(required: Sequence[ConvSpec], optional: Sequence[ConvSpec], negatives: Sequence[ConvSpec],
              max_literals: int = MAX_LITERALS, *, coverage_first: bool = False) -> Learned:
    """The best rule holding on every `required` case, for the failing cases `optional` against the passing
    `negatives` (specs; see `learn`)."""
    if not required:
        raise ValueError("required: a rule is fitted to at least one failing case")
    return learn(literal_matrix(feature_matrix(optional)), literal_matrix(feature_matrix(negatives)),
                 required=literal_matrix(feature_matrix(required)), max_literals=max_literals,
                 coverage_first=coverage_first)


def _order(index: int) -> int:
    """Preference of a literal: features in FEATURES order, a feature before its negation."""
    lit = literal(index)
    return 2 * lit.feature + (not lit.positive)
