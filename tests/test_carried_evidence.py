"""One error budget for the whole release in the workflows: each step's analyze pod goes on with
the release's sequential tests (``analysis.carried``) instead of starting new ones.

Pure parts (the state's round trip, validation, the alpha split) are checked directly; whole
releases are simulated (``canaryflow.bench.streams``) and judged pod by pod as the workflow
does (``carried_replay``); the store on the canary Deployment runs against the fake API server
with the real kubernetes client.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random

import pytest
from carried_replay import judge_in_pods, judge_many_in_pods
from hypothesis import given, settings
from hypothesis import strategies as st
from kube.fixtures import NAMESPACE, STABLE_DEPLOYMENT

from canaryflow.analysis import carried
from canaryflow.analysis.carried import CarriedStateError
from canaryflow.analysis.catalogue import Buckets, Counts
from canaryflow.analysis.evidence import SequentialGate
from canaryflow.analysis.measurement import Outcome
from canaryflow.analysis.sequential import AlphaBudget, CountTest
from canaryflow.analysis.spec import AnalysisSpec
from canaryflow.analysis.statistics import rate_upper_bound
from canaryflow.bench.offline import judge_many
from canaryflow.bench.streams import Fleet, simulate
from canaryflow.errors import PlatformError
from canaryflow.kubernetes.api import ClusterApi
from canaryflow.kubernetes.evidence_store import DeploymentEvidenceStore
from canaryflow.kubernetes.resources import DEPLOYMENT
from canaryflow.kubernetes.retry import RetryPolicy


def spec(alpha: float = 0.01, gates=None) -> AnalysisSpec:
    # No warm-up: the pods' replay (tests/carried_replay.py) starts judging at the first step,
    # and judge_many waits the plan's warm-up (default one scrape + 30 s) before it.
    return AnalysisSpec.model_validate(
        {
            "warmup": "0s",
            "interval": "5s",
            "queryWindow": "30s",
            "alpha": alpha,
            "gates": gates or [{"metric": "error-rate"}, {"metric": "outbound-error-rate"}],
        }
    )


QUIET = Fleet(stable_pods=2, rps=100, scrape_s=5.0, stall_every_s=0, blip_every_s=0, history_s=300)
STEPS = [(0.1, 60.0), (0.3, 60.0), (0.6, 60.0)]


def written_state(seed: int = 1) -> str:
    recording = simulate(QUIET, STEPS, random.Random(seed))
    outcome, texts = judge_in_pods(recording, STEPS, spec(), carry=True)
    assert outcome is Outcome.PASS and len(texts) == len(STEPS)
    return texts[0]


# The state itself --------------------------------------------------------------------------------


def test_a_pod_that_reads_the_state_judges_exactly_as_one_process_carrying_the_tests():
    """The workflow's pods (a new process per step, the state as text between them) reach the
    same outcome as ``canaryflow run``'s one process, release by release."""
    in_pods = judge_many_in_pods(QUIET, STEPS, spec(), 25, seed=7, canary_factor=2.0)
    one_process = [j.outcome for j in judge_many(QUIET, STEPS, spec(), 25, 7, 2.0, carry=True)]
    assert in_pods == one_process
    assert Outcome.FAIL in in_pods and Outcome.PASS in in_pods  # both kinds were compared


def test_the_state_names_the_exported_gates_and_spends_nothing_on_the_others():
    state = carried.parse(written_state(), spec(), step=1)
    assert state.step == 0 and state.windows == 1
    # The fleet exports http_requests_total only: outbound-error-rate shares no alpha.
    assert state.exported == ("error-rate",)
    [test] = state.gates["error-rate"].tests
    assert test.canary_exposure > 0 and test.stable_exposure > test.canary_exposure
    counters = {(c.track, c.role) for c in state.gates["error-rate"].counters}
    assert counters == {(t, r) for t in ("canary", "stable") for r in ("events", "exposure")}


