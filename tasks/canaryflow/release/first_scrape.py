"""The fresh baseline's first scrape, waited for before the first window judges against it.

A fresh baseline (``analysis.baseline: fresh``) is deployed moments before the first traffic
step, and Prometheus finds and scrapes a new pod only after its discovery and one scrape
interval: judging before that is judging against nothing. So the first traffic step waits, up
to ``baseline_patience`` (one scrape interval + 30 s), for ``up`` of the baseline's pods; never
scraped, the first window is an ERROR (a rollback) naming the broken setup, never a silent
judgement against stable (a cold canary against the warm fleet, without the warm-up the plan
left out, is no verdict).

One code path for both ways a release runs on a cluster: the workflow's analyze pod
(``commands.analyze``) and ``canaryflow run --platform kubernetes`` (``FirstScrape``, which
``release.engine.plan_release`` wires into the first warm-up and the first window).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from canaryflow.analysis.measurement import Outcome
from canaryflow.analysis.query import Subject
from canaryflow.analysis.run import AnalysisRun, WindowResult
from canaryflow.analysis.source import MeasurementError
from canaryflow.analysis.spec import UNKNOWN_SCRAPE_S, WARMUP_AFTER_SCRAPE_S, AnalysisSpec
from canaryflow.analysis.verdict import WindowVerdict

BASELINE_POLL_S = 2.0
"""How often the first step asks whether Prometheus scrapes the fresh baseline yet."""


def baseline_patience(spec: AnalysisSpec, scrape_interval: float | None = None) -> float:
    """How long the first traffic step waits for the fresh baseline's first scrape: one scrape
    interval (the plan's, else the one Prometheus reports for the service, else the PodMonitor
    default, 15 s) + 30 s, what Prometheus needs to discover a new pod and scrape it: a 60 s
    scrape must not turn into a rollback. Not ``analysis.warmup``: the warm-up is left out of
    the evidence, this wait is for the evidence's reference to exist at all."""
    scrape = spec.scrape_interval or scrape_interval or UNKNOWN_SCRAPE_S
    return scrape + WARMUP_AFTER_SCRAPE_S


def baseline_selector(subject: Subject) -> str:
    """The label selector of the fresh baseline's series (``track="baseline"``)."""
    return dataclasses.replace(subject, baseline=True).selector("stable")


def baseline_scraped(source, subject: Subject) -> bool:
    """Whether Prometheus scrapes the fresh baseline (``up`` of ``track="baseline"``).
    Unanswered (Prometheus down): False, the window's own queries say why."""
    try:
        query = f"count(up{{{baseline_selector(subject)}}})"
        return any(value > 0 for value in source.instant(query))
    except (MeasurementError, OSError):
        return False


def wait_for_first_scrape(
    source,
    subject: Subject,
    patience: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    announce: Callable[[float], None] | None = None,
) -> tuple[bool, float]:
    """Whether the fresh baseline is scraped, asked every ``BASELINE_POLL_S`` for up to
    ``patience`` seconds (0: asked once), and how long that took. ``announce(patience)`` is
    called once, when the first answer is no and there is time left to wait."""
    started = clock()
    announced = False
    while True:
        if baseline_scraped(source, subject):
            return True, clock() - started
        waited = clock() - started
        if waited >= patience:
            return False, waited
        if not announced and announce is not None:
            announce(patience)
        announced = True
        sleep(min(BASELINE_POLL_S, patience - waited))


def never_scraped(subject: Subject, waited: float) -> WindowResult:
    """The first window's ERROR (a rollback) when the fresh baseline was never scraped: the
    PodMonitor misses ``canaryflow.dev/track: baseline``, or the baseline's pods do not run."""
    reason = (
        f"fresh baseline not scraped by Prometheus after {waited:g}s "
        f"(no up{{{baseline_selector(subject)}}}): not judged against stable instead; check "
        "that the PodMonitor scrapes pods labelled canaryflow.dev/track: baseline and that they "
        "run, or set analysis.baseline: stable"
    )
    now = time.time()
    return WindowResult(WindowVerdict(Outcome.ERROR, True, reason, ()), (), now, now)


@dataclass
class FirstScrape:
    """The wait for one release's fresh baseline in a process that runs the whole release
    (``run --platform kubernetes``): ``wait`` once, when the canary first takes traffic (before
    the warm-up, which the wait counts against); ``refused`` then gives the first window's
    ERROR if the baseline was never scraped, once."""

    analysis: AnalysisRun
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    announce: Callable[[float], None] | None = None
    found: bool | None = field(default=None, init=False)
    waited: float = field(default=0.0, init=False)
    _refusal_given: bool = field(default=False, init=False)

    def wait(self) -> tuple[bool, float]:
        if self.found is None:
            patience = baseline_patience(self.analysis.spec, self.analysis.known_scrape_interval())
            self.found, self.waited = wait_for_first_scrape(
                self.analysis.metrics,
                self.analysis.subject,
                patience,
                self.sleep,
                self.clock,
                self.announce,
            )
        return self.found, self.waited

    def refused(self) -> WindowResult | None:
        """The never-scraped ERROR for the first window after ``wait`` found nothing; else
        None (not waited yet, scraped, or already given)."""
        if self.found is not False or self._refusal_given:
            return None
        self._refusal_given = True
        return never_scraped(self.analysis.subject, self.waited)
