"""Like against like (issue 20 item 3): the canary is judged against a fresh baseline of stable's
version started with it, at the canary's share, after a warm-up; a plan may keep the old way
(``analysis.baseline: stable``). A fault between the baseline's start and the first window still
ends with stable serving everything and the baseline gone."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canaryflow.analysis.measurement import Outcome
from canaryflow.analysis.query import Subject
from canaryflow.analysis.spec import AnalysisSpec
from canaryflow.bench.offline import cold_start_comparison, with_warmup
from canaryflow.errors import PlatformError
from canaryflow.local.nginx_config import RouteState, _split, validate_state
from canaryflow.plan.load import plan_from_dict
from canaryflow.plan.maturity import baseline_warnings
from canaryflow.platform.protocol import Artifact, BaselinePlatform, HealthReport
from canaryflow.platform.split import Split, split_for
from canaryflow.release.decision import Phase
from canaryflow.release.engine import ReleaseEngine
from canaryflow.release.events import EventKind
from canaryflow.release.record import ReleaseRecord

ARTIFACT = Artifact(version="v2", command=("canary",))

# The split rule -------------------------------------------------------------------------------

percents = st.integers(min_value=0, max_value=100)


@given(percents)
def test_the_three_shares_always_add_up_to_100_and_none_is_negative(canary):
    split = split_for(canary, fresh_baseline=True)
    assert split.canary + split.baseline + split.stable == 100
    assert min(split.canary, split.baseline, split.stable) >= 0


@given(st.integers(min_value=0, max_value=33))
def test_at_small_weights_the_baseline_gets_exactly_the_canarys_share(canary):
    split = split_for(canary, fresh_baseline=True)
    assert split.baseline == canary
    assert split.stable >= canary, "stable keeps at least the canary's share"


@given(percents)
def test_the_baseline_never_carries_more_than_the_canary_or_than_stable(canary):
    split = split_for(canary, fresh_baseline=True)
    assert split.baseline <= split.canary
    assert split.baseline <= split.stable


def test_at_0_and_100_percent_there_is_no_baseline_traffic():
    assert split_for(0, fresh_baseline=True) == Split(0, 0)
    assert split_for(100, fresh_baseline=True) == Split(100, 0)
    assert split_for(50, fresh_baseline=True) == Split(50, 25)


@given(percents)
def test_without_a_baseline_the_split_is_the_two_way_weight(canary):
    assert split_for(canary, fresh_baseline=False) == Split(canary, 0)


def test_a_split_beyond_100_percent_is_refused():
    with pytest.raises(ValueError, match="together at most 100"):
        Split(60, 50)


# The nginx split ------------------------------------------------------------------------------


@given(percents, percents)
def test_nginx_lists_exactly_the_tracks_with_a_share_and_ends_with_everything_else(c, b):
    if c + b > 100:
        return
    text = _split(c, b)
    tracks = [line.split()[-1].rstrip(";") for line in text.splitlines()]
    expected = [t for t, p in (("canary", c), ("baseline", b), ("stable", 100 - c - b)) if p]
    assert tracks == expected
    assert text.splitlines()[-1].strip().startswith("*"), "split_clients needs a catch-all"
    assert not re.search(r"(?<!\d)0%", text), "nginx refuses a 0% share"


def test_a_baseline_share_the_canary_leaves_no_room_for_is_refused_before_nginx_sees_it():
    state = RouteState(stable="127.0.0.1:1", canary="127.0.0.1:2", canary_percent=80)
    with pytest.raises(Exception, match="baseline_percent"):
        validate_state(RouteState(**{**state.__dict__, "baseline_percent": 30}))


# The plan -------------------------------------------------------------------------------------


def test_a_plan_judges_against_a_fresh_baseline_without_a_warm_up_by_default():
    spec = AnalysisSpec()
    assert spec.baseline == "fresh"
    assert spec.warmup is None
    assert spec.warmup_for(15.0, fresh_baseline=True) == 0.0, "cold with the canary: none"
    assert spec.warmup_for(15.0) == 45.0, "against stable: one scrape + 30 s"
    assert spec.warmup_for(None) == 45.0, "unknown scrape: the PodMonitor default, 15 s"
    assert AnalysisSpec(scrapeInterval="5s").warmup_for(60.0) == 35.0, "configured wins"
    assert AnalysisSpec(warmup="0s").warmup_for(15.0) == 0.0
    assert AnalysisSpec(warmup="20s").warmup_for(15.0, fresh_baseline=True) == 20.0


def test_the_run_waits_no_warm_up_against_a_baseline_and_one_against_stable():
    from canaryflow.analysis.query import Subject
    from canaryflow.analysis.run import AnalysisRun

    spec = AnalysisSpec(scrapeInterval="15s")

    def warmup(baseline: bool) -> float:
        subject = Subject("svc", "prod", baseline=baseline)
        return AnalysisRun(spec, object(), "svc", "prod", subject=subject).warmup_s()

    assert (warmup(True), warmup(False)) == (0.0, 45.0)


def test_a_plan_can_keep_judging_against_stable():
    plan = plan_from_dict(
        {
            "service": {"name": "svc"},
            "steps": [{"weight": 5, "duration": "1s"}],
            "analysis": {"baseline": "stable", "warmup": "10s"},
        }
    )
    assert plan.analysis.baseline == "stable" and plan.analysis.warmup == 10.0


def test_an_unknown_baseline_kind_is_refused():
    with pytest.raises(Exception, match="baseline"):
        AnalysisSpec(baseline="warm")


# The analysis' reference track ----------------------------------------------------------------


def test_with_a_fresh_baseline_the_reference_track_is_the_baseline_pods():
    subject = Subject("shop", "prod", baseline=True)
    assert subject.selector("stable") == 'app="shop",namespace="prod",track="baseline"'
    assert subject.selector("canary") == 'app="shop",namespace="prod",track="canary"'
    assert subject.workload("stable") == "shop-baseline"
    assert 'pod=~"shop-baseline-[a-z0-9]+-[a-z0-9]+"' in subject.pods("stable")


def test_without_a_baseline_the_reference_is_every_pod_but_the_canarys():
    subject = Subject("shop", "prod")
    assert subject.selector("stable") == 'app="shop",namespace="prod",track!="canary"'
    assert subject.workload("stable") == "shop"


# The engine -----------------------------------------------------------------------------------


@dataclass
class Router:
    calls: list[tuple] = field(default_factory=list)
    weight: tuple[int, int] = (0, 0)
    fail_at: int | None = None

    def set_weight(self, canary_percent: int, baseline_percent: int = 0) -> None:
        if canary_percent == self.fail_at:
            raise PlatformError("router rejected the change")
        self.weight = (canary_percent, baseline_percent)
        self.calls.append(("set_weight", canary_percent, baseline_percent))

    def verify_weight(self, canary_percent: int, baseline_percent: int = 0) -> bool:
        return self.weight == (canary_percent, baseline_percent)

    def set_header_route(self, route) -> None:
        self.calls.append(("set_header_route",))

    def remove_managed_routes(self) -> None:
        self.calls.append(("remove_managed_routes",))


@dataclass
class BaselineCapable:
    """An in-memory platform that runs a fresh baseline; logs every call in order."""

    router: Router = field(default_factory=Router)
    baseline: bool = False
    canary: bool = False
    problem: str | None = None

    def baseline_problem(self) -> str | None:
        return self.problem

    def deploy_canary(self, artifact: Artifact) -> None:
        self.canary = True
        self.router.calls.append(("deploy_canary",))

    def deploy_baseline(self) -> None:
        self.baseline = True
        self.router.calls.append(("deploy_baseline",))

    def wait_healthy(self, timeout_s: float) -> HealthReport:
        return HealthReport(True, "ok")

    def promote(self, artifact: Artifact) -> None:
        self.canary = self.baseline = False
        self.router.weight = (0, 0)
        self.router.calls.append(("promote",))

    def rollback(self) -> None:
        assert self.router.weight == (0, 0), "canary and baseline leave only once traffic has"
        self.canary = self.baseline = False
        self.router.calls.append(("rollback",))

    def canary_logs(self, since: float) -> list[str]:
        return []


class Windows:
    def __init__(self, verdicts, calls, interrupt_first=False):
        self.verdicts, self.calls, self.interrupt_first = list(verdicts), calls, interrupt_first

    def run_window(self, duration_s, on_round):
        if self.interrupt_first:
            raise KeyboardInterrupt
        self.calls.append(("window",))

        @dataclass
        class Result:
            verdict: Outcome
            reason: str = "scripted"

        return Result(self.verdicts.pop(0))


def release(platform, verdicts, analysis=None, interrupt_first=False):
    the_plan = plan_from_dict(
        {
            "service": {"name": "svc"},
            "steps": [{"weight": w, "duration": "1s"} for w in (5, 50, 100)],
            **({"analysis": analysis} if analysis else {}),
        }
    )
    record = ReleaseRecord("svc", "v2", "memory")
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        platform.router.calls.append(("sleep", seconds))

    engine = ReleaseEngine(
        the_plan,
        platform,
        Windows(verdicts, platform.router.calls, interrupt_first),
        record,
        sleep=sleep,
        warmup_s=lambda: 45.0,
    )
    try:
        result = engine.run(ARTIFACT)
    except KeyboardInterrupt:
        result = None
    return result, record


def test_the_baseline_starts_with_the_canary_shares_its_traffic_and_warms_up_before_judging():
    platform = BaselineCapable()
    assert isinstance(platform, BaselinePlatform)
    result, record = release(platform, [Outcome.PASS] * 3)
    assert result.phase is Phase.PROMOTED
    calls = [c for c in platform.router.calls if c[0] != "set_header_route"]
    assert calls[:5] == [
        ("deploy_canary",),
        ("deploy_baseline",),
        ("set_weight", 5, 5),
        ("sleep", 45.0),
        ("window",),
    ]
    weights = [c[1:] for c in calls if c[0] == "set_weight"]
    assert weights == [(5, 5), (50, 25), (100, 0)]
    assert [c for c in calls if c[0] == "sleep"] == [("sleep", 45.0)], "one warm-up only"
    kinds = [e.kind for e in record.events]
    assert kinds.index(EventKind.BASELINE_DEPLOYED) < kinds.index(EventKind.WARMUP)
    assert kinds.index(EventKind.WARMUP) < kinds.index(EventKind.WINDOW_STARTED)


def test_a_failing_canary_takes_the_baseline_with_it_after_traffic_is_on_stable():
    platform = BaselineCapable()
    result, _ = release(platform, [Outcome.FAIL])
    assert result.phase is Phase.ROLLED_BACK
    assert platform.router.calls[-2:] == [("set_weight", 0, 0), ("rollback",)]
    assert not platform.baseline and not platform.canary


def test_a_fault_between_the_baseline_and_the_first_window_ends_with_stable_at_100_percent():
    platform = BaselineCapable(router=Router(fail_at=5))
    result, _ = release(platform, [Outcome.PASS] * 3)
    assert result.phase is Phase.ROLLED_BACK
    assert platform.router.weight == (0, 0)
    assert not platform.baseline and not platform.canary
    assert ("window",) not in platform.router.calls


def test_an_interrupt_during_the_warm_up_window_still_removes_baseline_and_canary():
    platform = BaselineCapable()
    release(platform, [Outcome.PASS] * 3, interrupt_first=True)
    assert platform.router.weight == (0, 0)
    assert not platform.baseline and not platform.canary
    assert ("rollback",) in platform.router.calls


def test_a_plan_that_chooses_stable_gets_no_baseline_and_two_way_weights():
    platform = BaselineCapable()
    release(platform, [Outcome.PASS] * 3, analysis={"baseline": "stable"})
    assert ("deploy_baseline",) not in platform.router.calls
    assert [c[1:] for c in platform.router.calls if c[0] == "set_weight"] == [
        (5, 0),
        (50, 0),
        (100, 0),
    ]


def test_a_platform_that_cannot_split_three_ways_judges_against_stable_and_says_why():
    platform = BaselineCapable(problem="nginx-ingress splits two ways")
    result, record = release(platform, [Outcome.PASS] * 3)
    assert result.phase is Phase.PROMOTED
    assert ("deploy_baseline",) not in platform.router.calls
    skipped = [e for e in record.events if e.kind == EventKind.BASELINE_SKIPPED]
    assert skipped and skipped[0].data["reason"] == "nginx-ingress splits two ways"


# The offline replay: a cold canary ------------------------------------------------------------


def test_the_warm_up_lengthens_the_first_step_and_keeps_its_window():
    assert with_warmup([(0.1, 120.0), (0.3, 60.0)], 45.0) == [(0.1, 165.0), (0.3, 60.0)]


@pytest.mark.judgement
def test_an_identical_cold_canary_rolled_back_against_the_warm_fleet_passes_against_a_baseline():
    rows = {row["case"]: row for row in cold_start_comparison(12, say=lambda _: None)}
    before = rows["against stable, no warm-up (before)"]
    assert before["rolled_back"] >= 9, "the old way rolls most good cold canaries back"
    default = rows["against a fresh baseline, no warm-up (the default)"]
    assert default["passed"] == 12, "promoted: every window passed, none inconclusive"


def test_a_bad_cold_canary_is_still_caught_against_a_fresh_baseline():
    rows = cold_start_comparison(6, say=lambda _: None, factor=3.0)
    default = rows[-1]
    assert default["case"].endswith("(the default)")
    assert default["rolled_back"] >= 5


# validate -------------------------------------------------------------------------------------


def _plan(router: str, analysis: dict) -> object:
    header = {"header": None} if router == "smi" else {}  # a TrafficSplit matches no header
    return plan_from_dict(
        {
            "service": {"name": "svc"},
            "router": {"kind": router, **header},
            "steps": [{"weight": 10, "duration": "60s"}],
            "analysis": analysis,
        }
    )


def test_validate_warns_that_nginx_ingress_judges_against_stable_when_fresh_is_written():
    warnings = baseline_warnings(_plan("nginx-ingress", {"baseline": "fresh"}))
    assert len(warnings) == 1
    assert warnings[0].startswith("analysis.baseline: fresh needs a router that splits three ways")
    assert "baseline: stable" in warnings[0]
    assert warnings[0].endswith("or use istio or gateway-api"), "never a deprecated router"


@pytest.mark.parametrize(
    ("router", "analysis"),
    [
        ("nginx-ingress", {}),  # the default: nginx-ingress plans stay quiet (recorded at run)
        ("nginx-ingress", {"baseline": "stable"}),
        ("gateway-api", {"baseline": "fresh"}),
        ("istio", {"baseline": "fresh"}),
        ("smi", {"baseline": "fresh"}),  # a third TrafficSplit backend
    ],
)
def test_no_baseline_warning_where_the_plan_gets_what_it_says(router, analysis):
    assert baseline_warnings(_plan(router, analysis)) == []


# canaryflow analyze (a workflow step in its own pod) ------------------------------------------


class UpSource:
    def __init__(self, answer):
        self.answer, self.asked = answer, []

    def instant(self, query):
        self.asked.append(query)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_analyze_judges_against_the_baseline_once_prometheus_scrapes_it():
    from canaryflow.analysis.source import MeasurementError
    from canaryflow.commands.analyze import _baseline_scraped

    plan = _plan("gateway-api", {})
    subject = Subject("svc", "default")
    scraped = UpSource([1.0])
    assert _baseline_scraped(plan, scraped, subject)
    assert scraped.asked == ['count(up{app="svc",namespace="default",track="baseline"})']
    assert not _baseline_scraped(plan, UpSource([]), subject), "none yet: stable"
    assert not _baseline_scraped(plan, UpSource(MeasurementError("down")), subject)
    stable_plan = _plan("gateway-api", {"baseline": "stable"})
    unasked = UpSource([1.0])
    assert not _baseline_scraped(stable_plan, unasked, subject) and unasked.asked == []


class FakeTime:
    def __init__(self):
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class ScrapedAfter(UpSource):
    """``up`` of the baseline from ``seconds`` on (its first scrape)."""

    def __init__(self, time: FakeTime, seconds: float):
        super().__init__([])
        self.time, self.seconds = time, seconds

    def instant(self, query):
        self.answer = [1.0] if self.time.now >= self.seconds else []
        return super().instant(query)


def test_the_first_steps_pod_waits_for_the_baselines_first_scrape_before_choosing_stable():
    """With no warm-up against a baseline, the first step's pod may start before Prometheus
    found the baseline: it waits for its first scrape (up to the warm-up against stable,
    which is then spent), instead of judging the first window against stable."""
    import argparse

    from canaryflow.commands.analyze import _wait_for_baseline

    plan = _plan("gateway-api", {"scrapeInterval": "15s"})
    subject = Subject("svc", "default")
    first, later = argparse.Namespace(step=0), argparse.Namespace(step=1)
    time = FakeTime()
    found = _wait_for_baseline(
        plan, first, ScrapedAfter(time, 7.0), subject, time.sleep, time.clock
    )
    assert found == (True, 8.0), "polled every 2 s until its first scrape"
    time = FakeTime()
    never = _wait_for_baseline(
        plan, first, ScrapedAfter(time, 1e9), subject, time.sleep, time.clock
    )
    assert never == (False, 45.0), "stable after one scrape + 30 s: its warm-up, spent"
    time = FakeTime()
    once = _wait_for_baseline(plan, later, ScrapedAfter(time, 7.0), subject, time.sleep, time.clock)
    assert once == (False, 0.0), "a later step asks once: the baseline is gone"


class RecordedTime(FakeTime):
    """A fake clock that keeps every sleep, in order with the queries asked between them."""

    def __init__(self, events: list):
        super().__init__()
        self.events = events

    def sleep(self, seconds: float) -> None:
        self.events.append(("sleep", seconds))
        super().sleep(seconds)


class RecordedUp(ScrapedAfter):
    def __init__(self, time: RecordedTime, seconds: float):
        super().__init__(time, seconds)

    def instant(self, query):
        answer = super().instant(query)
        self.time.events.append(("asked", bool(answer)))
        return answer


@pytest.mark.parametrize(
    ("router", "analysis"),
    [
        ("nginx-ingress", {}),  # the default, fresh: nginx-ingress cannot split three ways
        ("nginx-ingress", {"baseline": "fresh", "warmup": "0s"}),
        ("gateway-api", {"baseline": "stable", "warmup": "0s"}),
        ("istio", {"baseline": "stable"}),
    ],
)
def test_where_no_baseline_runs_the_first_step_looks_at_once(router, analysis):
    """deploy-canary ran no baseline (``baseline: stable``, or a two-way router): the first
    step's pod has nothing to wait for, so it does not sleep nor ask Prometheus before its
    first look, whatever ``warmup`` says."""
    import argparse

    from canaryflow.commands.analyze import _wait_for_baseline

    plan = _plan(router, analysis)
    events: list = []
    time = RecordedTime(events)
    first = argparse.Namespace(step=0)
    never = RecordedUp(time, 1e9)
    assert _wait_for_baseline(
        plan, first, never, Subject("svc", "default"), time.sleep, time.clock
    ) == (
        False,
        0.0,
    )
    assert events == [], "no sleep and no question before the first window"
    from canaryflow.commands.analyze import _baseline_never_scraped

    assert _baseline_never_scraped(plan, first, Subject("svc", "default"), 0.0) is None, "stable"


def test_the_first_step_waits_for_the_baselines_first_scrape_even_with_no_warm_up():
    """A baseline runs: the window must not open before Prometheus has its first sample, so
    the pod polls until that sample appears, then looks (``warmup: 0s`` is about evidence left
    out, not about the reference existing)."""
    import argparse

    from canaryflow.commands.analyze import _wait_for_baseline

    plan = _plan("gateway-api", {"warmup": "0s", "scrapeInterval": "15s"})
    events: list = []
    time = RecordedTime(events)
    found = _wait_for_baseline(
        plan,
        argparse.Namespace(step=0),
        RecordedUp(time, 5.0),
        Subject("svc", "default"),
        time.sleep,
        time.clock,
    )
    assert found == (True, 6.0)
    # Asked, slept, asked ... and the wait ends with the first answer that has the sample.
    assert events == [
        ("asked", False),
        ("sleep", 2.0),
        ("asked", False),
        ("sleep", 2.0),
        ("asked", False),
        ("sleep", 2.0),
        ("asked", True),
    ]


def test_a_baseline_never_scraped_rolls_the_first_step_back_naming_the_broken_setup():
    """No silent judging against stable: a cold canary against the warm fleet, without the
    warm-up, is no verdict. The window is an error (a rollback), and it says what to check."""
    import argparse

    from canaryflow.commands.analyze import _baseline_never_scraped, baseline_patience
    from canaryflow.release.decision import Action, after_window

    plan = _plan("gateway-api", {"scrapeInterval": "15s", "warmup": "0s"})
    assert baseline_patience(plan) == 45.0, "one scrape + 30 s, whatever the warm-up"
    unset = _plan("gateway-api", {})
    assert baseline_patience(unset, 60.0) == 90.0, "the scrape Prometheus reports: no rollback"
    assert baseline_patience(unset) == 45.0, "unknown: the PodMonitor default, 15 s"
    assert baseline_patience(plan, 60.0) == 45.0, "the plan's scrapeInterval wins"
    subject = Subject("svc", "default")
    result = _baseline_never_scraped(plan, argparse.Namespace(step=0), subject, 45.0)
    assert result.verdict.outcome is Outcome.ERROR and result.measurements == ()
    assert after_window(result.verdict.outcome, "hold") is Action.ROLLBACK
    assert result.reason.startswith("fresh baseline not scraped by Prometheus after 45s")
    assert 'track="baseline"' in result.reason and "analysis.baseline: stable" in result.reason
    later = _baseline_never_scraped(plan, argparse.Namespace(step=1), subject, 0.0)
    assert later is None, "a later step: the baseline may be gone, stable"


def test_validate_warns_when_the_warm_up_ends_before_the_baseline_is_scraped():
    short = _plan("gateway-api", {"warmup": "5s", "scrapeInterval": "15s"})
    (warning,) = baseline_warnings(short)
    assert warning.startswith("analysis.warmup: 5s is shorter than one scrape (15s)")
    assert baseline_warnings(_plan("gateway-api", {"warmup": "5s"}), scrape_interval=15.0)
    assert baseline_warnings(_plan("gateway-api", {"warmup": "20s"}), scrape_interval=15.0) == []
    assert baseline_warnings(_plan("gateway-api", {}), scrape_interval=15.0) == [], "default"
    stable = _plan("gateway-api", {"warmup": "0s", "baseline": "stable"})
    assert baseline_warnings(stable, scrape_interval=15.0) == []


def test_a_baseline_that_never_becomes_available_fails_the_release_before_any_traffic():
    @dataclass
    class BrokenBaseline(BaselineCapable):
        def deploy_baseline(self) -> None:
            self.baseline = True  # created, then it crash-loops
            raise PlatformError("baseline shop/svc-baseline: CrashLoopBackOff")

    platform = BrokenBaseline()
    result, _ = release(platform, [Outcome.PASS] * 3)
    assert result.phase is Phase.FAILED, "no user was exposed: failed, not rolled back"
    assert "CrashLoopBackOff" in result.reason
    assert not platform.baseline and not platform.canary
    assert [c for c in platform.router.calls if c[0] == "set_weight"] == [("set_weight", 0, 0)]


def test_a_release_reads_the_metrics_of_the_deployment_and_labels_the_plan_names():
    """The one-process release judges the same pods as the workflow's analyze pods: stable's
    Deployment and the app label from the plan's contract, not the service's name."""
    from canaryflow.plan.promql import plan_subject
    from canaryflow.release.engine import plan_release

    plan = plan_from_dict(
        {
            "service": {
                "name": "checkout",
                "namespace": "shop",
                "deployment": "checkout-api",
                "selector": {"app.kubernetes.io/name": "checkout-v2"},
            },
            "steps": [{"weight": 10, "duration": "10s"}],
        }
    )
    engine = plan_release(plan, BaselineCapable(), object(), ReleaseRecord("c", "v2", "m"))
    subject = engine.analyzer.run.subject
    assert subject == plan_subject(plan, baseline=True)
    assert subject.deployment == "checkout-api" and subject.app == "checkout-v2"
    assert 'pod=~"checkout-api-' in plan_subject(plan).pods("stable")