def reseal(data: dict) -> dict:
    """The checksum a writer would have put on ``data``: the content itself is then judged."""
    body = {key: value for key, value in data.items() if key != "checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return {**data, "checksum": hashlib.sha256(text.encode()).hexdigest()}


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda d: d["gates"]["error-rate"]["tests"][0].update(log_ratios=[0.0] * 8), "checksum"),
        (lambda d: reseal({**d, "version": 6}), "version '6', this canaryflow reads 1, 2, 3, 4, 5"),
        (lambda d: d["gates"]["error-rate"]["tests"][0].update(canary_events=-1), "canary_events"),
        (lambda d: reseal({**d, "step": 5}), "written by step 5, later than this step 1"),
        (lambda d: reseal({**d, "plan": "0" * 32}), "another plan"),
        (lambda d: reseal({**d, "alpha": 0.2}), "another plan|alpha"),
        (
            lambda d: reseal({**d, "gates": {**d["gates"], "other": d["gates"]["error-rate"]}}),
            "'other' is not a sequential gate",
        ),
    ],
)
def test_a_state_that_cannot_be_trusted_is_refused_saying_why(edit, says):
    data = json.loads(written_state())
    data = edit(data) or data
    with pytest.raises(CarriedStateError, match=says):
        carried.parse(json.dumps(data), spec(), step=1)


def test_the_untouched_state_is_accepted():
    assert carried.parse(json.dumps(reseal(json.loads(written_state()))), spec(), 1).step == 0


@pytest.mark.parametrize("text", ["", "{", "[]", "null", '{"version": 1}', "x" * 300_000])
def test_unreadable_state_is_refused(text):
    with pytest.raises(CarriedStateError):
        carried.parse(text, spec(), step=1)


def test_a_histogram_gates_tests_do_not_fit_a_counts_gate():
    state = carried.parse(written_state(), spec(), step=1).gates["error-rate"]
    latency = SequentialGate(
        "latency-p99", Buckets("x_bucket{ {{ selector }} }", 0.99), 0.2, 0.01, 20
    )
    with pytest.raises(CarriedStateError, match="tests at bucket bounds"):
        carried.resume(latency, state)
    counts = SequentialGate("error-rate", Counts("e{}", "n{}"), 0.2, 0.01, 20)
    carried.resume(counts, state)
    assert counts.test.log_ratios == list(state.tests[0].log_ratios)


def test_the_first_step_begins_afresh_and_a_later_one_without_state_says_so():
    weights = [10, 30, 60, 100]
    plan = spec()
    assert carried.begin(written_state(), plan, 0, 0, weights) == carried.Beginning()
    fresh = carried.begin(None, plan, 2, 0, weights)
    assert fresh.state is None and fresh.windows == 3 and fresh.restarted_at == 2
    assert "no evidence carried from the earlier steps was found" in fresh.note
    assert carried.judging_windows([10, 50, 100]) == 2  # a 100 % step cannot judge


@settings(max_examples=40, deadline=None)
@given(
    looks=st.lists(
        st.tuples(
            st.integers(0, 50), st.integers(1, 5000), st.integers(0, 50), st.integers(1, 5000)
        ),
        min_size=1,
        max_size=12,
    ),
    units=st.lists(st.tuples(st.integers(0, 30), st.integers(1, 900)), max_size=4),
    tolerance=st.sampled_from([0.0, 0.1, 0.2, 1.0]),
)
def test_a_test_read_back_from_its_state_goes_on_exactly_as_if_it_never_stopped(
    looks, units, tolerance
):
    kept = CountTest(tolerance=tolerance)
    resumed = CountTest(tolerance=tolerance)
    half = len(looks) // 2
    for look in looks[:half]:
        kept.add(*look)
        resumed.add(*look)
    kept.add_units(units)
    resumed.add_units(units)
    text = carried.TestState.of(None, resumed).model_dump_json()
    resumed = carried.TestState.model_validate_json(text).test()
    for look in looks[half:]:
        kept.add(*look)
        resumed.add(*look)
    assert resumed.log_evidence == kept.log_evidence
    assert resumed.dispersion == kept.dispersion


