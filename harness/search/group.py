"""Grouping failures by cause, each group described by the rule that says where its failure happens.

Input: every observation of a backend (passing and failing cases alike) and, from a search, the
minimal cases its shrinking reached. A failure is learnt per *channel*, one thing that can go wrong:
a tensor that fails undeclared ("fail", "dx"), a declaration that covers a failure ("known", its text),
or the call itself: it raised ("error"), killed its worker ("crash") or hung ("timeout"). A rule says
where one channel's failure happens, so one cause gets one rule whichever tensors it shows in, and two
causes behind the same symptom (dx wrong when strided, and dx wrong with 1x1 kernels) get one each.

For each channel, `positives` are the cases that show it and `negatives` those known not to: a case
that passed it (a tensor that agreed, or a case with no such tensor), or, for the call's failures, a
case that got further (a case that ran is negative for "error"; one that raised, for "crash"; one that
ended at all, for "timeout"). A case that raised says nothing about its numbers, and a declared
failure of a tensor is negative for its undeclared channel. Rules are learnt from negatives drawn to be
representative (explored, checked): the cases a search `walked` through while shrinking crowd the very
corner where a cause stops showing (sizes of 1, outputs of padding only), so they count among a rule's
exceptions when it is reported, not against it when it is chosen.

1. Covering (as rule learners do): the acceptable rule covering the most of the channel's uncovered
   failures (convparity.harness.search.rules: at most EXCEPTION_SHARE of the cases it holds on may be
   negatives, so a cause's rare exceptions do not cut it into conjunctions) makes a group of what it
   covers; repeat while such a rule is supported: it covers at least MIN_SUPPORT failures and holds on a
   case shrinking reached (a local minimum of this failure: strong evidence of its cause), or covers at
   least UNSEEDED_SUPPORT (or all of them, when the channel has fewer): among 2,000 candidate rules, one
   fits a few failures that chance scattered.
   Failures no such rule explains are exceptions of the channel's largest group (`misses`, which a search
   settles in turn: if they have a cause of their own, its shrinking gives them the cases to show it); in
   a channel with no group, they are one group whose rule covers the most of them: `value_dependent`, for
   failures that depend on the values or on chance (a bias that happens to cancel the convolution; a
   flaky backend). A declaration's failures are always one group (the declaration already names their
   cause).
2. Merging: groups of one backend and kind (with or without a declaration) merge when they have the same
   rule, or when one's rule holds on all but EXCEPTION_SHARE of the other's cases and is not itself a
   value-dependent rule: the broader rule explains them both (the Keras bias bug fails y and db in
   float64 but only db in float32, where TensorFlow's fusion happens to fix y: one group, "bias and
   output_size[-1] == out_channels > 1"). Its minimal case is one its rule holds on, a shrunk one first,
   showing the most of its channels (so that its script shows the whole bug), then the simplest; a
   value-dependent group's is a shrunk one first (its rule separates nothing; the settled case was run
   again, and says whether the backend is flaky).

Everything is counted on boolean arrays (one feature row per spec, masks per channel), so grouping
50,000 failures takes seconds (benchmarks/group_speed.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass, field

import numpy as np

from convparity.harness.search.features import feature_matrix, literal_matrix
from convparity.harness.search.observations import Observation
from convparity.harness.search.rules import EXCEPTION_SHARE, Fit, Rule, learn
from convparity.harness.search.shrink import complexity
from convparity.harness.vocabulary import TENSORS

MIN_SUPPORT = 3  # failures a rule holding on a shrunk case must cover to make a group (unless there are fewer)
UNSEEDED_SUPPORT = 8  # failures a rule holding on no shrunk case must cover
CALL_KINDS = ("error", "crash", "timeout")  # the call failed: no tensor came back

Channel = tuple[str, str]  # ("fail", tensor) | ("known", declaration) | (kind, "") for a failed call


@dataclass(frozen=True, order=True)
class Key:
    """How a case fails on a backend: a new failure's kind and failing tensors, or a declared failure's
    declaration (`deviation`, its reason and upstream report). The search shrinks the first failure of each
    key (a new way to fail); dtype and bias are not part of it: they are spec features like any other."""

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


def channels(observation: Observation) -> tuple[Channel, ...]:
    """The channels a failing observation shows (none for a pass or a skip)."""
    if observation.kind in CALL_KINDS:
        return ((observation.kind, ""),)
    if observation.kind != "fail":
        return ()
    shown: tuple[Channel, ...] = tuple(("fail", t) for t in observation.undeclared)
    return shown + ((("known", observation.deviation),) if observation.deviation else ())


def negative(observation: Observation, channel: Channel) -> bool:
    """Whether `observation` shows that `channel`'s failure does not happen (see the module docstring)."""
    kind = observation.kind
    what, detail = channel
    if what == "fail":
        return kind == "pass" or (kind == "fail" and detail not in observation.undeclared)
    if what == "known":
        return kind == "pass" or (kind == "fail" and observation.deviation != detail)
    ended = {"error": ("pass", "fail"), "crash": ("pass", "fail", "error"),
             "timeout": ("pass", "fail", "error", "crash")}[what]
    return kind in ended


