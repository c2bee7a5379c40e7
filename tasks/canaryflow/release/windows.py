"""The engine's analysis windows: the plan's gates, plus the canary's own liveness each round.

Gates read Prometheus, which keeps a crashed canary's last samples inside every ``rate()``
window for a whole query window; the health check notices at once. So each round also asks the
platform whether the canary is alive, and a dead canary fails the window there and then.

A step's window lasts minutes, and the routes must stay right all along: each round also runs
the platform's ``upkeep`` (on Kubernetes ``follow_stable``: stable's share follows a stable
Deployment rolled mid-release by a GitOps tool's self-heal), not only the next weight change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from canaryflow.analysis.measurement import Measurement, Outcome
from canaryflow.analysis.run import AnalysisRun
from canaryflow.analysis.verdict import WindowVerdict
from canaryflow.errors import CanaryflowError
from canaryflow.platform.protocol import HealthReport
from canaryflow.release.first_scrape import FirstScrape

log = logging.getLogger(__name__)
LIVENESS_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Window:
    verdict: Outcome
    reason: str
    detail: dict


class _CanaryDown(Exception):
    pass


class AnalysisWindows:
    """Implements ``WindowAnalyzer`` over an ``AnalysisRun`` and a liveness probe."""

    def __init__(
        self,
        run: AnalysisRun,
        liveness: Callable[[float], HealthReport] | None,
        upkeep: Callable[[], None] | None = None,
        first_scrape: FirstScrape | None = None,
    ):
        self.run = run
        self.liveness = liveness
        self.upkeep = upkeep
        """Run each round; a failure is a warning and is tried again the next round (the
        window's verdict is about the canary, not about a read of the API)."""
        self.first_scrape = first_scrape
        """A fresh baseline's first scrape, waited for by the exposure: never scraped, the
        first window is an ERROR naming the broken setup, with nothing measured."""

    def run_window(
        self, duration_s: float, on_round: Callable[[list[Measurement]], None]
    ) -> Window:
        refused = self.first_scrape.refused() if self.first_scrape is not None else None
        if refused is not None:
            return Window(refused.verdict.outcome, refused.reason, refused.verdict.to_dict())

        def each_round(batch: Sequence[Measurement], verdict: WindowVerdict) -> None:
            keep_up(self.upkeep)
            on_round(list(batch))
            if self.liveness is not None and not verdict.decided:
                health = self.liveness(LIVENESS_TIMEOUT_S)
                if not health.healthy:
                    raise _CanaryDown(health.detail)

        self.run.on_round = each_round
        try:
            result = self.run.window(duration_s)
        except _CanaryDown as down:
            return Window(Outcome.FAIL, f"canary is not healthy: {down}", {})
        finally:
            self.run.on_round = None
        # analysis.metrics: auto says which flavour it judged with, in every window's reason.
        reason = f"{result.reason} ({result.metrics})" if result.metrics else result.reason
        return Window(result.verdict.outcome, reason, result.verdict.to_dict())


def keep_up(upkeep: Callable[[], None] | None) -> None:
    """``upkeep()``, its failure logged rather than raised: the next round tries again.

    Either kind of infrastructure failure: the API answering an error (``CanaryflowError``)
    or not answering at all (``OSError``: connection refused or reset, a socket timeout). A
    failed read between rounds says nothing about the canary, so neither cuts the window.
    """
    if upkeep is None:
        return
    try:
        upkeep()
    except (CanaryflowError, OSError) as error:
        log.warning("between rounds: %s: %s; tried again next round", type(error).__name__, error)
