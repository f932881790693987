"""Grouping failures by cause, each group described by the rule that separates it from what passed.

Input: every observation of a backend (passing and failing cases alike) and, from a search, the
minimal cases its shrinking reached. Per failure `Key` (how a case fails: backend, kind, failing
tensors, declared or not) the failing cases are covered by rules one at a time (sequential
covering, as rule learners do): the simplest uncovered case (a minimal case first, when there is one)
is the seed; the rule is the simplest one that holds on the seed, holds on no passing case, and
covers the most of the other uncovered failures (harness.search.rules); what it covers joins the
seed's group. Two minimal cases that differ in the features a rule needs thus get their own rules and groups,
while failures that share a cause share a rule.

Then groups of one backend with the same rule, kind and declared-ness merge, whatever their
tensors: one cause that shows in y and db in float64 but only in db in float32 (the Keras bias bug,
where TensorFlow's fusion happens to fix y) is one group.

Negatives of a key are the backend's passing cases and its cases that failed only other tensors, in
every dtype and with or without bias, so a rule names dtype or bias when the cause needs them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from harness.results import TENSORS
from harness.search.observations import Observation
from harness.search.rules import Fit, Learned, Rule, fit_rules
from harness.search.shrink import complexity


@dataclass(frozen=True, order=True)
class Key:
    """How a case fails on a backend: kind, failing tensors, declared (xfail) or not. Dtype and bias are
    not part of it: they are spec features like any other, which a rule names when the cause needs them."""

    backend: str
    kind: str
    tensors: tuple[str, ...]
    known: bool

    @classmethod
    def of(cls, observation: Observation) -> Key:
        return cls(observation.backend, observation.kind, observation.failing, observation.known)


@dataclass
class Group:
    """Failures of one backend with one cause.

    keys: the ways its cases fail (tensors, declared or not); minimal: its simplest case (a shrunk one
    in a search); members: every failing case it covers; fit: the rule with how many passing cases it
    wrongly includes; ties: rules the cases seen could not tell from it.
    """

    backend: str
    kind: str
    known: bool
    fit: Fit
    ties: tuple[Fit, ...]
    minimal: Observation
    members: list[Observation]
    keys: list[Key] = field(default_factory=list)

    @property
    def rule(self) -> Rule:
        return self.fit.rule

    @property
    def dtypes(self) -> tuple[str, ...]:
        return tuple(sorted({member.spec.dtype for member in self.members}))

    @property
    def tensors(self) -> tuple[str, ...]:
        chosen = {t for key in self.keys for t in key.tensors}
        return tuple(t for t in TENSORS if t in chosen)

    @property
    def bias(self) -> tuple[bool, ...]:
        return tuple(sorted({member.spec.bias for member in self.members}))

    @property
    def version(self) -> str:
        return self.minimal.version

    @property
    def err_ratio(self) -> float:
        return self.minimal.err_ratio

    def fails_like(self, observation: Observation) -> bool:
        """Whether `observation` fails the way this group does: same kind, declared or not alike, on some of
        its tensors (any for an error or a crash)."""
        if observation.backend != self.backend or observation.kind != self.kind or observation.known != self.known:
            return False
        return self.kind != "fail" or bool(set(observation.failing) & set(self.tensors))


def is_negative(kind: str, tensors: Sequence[str], known: bool, observation: Observation) -> bool:
    """Whether `observation` shows no failure of `kind` on `tensors` that is declared (`known`) or not as
    these are: it passed, failed only other tensors or the other way (declared vs new), or (for an error
    or a crash) ran to the end."""
    if observation.kind in ("pass", "skip"):
        return observation.kind == "pass"
    if kind != "fail":
        return observation.kind not in (kind, "error", "crash")
    return observation.kind == "fail" and (observation.known != known or not set(observation.failing) & set(tensors))


def negatives_of(key: Key, observations: Iterable[Observation]) -> list[Observation]:
    """The cases of `key.backend` that show no failure of this kind on its tensors."""
    return [obs for obs in observations
            if obs.backend == key.backend and is_negative(key.kind, key.tensors, key.known, obs)]


def exceptions(group: Group, observations: Iterable[Observation]) -> list[Observation]:
    """The cases of the group's backend that its rule holds on but that show none of its failures."""
    return [obs for obs in observations if obs.backend == group.backend
            and is_negative(group.kind, group.tensors, group.known, obs) and group.rule.holds(obs.spec)]


def _cover(key: Key, failing: list[Observation], negatives: list[Observation],
           seeds: Sequence[Observation]) -> list[Group]:
    """Sequential covering of one key's failing cases (see the module docstring)."""
    uncovered = sorted(failing, key=lambda obs: complexity(obs.spec))
    seeds = sorted(seeds, key=lambda obs: complexity(obs.spec))
    negative_specs = [obs.spec for obs in negatives]
    groups: list[Group] = []
    while uncovered:
        seed = next((s for s in seeds if not any(g.rule.holds(s.spec) for g in groups)), uncovered[0])
        learned: Learned = fit_rules([seed.spec], [obs.spec for obs in uncovered], negative_specs)
        members = [obs for obs in uncovered if learned.best.rule.holds(obs.spec)]
        if seed not in members:
            members.insert(0, seed)
        groups.append(Group(key.backend, key.kind, key.known, learned.best, learned.ties, seed, members, [key]))
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
        groups += _cover(key, failing[key], negatives_of(key, observations), seeds)
    return merge(groups)


def _showing(observation: Observation) -> tuple[int, int]:
    """Which minimal case a merged group shows: the one failing the most tensors, then the simplest."""
    return -len(observation.failing), complexity(observation.spec)


def merge(groups: Sequence[Group]) -> list[Group]:
    """Groups of one backend with the same rule, kind and declared-ness, as one; its minimal case is the one
    failing the most tensors (then the simplest), so that its script shows the whole bug."""
    merged: dict[tuple, Group] = {}
    for group in groups:
        key = (group.backend, group.kind, group.known, group.rule.text)
        if key not in merged:
            merged[key] = group
            continue
        into = merged[key]
        into.keys += [k for k in group.keys if k not in into.keys]
        into.members += group.members
        if _showing(group.minimal) < _showing(into.minimal):
            into.minimal = group.minimal
    return sorted(merged.values(), key=lambda g: (g.known, g.backend, g.kind, -len(g.members), g.rule.text))