def _kind(channel: Channel) -> str:
    return "fail" if channel[0] in ("fail", "known") else channel[0]


@dataclass
class Group:
    """Failures of one backend with one cause.

    kind: fail, error, crash or timeout; known: a declaration covers them; fit: the rule, with how many
    negatives and positives of its channels it holds on; ties: rules the cases seen could not tell from
    it; minimal: the case it shows (a shrunk one in a search); members: every failing case it covers;
    channels: what goes wrong (see the module docstring); misses: members its rule does not hold on
    (exceptions it explains no better); twins: members whose features equal those of a negative case;
    value_dependent: no acceptable rule separates its cases from passing ones (the failure depends on
    the values, or on chance), so its rule is the one covering the most of them; rule_exceptions: the
    negatives its rule holds on.
    """

    backend: str
    kind: str
    known: bool
    fit: Fit
    ties: tuple[Fit, ...]
    minimal: Observation
    members: list[Observation]
    channels: list[Channel] = field(default_factory=list)
    twins: int = 0
    value_dependent: bool = False
    misses: int = 0
    rule_exceptions: int = 0

    @property
    def rule(self) -> Rule:
        return self.fit.rule

    @property
    def deviation(self) -> str:
        return next((detail for what, detail in self.channels if what == "known"), "")

    @property
    def dtypes(self) -> tuple[str, ...]:
        return tuple(sorted({member.spec.dtype for member in self.members}))

    @property
    def tensors(self) -> tuple[str, ...]:
        """The tensors its cases fail on: declared ones for a known group, the undeclared ones for a new one."""
        if self.known:
            chosen = {t for member in self.members for t in member.failing}
        else:
            chosen = {detail for what, detail in self.channels if what == "fail"}
        return tuple(t for t in TENSORS if t in chosen) + tuple(sorted(chosen - set(TENSORS)))

    @property
    def bias(self) -> tuple[bool, ...]:
        return tuple(sorted({member.spec.bias for member in self.members}))

    @property
    def version(self) -> str:
        return self.minimal.version

    @property
    def missed(self) -> list[Observation]:
        """Members its rule does not hold on (the failures it could not explain), simplest first."""
        held = self.rule.holds_all([member.spec for member in self.members])
        return sorted((m for m, h in zip(self.members, held) if not h), key=lambda m: complexity(m.spec))

    def fails_like(self, observation: Observation) -> bool:
        """Whether `observation` shows one of this group's failures."""
        return observation.backend == self.backend and any(c in self.channels for c in channels(observation))

    def is_negative(self, observation: Observation) -> bool:
        """Whether `observation` shows that none of this group's failures happen."""
        return observation.backend == self.backend and all(negative(observation, c) for c in self.channels)


def exceptions(group: Group, observations: Iterable[Observation]) -> list[Observation]:
    """The cases of the group's backend that its rule holds on but that show none of its failures."""
    return [obs for obs in observations if group.is_negative(obs) and group.rule.holds(obs.spec)]


