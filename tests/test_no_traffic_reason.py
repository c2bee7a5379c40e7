"""A window that counted no canary request says why: nobody sent the service any, or the
canary did not serve its share while the reference did. Either way it is still collecting (a
rollback, if the window ends so, never a promotion); a healthy 100 % step passes."""

from __future__ import annotations

from canaryflow.analysis.catalogue import Counts
from canaryflow.analysis.evidence import SequentialGate
from canaryflow.analysis.measurement import Outcome
from canaryflow.analysis.source import Sample


def look(canary: float, stable: float) -> dict:
    return {
        "canary": {"events": [Sample({}, canary / 100)], "exposure": [Sample({}, canary)]},
        "stable": {"events": [Sample({}, stable / 100)], "exposure": [Sample({}, stable)]},
    }


def released_to_the_next_step() -> SequentialGate:
    """A gate whose 10 % window passed on 5,000 canary requests, now in its next window."""
    gate = SequentialGate("error-rate", Counts("e{}", "n{}"), 0.2, 0.01, 20)
    passed = gate.observe(look(5000, 5000), baseline=look(0, 0), elapsed=150.0, at=150.0)
    assert passed.outcome is Outcome.PASS, passed.reason
    gate.new_window()
    return gate


def test_a_window_in_which_no_user_reached_either_track_says_so():
    """The goroutine-leak release at 824bfaa: the bench's users stopped in the 50 % step, and
    the 100 % step said only "collecting, 0 of 20 canary requests in this window"."""
    gate = released_to_the_next_step()
    judged = [gate.observe(look(5000, 5000), elapsed=t, at=150.0 + t) for t in (5.0, 10.0)]
    assert all(j.outcome is Outcome.COLLECTING for j in judged)
    assert "collecting, 0 of 20 canary requests in this window" in judged[-1].reason
    assert "neither the canary nor the reference served a request in 10s of this window" in (
        judged[-1].reason
    )


def test_a_canary_that_serves_nothing_while_the_reference_serves_is_named():
    gate = released_to_the_next_step()
    judged = gate.observe(look(5000, 5400), elapsed=10.0, at=160.0)
    assert judged.outcome is Outcome.COLLECTING
    assert "the canary served none of the 400 requests the reference served in 10s" in (
        judged.reason
    )
    # The canary serving again (a 100 % step: the reference now serves nothing) passes.
    served = gate.observe(look(5400, 5400), elapsed=15.0, at=165.0)
    assert served.outcome is Outcome.PASS, served.reason
    assert "served none" not in served.reason and "neither" not in served.reason
