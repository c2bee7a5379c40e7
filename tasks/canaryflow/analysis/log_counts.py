"""Matching log lines per pod, as counters a sequential gate can judge beside the requests.

A comparing logs gate (``logs.tolerance``) asks whether the canary writes more matching lines
per request than the reference track (stable, or the fresh baseline). Lines are not
independent events any more than 5xx answers are: a pod that stalls writes a burst of "context
deadline exceeded" at once, a pod filling its pool logs a few refused dials. Counted per track,
one such burst reads as a regression. So the lines are counted per pod here, and each
reference pod's lines are set beside the requests that pod served (its own request counter,
the same series the gate's exposure is read from): the sequential test then estimates their
over-dispersion from the reference's pods exactly as for the counter gates -- Pearson's X² of
the pods' lines about the pooled rate, per degree of freedom, a quasi-Poisson / quasi-binomial
scale (McCullagh & Nelder, *Generalized Linear Models*, 2nd ed., §9.2; Wedderburn 1974) by which
the log-likelihood ratios are divided (``sequential.CountTest.add_units``, ``dispersion``).

Only the pods whose lines were read count as the reference's requests (a large fleet is
sampled, ``stable_pod_lines_since``), so no share has to be assumed. A pod that joins the read
pods later (the sample changed) starts at its counter's value then: its earlier requests were
served while its lines were not read. Where the lines' pods cannot be matched with the
counters' (a source that gives no pods, names the metrics do not carry), the track is counted
as one unit, with the requests scaled by the share read, as before: no over-dispersion can be
estimated from it, and the test stays what it was (``dispersion`` 1).

Against a fresh baseline the reference is one pod or a few, with no spread to learn from: the
stable fleet's lines (``query.FLEET``, neither canary nor baseline) are then counted by pod
beside their own requests in the same way, as a third track that is never compared, only
learnt from (``evidence.SequentialGate.fleet``).

Where the log source tells when each line was written (``source.StampedLogSource``: Kubernetes
pod logs read with ``timestamps=true``, the local platform's tails stamped as they are read,
the offline replay's recorded lines), each pod's lines are counted only up to its request
counter's last scrape (``alignment.stamp_query``: the ``timestamp()`` of the sample the look's
requests are read from), so a pod's lines and its requests span the same seconds. Counted as
written instead, with a 30 s scrape one pod's requests in a look may span 1 s while its lines
span 10 s: a canary with 36 lines of 104 requests against a baseline's 55 of 938 at a first
look, a false rollback of identical canaries six times in 1,000 (BENCHMARKS.md). A line
written after its pod's last scrape is not held here: the next look reads the lines again from
the earliest instant any pod's lines are counted up to (``since``) and counts it once its
pod's requests are scraped past it, so no line is lost or counted twice. A pod whose requests
have not been scraped yet (a canary's first seconds) has its lines wait the same way; a track
whose pods' lines are named as none of its counters' pods is counted up to the look instead
(each line once). A source without times (a log file read as it grows) is counted as written,
as before.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from canaryflow.analysis.alignment import pod_name
from canaryflow.analysis.query import FLEET
from canaryflow.analysis.source import Sample

TRACKS = ("canary", "stable")
BY_POD = ("stable", FLEET)
"""The tracks whose lines are matched with their pods' requests (the canary is one unit)."""
TRACK_UNIT = ""
"""The one pod name of a track whose lines come without pods."""
START_BACK_S = 120.0
"""How far before a window's start its first read of stamped lines begins: each pod's lines
are counted from its request counter's last scrape before the start (up to two scrapes of a
60 s interval earlier), as its requests are."""
MAX_HELD_S = 300.0
"""How long a pod's lines are read again while its requests are not scraped past them:
Prometheus' lookback, past which an instant query no longer answers for the pod either."""


