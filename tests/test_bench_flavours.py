"""The replay's flavour classes: the same fault, read through each flavour's own selectors.

Their rows exist to show that the otel and grpc selectors read the same counts as go's, so
they replay the go class's very recordings: a difference between the rows is then the
flavour's, not the draw's."""

from __future__ import annotations

import random
from dataclasses import replace

from canaryflow.analysis.measurement import Outcome
from canaryflow.bench.offline import (
    AA,
    BENCH_FAULTS,
    BENCH_STEPS,
    STEADY_FLEET,
    bench_spec,
    judge_release,
    replay_seed,
)
from canaryflow.bench.streams import simulate


def test_a_flavour_class_replays_the_recordings_of_its_go_twin():
    classes = (AA, *BENCH_FAULTS)
    [go] = [
        f
        for f in classes
        if f.gate == "error-rate" and f.canary_factor == 3.0 and (f.flavour == "go")
    ]
    flavoured = [f for f in classes if f.flavour != "go"]
    assert {f.flavour for f in flavoured} == {"otel", "grpc"}
    seed_of = {f.name: replay_seed(1, 0, classes.index(f), f) for f in classes}
    for fault in flavoured:
        assert seed_of[fault.name] == seed_of[go.name], fault.name
    others = [seed_of[f.name] for f in classes if f.flavour == "go"]
    assert len(set(others)) == len(others), "every go class keeps a seed of its own"


def test_one_recording_is_judged_alike_through_every_flavours_selectors():
    """A canary with three times the 5xx of steady pods is caught: at the same look, on the
    same counts, whichever flavour names the series."""
    fleet = replace(STEADY_FLEET, baseline_pods=1, history_s=120.0)
    rng = random.Random(4)
    for _ in range(2):
        recording = simulate(fleet, BENCH_STEPS, rng, canary_factor=3.0)
        judged = {
            flavour: judge_release(recording, BENCH_STEPS, bench_spec(flavour), baseline=True)
            for flavour in ("go", "otel", "grpc")
        }
        assert judged["go"].outcome is Outcome.FAIL and judged["go"].gate == "error-rate"
        assert len(set(judged.values())) == 1, judged
