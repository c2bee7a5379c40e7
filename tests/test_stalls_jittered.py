"""Stalls locked to the scrape, and the replay fleet whose stalls are not (issue 20).

Strictly periodic stalls every 30 s on a 30 s scrape put exactly one stall into every pod's
scrape-long unit, so the over-dispersion learnt from those units never sees a stall's lump
(BENCHMARKS.md, "Stalls locked to the scrape"). ``streams.Fleet.stall_jitter_s`` draws each
gap within its bound of the period instead, as a pod's GC follows its allocation rate.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

from canaryflow.bench.offline import FLEET_KEYS, REPLAY_FLEETS
from canaryflow.bench.streams import Fleet, simulate

LOCKED = Fleet(
    stable_pods=4,
    rps=400.0,
    scrape_s=30.0,
    base_rate=0.0,
    stall_every_s=30.0,
    stall_share=1.0,
    blip_every_s=0.0,
    history_s=0.0,
)
"""Only stalls fail requests (all of a stalled second's), so a scrape's bad requests over its
pod's requests per second count its stalls."""
STEPS = ((0.1, 600.0),)


def _stalls_per_scrape(fleet: Fleet, seed: int) -> list[int]:
    """Stalls in each whole scrape interval of every stable pod."""
    counts = []
    for pod in simulate(fleet, STEPS, random.Random(seed)).pods:
        if pod.track != "stable":
            continue
        points = list(zip(pod.events, pod.exposure, strict=True))
        for before, after in itertools.pairwise(points):
            (t0, bad0), (_, served0) = before
            (t1, bad1), (_, served1) = after
            per_second = (served1 - served0) / (t1 - t0)
            counts.append(round((bad1 - bad0) / per_second))
    return counts


def test_stalls_locked_to_a_scrape_of_their_period_fall_once_in_every_scrape():
    counts = _stalls_per_scrape(LOCKED, 3)

    assert len(counts) > 50 and set(counts) == {1}


def test_jittered_stalls_fall_none_once_or_twice_in_a_scrape_about_once_on_average():
    counts = _stalls_per_scrape(replace(LOCKED, stall_jitter_s=10.0), 3)

    assert {0, 1, 2} <= set(counts)
    assert 0.85 < sum(counts) / len(counts) < 1.15, "still one stall every 30 s on average"


def test_the_jittered_fleet_is_the_30s_scrape_but_for_its_stalls_and_keeps_the_old_seeds():
    fleets = dict(REPLAY_FLEETS)
    names = [name for name, _ in REPLAY_FLEETS]
    jittered = fleets[FLEET_KEYS["scrape-30s-jittered"]]
    locked = fleets[FLEET_KEYS["scrape-30s"]]

    assert jittered == replace(locked, stall_jitter_s=10.0)
    assert names.index(FLEET_KEYS["log-bursts-big"]) == 27, "the red team's seeds unchanged"
    assert names[-1] == FLEET_KEYS["scrape-30s-jittered"]
