"""Knowing that a written flag document is in force before judging the exposure it sets.

A document written is not yet a document served: the sample service re-reads its file every
0.5 s, and kubelet refreshes a mounted ConfigMap only on its pod sync (about a minute, plus its
cache). A window opened before then judges the old exposure, much as a traffic step judged
before the router applied its weight would. So after each write the rollout waits until every
instance of the service reports the new document's digest, through an info metric such as the
sample service's ``canaryflow_flag_document_info{flag, digest}``. A service that reports
nothing gets a flat wait of the plan's ``applyTimeout`` instead (``appliedMetric: null``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from canaryflow.analysis.source import MeasurementError, MetricSource
from canaryflow.duration import format_duration
from canaryflow.errors import PlatformError

POLL_S = 0.5


class FlagNotApplied(PlatformError):
    """The service did not confirm the document in time; the exposure is unknown."""


class DocumentApplication(Protocol):
    confirms: bool
    """True when ``wait`` observes the service; False when it only lets time pass."""

    def wait(self, digest: str) -> float:
        """Seconds until the document with ``digest`` is in force; FlagNotApplied if never."""
        ...


@dataclass
class FixedDelay:
    """For services that report nothing: wait as long as applying can take."""

    seconds: float
    sleep: Callable[[float], None] = time.sleep
    confirms = False

    def wait(self, digest: str) -> float:
        self.sleep(self.seconds)
        return self.seconds


@dataclass
class ReportedDigest:
    """Polls Prometheus until every instance reporting the flag reports ``digest``."""

    source: MetricSource
    metric: str
    service: str
    namespace: str
    flag_key: str
    timeout_s: float
    poll_s: float = POLL_S
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    confirms = True

    def wait(self, digest: str) -> float:
        start = self.clock()
        while True:
            reporting, applied, problem = self._count(digest)
            elapsed = self.clock() - start
            if reporting and applied == reporting:
                return elapsed
            if elapsed >= self.timeout_s:
                raise FlagNotApplied(self._explain(digest, reporting, applied, problem))
            self.sleep(self.poll_s)

    def query(self, digest: str | None = None) -> str:
        labels = f'app="{self.service}",namespace="{self.namespace}",flag="{self.flag_key}"'
        if digest is not None:
            labels += f',digest="{digest}"'
        return f"count({self.metric}{{{labels}}})"

    def _count(self, digest: str) -> tuple[int, int, str | None]:
        try:
            reporting = sum(self.source.instant(self.query()))
            applied = sum(self.source.instant(self.query(digest)))
        except MeasurementError as error:
            return 0, 0, str(error)
        return int(reporting), int(applied), None

    def _explain(self, digest: str, reporting: int, applied: int, problem: str | None) -> str:
        waited = format_duration(self.timeout_s)
        if problem is not None:
            return f"could not confirm flag document {digest} within {waited}: {problem}"
        if reporting == 0:
            return (
                f"no instance of {self.namespace}/{self.service} reports {self.metric} for flag "
                f"{self.flag_key!r} within {waited}: export it (see the sample service), or set "
                "flag.appliedMetric: null to wait flag.applyTimeout instead"
            )
        return (
            f"{applied} of {reporting} instances of {self.namespace}/{self.service} serve flag "
            f"document {digest} after {waited}: is the ConfigMap mounted in every pod? kubelet "
            "refreshes mounted ConfigMaps on its sync period; raise flag.applyTimeout if slower"
        )