@settings(max_examples=6, deadline=None)
@given(
    weights=st.lists(st.sampled_from([0.05, 0.1, 0.25, 0.5, 0.75]), min_size=2, max_size=4),
    base=st.sampled_from([0.001, 0.01, 0.05]),
    seed=st.integers(0, 2**16),
)
@pytest.mark.judgement
def test_identical_canaries_over_steps_carried_through_the_state_fail_at_most_alpha(
    weights, base, seed
):
    """A/A: one test per gate carried step to step through its state (written and read back
    as the pods do); 300 releases of 3-4 steps, 20 looks each; 95 % upper bound ≤ alpha."""
    alpha, releases = 0.05, 300
    rng = random.Random(seed)
    fails = 0
    for _ in range(releases):
        state = carried.TestState.of(None, CountTest(tolerance=0.2))
        for weight in weights:
            test = carried.TestState.model_validate_json(state.model_dump_json()).test()
            for _ in range(20):
                canary, stable = round(200 * weight), round(200 * (1 - weight))
                test.add(_binomial(canary, base, rng), canary, _binomial(stable, base, rng), stable)
            if test.rejects(alpha):
                fails += 1
                break
            state = carried.TestState.of(None, test)
    assert rate_upper_bound(fails, releases) <= alpha, fails


def _binomial(n: int, p: float, rng: random.Random) -> int:
    return sum(rng.random() < p for _ in range(n))


@pytest.mark.judgement
def test_carried_evidence_catches_a_doubled_error_rate_the_per_step_tests_miss():
    """1 % → 2 % 5xx at 100 requests/s, 10 → 30 → 60 %, 60 s windows scraped every 5 s: the
    same recordings judged by pods that carry the tests and by pods that start anew."""
    plan = spec(gates=[{"metric": "error-rate"}])
    carried_ = judge_many_in_pods(QUIET, STEPS, plan, 60, seed=3, canary_factor=2.0)
    per_step = judge_many_in_pods(QUIET, STEPS, plan, 60, seed=3, canary_factor=2.0, carry=False)
    caught = sum(o is Outcome.FAIL for o in carried_)
    caught_per_step = sum(o is Outcome.FAIL for o in per_step)
    assert caught >= caught_per_step + 10, (caught, caught_per_step)


def test_a_lost_state_restarts_the_tests_at_a_smaller_share_and_never_passes_silently():
    recording = simulate(QUIET, STEPS, random.Random(5))
    outcome, texts = judge_in_pods(recording, STEPS, spec(), carry=True, lose_state_at=1)
    assert outcome is Outcome.PASS
    after = carried.parse(texts[1], spec(), step=2)
    assert after.restarted_at == 1 and after.windows == 3
    assert carried.begin(texts[1], spec(), 2, 0, [10, 30, 60]).note.startswith(
        "the gates' tests started afresh at step 1"
    )


# The store on the canary Deployment ---------------------------------------------------------------

FAST = RetryPolicy(attempts=2, first_delay_s=0.01, max_delay_s=0.01)


@pytest.fixture
def canary_store(api_server):
    canary = copy.deepcopy(STABLE_DEPLOYMENT)
    canary["metadata"]["name"] = "checkout-canary"
    api_server.seed(canary)
    api = ClusterApi(api_server.api_client(), NAMESPACE, FAST)
    return api_server, api, DeploymentEvidenceStore(api, "checkout-canary")


def annotation(api_server) -> str | None:
    found = api_server.get("Deployment", NAMESPACE, "checkout-canary")
    return found["metadata"].get("annotations", {}).get(carried.ANNOTATION)


def test_the_store_writes_the_annotation_under_the_version_it_read(canary_store):
    api_server, _, store = canary_store
    first = store.read()
    assert first.text is None
    store.write("one", first)
    assert annotation(api_server) == "one" and store.read().text == "one"
    patches = [r for r in api_server.writes("Deployment") if r.method == "PATCH"]
    assert patches[-1].body["metadata"]["resourceVersion"] == first.version


