"""A comparing logs gate judged in one pod per window counts what one process would.

In the workflows every step's window is a pod of its own, the release's sequential evidence
carried from one to the next (``analysis.carried``). The log-errors gate counts each pod's lines
up to its requests' last scrape (``log_counts``) and holds a look's counts until both tracks'
pods were scraped in it (``SequentialGate.held_lines``). Before version 3 a window's pod lost
both at its end: the held chunk was dropped, and the next pod counted lines and requests from
its own start, leaving out the time since the earlier pod's last counted scrape (the weight
being set, the pod starting). The next pod now counts on from each pod's last counted scrape,
as the offline replay and ``canaryflow run`` (one process per release) do.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from canaryflow.analysis import carried
from canaryflow.analysis.carried import CarriedStateError
from canaryflow.analysis.evidence import SequentialGate
from canaryflow.analysis.log_counts import MAX_HELD_S
from canaryflow.analysis.measurement import Outcome
from canaryflow.analysis.run import AnalysisRun
from canaryflow.bench.offline import (
    BENCH_FLEETS,
    BENCH_STEPS,
    EPOCH,
    bench_spec,
    replay_run,
    with_warmup,
)
from canaryflow.bench.replay import ReplayClock
from canaryflow.bench.streams import Recording, simulate

SPEC = bench_spec().model_copy(update={"max_extension": 0.0})
GATE = "log-errors"
WEIGHTS = [round(weight * 100) for weight, _ in BENCH_STEPS]
BETWEEN_S = 25.0
"""Between two windows: the weight being set, the next analyze pod starting."""


def _release(fleet_name: str, seed: int, between_s: float = BETWEEN_S) -> tuple[Recording, float]:
    fleet = dict(BENCH_FLEETS)[fleet_name]
    warmup = SPEC.warmup_for(fleet.scrape_s, fleet.baseline_pods > 0)
    served = with_warmup(BENCH_STEPS, warmup + between_s * (len(BENCH_STEPS) - 1))
    return simulate(fleet, served, random.Random(seed)), warmup


def _fresh_baseline(recording: Recording) -> bool:
    """Whether the canary is judged against a fresh baseline (as the bench does)."""
    return any(pod.track == "baseline" for pod in recording.pods)


def _in_one_process(recording: Recording, warmup: float, between_s: float) -> SequentialGate:
    run = replay_run(recording, SPEC, baseline=_fresh_baseline(recording))
    run.clock.sleep(warmup)
    for index, (_, seconds) in enumerate(BENCH_STEPS):
        run.clock.sleep(between_s if index else 0.0)
        assert run.window(seconds).verdict.outcome is Outcome.PASS, "an A/A release"
    return run.sequential_evidence[GATE]


def _pod(recording: Recording, clock: ReplayClock) -> AnalysisRun:
    """One window's analyze pod: a new run on the release's clock, carrying evidence."""
    return replay_run(recording, SPEC, baseline=_fresh_baseline(recording), clock=clock)


def _in_pods(
    recording: Recording, warmup: float, between_s: float
) -> tuple[SequentialGate, list[str]]:
    """The release judged by a fresh ``AnalysisRun`` per window, the state passed as text."""
    clock = ReplayClock(EPOCH)
    clock.sleep(warmup)
    text: str | None = None
    written = []
    for index, (_, seconds) in enumerate(BENCH_STEPS):
        clock.sleep(between_s if index else 0.0)
        run = _pod(recording, clock)
        carried.begin_window(run, text, SPEC, index, 0, WEIGHTS)
        assert run.window(seconds).verdict.outcome is Outcome.PASS, "an A/A release"
        state = carried.snapshot(
            SPEC, index, run.budget, run.sequential_evidence, None, carried.reference_of(run)
        )
        text = state.to_text()
        written.append(text)
    return run.sequential_evidence[GATE], written


def _judged(gate: SequentialGate) -> tuple:
    test = gate.test
    counts = (test.canary_events, test.canary_exposure, test.stable_events, test.stable_exposure)
    return counts, gate.held_lines, test.chi2, test.dof, test.log_ratios, test.largest


@pytest.mark.parametrize(
    ("fleet", "seed"),
    [("noisy, against stable", 0), ("noisy, 30 s scrape", 1), ("noisy, all four", 1)],
)
def test_a_release_judged_in_a_pod_per_window_counts_the_lines_one_process_counts(fleet, seed):
    recording, warmup = _release(fleet, seed)

    alone = _in_one_process(recording, warmup, BETWEEN_S)
    pods, _ = _in_pods(recording, warmup, BETWEEN_S)

    # The same lines and requests, the same chunks held and the same units of the
    # over-dispersion: the same e-value (before version 3 the pods counted 5 to 25 % fewer
    # lines, their e-values off by up to 11 in log). The largest chunks too (version 5): in
    # its first units the gate fails only where its evidence without them crosses
    # (``evidence_beyond_largest``).
    assert _judged(pods) == _judged(alone)
    assert pods.log_evidence == alone.log_evidence
    beyond = pods.test.log_evidence_beyond_largest
    assert beyond == alone.test.log_evidence_beyond_largest < pods.log_evidence


def test_a_chunk_held_at_a_windows_end_is_weighed_in_the_next_pods_window():
    recording, warmup = _release("noisy, against stable", 0, 0.0)
    clock = ReplayClock(EPOCH)
    clock.sleep(warmup)
    first = _pod(recording, clock)
    carried.begin_window(first, None, SPEC, 0, 0, WEIGHTS)
    first.window(BENCH_STEPS[0][1])
    held = first.sequential_evidence[GATE].held_lines
    assert held[2] > 0 and held[1] == 0, "this window ends holding stable's last chunk"
    reference = carried.reference_of(first)
    text = carried.snapshot(SPEC, 0, first.budget, first.sequential_evidence, None, reference)
    text = text.to_text()

    second = _pod(recording, clock)
    carried.begin_window(second, text, SPEC, 1, 0, WEIGHTS)
    gate = second.sequential_evidence[GATE]
    assert gate.held_lines == held
    stable = gate.test.stable_events
    second.window(BENCH_STEPS[1][1])
    assert gate.test.stable_events >= stable + held[2], "weighed with the next chunk"


def test_the_next_pod_reads_each_pods_lines_from_its_last_counted_scrape():
    recording, warmup = _release("noisy, 30 s scrape", 1)
    _, written = _in_pods(recording, warmup, BETWEEN_S)
    state = carried.parse(written[0], SPEC, 1)
    lines = state.gates[GATE].lines
    assert lines is not None
    counted_to = [t for track in lines.tracks for _, t in track.counted_to]

    clock = ReplayClock(EPOCH + warmup + BENCH_STEPS[0][1] + BETWEEN_S)
    run = _pod(recording, clock)
    carried.begin_window(run, written[0], SPEC, 1, 0, WEIGHTS)
    counts = run.sequential_evidence[GATE].lines
    assert counts is not None
    started = clock.now()
    # Not from this window's start (less START_BACK_S): from the earliest scrape some pod's
    # lines were counted up to, before the window, where the earlier pod stopped.
    assert counts.since(started, started + SPEC.interval) == min(counted_to) < started


def test_a_pod_starting_later_than_the_lines_are_read_back_counts_from_its_own_start():
    recording, warmup = _release("noisy, 30 s scrape", 1)
    _, written = _in_pods(recording, warmup, BETWEEN_S)
    lines = carried.parse(written[0], SPEC, 1).gates[GATE].lines
    assert lines is not None
    last = max(t for track in lines.tracks for _, t in track.counted_to)

    clock = ReplayClock(last + MAX_HELD_S)
    run = _pod(recording, clock)
    carried.begin_window(run, written[0], SPEC, 1, 0, WEIGHTS)
    gate = run.sequential_evidence[GATE]
    # Its lines could no longer be read back to the scrapes its requests would count from:
    # lines and requests both start at this window's start, the gap left out, as before.
    assert gate.lines is None and not gate.started
    assert gate.test.stable_exposure > 0, "the test itself goes on"


def _reseal(data: dict) -> str:
    body = {key: value for key, value in data.items() if key != "checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return json.dumps({**data, "checksum": hashlib.sha256(text.encode()).hexdigest()})


def _version_2(text: str) -> dict:
    data = json.loads(text)
    data["version"] = 2
    for gate in data["gates"].values():
        gate.pop("held_lines", None)
        gate.pop("lines", None)
        for test in gate["tests"]:
            test.pop("largest", None)  # from version 5 on
    return data


def test_a_version_2_state_without_the_log_gates_counting_still_loads():
    recording, warmup = _release("noisy, against stable", 0, 0.0)
    _, written = _in_pods(recording, warmup, 0.0)
    old = _reseal(_version_2(written[0]))

    state = carried.parse(old, SPEC, 1)
    assert state.version == 2
    assert state.gates[GATE].lines is None and state.gates[GATE].held_lines == (0.0,) * 4

    clock = ReplayClock(EPOCH + warmup + BENCH_STEPS[0][1])
    run = _pod(recording, clock)
    carried.begin_window(run, old, SPEC, 1, 0, WEIGHTS)
    gate = run.sequential_evidence[GATE]
    # As before version 3: the tests go on, the lines counted from this window's start.
    assert gate.test.dof == state.gates[GATE].tests[0].dof > 0
    assert gate.lines is None and not gate.started and gate.held_lines == (0.0,) * 4
    assert run.window(BENCH_STEPS[1][1]).verdict is not None


WRITTEN_BY_VERSION_2 = Path(__file__).parent / "states" / "carried_v2_log_errors.json"
"""The state the canaryflow before version 3 wrote after the first window of this release
("noisy, against stable", seed 0, no time between windows)."""


def test_a_state_written_by_the_canaryflow_before_version_3_is_resumed_as_it_was():
    recording, warmup = _release("noisy, against stable", 0, 0.0)
    old = WRITTEN_BY_VERSION_2.read_text().strip()
    state = carried.parse(old, SPEC, 1)
    assert state.version == 2 and state.gates[GATE].lines is None

    clock = ReplayClock(EPOCH + warmup + BENCH_STEPS[0][1])
    run = _pod(recording, clock)
    carried.begin_window(run, old, SPEC, 1, 0, WEIGHTS)
    gate = run.sequential_evidence[GATE]
    assert gate.lines is None and not gate.started and gate.held_lines == (0.0,) * 4
    assert gate.test.log_ratios == list(state.gates[GATE].tests[0].log_ratios)
    assert run.window(BENCH_STEPS[1][1]).verdict.outcome is Outcome.PASS


def test_a_version_2_state_holding_version_3_fields_is_refused():
    recording, warmup = _release("noisy, against stable", 0, 0.0)
    _, written = _in_pods(recording, warmup, 0.0)
    data = json.loads(written[0])
    assert data["version"] == carried.VERSION == 5
    data["version"] = 2

    with pytest.raises(CarriedStateError, match="from version 3 on"):
        carried.parse(_reseal(data), SPEC, 1)


def test_the_units_a_log_gate_has_seen_go_on_in_the_next_pods_window():
    recording, warmup = _release("noisy, 30 s scrape", 1)
    clock = ReplayClock(EPOCH)
    clock.sleep(warmup)
    first = _pod(recording, clock)
    carried.begin_window(first, None, SPEC, 0, 0, WEIGHTS)
    first.window(BENCH_STEPS[0][1])
    seen = first.sequential_evidence[GATE].units_seen
    reference = carried.reference_of(first)
    text = carried.snapshot(SPEC, 0, first.budget, first.sequential_evidence, None, reference)

    # How long the gate has waited for its over-dispersion's degrees of freedom
    # (``awaits_dispersion``, bounded in units) is where the earlier pod left it.
    assert carried.parse(text.to_text(), SPEC, 1).gates[GATE].lines.units_seen == seen > 1
    second = _pod(recording, clock)
    carried.begin_window(second, text.to_text(), SPEC, 1, 0, WEIGHTS)
    assert second.sequential_evidence[GATE].units_seen == seen


WRITTEN_BY_VERSION_3 = Path(__file__).parent / "states" / "carried_v3_log_errors.json"
"""The state the canaryflow before version 4 wrote after the first window of this release
("noisy, against stable", seed 0, no time between windows): its log gate says whether it saw
a unit, not how many."""


def test_a_state_written_by_the_canaryflow_before_version_4_is_resumed_as_it_was():
    recording, warmup = _release("noisy, against stable", 0, 0.0)
    old = WRITTEN_BY_VERSION_3.read_text().strip()
    state = carried.parse(old, SPEC, 1)
    assert state.version == 3 and state.gates[GATE].lines.unit_seen
    _, written = _in_pods(recording, warmup, 0.0)

    resumed = []
    for text in (old, written[0]):
        clock = ReplayClock(EPOCH + warmup + BENCH_STEPS[0][1])
        run = _pod(recording, clock)
        carried.begin_window(run, text, SPEC, 1, 0, WEIGHTS)
        resumed.append(run.sequential_evidence[GATE].units_seen)
        assert run.window(BENCH_STEPS[1][1]).verdict.outcome is Outcome.PASS
        resumed.append(run.sequential_evidence[GATE].log_evidence)

    # Read as having seen one unit; its counting goes on as this canaryflow's own state's.
    assert resumed[0] == 1 < resumed[2]
    assert resumed[1] == resumed[3]


def test_a_version_3_state_holding_the_units_seen_is_refused():
    recording, warmup = _release("noisy, against stable", 0, 0.0)
    _, written = _in_pods(recording, warmup, 0.0)
    data = json.loads(written[0])
    assert data["gates"][GATE]["lines"]["units_seen"] > 0
    data["version"] = 3

    with pytest.raises(CarriedStateError, match="from version 4 on"):
        carried.parse(_reseal(data), SPEC, 1)


def test_the_log_gates_counting_is_bounded_by_pods_not_lines():
    recording, warmup = _release("noisy, all four", 1)
    _, written = _in_pods(recording, warmup, BETWEEN_S)
    lines = carried.parse(written[-1], SPEC, 2).gates[GATE].lines
    assert lines is not None
    pods = len({pod.name for pod in recording.pods})
    for track in lines.tracks:
        assert len(track.lines) <= pods and len(track.counted_to) <= pods
    assert all(len(c.series) <= pods for c in lines.counters)
    assert len(json.dumps(json.loads(written[-1])["gates"][GATE]["lines"])) < 4_000


def test_lines_read_without_their_times_are_not_counted_on_from_the_earlier_window():
    from canaryflow.analysis.catalogue import REQUESTS, Counts
    from canaryflow.analysis.log_counts import LogCounts
    from canaryflow.analysis.source import Sample

    gate = SequentialGate(
        GATE, Counts("log lines", REQUESTS["go"]), 1.0, 0.005, 0.0, counted_at_look=True
    )
    for deltas in gate.deltas.values():
        deltas.start([Sample({"pod": "p"}, 5.0)])
    gate.lines = LogCounts(lines={"canary": {"": 3.0}}, looks=4)  # read as written: no floor

    # Such lines are read from each look's start: the next window's lines begin at its own
    # start, so its requests must too (else the gap's requests count without their lines).
    assert carried._gate_state(gate).lines is None


def test_a_version_4_state_holding_the_largest_chunks_is_refused_and_one_without_them_loads():
    recording, warmup = _release("noisy, against stable", 0, 0.0)
    _, written = _in_pods(recording, warmup, 0.0)
    data = json.loads(written[0])
    assert data["gates"][GATE]["tests"][0]["largest"], "version 5 carries them"
    data["version"] = 4

    with pytest.raises(CarriedStateError, match="from version 5 on"):
        carried.parse(_reseal(data), SPEC, 1)
    for gate in data["gates"].values():
        for test in gate["tests"]:
            test.pop("largest", None)
    state = carried.parse(_reseal(data), SPEC, 1)
    # As version 4 wrote it: the rule counts the chunks from the window it resumes in.
    assert state.version == 4 and state.gates[GATE].tests[0].largest == ()
