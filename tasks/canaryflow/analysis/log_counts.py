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
"""

from __future__ import annotations

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

    def look(
        self,
        matched: Mapping[str, Mapping[str, int]],
        exposure: Mapping[str, Sequence[Sample]],
        exposure_start: Mapping[str, Sequence[Sample]] | None = None,
        share: float = 1.0,
    ) -> dict[str, list[Sample]]:
        """Add one look's matching lines (by track, then pod) and return the gate's counters:
        ``{track}/events`` (lines, the reference's labelled by pod where its pods are known),
        ``{track}/exposure`` (the requests of the same pods) and, given the request counters
        at the window's start, ``{track}/exposure@start``.

        The canary is one unit (its pods' spread is not what the test estimates); so is a
        reference whose lines come without pods, or with pods its counters do not name, its
        requests scaled by ``share``, the share of its pods read."""
        looked: dict[str, list[Sample]] = {}
        for track in (*TRACKS, *(t for t in matched if t not in TRACKS)):
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
                counted[pod] = counted.get(pod, 0.0) + count
            looked[f"{track}/events"] = [_unit(pod, n) for pod, n in sorted(counted.items())]
            looked[f"{track}/events@start"] = [_unit(pod, 0.0) for pod in sorted(counted)]
            looked[f"{track}/exposure"] = now
            if start is not None:
                looked[f"{track}/exposure@start"] = start
        self.looks += 1
        return looked

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
