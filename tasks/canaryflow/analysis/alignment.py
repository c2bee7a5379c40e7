"""Counters of differently scraped pods, read at one common instant, a few series per pod.

Prometheus scrapes every pod at its own offset, so "the latest value" of two pods describes two
different instants: a two-second blip of a shared dependency lands in the canary's count a scrape
before stable's. Each look therefore evaluates every pod's counter at one instant ``T``, two
scrape intervals behind the look, by linear interpolation between the pod's last sample at or
before ``T`` and its first one after (the value PromQL gives at ``T`` and at ``T + scrape``,
with ``timestamp()`` saying when each was scraped). Every series of a pod is scraped at the same
moment, so they are summed by pod in PromQL (``sum by (instance, pod)``) before they leave
Prometheus: a round reads a handful of numbers per pod, not every label value's series, which
keeps it cheap on a fleet of hundreds of pods with many label values. Summing counters is only
valid once each series' own restarts are accounted for, so each look's sums come with what the
pod's restarted or vanished series held at the previous instant (``lost_query``, series by
series, then summed by pod): a series that restarts alone is counted from 0, the pod's other
series by their own increase. A pod's sum that still goes down is a restart of the pod. (A
restart inside the one scrape interpolated across is not interpolated: the pod's value stays at
its sample before, and the next look counts the rest.)
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass

from canaryflow.analysis.query import promql_regex_literal as _promql_regex_literal
from canaryflow.analysis.source import Sample, Series

UNIT_LABELS: tuple[str, ...] = ("instance", "pod")
"""What one unit (one scraped pod) is told apart by: its scrape target, and its pod name."""

Key = tuple[tuple[str, str], ...]


def key_of(labels: Mapping[str, str]) -> Key:
    return tuple(sorted(labels.items()))


_INSTANCE, _POD = UNIT_LABELS


def unit_of(labels: Mapping[str, str]) -> Key:
    """The pod a sample belongs to (``le`` and any other label dropped). Called for every
    sample of every look (1,800 per bucket read at 200 pods): spelled out, not a generator."""
    get = labels.get
    return ((_INSTANCE, get(_INSTANCE, "")), (_POD, get(_POD, "")))


def pod_name(labels: Mapping[str, str]) -> str:
    return labels.get("pod") or labels.get("instance") or ""


def value_query(selector: str, by_le: bool, marker: Marker | None = None) -> str:
    """The pods' counters, each pod's series summed (by bucket bound for a histogram; by
    ``marker``'s mark, events apart, where given)."""
    by = ", ".join((*UNIT_LABELS, "le") if by_le else UNIT_LABELS)
    if marker is not None:
        return f"sum by ({by}, {EVENT_LABEL}) ({marker.mark(selector)})"
    return f"sum by ({by}) ({selector})"


def lost_query(selector: str, by_le: bool, seconds: float, marker: Marker | None = None) -> str:
    """What each pod's sum lost over the last ``seconds`` to series that restarted or went
    away: the earlier value of every series that is now smaller, or gone.

    A pod's sum can only be differenced when its series all keep counting. One series that
    restarts on its own (a label set deleted and created again, a container of the pod
    restarted) or disappears makes the sum drop although the pod's other series counted on;
    reading that drop as a restart of the whole pod would count everything the pod ever
    served as new requests. Adding back what each such series held before
    (``S offset d unless S >= S offset d``, series by series, before the sum) gives the
    increase ``increase()`` would count series by series: a restarted series from 0, a gone
    one not at all, the others by their own difference. Summed by pod only after that, so the
    answer is still a number per pod, not per series.

    A histogram's buckets restart and go together (one object in the client library), so
    its ``+Inf`` bucket tells for all of them, at a ninth of the series: the answer is then
    per pod, not per bucket bound, and such a pod's look is left out (``AlignedCounters.
    advance``'s ``skip``) rather than corrected bound by bound, which would read every bucket
    a third time each look. Leaving out a look of a pod because a series restarted does not
    depend on how slow its requests were, so the evidence stays valid.
    """
    offset = f"offset {max(1, round(seconds * 1000))}ms"
    counted = stamp_selector(selector, by_le)
    lost = f"{counted} {offset} unless {counted} >= {counted} {offset}"
    if marker is not None:
        return f"sum({marker.mark(lost)}) by ({BY_POD}, {EVENT_LABEL})"
    # ``sum(...) by (...)``: the clause after the argument, the same aggregation.
    return f"sum({lost}) by ({BY_POD})"


BY_POD = ", ".join(UNIT_LABELS)


def stamp_selector(selector: str, by_le: bool) -> str:
    """A selector of fewer series scraped at the same moments: a histogram's ``+Inf`` bucket
    (every pod has one per label set), else ``selector`` itself."""
    if by_le and selector.rstrip().endswith("}"):
        return selector.rstrip()[:-1].rstrip().rstrip(",") + ',le="+Inf"}'
    return selector


def at_bounds(selector: str, les: Sequence[str]) -> str:
    """``selector`` narrowed to the histogram buckets whose ``le`` is spelt as in ``les``
    (an exact match of each: PromQL's regular expressions are anchored). Where a histogram is
    only cut at a few bounds, reading those buckets and ``+Inf`` loads a fraction of the
    series (4 of 12 at two cuts of an 11-bound layout)."""
    alternatives = "|".join(_promql_regex_literal(le) for le in sorted(set(les)))
    body = selector.rstrip()
    assert body.endswith("}"), body
    return body[:-1].rstrip().rstrip(",") + f',le=~"{alternatives}"}}'


EVENT_LABEL = "canaryflow_event"
"""The label a combined read of events and exposure (``Marker``) sets to "1" on events."""

_MATCHER = re.compile(r'\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|=)\s*"((?:[^"\\]|\\.)*)"\s*')


@dataclass(frozen=True)
class Marker:
    """Events that are the exposure's series narrowed by one matcher (5xx among requests:
    ``x_total{...,code=~"5.."}`` of ``x_total{...}``), told apart inside one read of the
    exposure: ``label_replace`` sets ``EVENT_LABEL`` on the series the matcher selects, and
    the pods are summed by it too. Both counts then come from one evaluation of the exposure's
    series instead of two selections of overlapping series (a third of a round's samples on a
    large fleet)."""

    label: str
    regex: str
    """The matcher's regular expression as PromQL text (a literal, escaped, for ``=``)."""

    @classmethod
    def of(cls, events: str, exposure: str) -> Marker | None:
        """The marker when ``events`` is ``exposure`` with one more ``=`` or ``=~`` matcher
        on a label it does not already match on; else None (read apart, as before)."""
        inner = exposure.rstrip()
        if not inner.endswith("}") or not events.rstrip().endswith("}"):
            return None
        head = inner[:-1].rstrip().rstrip(",")
        body = events.rstrip()[:-1]
        if not body.startswith(head) or "{" not in head:
            return None
        found = _MATCHER.fullmatch(body[len(head) :])
        if found is None:
            return None
        label, operator, value = found.groups()
        if re.search(rf"[{{,\s]{label}\s*(=|!=|=~|!~)", head):
            return None
        if operator == "=":
            value = _promql_regex_literal(_unquoted(value))
        return cls(label, value)

    def mark(self, query: str) -> str:
        return f'label_replace({query}, "{EVENT_LABEL}", "1", "{self.label}", "{self.regex}")'

    @staticmethod
    def split(samples: Sequence[Sample]) -> tuple[list[Sample], list[Sample]]:
        """A marked read's answer as (events, exposure): the marked series alone, and every
        pod's series summed over the mark, each without ``EVENT_LABEL``."""
        events: list[Sample] = []
        exposure: dict[Key, float] = {}
        for sample in samples:
            labels = dict(sample.labels)
            marked = labels.pop(EVENT_LABEL, "") == "1"
            if marked:
                events.append(Sample(labels, sample.value))
            key = key_of(labels)
            exposure[key] = exposure.get(key, 0.0) + sample.value
        return events, [Sample(dict(key), value) for key, value in exposure.items()]


def _unquoted(text: str) -> str:
    """A PromQL double-quoted string's content with its escapes resolved (as Go's)."""
    return json.loads(f'"{text}"')


def stamp_query(selector: str) -> str:
    """When each pod was last scraped (all its series share the scrape's timestamp)."""
    return f"max by ({', '.join(UNIT_LABELS)}) (timestamp({selector}))"


def history_query(selector: str, by_le: bool, seconds: float, step: float) -> str:
    """The pods' summed counters every ``step`` over ``seconds`` (a subquery)."""
    return f"{value_query(selector, by_le)}[{round(seconds)}s:{round(step)}s]"


SCRAPE_PROBES_S: tuple[float, ...] = (10.0, 30.0, 120.0)
"""Ranges whose sample counts tell the scrape interval, from 1 s to a minute."""


def scrape_query(selector: str, seconds: float) -> str:
    """The most samples any series has over ``seconds`` (the oldest series: a young one has
    fewer than the scrape interval implies)."""
    return f"max(count_over_time({selector}[{round(seconds)}s]))"


def scrape_interval(counts: Mapping[float, float], age: float | None = None) -> float | None:
    """The scrape interval from sample counts by range: the smallest range / count among
    ranges holding at least two samples; a minute or more when the longest holds one and the
    series may be that old. ``age``: how long the series have existed at most as far as the
    caller knows (a fresh baseline's pods started with the release): a series younger than the
    longest range holds one sample because it is young, not because it is scraped rarely, so
    nothing is concluded yet (None: ask again later)."""
    found = [seconds / count for seconds, count in counts.items() if count >= 2]
    if found:
        return min(found)
    longest = max(counts, default=None)
    if longest is not None and counts[longest] >= 1 and (age is None or age >= longest):
        return longest
    return None


@dataclass(frozen=True)
class Read:
    """One query a look needs: an instant vector at ``at``, or a range (subquery) ``series``."""

    query: str
    at: float
    series: bool = False
    selector: str | None = None
    """The series selector ``query`` reads: a source that evaluates PromQL's ``@`` can then
    answer several instant reads in one request (``source.batch_query``)."""


def interpolate(
    before: Sequence[Sample],
    after: Sequence[Sample],
    stamps_before: Sequence[Sample],
    stamps_after: Sequence[Sample],
    at: float,
) -> dict[Key, float]:
    """Each series' value at ``at`` from its value at ``at`` (the last sample at or before) and
    at ``at + scrape`` (the next one), pro rata of their scrape times. A series with no later
    sample keeps its last value; one with no earlier sample was born after ``at``: 0."""
    when_before = {unit_of(s.labels): s.value for s in stamps_before}
    when_after = {unit_of(s.labels): s.value for s in stamps_after}
    later = {tuple(sorted(s.labels.items())): s.value for s in after}
    # Each pod's scrapes around ``at`` as (at - t0, t1 - t0), once per pod rather than once
    # per series; absent: not interpolated. Kept apart, not divided: the arithmetic below is
    # the same as before, to the last bit.
    spans: dict[Key, tuple[float, float]] = {}
    for unit, t0 in when_before.items():
        t1 = when_after.get(unit)
        if t1 is not None and t0 < at < t1:
            spans[unit] = (at - t0, t1 - t0)
    values: dict[Key, float] = {}
    for sample in before:
        labels = sample.labels
        key = tuple(sorted(labels.items()))  # ``key_of``, inline: the hot loop of a look
        value = sample.value
        following = later.get(key)
        if following is not None and following >= value:  # else a restart: value before it
            span = spans.get(unit_of(labels))
            if span is not None:
                value += (following - value) * span[0] / span[1]
        values[key] = value
    for key in later:
        values.setdefault(key, 0.0)
    return values


@dataclass
class AlignedCounters:
    """One track's counters of one role, remembered at the last common instant."""

    last: dict[Key, float] | None = None

    @property
    def started(self) -> bool:
        return self.last is not None

    def start(self, values: Mapping[Key, float]) -> None:
        self.last = dict(values)

    def advance(
        self,
        values: Mapping[Key, float],
        lost: Mapping[Key, float] | None = None,
        skip: Set[Key] = frozenset(),
    ) -> list[Sample]:
        """Each series' increase since the last instant: a series first seen counts from 0;
        ``lost``, what a pod's sum lost to its restarted or gone series since then, by pod
        (``unit_of``, see ``lost_query``), is added back; a value still smaller is a restart
        of the whole pod (counted from 0 again). The pods (``unit_of``) in ``skip`` add
        nothing this time.

        A series counted before that has no sample at or before this instant (absent, or 0:
        ``interpolate`` reads a series whose only sample is after the instant as born after
        it) missed a scrape: Prometheus marks every series of a target whose scrape failed
        stale, and an instant query skips a stale series until its next good scrape. It keeps
        its last value and adds nothing this look; when it returns, its increase since then is
        counted (or, smaller, a restart). Forgotten instead, it came back "first seen" and the
        pod's whole life was counted again as one look's requests and errors: a canary whose
        scrape timed out once (a loaded node, a long GC) had its evidence doubled."""
        previous = self.last or {}
        lost = lost or {}
        result = []
        current = dict(previous)
        for key, value in values.items():
            if value == 0.0 and previous.get(key, 0.0) > 0.0:
                continue  # stale at the instant: its last value stands
            current[key] = value
            labels = dict(key)
            unit = unit_of(labels)
            if unit in skip:
                continue
            gained = value - previous.get(key, 0.0) + lost.get(unit, 0.0)
            result.append(Sample(labels, gained if gained >= 0 else value))
        self.last = current
        return result


def history_steps(series: Sequence[Series]) -> dict[float, list[Sample]]:
    """A subquery's series as increments step by step (a step where a pod restarted is left
    out for that pod): units of stable's pods over time, for their over-dispersion."""
    steps: dict[float, list[Sample]] = {}
    for one in series:
        points = sorted(one.points)
        for (_, v0), (t1, v1) in itertools.pairwise(points):
            if v1 >= v0:
                steps.setdefault(t1, []).append(Sample(one.labels, v1 - v0))
    return steps
