"""The two I/O seams of a release: the traffic router and the platform around it.

The release engine (``canaryflow.release``) only talks to these protocols, so the local
platform (processes, nginx) and the Kubernetes platform (Deployments, Istio, NGINX Ingress,
Gateway API, SMI) run the same plan through the same decisions. The split follows Argo
Rollouts' traffic-router interface (SetWeight, SetHeaderRoute, VerifyWeight,
RemoveManagedRoutes) and Flagger's (SetRoutes, GetRoutes, Finalize).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class HeaderRoute:
    """Requests carrying ``name: value`` always reach the canary, whatever the weight."""

    name: str = "x-release-channel"
    value: str = "canary"


@dataclass(frozen=True)
class Artifact:
    """What the canary runs.

    On Kubernetes ``image`` is a reference by digest (``repo@sha256:...``); locally ``command``
    is the argv of a process (a built Go binary or the user's own program).
    """

    version: str
    image: str | None = None
    command: Sequence[str] = ()
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HealthReport:
    healthy: bool
    detail: str


@runtime_checkable
class TrafficRouter(Protocol):
    """Splits traffic between stable and canary; only canaryflow's own routes are touched."""

    def set_weight(self, canary_percent: int, baseline_percent: int = 0) -> None:
        """Send ``canary_percent`` % of requests to the canary (0 = all on stable), and
        ``baseline_percent`` % to a fresh baseline (``BaselinePlatform``); stable the rest.

        A router that cannot split three ways refuses a baseline share (``PlatformError``)."""

    def verify_weight(self, canary_percent: int, baseline_percent: int = 0) -> bool:
        """True once the router is observed to apply both shares."""

    def set_header_route(self, route: HeaderRoute) -> None:
        """Route requests carrying the header to the canary."""

    def remove_managed_routes(self) -> None:
        """Remove every route canaryflow added; the user's own routes stay as they were."""


@runtime_checkable
class Platform(Protocol):
    """Runs the canary beside stable and swaps them at the end of a release."""

    @property
    def router(self) -> TrafficRouter: ...

    def deploy_canary(self, artifact: Artifact) -> None:
        """Start the canary beside stable, taking no traffic yet."""

    def wait_healthy(self, timeout_s: float) -> HealthReport:
        """Wait until the canary answers its health check, or the deadline passes."""

    def promote(self, artifact: Artifact) -> None:
        """Make stable run ``artifact``, move all traffic to it, remove the canary."""

    def rollback(self) -> None:
        """Canary weight 0 (verified at the router) first, then remove the canary.

        Stable is never modified.
        """

    def canary_logs(self, since: float) -> list[str]:
        """Canary log lines written since the Unix time ``since`` (for the log gate)."""


@runtime_checkable
class BaselinePlatform(Protocol):
    """A platform that can run a fresh baseline: stable's version, the canary's size, started
    with the canary (see ``canaryflow.platform.split``). ``rollback`` and ``promote`` remove it
    along with the canary, so no verb of its own is needed to take it away."""

    def baseline_problem(self) -> str | None:
        """None when a baseline can run here; else why not (a router that splits two ways)."""

    def deploy_baseline(self) -> None:
        """Start the baseline beside stable and the canary, taking no traffic yet."""


def runs_baseline(platform: Platform, wanted: bool) -> bool:
    """True when a release on ``platform`` judges against a fresh baseline: the plan wants one
    (``analysis.baseline: fresh``) and the platform can run one."""
    return wanted and isinstance(platform, BaselinePlatform) and platform.baseline_problem() is None


@dataclass(frozen=True)
class CanaryLogs:
    """A platform's canary log as the analysis' ``LogSource``, for the log gate."""

    platform: Platform

    def lines_since(self, since: float) -> list[str]:
        return self.platform.canary_logs(since)


@runtime_checkable
class StableLogs(Protocol):
    """A platform that can also read stable's log, for logs gates that compare the tracks."""

    def stable_logs(self, since: float) -> tuple[list[str], float]:
        """Stable's lines since ``since`` and the share of its instances they come from (the
        fresh baseline's, while one runs: the track the canary is judged against)."""
        ...


@dataclass(frozen=True)
class TrackLogs(CanaryLogs):
    """Both tracks' logs of a platform that has them (``StableLogs``)."""

    def stable_lines_since(self, since: float) -> tuple[list[str], float]:
        return self.platform.stable_logs(since)  # type: ignore[attr-defined]


@runtime_checkable
class PodLogs(Protocol):
    """A platform that reads both tracks' logs pod by pod (instance by instance): a comparing
    logs gate then estimates the lines' over-dispersion from the reference's pods."""

    def canary_logs_by_pod(self, since: float) -> dict[str, list[str]]:
        """The canary's lines since ``since`` by pod name, as its metrics label the pod."""
        ...

    def stable_logs_by_pod(self, since: float) -> tuple[dict[str, list[str]], float]:
        """The reference's lines by pod, and the share of its pods read (``stable_logs``)."""
        ...


@dataclass(frozen=True)
class PodTrackLogs(TrackLogs):
    """Both tracks' logs, pod by pod, of a platform that has them (``PodLogs``)."""

    def canary_pod_lines_since(self, since: float) -> dict[str, list[str]]:
        return self.platform.canary_logs_by_pod(since)  # type: ignore[attr-defined]

    def stable_pod_lines_since(self, since: float) -> tuple[dict[str, list[str]], float]:
        return self.platform.stable_logs_by_pod(since)  # type: ignore[attr-defined]


@runtime_checkable
class FleetLogs(Protocol):
    """A platform that reads the stable fleet's logs pod by pod beside a fresh baseline's."""

    def fleet_logs_by_pod(
        self, since: float, pods: Sequence[str] | None = None
    ) -> tuple[dict[str, list[str]], float]:
        """The stable fleet's lines by pod (never the baseline's or the canary's), and the
        share of its pods read; ``pods`` first where it reads a sample (``fleet_sample``)."""
        ...


@dataclass(frozen=True)
class FleetPodTrackLogs(PodTrackLogs):
    """``PodTrackLogs`` of a platform that also reads the stable fleet's pods (``FleetLogs``):
    a comparing logs gate learns the lines' over-dispersion from them against a baseline."""

    def fleet_pod_lines_since(
        self, since: float, pods: Sequence[str] | None = None
    ) -> tuple[dict[str, list[str]], float]:
        return self.platform.fleet_logs_by_pod(since, pods)  # type: ignore[attr-defined]


@runtime_checkable
class StampedLogs(Protocol):
    """A ``PodLogs`` platform that also tells when each line was written: a comparing logs
    gate then counts each pod's lines only up to its request counter's last scrape
    (``analysis.log_counts``), so lines and requests span the same seconds."""

    def logs_by_pod_stamped(
        self, track: str, since: float, pods: Sequence[str] | None = None
    ) -> tuple[dict[str, list[tuple[float, str]]], float]:
        """``track``'s lines since ``since`` by pod, each as ``(Unix seconds written, text)``,
        and the share of the track's pods read: "canary", "stable" (the reference, as
        ``stable_logs_by_pod``) or "fleet" (as ``FleetLogs.fleet_logs_by_pod``, asked only of
        a platform that has it; ``pods``: the fleet's sample, read first)."""
        ...


@dataclass(frozen=True)
class StampedPodTrackLogs(PodTrackLogs):
    """``PodTrackLogs`` with the time each line was written (``StampedLogs``)."""

    def stamped_pod_lines_since(
        self, track: str, since: float, pods: Sequence[str] | None = None
    ) -> tuple[dict[str, list[tuple[float, str]]], float]:
        return self.platform.logs_by_pod_stamped(track, since, pods)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class StampedFleetPodTrackLogs(FleetPodTrackLogs, StampedPodTrackLogs):
    """``FleetPodTrackLogs`` with the time each line was written (``StampedLogs``)."""


def log_source(platform: Platform) -> CanaryLogs:
    """The platform's logs for the analysis: both tracks where it can read stable's, pod by
    pod where it can tell the pods apart (and the stable fleet's pods, where it can), with
    the time each line was written where it can tell (``StampedLogs``)."""
    if isinstance(platform, StableLogs) and isinstance(platform, PodLogs):
        stamped = isinstance(platform, StampedLogs)
        if isinstance(platform, FleetLogs):
            return StampedFleetPodTrackLogs(platform) if stamped else FleetPodTrackLogs(platform)
        return StampedPodTrackLogs(platform) if stamped else PodTrackLogs(platform)
    return TrackLogs(platform) if isinstance(platform, StableLogs) else CanaryLogs(platform)