def passing_twins(failing: Sequence[Observation], negatives: Sequence[Observation]) -> int:
    """How many failing cases have the very features of some negative case: no rule can tell those apart."""
    return _twins(feature_matrix([obs.spec for obs in failing]), feature_matrix([obs.spec for obs in negatives]))


def _twins(failing: np.ndarray, negatives: np.ndarray) -> int:
    """How many rows of `failing` equal some row of `negatives` (feature matrices), each row packed into bytes."""
    if not len(failing) or not len(negatives):
        return 0
    def packed(rows: np.ndarray) -> np.ndarray:
        return np.packbits(rows, axis=1).view(np.void(-(-rows.shape[1] // 8))).ravel()

    return int(np.isin(packed(failing), packed(negatives)).sum())


class _Backend:
    """One backend's observations as arrays: features, and per channel which cases show it and which not
    (`negatives`: all of them; `learnt_from`: those rules are chosen by, the walked ones left out)."""

    def __init__(self, observations: list[Observation], walked: Set[Observation] = frozenset(),
                 minimal: Set[Observation] = frozenset()) -> None:
        self.observations = observations
        self.representative = np.array([obs not in walked for obs in observations], dtype=bool)
        self.seeds = np.array([obs in minimal for obs in observations], dtype=bool)
        self.features = feature_matrix([obs.spec for obs in observations])  # (n, F)
        self.literals = literal_matrix(self.features)  # (n, 2F)
        self.shown: dict[Channel, np.ndarray] = {}
        kinds = np.array([obs.kind for obs in observations], dtype=object)
        for index, obs in enumerate(observations):
            for channel in channels(obs):
                self.shown.setdefault(channel, np.zeros(len(observations), dtype=bool))[index] = True
        self._kinds = kinds
        self._negatives: dict[Channel, np.ndarray] = {}

    def negatives(self, channel: Channel) -> np.ndarray:
        if channel not in self._negatives:
            what, _ = channel
            if what in ("fail", "known"):
                ran = (self._kinds == "pass") | (self._kinds == "fail")
                self._negatives[channel] = ran & ~self.shown[channel]
            else:
                ended = {"error": ("pass", "fail"), "crash": ("pass", "fail", "error"),
                         "timeout": ("pass", "fail", "error", "crash")}[what]
                self._negatives[channel] = np.isin(self._kinds, ended)
        return self._negatives[channel]

    def learnt_from(self, channel: Channel) -> np.ndarray:
        return self.negatives(channel) & self.representative


@dataclass
class _Draft:
    """A group while it is being formed: its rule and masks over the backend's observations."""

    channels: list[Channel]
    learned: object  # Learned
    members: np.ndarray  # (n,) bool
    value_dependent: bool = False
    misses: int = 0

    @property
    def fit(self) -> Fit:
        return self.learned.best  # type: ignore[attr-defined]

    @property
    def known(self) -> bool:
        return self.channels[0][0] == "known"


def _cover(data: _Backend, channel: Channel) -> list[_Draft]:
    """One channel's groups (steps 1 of the module docstring)."""
    positives, negatives = data.shown[channel], data.learnt_from(channel)
    seeds = data.literals[positives & data.seeds]
    total = int(positives.sum())
    negative_literals = data.literals[negatives]
    if channel[0] == "known":
        learned = learn(data.literals[positives], negative_literals, coverage_first=True)
        return [_Draft([channel], learned, positives.copy(), learned.best.false_positives > 0)]
    drafts: list[_Draft] = []
    uncovered = positives.copy()
    while uncovered.any():
        learned = learn(data.literals[uncovered], negative_literals, known_positives=data.literals[positives],
                        known_negatives=data.literals[data.negatives(channel)], seeds=seeds,
                        support=min(MIN_SUPPORT, total), unseeded_support=min(UNSEEDED_SUPPORT, total))
        if not learned.supported:
            break
        members = uncovered & learned.best.rule.holds_on(data.features)
        drafts.append(_Draft([channel], learned, members))
        uncovered &= ~members
    left = int(uncovered.sum())
    if left and drafts:
        largest = max(drafts, key=lambda draft: int(draft.members.sum()))
        largest.members = largest.members | uncovered
        largest.misses += left
    elif left:
        learned = learn(data.literals[uncovered], negative_literals, coverage_first=True)
        drafts.append(_Draft([channel], learned, uncovered, value_dependent=True))
    return drafts


def _merge(data: _Backend, drafts: list[_Draft]) -> list[_Draft]:
    """Step 2 of the module docstring: same rule, or one rule explaining the other group's cases."""
    merged: list[_Draft] = []
    for draft in sorted(drafts, key=lambda d: (d.value_dependent, -int(d.members.sum()))):
        kind = (_kind(draft.channels[0]), draft.known)
        into = None
        for other in merged:
            if (_kind(other.channels[0]), other.known) != kind:
                continue
            if other.fit.rule == draft.fit.rule:
                into = other
                break
            if not other.value_dependent and draft.members.any():
                held = other.fit.rule.holds_on(data.features[draft.members])
                if held.mean() >= 1 - EXCEPTION_SHARE:
                    into = other
                    break
        if into is None:
            merged.append(draft)
            continue
        into.channels += [c for c in draft.channels if c not in into.channels]
        into.members = into.members | draft.members
        into.misses += draft.misses
    return merged


def _finished(data: _Backend, draft: _Draft, minimal: set[Observation]) -> Group:
    """The Group of a draft: its members, minimal case, exceptions and twins."""
    indices = np.flatnonzero(draft.members)
    members = [data.observations[i] for i in indices]
    negatives = np.ones(len(data.observations), dtype=bool)
    for channel in draft.channels:
        negatives &= data.negatives(channel)
    rule_holds = draft.fit.rule.holds_on(data.features)
    # the minimal case: one the rule holds on, a shrunk (settled) one, showing the most channels and tensors, the
    # simplest; a value-dependent group's settled one first
    shown = np.zeros(len(indices), dtype=np.int64)
    for channel in draft.channels:
        shown += data.shown[channel][indices]
    shrunk = np.array([data.observations[i] in minimal for i in indices], dtype=bool)
    failing = np.array([len(data.observations[i].failing) for i in indices], dtype=np.int64)
    keys = (~rule_holds[indices], ~shrunk, -shown, -failing)
    if draft.value_dependent:  # its rule separates nothing: its settled case (run again: flaky?) says more
        keys = (~shrunk, ~rule_holds[indices], -shown, -failing)
    first = np.lexsort(tuple(reversed(keys)))[0]
    tied = indices[np.all([key == key[first] for key in keys], axis=0)]
    best = data.observations[min(tied.tolist(), key=lambda i: complexity(data.observations[i].spec))]
    first = data.observations[indices[0]]
    return Group(first.backend, _kind(draft.channels[0]), draft.known, draft.fit, draft.learned.ties,  # type: ignore
                 best, members, list(draft.channels), _twins(data.features[draft.members], data.features[negatives]),
                 draft.value_dependent, draft.misses, int((negatives & rule_holds).sum()))


def group_failures(observations: Sequence[Observation], minimal: Sequence[Observation] = (),
                   walked: Set[Observation] = frozenset()) -> list[Group]:
    """Every failure among `observations` in a group (one per channel it shows); `minimal`: shrunk cases;
    `walked`: observations made while shrinking (see the module docstring).

    Groups come back sorted: new failures before declared ones, then by backend, kind and size.
    """
    by_backend: dict[str, dict[Observation, None]] = {}
    for observation in [*observations, *minimal]:
        by_backend.setdefault(observation.backend, {})[observation] = None
    shrunk = set(minimal)
    groups = []
    for backend in sorted(by_backend):
        data = _Backend(list(by_backend[backend]), walked, shrunk)
        drafts = [draft for channel in sorted(data.shown) for draft in _cover(data, channel)]
        groups += [_finished(data, draft, shrunk) for draft in _merge(data, drafts)]
    return sorted(groups, key=lambda g: (g.known, g.backend, g.kind, -len(g.members), g.rule.text))
