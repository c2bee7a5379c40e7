"""A bounded, deterministic sample of the stable fleet's pods, read for the over-dispersion.

Against a fresh baseline the stable fleet (``query.FLEET``) is read only to learn the
over-dispersion ``phi`` of the service's pods (``evidence``): Pearson's X² of each pod's counts
about the pooled rate, per degree of freedom. That is a per-pod quantity, so any subset of the
fleet's pods chosen without looking at their counts estimates the same ``phi`` (with fewer
degrees of freedom per unit; the history alone gives 40 units of them). Reading every pod made
a round's cost grow with the fleet: at 200 pods 99 % of the samples Prometheus loaded were the
fleet's. Here at most ``FLEET_SAMPLE_PODS`` of its pods are read, selected in PromQL by a
``pod=~"^(a|b|...)$"`` matcher (``Subject.fleet_pods``), so a round costs about the same
whatever the fleet's size.

Which pods: the ones whose names rank first by a stable hash (``rank``), so the sample does
not depend on the order Prometheus lists pods in, is the same in every process of a release
(each step's analyze pod chooses it again), and is not re-drawn every round. It changes only
when a sampled pod is gone (its replacements are the next pods by rank) or the fleet crosses
``FLEET_SAMPLE_PODS``. Which pods exist is asked by one cheap instant query (``discovery_query``:
one series per pod, ``group by (pod)``) at the first round and then every
``FLEET_DISCOVERY_ROUNDS`` rounds, not at every look. A fleet of at most ``FLEET_SAMPLE_PODS``
pods, or whose series carry no ``pod`` label, is read whole, as before: no matcher at all.

The comparing logs gate's fleet lines are read from a sample of pods too (Kubernetes:
``STABLE_LOG_PODS``, fewer: a pod's log is a request of its own): ranked by the same hash, so
its pods are the first of this sample's while the fleet does not churn.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from canaryflow.analysis.alignment import pod_name, stamp_selector
from canaryflow.analysis.source import Sample

FLEET_SAMPLE_PODS = 20
"""The most stable-fleet pods a round reads for the over-dispersion (``K``). 20 pods give 19
degrees of freedom per unit (760 over the history's 40 units): the 90 % upper bound on ``phi``
is then hardly wider than with 200 pods, and a round reads about what a 20-pod fleet's did."""
FLEET_DISCOVERY_ROUNDS = 6
"""Rounds between two discoveries of the fleet's pods (a minute at a 10 s interval): a sampled
pod that went away is replaced at the next one; until then its counters simply stop moving."""


def rank(pod: str) -> bytes:
    """A pod's place in the sample order: a hash of its name, the same in every process."""
    return hashlib.sha256(pod.encode()).digest()


def ranked(pods: Iterable[str]) -> list[str]:
    """``pods`` in sample order (``rank``)."""
    return sorted(set(pods), key=rank)


def choose(
    present: Iterable[str], kept: Iterable[str] = (), size: int = FLEET_SAMPLE_PODS
) -> tuple[str, ...] | None:
    """The pods to read out of ``present``: None (every pod, no matcher) where there are at
    most ``size``; else the pods of ``kept`` still present, filled up to ``size`` with the
    others by rank. Sorted by rank."""
    pods = set(present)
    if len(pods) <= size:
        return None
    stay = [pod for pod in ranked(kept) if pod in pods][:size]
    fill = [pod for pod in ranked(pods) if pod not in stay][: size - len(stay)]
    return tuple(ranked([*stay, *fill]))


def discovery_query(selectors: Iterable[tuple[str, bool]]) -> str:
    """One series per fleet pod: which pods the fleet has now. ``selectors``: the gates'
    fleet series (``by_le``: a histogram, read at its ``+Inf`` bucket only), each series once
    per pod at an instant, nothing over a range."""
    parts = dict.fromkeys(stamp_selector(selector, by_le) for selector, by_le in selectors)
    return " or ".join(f"group by (pod) ({selector})" for selector in parts)


def pods_of(answer: Sequence[Sample]) -> frozenset[str]:
    """The pods a ``discovery_query`` answer names (series without a ``pod`` label: none)."""
    return frozenset(pod for s in answer if (pod := s.labels.get("pod")))


@dataclass
class FleetSample:
    """One run's sample of the fleet's pods, shared by all its gates (and their logs)."""

    size: int = FLEET_SAMPLE_PODS
    every: int = FLEET_DISCOVERY_ROUNDS
    present: frozenset[str] = frozenset()
    """The pods the last discovery found."""
    pods: tuple[str, ...] | None = None
    """The pods read (None: the whole fleet, no matcher)."""
    rounds: int = 0
    """Rounds since the last discovery (0: never discovered)."""
    discovered: bool = False
    history: list[tuple[int, int]] = field(default_factory=list)
    """(pods present, pods read) at each discovery: what a report or a test may show."""

    @property
    def due(self) -> bool:
        """Whether this round discovers the fleet's pods again."""
        return not self.discovered or self.rounds >= self.every

    def tick(self) -> None:
        self.rounds += 1

    def learn(self, answer: object) -> None:
        """A discovery's answer (an error or a timeout keeps the sample as it is)."""
        if not isinstance(answer, list):
            return
        self.discovered, self.rounds = True, 0
        self.present = pods_of(answer)
        self.pods = choose(self.present, self.pods or (), self.size)
        self.history.append((len(self.present), len(self.pods or self.present)))

    @property
    def reading(self) -> frozenset[str]:
        """The pods the fleet's reads cover, as far as the last discovery knows."""
        return frozenset(self.pods) if self.pods is not None else self.present


def held_pods(last: Mapping | None) -> frozenset[str]:
    """The pods a track's counters (``AlignedCounters.last``) hold series of."""
    return frozenset(pod_name(dict(key)) for key in (last or {}))
