"""Grouping failures by cause, each group described by the rule that separates it from what passed.

Input: every observation of a backend (passing and failing cases alike) and, from a search, the
minimal cases its shrinking reached. Failures are first split by `Key`, how a case fails: a new
failure by its kind and failing tensors; a declared one (xfail) by the declaration that covers it,
which already names its cause.

A key's failing cases are then covered by rules one at a time (sequential covering, as rule
learners do): the simplest uncovered case (a minimal case first, when there is one) is the seed;
the rule is the simplest that holds on the seed and on no passing case and covers the most of the
other uncovered failures (convparity.harness.search.rules); what it covers joins the seed's group. Two
minimal cases that differ in the features a rule needs thus get their own rules and groups.

Some failures depend on the values, not on the spec: a bias added after rounding fails where it
happens to cancel much of the convolution. Then no rule separates them from passing cases (cases
with the very same features fail and pass), and covering would cut them into many small groups
fitted to chance. When the first seed's best exact rule covers fewer than a third of the key's
failing cases (or MIN_EXACT_COVER), or when the key is a declaration, the key is one group whose
rule covers the most of its cases: `value_dependent`, with its `twins` (failing cases with a
passing twin) counted, and findings.csv's `rule_exceptions` saying how many passing cases the rule
holds on.

Last, groups of one backend with the same rule, kind and declaration (or none) merge, whatever
their tensors: one cause that shows in y and db in float64 but only in db in float32 (the Keras bias
bug, where TensorFlow's fusion happens to fix y) is one group.

Negatives of a key are the backend's passing cases and its cases that failed some other way, in
every dtype and with or without bias, so a rule names dtype or bias when the cause needs them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from convparity.harness.search.features import feature_matrix
from convparity.harness.search.observations import Observation
from convparity.harness.search.rules import Fit, Rule, fit_rules
from convparity.harness.search.shrink import complexity
from convparity.harness.vocabulary import TENSORS

MIN_EXACT_COVER = 3


@dataclass(frozen=True, order=True)
class Key:
    """How a case fails on a backend: a new failure's kind and failing tensors, or a declared failure's
    declaration (`deviation`, its reason and upstream report). Dtype and bias are not part of it: they are
    spec features like any other, which a rule names when the cause needs them."""

    backend: str
    kind: str
    known: bool
    tensors: tuple[str, ...] = ()
    deviation: str = ""

    @classmethod
    def of(cls, observation: Observation) -> Key:
        """A declared failure's declaration; a new one's kind and undeclared tensors (what else fails is
        declared, with its own cause)."""
        if observation.known:
            return cls(observation.backend, observation.kind, True, deviation=observation.deviation)
        return cls(observation.backend, observation.kind, False, observation.undeclared)

    def overlaps(self, observation: Observation) -> bool:
        """Whether `observation` fails like this: same kind, and failing as the same declaration says (for a
        declared key) or with some of the same undeclared tensors (for a new one)."""
        if (observation.backend, observation.kind) != (self.backend, self.kind):
            return False
        if self.known:
            return bool(observation.deviation) and observation.deviation == self.deviation
        return self.kind != "fail" or bool(set(observation.undeclared) & set(self.tensors))

    def is_negative(self, observation: Observation) -> bool:
        """Whether `observation` shows none of this failure: it passed, or failed some other way (a
        numeric failure of other tensors or declarations; for an error or a crash, anything else)."""
        if observation.backend != self.backend or observation.kind == "skip":
            return False
        if observation.kind == "pass":
            return True
        if self.kind == "fail" and observation.kind != "fail":
            return False  # a case that raised or crashed says nothing about the numbers
        return not self.overlaps(observation)


@dataclass
class Group:
    """Failures of one backend with one cause.

    keys: the ways its cases fail; minimal: the case it shows (a shrunk one in a search); members:
    every failing case it covers; fit: the rule with how many passing cases it wrongly includes;
    ties: rules the cases seen could not tell from it; twins: members whose features equal those of
    a passing case; value_dependent: no rule separates its cases from passing ones (the failure
    depends on the values), so its rule is the one covering the most of them.
    """

    backend: str
    kind: str
    known: bool
    fit: Fit
    ties: tuple[Fit, ...]
    minimal: Observation
    members: list[Observation]
    keys: list[Key] = field(default_factory=list)
    twins: int = 0
    value_dependent: bool = False

    @property
    def rule(self) -> Rule:
        return self.fit.rule

    @property
    def dtypes(self) -> tuple[str, ...]:
        return tuple(sorted({member.spec.dtype for member in self.members}))

    @property
    def tensors(self) -> tuple[str, ...]:
        """The tensors its cases fail on: declared ones for a known group, the undeclared ones for a new one."""
        chosen = {t for member in self.members for t in (member.failing if self.known else member.undeclared)}
        return tuple(t for t in TENSORS if t in chosen)

    @property
    def bias(self) -> tuple[bool, ...]:
        return tuple(sorted({member.spec.bias for member in self.members}))

    @property
    def version(self) -> str:
        return self.minimal.version

    def fails_like(self, observation: Observation) -> bool:
        """Whether `observation` fails the way this group does."""
        return any(key.overlaps(observation) for key in self.keys)

    def is_negative(self, observation: Observation) -> bool:
        return all(key.is_negative(observation) for key in self.keys)


def exceptions(group: Group, observations: Iterable[Observation]) -> list[Observation]:
    """The cases of the group's backend that its rule holds on but that show none of its failures."""
    return [obs for obs in observations if group.is_negative(obs) and group.rule.holds(obs.spec)]


