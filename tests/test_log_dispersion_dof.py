"""The log-errors gate does not fail on an over-dispersion resting on 0 to 2 degrees of freedom.

Its phi is an upper bound of stable's pods' X² per degree of freedom, at least 1: on none it is
1, and on one (two pods' scrapes in a unit, X² about 0) it is 1 too. A first look on a 30 s
scrape holds the scrapes of one or two of stable's four pods, so a canary stall's burst of lines
in it read as independent lines: on the replay's 30 s-scrape fleet, canaries at the gate's
boundary (lines x2) were rolled back at the release's first look, 20 s in, with phi 1
(BENCHMARKS.md). The gate now waits to fail until phi rests on ``DISPERSION_DOF`` degrees of
freedom where its reference can give them (two pods or more), at most
``DISPERSION_WAIT_UNITS`` units; a one-pod reference fails as before.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from canaryflow.analysis.catalogue import REQUESTS, Counts
from canaryflow.analysis.evidence import DISPERSION_DOF, DISPERSION_WAIT_UNITS, SequentialGate
from canaryflow.analysis.measurement import Judgement, Outcome
from canaryflow.analysis.source import Sample
from canaryflow.bench.offline import (
    BENCH_FLEETS,
    BENCH_STEPS,
    bench_spec,
    judge_release,
    with_warmup,
)
from canaryflow.bench.streams import simulate

ALPHA = 0.005
"""The log gate's share of the bench plan's alpha 0.01."""
T0 = 1_700_000_000.0
STABLE = ("stable-1", "stable-2", "stable-3", "stable-4")


class Release:
    """A comparing logs gate fed look by look: each pod's lines and requests counted up to its
    own last scrape (``aligned_tracks``), as ``log_counts`` hands them to the gate."""

    def __init__(self, stable: tuple[str, ...], gone: tuple[str, ...] = ()):
        self.gate = SequentialGate(
            "log-errors",
            Counts("log lines", REQUESTS["go"]),
            1.0,
            ALPHA,
            0.0,
            counted_at_look=True,
        )
        self.gate.aligned_tracks = frozenset({"canary", "stable"})
        # Every pod has served for a while before the release: 1 % of its requests log.
        self.counts = {("canary", "canary-1"): [10.0, 1000.0]}
        self.counts |= {("stable", pod): [100.0, 10000.0] for pod in (*stable, *gone)}
        self.baseline = self._read()
        self.gone = set(gone)

    def _read(self, skip: set[str] | None = None) -> dict:
        read: dict = {"canary": {"events": [], "exposure": []}, "stable": {}}
        read["stable"] = {"events": [], "exposure": []}
        for (track, pod), (lines, requests) in self.counts.items():
            if skip and pod in skip:
                continue
            read[track]["events"].append(Sample({"pod": pod}, lines))
            read[track]["exposure"].append(Sample({"pod": pod}, requests))
        return read

    def look(
        self, elapsed: float, canary: tuple[float, float], stable: dict[str, tuple[float, float]]
    ) -> Judgement:
        """A look ``elapsed`` s into the release: the canary's (lines, requests) since the
        previous one, and those of the stable pods scraped since (the others none)."""
        for (track, pod), new in [(("canary", "canary-1"), canary)] + [
            (("stable", pod), new) for pod, new in stable.items()
        ]:
            self.counts[(track, pod)][0] += new[0]
            self.counts[(track, pod)][1] += new[1]
        first = not self.gate.started
        return self.gate.observe(
            self._read(self.gone),
            self.baseline if first else None,
            None,
            elapsed,
            T0 + elapsed,
        )


@pytest.mark.parametrize("scraped", [1, 2])
def test_a_burst_beside_one_or_two_of_four_stable_pods_waits_for_their_degrees_of_freedom(
    scraped,
):
    release = Release(STABLE)
    # 20 s in: the canary's stall burst of 60 lines; of stable's four pods (30 s scrape) only
    # the first one or two were scraped, each with its steady 1 % (X² 0: phi 1 on 0 or 1 dof).
    first = release.look(20.0, (60.0, 200.0), {pod: (4.0, 450.0) for pod in STABLE[:scraped]})
    assert release.gate.log_evidence > 10.0, "far above log(1/alpha) 5.3 at phi 1"
    assert release.gate.test.dof == scraped - 1 and release.gate.test.dispersion == 1.0
    assert first.outcome is Outcome.COLLECTING
    assert (
        f"rests on {scraped - 1} {'degree' if scraped == 2 else 'degrees'} of freedom of "
        "stable's pods: waiting for 3" in first.reason
    )

    # 40 s in, every pod's scrape: stable's pods are as lumpy (one stalled, its burst of lines).
    release.look(30.0, (2.0, 100.0), {})
    later = {pod: (4.0, 450.0) for pod in STABLE[scraped:]} | {STABLE[0]: (45.0, 450.0)}
    judged = release.look(40.0, (4.0, 200.0), later)
    assert release.gate.test.dof >= DISPERSION_DOF
    # With phi learnt from them the burst is what stable's pods do: no credible regression.
    assert release.gate.test.dispersion > 3.0
    assert judged.outcome is Outcome.PASS


def test_the_same_burst_against_a_one_pod_reference_is_not_waited_for():
    release = Release(STABLE[:1])
    first = release.look(20.0, (60.0, 200.0), {STABLE[0]: (4.0, 450.0)})
    again = release.look(30.0, (60.0, 200.0), {STABLE[0]: (4.0, 450.0)})

    # A unit needs two pods: one never gives phi a degree of freedom, so nothing is waited for;
    # the gate fails as soon as a second chunk shows the burst too (one chunk never decides,
    # ``tests/test_log_one_chunk.py``).
    assert release.gate.test.dof == 0 and release.gate.reference_pods_read == 1
    assert "rests on one chunk of lines" in first.reason
    assert again.outcome is Outcome.FAIL


def _steady(pods, requests: float = 450.0) -> dict[str, tuple[float, float]]:
    return {pod: (requests / 100, requests) for pod in pods}


def test_a_canary_logging_ten_times_is_failed_once_phi_has_its_degrees_of_freedom():
    release = Release(STABLE)
    outcomes = [
        release.look(20.0, (20.0, 200.0), _steady(STABLE[:2])).outcome,
        release.look(30.0, (10.0, 100.0), {}).outcome,
        release.look(40.0, (20.0, 200.0), _steady(STABLE[2:]) | _steady(STABLE[:2])).outcome,
    ]

    assert release.gate.test.dof == 4 and release.gate.test.dispersion == 1.0
    assert outcomes == [Outcome.COLLECTING, Outcome.COLLECTING, Outcome.FAIL]


def test_a_reference_whose_pods_never_line_up_stops_the_wait_after_its_bound():
    # One pod serving, but two read: it restarted under a new name before the release (the
    # old one's counters kept as last read). No unit holds two pods, so no degree of freedom
    # ever comes; the gate waits 2 units, the first and one more (a look each 20 s here), no
    # more: units last a scrape interval, so a third and fourth would make up nothing.
    release = Release(("stable-1b",), gone=("stable-1",))
    judged = [release.look(20.0, (20.0, 200.0), _steady(["stable-1b"], 900.0))]
    for elapsed in range(30, 110, 10):
        judged.append(release.look(float(elapsed), (10.0, 100.0), _steady(["stable-1b"])))

    assert release.gate.reference_pods_read == 2 and release.gate.test.dof == 0
    failed = [j.outcome is Outcome.FAIL for j in judged]
    units_when_failed = 1 + failed.index(True) // 2
    assert units_when_failed == DISPERSION_WAIT_UNITS == 2
    assert "waiting for 3 (at most 1 more unit of 15s)" in judged[failed.index(True) - 1].reason


@settings(max_examples=60, deadline=None)
@given(
    scraped=st.lists(st.sets(st.sampled_from(STABLE)), min_size=8, max_size=8),
    bursts=st.lists(st.integers(0, 80), min_size=8, max_size=8),
)
def test_no_fail_rests_on_fewer_degrees_of_freedom_while_four_pods_can_give_them(scraped, bursts):
    release = Release(STABLE)
    for look, (pods, burst) in enumerate(zip(scraped, bursts, strict=True)):
        judged = release.look(20.0 + 10 * look, (1.0 + burst, 100.0), _steady(pods))
        test = release.gate.test
        if judged.outcome is Outcome.FAIL:
            assert test.dof >= DISPERSION_DOF or release.gate.units_seen >= DISPERSION_WAIT_UNITS


BOUNDARY_RELEASES = (51, 118, 131)
"""Of ``judge_many(noisy 30 s scrape, BENCH_STEPS, bench_spec(), 300, 7006, log_factor=2.0)``:
rolled back at their first look, 20 s in, with phi 1 before the gate waited for its degrees of
freedom (BENCHMARKS.md, "Why the 30 s scrape's 7")."""


@pytest.mark.judgement
def test_the_30s_scrape_boundary_canaries_failed_on_a_phi_of_no_degrees_of_freedom_pass():
    outcomes = boundary_outcomes("noisy, 30 s scrape", BOUNDARY_RELEASES)

    assert outcomes == dict.fromkeys(BOUNDARY_RELEASES, Outcome.PASS)


def boundary_outcomes(name: str, releases: tuple[int, ...]) -> dict[int, Outcome]:
    """The outcomes of ``releases`` of ``judge_many(fleet, BENCH_STEPS, bench_spec(), ...,
    7000 + the fleet's number, log_factor=2.0)``: canaries at the log gate's null boundary,
    replayed in judge_many's order of draws."""
    fleet = dict(BENCH_FLEETS)[name]
    spec = bench_spec()
    warmup = spec.warmup_for(fleet.scrape_s, True)
    served = with_warmup(BENCH_STEPS, warmup)
    rng = random.Random(7000 + [n for n, _ in BENCH_FLEETS].index(name))
    outcomes = {}
    for number in range(max(releases) + 1):
        recording = simulate(fleet, served, rng, 1.0, 2.0)
        if number in releases:
            judged = judge_release(recording, BENCH_STEPS, spec, True, True, warmup)
            outcomes[number] = judged.outcome
    return outcomes


ONE_UNIT_RELEASES = (75, 94, 288, 295)
"""Of ``judge_many(noisy, stalls at random, BENCH_STEPS, bench_spec(), 300, 7004,
log_factor=2.0)``: canaries at the gate's boundary against a one-pod fresh baseline, rolled back
20 s in, at the stable fleet's first unit: its four pods' 3 degrees of freedom, all of the same
15 s, with phi 1 to 11 where the fleet's stalls give 40 to 140 over a minute (BENCHMARKS.md,
"One unit's phi")."""


@pytest.mark.judgement
def test_a_one_pod_baseline_with_a_lumpy_fleet_does_not_fail_on_one_unit_of_the_fleets_pods():
    name = "noisy, stalls at random"
    fleet = dict(BENCH_FLEETS)[name]
    assert fleet.baseline_pods == 1 and fleet.stable_pods == 4, "a one-pod baseline, 4 fleet pods"

    outcomes = boundary_outcomes(name, ONE_UNIT_RELEASES)

    assert outcomes == dict.fromkeys(ONE_UNIT_RELEASES, Outcome.PASS)


def test_evidence_piled_up_past_what_a_float_holds_is_still_judged_and_shown():
    # Thousands of canary lines while two of four stable pods were scraped: the gate waits for
    # its degrees of freedom, then fails, its evidence (e^1000s) shown as a power of e.
    release = Release(STABLE)
    waiting = release.look(20.0, (20000.0, 200.0), _steady(STABLE[:2]))
    release.look(30.0, (20000.0, 100.0), {})
    failed = release.look(40.0, (20000.0, 200.0), _steady(STABLE))

    assert release.gate.log_evidence > 710
    assert waiting.outcome is Outcome.COLLECTING and "evidence e^" in waiting.reason
    assert failed.outcome is Outcome.FAIL and "evidence e^" in failed.reason
