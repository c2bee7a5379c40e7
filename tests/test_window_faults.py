"""An infrastructure fault inside an analysis window (issue 22).

Between rounds, the platform's ``upkeep`` failing either way (the API answering an error, or a
refused connection) is logged and tried again: the window goes on. A fault that cuts the window
itself (the liveness probe raising, a round's callback failing) still ends it in the record, as
an ``error`` window naming the fault, then rolls back as any failed window does: the canary's
weight verified at 0 before it goes, stable serving everything, never a promotion.

The real ``AnalysisWindows`` over a real ``AnalysisRun``, Prometheus and the clock stood in
for, the engine on the in-memory platform of ``test_release_engine``.
"""

from __future__ import annotations

import logging

import pytest
from test_analysis_run import SteppingClock, TableSource, healthy, spec
from test_release_engine import ARTIFACT, InMemoryPlatform

from canaryflow.analysis.run import AnalysisRun
from canaryflow.errors import PlatformError
from canaryflow.plan.load import plan_from_dict
from canaryflow.platform.protocol import HealthReport
from canaryflow.release.decision import Phase
from canaryflow.release.engine import ReleaseEngine
from canaryflow.release.record import ReleaseRecord
from canaryflow.release.windows import AnalysisWindows

FAULTS = [
    ConnectionRefusedError(111, "Connection refused"),
    PlatformError("the API server answered 503"),
]
FAULT_IDS = ["OSError", "CanaryflowError"]


class Faulty:
    """Raises ``fault`` on the calls numbered in ``at`` (1-based); else returns ``answer``."""

    def __init__(self, fault: Exception, at: set[int], answer=None):
        self.fault, self.at, self.answer, self.calls = fault, at, answer, 0

    def __call__(self, *args):
        self.calls += 1
        if self.calls in self.at:
            raise self.fault
        return self.answer


def release(rows=None, liveness=None, upkeep=None, listener=None, weights=(10, 50)):
    """One release over 20 s windows measured every 10 s (two rounds each)."""
    platform = InMemoryPlatform()
    run = AnalysisRun(spec(), TableSource(rows or healthy()), "svc", "prod", clock=SteppingClock())
    windows = AnalysisWindows(run, liveness or platform.wait_healthy, upkeep=upkeep)
    record = ReleaseRecord("svc", "v2", "memory")
    if listener is not None:
        record.listeners.append(listener)
    steps = [{"weight": w, "duration": "20s"} for w in weights]
    the_plan = plan_from_dict({"service": {"name": "svc"}, "steps": steps})
    engine = ReleaseEngine(the_plan, platform, windows, record, sleep=lambda s: None)
    return engine.run(ARTIFACT), platform


def assert_rolled_back_with_an_error_window(result, platform, fault: Exception) -> None:
    kinds = [e.kind for e in result.record.events]
    assert result.phase is Phase.ROLLED_BACK, result.reason
    assert "promoted" not in kinds
    [ended] = result.record.of_kind("window-ended")
    assert ended.data["step"] == 0 and ended.data["verdict"] == "error"
    assert type(fault).__name__ in ended.data["reason"] and str(fault) in ended.data["reason"]
    assert kinds.index("window-started") < kinds.index("window-ended")
    assert kinds.index("window-ended") < kinds.index("rollback-started")
    assert kinds.index("traffic-safe") < kinds.index("rolled-back")
    assert "step 0" in result.reason and "error" in result.reason
    assert platform.router.weight == 0 and platform.canary is None and platform.stable == "v1"
    calls = platform.router.calls
    assert calls.index(("verify_weight", 0)) < calls.index(("rollback",))


@pytest.mark.parametrize("fault", FAULTS, ids=FAULT_IDS)
def test_an_upkeep_fault_between_rounds_is_logged_and_tried_again(fault, caplog):
    upkeep = Faulty(fault, at={1, 3})
    with caplog.at_level(logging.WARNING, logger="canaryflow.release.windows"):
        result, platform = release(upkeep=upkeep)
    assert result.phase is Phase.PROMOTED, result.reason
    assert upkeep.calls == 4, "every round of both windows tended the routes"
    verdicts = [e.data["verdict"] for e in result.record.of_kind("window-ended")]
    assert verdicts == ["pass", "pass"]
    warned = [r.getMessage() for r in caplog.records if "between rounds" in r.getMessage()]
    assert len(warned) == 2 and all(type(fault).__name__ in w for w in warned)
    assert platform.stable == "v2"


@pytest.mark.parametrize("fault", FAULTS, ids=FAULT_IDS)
def test_a_liveness_probe_that_raises_ends_the_window_as_an_error_and_rolls_back(fault):
    healthy_report = HealthReport(True, "ok")
    liveness = Faulty(fault, at={1}, answer=healthy_report)
    result, platform = release(liveness=liveness)
    assert_rolled_back_with_an_error_window(result, platform, fault)
    assert liveness.calls == 1, "the window ended at the fault"


@pytest.mark.parametrize("fault", FAULTS, ids=FAULT_IDS)
def test_a_round_callback_that_raises_ends_the_window_as_an_error_and_rolls_back(fault):
    raised = []

    def listener(event) -> None:
        if event.kind == "measurements" and not raised:
            raised.append(event)
            raise fault

    result, platform = release(listener=listener)
    assert_rolled_back_with_an_error_window(result, platform, fault)


@pytest.mark.parametrize("fault", FAULTS, ids=FAULT_IDS)
def test_measurement_reads_that_raise_are_error_measurements_never_a_pass(fault):
    """Reads fail inside the round (``gather``): each is an ERROR measurement naming the
    fault, and the window ends an error at the consecutive-error limit."""
    result, platform = release(rows={"": fault})
    assert result.phase is Phase.ROLLED_BACK, result.reason
    [ended] = result.record.of_kind("window-ended")
    assert ended.data["verdict"] == "error"
    items = [i for e in result.record.of_kind("measurements") for i in e.data["items"]]
    assert items and all(i["outcome"] == "error" for i in items)
    assert str(fault) in items[0]["reason"]
    assert platform.router.weight == 0 and platform.stable == "v1"