@dataclass
class LogCounts:
    """One comparing logs gate's matching lines since it began counting, by track and pod."""

    lines: dict[str, dict[str, float]] = field(default_factory=dict)
    """Matching lines by track, then pod (``TRACK_UNIT``: the track's lines without pods)."""
    by_pod: dict[str, bool] = field(default_factory=dict)
    """Per track (the reference, the fleet): whether its lines are matched with its pods'
    requests (decided at the first look that could, then kept: the requests fed to the test
    never change meaning)."""
    read: dict[str, set[str]] = field(default_factory=dict)
    """Per track, the pods whose lines and requests were counted at the previous look."""
    offsets: dict[tuple[tuple[str, str], ...], float] = field(default_factory=dict)
    """A request series' value when its pod joined the read pods after the first look."""
    looks: int = 0
    counted_to: dict[str, dict[str, float]] = field(default_factory=dict)
    """Stamped lines: per track, then pod, the instant up to which its lines are counted
    (its request counter's last scrape at the previous look)."""
    aligned: dict[str, bool] = field(default_factory=dict)
    """Stamped lines: per track, whether its pods' lines are counted up to their own scrapes
    (decided at the first look where its counters have a scrape and its lines were read;
    False: its lines' pods are not its counters', so they are counted up to the look)."""
    started_at: float | None = None
    """Stamped lines: the window's start the first read was asked from."""
    floor: float | None = None
    """Stamped lines: where the first read began (``START_BACK_S`` before the start)."""
    waiting: bool = False
    """Stamped lines: some pod's lines wait for its first scrape (read again from ``floor``)."""
    looked_at: float | None = None
    """Stamped lines: the previous look's time (the cut of a track counted up to the look)."""
    unscraped: dict[str, set[str]] = field(default_factory=dict)
    """Stamped lines: per track, the pods whose lines were read while their requests had no
    scrape yet (nothing of them counted so far)."""
    first_scraped: dict[str, set[str]] = field(default_factory=dict)
    """Stamped lines: per track, the pods of ``unscraped`` counted for the first time at this
    look: all their lines and all their requests count, so they have not "joined" the read
    pods late (``_per_pod``)."""

    def since(self, default: float, now: float) -> float:
        """Where this look's read of stamped lines begins: ``START_BACK_S`` before the
        window's start (``default``) at the first look; after it, the earliest instant up to
        which some pod's lines are counted (``default``, the previous look, at the latest),
        so the lines written after their pod's last scrape are read again, never earlier
        than ``MAX_HELD_S`` before ``now``."""
        if self.floor is None:
            self.started_at, self.floor = default, default - START_BACK_S
            return self.floor
        for pods in self.counted_to.values():
            for pod in [p for p, t in pods.items() if t < now - MAX_HELD_S]:
                del pods[pod]  # no longer scraped: nothing of it is counted any more
        earliest = [default, *(t for pods in self.counted_to.values() for t in pods.values())]
        if self.waiting:
            earliest.append(self.floor)
        return max(min(earliest), now - MAX_HELD_S)

    def look(
        self,
        matched: Mapping[str, Mapping[str, int]],
        exposure: Mapping[str, Sequence[Sample]],
        exposure_start: Mapping[str, Sequence[Sample]] | None = None,
        share: float = 1.0,
        written: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
        stamps: Mapping[str, Sequence[Sample]] | None = None,
        stamps_start: Mapping[str, Sequence[Sample]] | None = None,
        at: float | None = None,
    ) -> dict[str, list[Sample]]:
        """Add one look's matching lines (by track, then pod) and return the gate's counters:
        ``{track}/events`` (lines, the reference's labelled by pod where its pods are known),
        ``{track}/exposure`` (the requests of the same pods) and, given the request counters
        at the window's start, ``{track}/exposure@start``.

        The canary is one unit (its pods' spread is not what the test estimates); so is a
        reference whose lines come without pods, or with pods its counters do not name, its
        requests scaled by ``share``, the share of its pods read.

        ``written``: instead of ``matched``, when each matching line was written (Unix
        seconds), by track and pod, as read ``since`` this look's ``since``; ``stamps``: when
        each pod's requests were last scraped (``alignment.stamp_query``, beside
        ``exposure``), ``stamps_start`` the same at the window's start; ``at``: the look's
        time. Each pod's lines are then counted up to its last scrape (see the module)."""
        looked: dict[str, list[Sample]] = {}
        written = written or {}
        self.waiting = False
        named = (*matched, *written)
        for track in (*TRACKS, *dict.fromkeys(t for t in named if t not in TRACKS)):
            if track in written:
                lines = self._up_to_scrapes(
                    track,
                    written[track],
                    (stamps or {}).get(track, []),
                    (stamps_start or {}).get(track),
                    at,
                )
            else:
                lines = dict(matched.get(track, {}))
            now = list(exposure.get(track, []))
            start = list(exposure_start.get(track, [])) if exposure_start is not None else None
            if track in BY_POD and self._pods_known(track, lines, now):
                lines, now, start = self._per_pod(track, lines, now, start)
            else:
                lines = {TRACK_UNIT: sum(lines.values())}
                scale = share if track == "stable" and 0 < share <= 1 else 1.0
                now = [Sample(s.labels, s.value * scale) for s in now]
                if start is not None:
                    start = [Sample(s.labels, s.value * scale) for s in start]
            counted = self.lines.setdefault(track, {})
            for pod, count in lines.items():
                if track in written and pod == TRACK_UNIT and not count and pod not in counted:
                    continue  # a reference's pods all unscraped yet: no unit of no lines
                counted[pod] = counted.get(pod, 0.0) + count
            looked[f"{track}/events"] = [_unit(pod, n) for pod, n in sorted(counted.items())]
            looked[f"{track}/events@start"] = [_unit(pod, 0.0) for pod in sorted(counted)]
            looked[f"{track}/exposure"] = now
            if start is not None:
                looked[f"{track}/exposure@start"] = start
        self.looks += 1
        if at is not None:
            self.looked_at = at
        return looked

    def _up_to_scrapes(
        self,
        track: str,
        written: Mapping[str, Sequence[float]],
        stamps: Sequence[Sample],
        stamps_start: Sequence[Sample] | None,
        at: float | None,
    ) -> dict[str, int]:
        """A track's matching lines by pod: each pod's written after the instant its lines
        were counted up to (at the first look, its requests' scrape before the window's
        start) and at or before its requests' last scrape; the pods still unscraped count
        none yet (``waiting``)."""
        scraped: dict[str, float] = {}
        for sample in stamps:
            pod = pod_name(sample.labels)
            scraped[pod] = max(scraped.get(pod, sample.value), sample.value)
        if track not in self.aligned and written and scraped:
            self.aligned[track] = bool(set(written) & set(scraped))
        aligned = self.aligned.get(track)
        if aligned is False:  # the lines' pods are not the counters': up to the look
            cut = at if at is not None else math.inf
            scraped = dict.fromkeys(written, cut)
        first: dict[str, float] = {}
        if self.looks == 0:
            for sample in stamps_start or []:
                pod = pod_name(sample.labels)
                first[pod] = max(first.get(pod, sample.value), sample.value)
            if aligned is False and self.started_at is not None:
                first = dict.fromkeys(written, self.started_at)
        counted_to = self.counted_to.setdefault(track, {})
        unscraped = self.unscraped.setdefault(track, set())
        self.first_scraped[track] = set()
        counted: dict[str, int] = {}
        for pod, times in written.items():
            until = scraped.get(pod)
            if until is None:
                counted[pod] = 0
                self.waiting = True
                if pod not in counted_to:
                    unscraped.add(pod)
                continue
            if pod in unscraped:
                unscraped.discard(pod)
                self.first_scraped[track].add(pod)
            before = self.looked_at if aligned is False and self.looked_at is not None else None
            since = counted_to.get(pod, first.get(pod, -math.inf if before is None else before))
            counted[pod] = sum(1 for t in times if since < t <= until)
            counted_to[pod] = max(since, until)
        return counted

    def _pods_known(self, track: str, lines: Mapping[str, int], exposure: Sequence[Sample]) -> bool:
        """Whether the track's lines are counted per pod: from the first look where some
        pod whose lines were read has requests, for good."""
        if track not in self.by_pod and lines and TRACK_UNIT not in lines:
            served = {pod_name(s.labels) for s in exposure}
            if set(lines) & served:
                self.by_pod[track] = True
        return self.by_pod.get(track, False)

    def _per_pod(
        self,
        track: str,
        lines: Mapping[str, int],
        exposure: Sequence[Sample],
        start: Sequence[Sample] | None,
    ) -> tuple[dict[str, int], list[Sample], list[Sample] | None]:
        """The reference's lines and requests of the pods read at this look that have
        requests. A pod read now but not at the previous look (the sample changed, a pod
        scraped for the first time) counts from this look on: its lines now are left out and
        its request counters start at their value now."""
        served = {pod_name(s.labels) for s in exposure}
        pods = set(lines) & served
        joined = pods - self.read.get(track, set()) if self.looks else set()
        joined -= self.first_scraped.get(track, set())
        for sample in exposure:
            key = _series(sample)
            if pod_name(sample.labels) in joined:
                self.offsets[key] = sample.value
            elif sample.value < self.offsets.get(key, 0.0):  # reset: counted from 0 on
                self.offsets.pop(key)
        self.read[track] = pods
        counted = {pod: (0 if pod in joined else lines[pod]) for pod in pods}
        now = [_less(s, self.offsets) for s in exposure if pod_name(s.labels) in pods]
        if start is not None:
            start = [s for s in start if pod_name(s.labels) in pods]
        return counted, now, start


def _series(sample: Sample) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(sample.labels.items()))


def _unit(pod: str, lines: float) -> Sample:
    return Sample({"pod": pod} if pod else {}, lines)


def _less(sample: Sample, offsets: Mapping[tuple[tuple[str, str], ...], float]) -> Sample:
    """A request series less its value when its pod joined the read pods."""
    offset = offsets.get(_series(sample), 0.0)
    return Sample(sample.labels, sample.value - offset) if offset > 0 else sample