def test_another_writers_change_to_the_deployment_is_kept_and_the_write_retried(canary_store):
    api_server, api, store = canary_store
    read = store.read()
    api.merge_patch(DEPLOYMENT, "checkout-canary", {"metadata": {"annotations": {"a": "b"}}})
    store.write("two", read)
    stored = api_server.get("Deployment", NAMESPACE, "checkout-canary")["metadata"]
    assert stored["annotations"] == {"a": "b", carried.ANNOTATION: "two"}


def test_a_change_to_the_evidence_since_it_was_read_is_never_overwritten(canary_store):
    api_server, api, store = canary_store
    read = store.read()
    other = {"metadata": {"annotations": {carried.ANNOTATION: "theirs"}}}
    api.merge_patch(DEPLOYMENT, "checkout-canary", other)
    with pytest.raises(PlatformError, match="another writer changed the evidence"):
        store.write("mine", read)
    assert annotation(api_server) == "theirs"


def test_no_canary_deployment_is_an_error_not_an_empty_state(api_server):
    store = DeploymentEvidenceStore(ClusterApi(api_server.api_client(), NAMESPACE, FAST), "gone")
    with pytest.raises(PlatformError, match="does not exist"):
        store.read()


def test_log_threshold_is_the_gates_whole_share():
    """One gate exported of two: its threshold is log(1/alpha), not log(2·windows/alpha)."""
    state = carried.parse(written_state(), spec(), step=1)
    budget = AlphaBudget(0.01, ("error-rate", "outbound-error-rate"), state.windows, state.exported)
    assert math.isclose(budget.share("error-rate"), 0.01)
    assert budget.share("outbound-error-rate") == 0.0


def test_a_fleet_too_large_to_carry_its_counters_carries_its_tests_only():
    """Counters of 4 x 1,500 pods would not fit the annotations' 256 KiB: the tests go on, the
    next window counts from its own start."""
    from canaryflow.analysis.alignment import AlignedCounters

    plan = spec(gates=[{"metric": "error-rate"}])
    gate = SequentialGate("error-rate", Counts("e{}", "n{}"), 0.2, 0.01, 20)
    gate.test.add(3, 1000, 30, 9000)
    gate.aligned_at = gate.unit_since = 1_700_000_000.0
    for track in ("canary", "stable"):
        for role in ("events", "exposure"):
            values = {
                (("instance", f"10.0.{i // 250}.{i % 250}:8080"), ("pod", f"p-{i}")): 1.0
                for i in range(1500)
            }
            gate.counters[(track, role)] = AlignedCounters(values)
    budget = AlphaBudget(0.01, ("error-rate",), exported=("error-rate",))
    state = carried.snapshot(plan, 0, budget, {"error-rate": gate})
    assert len(state.to_text()) <= carried.COUNTERS_BUDGET_CHARS
    kept = state.gates["error-rate"]
    assert kept.counters == () and kept.aligned_at is None
    assert kept.tests[0].canary_exposure == 1000

    small = SequentialGate("error-rate", Counts("e{}", "n{}"), 0.2, 0.01, 20)
    small.aligned_at = 1_700_000_000.0
    for key in gate.counters:
        small.counters[key] = AlignedCounters({(("pod", "p-1"),): 5.0})
    state = carried.snapshot(plan, 0, budget, {"error-rate": small})
    resumed = SequentialGate("error-rate", Counts("e{}", "n{}"), 0.2, 0.01, 20)
    carried.resume(resumed, carried.parse(state.to_text(), plan, 1).gates["error-rate"])
    assert resumed.aligned_at == small.aligned_at and resumed.counters_started
    assert resumed.counters[("stable", "exposure")].last == {(("pod", "p-1"),): 5.0}


@pytest.mark.judgement
def test_a_test_begun_after_the_first_step_keeps_its_false_alarms_within_alpha():
    """What a lost state falls back to (and a pod without --carry-evidence does): a test begun
    at a later step, on counters that have run for minutes. Its first values must be
    interpolated one scrape apart like every later one's: across a wider span (the scrape not
    yet known) a counter that rose in a burst read back as a restart, and 6 % of identical
    canaries failed at alpha 1 %."""
    steps = [(0.1, 120.0), (0.3, 120.0), (0.6, 120.0)]
    plan = spec(alpha=0.05, gates=[{"metric": "error-rate"}])
    outcomes = judge_many_in_pods(QUIET, steps, plan, 120, seed=31, carry=False)
    fails = sum(o is Outcome.FAIL for o in outcomes)
    assert rate_upper_bound(fails, len(outcomes)) <= 0.05, fails


