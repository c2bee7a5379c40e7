"""The release engine's rules: promotion only on an unbroken run of passes, rollback otherwise.

The platform here is an in-memory implementation of the Platform protocol that logs every call,
so the order of operations (weight 0 verified before the canary goes) can be asserted. The same
engine runs against real nginx and processes in the local end-to-end tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canaryflow.analysis.measurement import Outcome
from canaryflow.errors import PlatformError
from canaryflow.kubernetes.platform import Timeouts
from canaryflow.plan.load import plan_from_dict
from canaryflow.platform.protocol import Artifact, HeaderRoute, HealthReport
from canaryflow.platform.weights import VERIFY_WEIGHT_TIMEOUT_S
from canaryflow.release.decision import Action, Phase, after_window
from canaryflow.release.engine import ReleaseEngine
from canaryflow.release.record import ReleaseRecord

ARTIFACT = Artifact(version="v2", command=("canary",))


@dataclass
class InMemoryRouter:
    calls: list[tuple] = field(default_factory=list)
    weight: int = 0
    fail_on_weight: int | None = None

    def set_weight(self, canary_percent: int) -> None:
        if canary_percent == self.fail_on_weight:
            raise PlatformError("router rejected the change")
        self.weight = canary_percent
        self.calls.append(("set_weight", canary_percent))

    def verify_weight(self, canary_percent: int) -> bool:
        self.calls.append(("verify_weight", canary_percent))
        return self.weight == canary_percent

    def set_header_route(self, route: HeaderRoute) -> None:
        self.calls.append(("set_header_route", route.name))

    def remove_managed_routes(self) -> None:
        self.calls.append(("remove_managed_routes",))


@dataclass
class InMemoryPlatform:
    healthy: bool = True
    router: InMemoryRouter = field(default_factory=InMemoryRouter)
    canary: str | None = None
    stable: str = "v1"

    def deploy_canary(self, artifact: Artifact) -> None:
        self.canary = artifact.version
        self.router.calls.append(("deploy_canary", artifact.version))

    def wait_healthy(self, timeout_s: float) -> HealthReport:
        return HealthReport(self.healthy, "ok" if self.healthy else "crash-looping")

    def promote(self, artifact: Artifact) -> None:
        self.stable, self.canary = artifact.version, None
        self.router.weight = 0
        self.router.calls.append(("promote", artifact.version))

    def rollback(self) -> None:
        assert self.router.weight == 0, "the canary must not go while it still takes traffic"
        self.canary = None
        self.router.calls.append(("rollback",))

    def canary_logs(self, since: float) -> list[str]:
        return []


@dataclass
class ScriptedWindow:
    verdict: Outcome
    reason: str = "scripted"


class ScriptedAnalyzer:
    """Returns the given verdicts in order, one per analysis window."""

    def __init__(self, verdicts, interrupt_at: int | None = None):
        self.verdicts = list(verdicts)
        self.windows = 0
        self.interrupt_at = interrupt_at

    def run_window(self, duration_s, on_round):
        if self.windows == self.interrupt_at:
            raise KeyboardInterrupt
        on_round([])
        verdict = self.verdicts[self.windows]
        self.windows += 1
        return ScriptedWindow(verdict)


def plan(weights=(5, 25, 50), **extra):
    steps = [{"weight": w, "duration": "1s"} for w in weights]
    return plan_from_dict({"service": {"name": "svc"}, "steps": steps, **extra})


def release(verdicts, platform=None, the_plan=None, **analyzer_options):
    platform = platform or InMemoryPlatform()
    engine = ReleaseEngine(
        the_plan or plan(),
        platform,
        ScriptedAnalyzer(verdicts, **analyzer_options),
        ReleaseRecord("svc", "v2", "memory"),
        sleep=lambda s: None,
    )
    return engine.run(ARTIFACT), platform


def test_every_window_passing_promotes_the_canary():
    result, platform = release([Outcome.PASS] * 3)
    assert result.phase is Phase.PROMOTED
    assert platform.stable == "v2" and platform.canary is None
    weights = [c[1] for c in platform.router.calls if c[0] == "set_weight"]
    assert weights == [5, 25, 50]


def test_a_failing_window_rolls_back_at_once_and_skips_the_remaining_steps():
    result, platform = release([Outcome.PASS, Outcome.FAIL, Outcome.PASS])
    assert result.phase is Phase.ROLLED_BACK
    assert "step 1 at 25%" in result.reason
    assert platform.stable == "v1" and platform.canary is None
    assert ("set_weight", 50) not in platform.router.calls
    assert ("promote", "v2") not in platform.router.calls


def test_weight_zero_is_verified_before_the_canary_is_removed():
    _, platform = release([Outcome.FAIL])
    calls = platform.router.calls
    assert calls.index(("verify_weight", 0)) < calls.index(("rollback",))


@pytest.mark.parametrize("verdict", [Outcome.ERROR, Outcome.INCONCLUSIVE])
def test_missing_data_never_promotes(verdict):
    result, _ = release([Outcome.PASS, verdict, Outcome.PASS])
    assert result.phase is Phase.ROLLED_BACK


def test_an_unhealthy_canary_fails_before_any_traffic_reaches_it():
    the_plan = plan(router={"header": None})
    result, platform = release([], platform=InMemoryPlatform(healthy=False), the_plan=the_plan)
    assert result.phase is Phase.FAILED
    assert not [c for c in platform.router.calls if c[0] == "set_weight" and c[1] > 0]


def test_a_platform_error_mid_release_ends_in_rollback():
    platform = InMemoryPlatform()
    platform.router.fail_on_weight = 25
    result, platform = release([Outcome.PASS] * 3, platform=platform)
    assert result.phase is Phase.ROLLED_BACK
    assert "router rejected the change" in result.reason
    assert platform.router.weight == 0


def test_ctrl_c_rolls_back_then_propagates():
    platform = InMemoryPlatform()
    with pytest.raises(KeyboardInterrupt):
        release([Outcome.PASS] * 3, platform=platform, interrupt_at=1)
    assert platform.router.weight == 0 and platform.canary is None


def test_an_inconclusive_window_can_hold_for_a_person_who_says_yes():
    the_plan = plan(rollback={"onInconclusive": "hold"})
    result, _ = release([Outcome.INCONCLUSIVE, Outcome.PASS, Outcome.PASS], the_plan=the_plan)
    assert result.phase is Phase.PROMOTED
    assert result.record.first("approval").data["approved"] is True


def test_the_record_tells_the_story_in_order():
    result, _ = release([Outcome.PASS, Outcome.FAIL])
    kinds = [e.kind for e in result.record.events]
    assert kinds[0] == "started"
    assert kinds.index("canary-deployed") < kinds.index("weight-set")
    assert kinds.index("window-ended") < kinds.index("rollback-started")
    assert kinds.index("traffic-safe") < kinds.index("rolled-back")


@given(st.lists(st.sampled_from(list(Outcome)), min_size=1, max_size=6))
def test_promotion_happens_exactly_when_every_window_passed(verdicts):
    weights = tuple(range(10, 10 * len(verdicts) + 1, 10))
    result, platform = release(verdicts, the_plan=plan(weights))
    if all(v is Outcome.PASS for v in verdicts):
        assert result.phase is Phase.PROMOTED
    else:
        assert result.phase is Phase.ROLLED_BACK
        assert platform.stable == "v1" and platform.router.weight == 0


@given(st.sampled_from(list(Outcome)), st.sampled_from(["rollback", "hold"]))
def test_only_a_pass_continues_without_a_person(verdict, policy):
    action = after_window(verdict, policy)
    assert (action is Action.CONTINUE) == (verdict is Outcome.PASS)


@pytest.mark.parametrize("verdict", [Outcome.COLLECTING, Outcome.NOT_APPLICABLE])
def test_a_window_that_never_matured_is_inconclusive_and_follows_on_inconclusive(verdict):
    assert after_window(verdict, "hold") is Action.HOLD
    assert after_window(verdict, "rollback") is Action.ROLLBACK


def test_a_weight_the_router_never_applies_ends_in_rollback_after_the_one_timeout():
    """One helper verifies every weight change; its timeout is the engine's to set."""
    platform = InMemoryPlatform()
    platform.router.verify_weight = lambda percent: percent == 0  # 5 % is never applied
    engine = ReleaseEngine(
        plan(),
        platform,
        ScriptedAnalyzer([Outcome.PASS] * 3),
        ReleaseRecord("svc", "v2", "memory"),
        sleep=lambda s: None,
        verify_timeout_s=0.0,
    )
    result = engine.run(ARTIFACT)
    assert result.phase is Phase.ROLLED_BACK
    assert "did not apply weight 5% within 0s" in result.reason
    assert Timeouts().verify_weight_s == VERIFY_WEIGHT_TIMEOUT_S
