"""One error budget for the whole release: one e-process per gate across every step.

The engine runs one ``AnalysisRun`` for the whole release with its evidence carried from window
to window as the weight changes; alpha is shared among the gates the service exports, never
split over windows. Simulated releases (``canaryflow.bench.streams``) are judged offline by the
real ``AnalysisRun`` (``canaryflow.bench.offline``), seeded, in seconds.
"""

from __future__ import annotations

import pytest

from canaryflow.analysis.measurement import Outcome
from canaryflow.analysis.spec import AnalysisSpec
from canaryflow.analysis.statistics import rate_upper_bound
from canaryflow.bench.offline import judge_many
from canaryflow.bench.streams import Fleet


def spec(alpha: float, interval: str = "10s") -> AnalysisSpec:
    return AnalysisSpec.model_validate(
        {
            "interval": interval,
            "queryWindow": "30s",
            "alpha": alpha,
            "gates": [{"metric": "error-rate"}, {"metric": "outbound-error-rate"}],
        }
    )


LUMPY = Fleet(stable_pods=4, scrape_s=15.0, stall_share=0.35, blip_every_s=120.0, history_s=120.0)
STEPS = [(0.1, 60.0), (0.3, 60.0), (0.6, 60.0)]


@pytest.mark.judgement
def test_identical_canaries_over_a_whole_multi_step_release_are_rolled_back_at_most_alpha():
    alpha = 0.05
    judged = judge_many(LUMPY, STEPS, spec(alpha), releases=150, seed=30)
    false_fails = sum(j.outcome is Outcome.FAIL for j in judged)
    assert rate_upper_bound(false_fails, len(judged)) <= alpha, false_fails


@pytest.mark.judgement
def test_carrying_evidence_across_steps_detects_more_than_a_test_per_window():
    """1 % → 3 % 5xx at 100 requests/s, 10 → 30 → 60 % in 40 s windows, scraped every 5 s.
    Same recordings both ways (same seed)."""
    fleet = Fleet(
        stable_pods=2, rps=100, scrape_s=5.0, stall_every_s=0, blip_every_s=0, history_s=300
    )
    steps = [(0.1, 40.0), (0.3, 40.0), (0.6, 40.0)]
    plan = spec(0.01, interval="5s")
    carried = judge_many(fleet, steps, plan, 60, seed=31, canary_factor=3.0, carry=True)
    restarted = judge_many(fleet, steps, plan, 60, seed=31, canary_factor=3.0, carry=False)
    caught = sum(j.outcome is Outcome.FAIL for j in carried)
    caught_restarting = sum(j.outcome is Outcome.FAIL for j in restarted)
    assert caught >= 0.9 * len(carried), caught
    assert caught >= caught_restarting + 20, (caught, caught_restarting)
    assert all(j.gate == "error-rate" for j in carried if j.outcome is Outcome.FAIL)