def test_a_step_passes_on_requests_of_its_own_window_not_only_on_the_releases_so_far():
    """Positive evidence: the release's test has thousands of canary requests, but a later
    window with 5 (of the 20 the plan asks) is still collecting, however good the test looks."""
    from canaryflow.analysis.source import Sample

    gate = SequentialGate("error-rate", Counts("e{}", "n{}"), 0.2, 0.01, 20)

    def look(canary: float, stable: float) -> dict:
        return {
            "canary": {"events": [Sample({}, 0.0)], "exposure": [Sample({}, canary)]},
            "stable": {"events": [Sample({}, 0.0)], "exposure": [Sample({}, stable)]},
        }

    first = gate.observe(look(5000, 45000), baseline=look(0, 0))
    assert first.outcome is Outcome.PASS, first.reason
    gate.new_window()  # the next step's window
    few = gate.observe(look(5005, 45100))
    assert few.outcome is Outcome.COLLECTING
    assert "collecting, 5 of 20 canary requests in this window" in few.reason
    enough = gate.observe(look(5025, 45300))
    assert enough.outcome is Outcome.PASS, enough.reason
    gate.new_window()  # a 100 % step: the reference serves nothing, the test stands
    at_full = gate.observe(look(5525, 45300))
    assert at_full.outcome is Outcome.PASS
    assert "stable served nothing in this window: the release's evidence so far" in at_full.reason


def test_counters_carried_from_one_reference_are_not_resumed_against_another():
    """A step judged against the fresh baseline, the next against stable (the baseline not yet
    scraped, or gone): the baseline pod's counters resumed for the stable pods would make
    every stable pod "first seen" and count its whole life as one look's increase. The tests
    go on; the counters start again at the window's start, and the verdict says why."""
    from dataclasses import replace

    from canaryflow.analysis.query import Subject
    from canaryflow.analysis.run import AnalysisRun
    from canaryflow.bench.offline import EPOCH, _ClockedSource
    from canaryflow.bench.replay import ReplayClock

    fleet = replace(QUIET, baseline_pods=1)
    steps = [(0.1, 60.0), (0.3, 60.0)]
    plan = spec(gates=[{"metric": "error-rate"}])
    clock = ReplayClock(EPOCH)
    source = _ClockedSource(simulate(fleet, steps, random.Random(5)), clock)

    def run(baseline: bool) -> AnalysisRun:
        subject = Subject("svc", "prod", "track", baseline=baseline)
        made = AnalysisRun(
            plan,
            source,
            "svc",
            "prod",
            clock=clock,
            windows=2,
            carry_evidence=True,
            subject=subject,
        )
        made.concurrent = False
        return made

    first = run(baseline=True)
    carried.begin_window(first, None, plan, 0, 0, [10, 30])
    first.window(60)
    written = carried.snapshot(
        plan, 0, first.budget, first.sequential_evidence, None, carried.reference_of(first)
    )
    assert written.reference == "baseline"
    before = first.sequential_evidence["error-rate"].test.stable_exposure

    second = run(baseline=False)
    begun = carried.begin_window(second, written.to_text(), plan, 1, 0, [10, 30])
    assert "the reference changed (baseline → stable)" in begun.note
    second.window(60)
    added = second.sequential_evidence["error-rate"].test.stable_exposure - before
    # Stable's 2 pods served 40 % of 100 requests/s in this 60 s window; their counters hold
    # their 5 minutes of history too, which must not be read as this window's.
    assert 0 < added <= 0.4 * 100 * 60 * 1.2


def test_counters_are_resumed_while_the_reference_stays_the_same():
    state = carried.parse(written_state(), spec(), 1)
    assert state.reference == "stable" and any(g.counters for g in state.gates.values())