def passing_twins(failing: Sequence[Observation], negatives: Sequence[Observation]) -> int:
    """How many failing cases have the very features of some passing case: no rule can tell those apart."""
    passing = {row.tobytes() for row in feature_matrix([obs.spec for obs in negatives])}
    return sum(row.tobytes() in passing for row in feature_matrix([obs.spec for obs in failing]))


def _cover(key: Key, failing: list[Observation], negatives: list[Observation],
           seeds: Sequence[Observation]) -> list[Group]:
    """The groups of one key's failing cases (see the module docstring)."""
    uncovered = sorted(failing, key=lambda obs: complexity(obs.spec))
    seeds = sorted(seeds, key=lambda obs: complexity(obs.spec))
    negative_specs = [obs.spec for obs in negatives]
    groups: list[Group] = []
    while uncovered:
        seed = next((s for s in seeds if not any(g.rule.holds(s.spec) for g in groups)), uncovered[0])
        learned = fit_rules([seed.spec], [obs.spec for obs in uncovered], negative_specs)
        exact = learned.best.covered if learned.best.false_positives == 0 else 0
        if not groups and (key.known or exact < max(MIN_EXACT_COVER, len(uncovered) / 3)):
            # Declared, or no rule separates a good share of them: one group, the rule covering the most.
            seed = min(seeds or uncovered, key=_showing)
            learned = fit_rules([seed.spec], [obs.spec for obs in uncovered], negative_specs, coverage_first=True)
            return [Group(key.backend, key.kind, key.known, learned.best, learned.ties, seed, uncovered, [key],
                          passing_twins(uncovered, negatives), learned.best.false_positives > 0)]
        members = [obs for obs in uncovered if learned.best.rule.holds(obs.spec)]
        if seed not in members:
            members.insert(0, seed)
        groups.append(Group(key.backend, key.kind, key.known, learned.best, learned.ties, seed, members, [key],
                            passing_twins(members, negatives)))
        uncovered = [obs for obs in uncovered if obs not in members]
        seeds = [s for s in seeds if s is not seed]
    return groups


def group_failures(observations: Sequence[Observation], minimal: Sequence[Observation] = ()) -> list[Group]:
    """Every failure among `observations` in exactly one group; `minimal`: shrunk cases, seeds first.

    Groups come back sorted: new failures before declared ones, then by backend and rule.
    """
    failing: dict[Key, list[Observation]] = {}
    for observation in observations:
        if observation.fails:
            failing.setdefault(Key.of(observation), []).append(observation)
    for observation in minimal:
        members = failing.setdefault(Key.of(observation), [])
        if observation not in members:
            members.append(observation)
    groups = []
    for key in sorted(failing):
        seeds = [obs for obs in minimal if Key.of(obs) == key]
        negatives = [obs for obs in observations if key.is_negative(obs)]
        groups += _cover(key, failing[key], negatives, seeds)
    return merge(groups)


def _showing(observation: Observation) -> tuple[int, int]:
    """Which minimal case a merged group shows: the one failing the most tensors, then the simplest."""
    return -len(observation.undeclared or observation.failing), complexity(observation.spec)


def merge(groups: Sequence[Group]) -> list[Group]:
    """Groups of one backend with the same rule, kind and declaration (or none), as one; its minimal case is
    the one failing the most tensors (then the simplest), so that its script shows the whole bug."""
    merged: dict[tuple, Group] = {}
    for group in groups:
        key = (group.backend, group.kind, group.known, group.keys[0].deviation, group.rule.text)
        if key not in merged:
            merged[key] = group
            continue
        into = merged[key]
        into.keys += [k for k in group.keys if k not in into.keys]
        into.members += group.members
        into.twins += group.twins
        if _showing(group.minimal) < _showing(into.minimal):
            into.minimal = group.minimal
    return sorted(merged.values(), key=lambda g: (g.known, g.backend, g.kind, -len(g.members), g.rule.text))
