"""The flag rollout's rules: everyone on only after an unbroken run of passing windows,
the flag off (and the exposure kept as the previous document) after anything else.

The store is the real file store in a temporary directory; the analyzer is scripted, and the
"service" is a DocumentApplication that reads the file as the sample service would. The same
rollout runs against the real sample service and Prometheus in test_flags_local.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_release_engine import ScriptedAnalyzer, release

from canaryflow.analysis.measurement import Outcome
from canaryflow.analysis.source import MeasurementError
from canaryflow.flags.applied import FixedDelay, FlagNotApplied, ReportedDigest
from canaryflow.flags.document import document_digest, flag_off, flag_state
from canaryflow.flags.spec import FlagRolloutSpec
from canaryflow.flags.store import FileFlagStore, replace_with
from canaryflow.plan.load import plan_from_dict
from canaryflow.release.decision import DEFAULT_RULES, Phase, Rules
from canaryflow.release.flag_rollout import FlagRollout
from canaryflow.release.progression import ReleaseResult
from canaryflow.release.record import ReleaseRecord

KEY = "new-checkout"
SPEC = FlagRolloutSpec.model_validate(
    {
        "key": KEY,
        "steps": [
            {"users": "0-999", "duration": "1s"},
            {"percent": 5, "duration": "1s"},
            {"percent": 25, "duration": "1s"},
        ],
    }
)


@dataclass
class FileReadingService:
    """Applies a document when the file holds it; ``stuck`` never applies anything."""

    store: FileFlagStore
    stuck: bool = False
    served: list[str] = field(default_factory=list)
    confirms = True

    def wait(self, digest: str) -> float:
        text = self.store.path.read_text()
        if self.stuck or document_digest(text) != digest:
            raise FlagNotApplied(f"document {digest} not served")
        self.served.append(flag_state(self.store.read(), KEY))
        return 0.0


def rollout(tmp_path, verdicts, stuck=False, interrupt_at=None):
    store = FileFlagStore(tmp_path / "flags.json")
    store.update(replace_with(flag_off(KEY)))
    service = FileReadingService(store, stuck)
    analyzer = ScriptedAnalyzer(verdicts, interrupt_at=interrupt_at)
    record = ReleaseRecord("checkout", f"flag/{KEY}", "memory")
    return FlagRollout(SPEC, store, analyzer, record, service), store, service


def test_every_window_passing_switches_everyone_on(tmp_path):
    flag_rollout, store, service = rollout(tmp_path, [Outcome.PASS] * 3)
    result = flag_rollout.run()
    assert result.phase is Phase.PROMOTED
    assert flag_state(store.read(), KEY) == "on"
    assert service.served == ["partial", "partial", "partial", "on"]
    written = [e.data["segment"] for e in result.record.of_kind("flag-applied")]
    assert written == ["users 0..999", "5% of users", "25% of users", "everyone"]


def test_a_failing_window_switches_the_flag_off_and_keeps_the_exposure(tmp_path):
    flag_rollout, store, service = rollout(tmp_path, [Outcome.PASS, Outcome.FAIL, Outcome.PASS])
    result = flag_rollout.run()
    assert result.phase is Phase.ROLLED_BACK
    assert "step 1 (5% of users): fail" in result.reason
    assert store.read() == flag_off(KEY)
    assert store.previous()["flags"][KEY]["targeting"] == {"fractional": [["on", 5], ["off", 95]]}
    assert service.served[-1] == "off", "the service confirmed it serves off"
    assert result.record.first("flag-off-applied") is not None


def test_a_document_the_service_never_serves_is_never_judged(tmp_path):
    flag_rollout, store, _ = rollout(tmp_path, [Outcome.PASS] * 3, stuck=True)
    result = flag_rollout.run()
    assert result.phase is Phase.ROLLED_BACK
    assert "not served" in result.reason
    assert flag_rollout.analyzer.windows == 0, "no window opened on an unknown exposure"
    assert store.read() == flag_off(KEY)
    assert "not served" in result.record.first("flag-off-unconfirmed").data["error"]


def test_an_interrupt_switches_the_flag_off_before_it_propagates(tmp_path):
    flag_rollout, store, _ = rollout(tmp_path, [Outcome.PASS] * 3, interrupt_at=1)
    with pytest.raises(KeyboardInterrupt):
        flag_rollout.run()
    assert store.read() == flag_off(KEY)
    assert flag_rollout.record.first("flag-off-applied") is None, "no waiting after Ctrl-C"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(list(Outcome)), min_size=3, max_size=3))
def test_the_flag_ends_on_exactly_when_every_window_passed(tmp_path_factory, verdicts):
    flag_rollout, store, _ = rollout(tmp_path_factory.mktemp("flags"), verdicts)
    result = flag_rollout.run()
    everyone_passed = all(v is Outcome.PASS for v in verdicts)
    assert (result.phase is Phase.PROMOTED) == everyone_passed
    assert flag_state(store.read(), KEY) == ("on" if everyone_passed else "off")


# --- knowing a document is served -------------------------------------------------------------


class ScriptedPrometheus:
    """Answers ``count(...)`` queries from a script of (reporting, applied) pairs, or errors."""

    def __init__(self, script):
        self.script = list(script)
        self.queries: list[str] = []

    def instant(self, query: str) -> list[float]:
        self.queries.append(query)
        step = self.script[0] if len(self.script) == 1 else self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        reporting, applied = step
        value = applied if 'digest="' in query else reporting
        return [float(value)] if value else []

    def range(self, query, start, end, step):
        raise AssertionError("not used")


def reported(script, timeout_s=10.0):
    clock = iter(range(10_000))
    source = ScriptedPrometheus(script)
    check = ReportedDigest(
        source,
        "canaryflow_flag_document_info",
        "checkout",
        "shop",
        KEY,
        timeout_s,
        poll_s=1.0,
        clock=lambda: float(next(clock)),
        sleep=lambda s: None,
    )
    return check, source


def test_a_document_counts_as_served_once_every_reporting_instance_has_it():
    check, source = reported([(3, 1), (3, 2), (3, 3)])
    assert check.wait("0123456789abcdef") > 0
    assert source.queries[-1] == (
        'count(canaryflow_flag_document_info{app="checkout",namespace="shop",'
        'flag="new-checkout",digest="0123456789abcdef"})'
    )


def test_no_instance_reporting_is_never_taken_for_served():
    check, _ = reported([(0, 0)], timeout_s=3)
    with pytest.raises(FlagNotApplied, match="no instance of shop/checkout reports"):
        check.wait("0123456789abcdef")


def test_a_lagging_pod_names_the_count_and_the_fix():
    check, _ = reported([(3, 2)], timeout_s=3)
    with pytest.raises(FlagNotApplied, match=r"2 of 3 instances .* raise flag\.applyTimeout"):
        check.wait("0123456789abcdef")


def test_prometheus_down_is_not_served():
    check, _ = reported([MeasurementError("connection refused")], timeout_s=3)
    with pytest.raises(FlagNotApplied, match=r"could not confirm .*connection refused"):
        check.wait("0123456789abcdef")


def test_a_service_that_reports_nothing_gets_the_flat_wait():
    slept = []
    assert FixedDelay(90.0, slept.append).wait("any") == 90.0
    assert slept == [90.0] and not FixedDelay.confirms


# --- the rules every progression follows --------------------------------------------------------


class Answers:
    """An approver that answers from a script and remembers what it was asked."""

    def __init__(self, *answers: bool):
        self.answers = list(answers)
        self.asked: list[str] = []

    def approve(self, message, timeout_s):
        self.asked.append(message)
        return self.answers.pop(0)


def test_an_inconclusive_window_holds_for_a_person_when_the_plan_says_hold(tmp_path):
    flag_rollout, store, _ = rollout(tmp_path, [Outcome.PASS, Outcome.INCONCLUSIVE, Outcome.PASS])
    flag_rollout.rules = Rules(on_inconclusive="hold")
    flag_rollout.approver = person = Answers(True)
    result = flag_rollout.run()
    assert result.phase is Phase.PROMOTED and flag_state(store.read(), KEY) == "on"
    assert person.asked == ["step 1 inconclusive: scripted"]
    assert [e.data["approved"] for e in result.record.of_kind("approval")] == [True]


def test_a_hold_nobody_answers_ends_with_the_flag_off(tmp_path):
    """A flag rollout runs as one task: with nobody to ask, a hold is a refusal."""
    flag_rollout, store, _ = rollout(tmp_path, [Outcome.PASS, Outcome.INCONCLUSIVE, Outcome.PASS])
    flag_rollout.rules = Rules(on_inconclusive="hold")
    result = flag_rollout.run()
    assert result.phase is Phase.ROLLED_BACK
    assert result.reason == "step 1: approval refused or timed out"
    assert store.read() == flag_off(KEY)


def test_promotion_that_asks_a_person_keeps_the_flag_off_on_a_no(tmp_path):
    flag_rollout, store, _ = rollout(tmp_path, [Outcome.PASS] * 3)
    flag_rollout.rules = Rules(auto_promote=False)
    flag_rollout.approver = person = Answers(False)
    result = flag_rollout.run()
    assert person.asked == ["promote?"]
    assert result.phase is Phase.ROLLED_BACK and store.read() == flag_off(KEY)


def test_the_plan_sets_the_rules_of_a_flag_rollout_as_of_a_release():
    plan = plan_from_dict(
        {
            "service": {"name": "svc"},
            "steps": [{"weight": 5, "duration": "1s"}],
            "rollback": {"onInconclusive": "hold"},
            "promotion": {"auto": False},
        }
    )
    assert Rules.of(plan) == Rules(on_inconclusive="hold", auto_promote=False)
    default = plan_from_dict({"service": {"name": "svc"}, "steps": [plan.steps[0].model_dump()]})
    assert Rules.of(default) == DEFAULT_RULES


def test_flag_rollouts_and_traffic_releases_end_in_one_result_type(tmp_path):
    flag_rollout, _, _ = rollout(tmp_path, [Outcome.PASS] * 3)
    traffic, _ = release([Outcome.PASS] * 3)
    assert type(flag_rollout.run()) is type(traffic) is ReleaseResult
