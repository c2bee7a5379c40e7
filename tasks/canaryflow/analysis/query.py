"""PromQL templates rendered for one track: the same query, canary and stable alike.

Which series belong to which track, as a stock cluster has them:

- Application series (client_golang) are scraped per pod; the scrape relabels the pod labels
  ``app`` and ``canaryflow.dev/track`` onto ``app`` and the track label (the chart's
  PodMonitor does exactly this, see ``canaryflow.kubernetes.scrape``). Only canary pods carry
  ``canaryflow.dev/track``, so the canary is ``track="canary"`` and stable is every other pod of
  the service, ``track!="canary"``: stable is selected without ever being restarted to add a
  label. (Prometheus treats a missing label as empty, so ``!=`` matches pods without it.)
- cAdvisor series (``container_cpu_cfs_*``) come from the kubelet and carry only ``namespace``,
  ``pod`` and ``container``. ``{{ pods }}`` selects a track's pods by the names their Deployment
  gives them: ``<deployment>-<pod-template-hash>-<suffix>``, where the canary Deployment is
  ``<service>-canary`` and stable is ``<service>``. The pattern has exactly two segments after
  the Deployment name, so stable's never matches a canary pod (or another Deployment's).

With a fresh baseline (``analysis.baseline: fresh``, ``canaryflow.platform.split``) the track
the canary is compared with is the baseline, not the fleet: "stable" in a query then means
``track="baseline"`` and the Deployment ``<service>-baseline``. The evidence code keeps asking
for "stable" (the reference); only ``Subject`` knows which pods that is.

A third selection, ``FLEET``, is the stable fleet itself: every pod of the service that is
neither canary nor baseline (``track!~"canary|baseline"``). It is never compared with the
canary; the sequential gates read it to estimate the over-dispersion of the service's pods
(``evidence``), which a one-pod baseline cannot show. Without a fresh baseline it is the
reference itself (``separate_fleet`` False: nothing more is read). A large fleet is read
through a sample of its pods (``fleet_pods``, ``analysis.fleet_sample``), selected by name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}")
TRACKS: tuple[str, str] = ("canary", "stable")
BASELINE = "baseline"
"""The fresh baseline's track label value, and its Deployment's suffix."""
FLEET = "fleet"
"""The stable fleet's pods (neither canary nor baseline): where the over-dispersion is learnt."""

POD_NAME_SUFFIX = "-[a-z0-9]+-[a-z0-9]+"
"""``-<pod-template-hash>-<random suffix>``: what a Deployment's ReplicaSet adds to pod names."""


@dataclass(frozen=True)
class Subject:
    """Whose metrics are queried: the service, its namespace, and the label telling tracks."""

    service: str
    namespace: str
    track_label: str = "track"
    track_values: Mapping[str, str] | None = None
    """Label value per track when it is not the track's name (a flag: canary -> "on"); each
    track is then selected by its own value, as both variants are labelled by the service."""
    app: str | None = None
    """The ``app`` label's value when it is not the service's name (``service.selector``)."""
    deployment: str | None = None
    """The stable Deployment when it is not named like the service (``service.deployment``);
    the canary Deployment is always ``<service>-canary``."""
    baseline: bool = False
    """The reference ("stable") is a fresh baseline: ``track="baseline"``, Deployment
    ``<service>-baseline``."""
    fleet_pods: tuple[str, ...] | None = None
    """The stable fleet's pods read (``analysis.fleet_sample``: a bounded sample of a large
    fleet), selected by name; None: every pod of the fleet."""

    @property
    def separate_fleet(self) -> bool:
        """Whether the stable fleet is other pods than the reference (a fresh baseline, as
        labelled by the track label: a flag's variants have no fleet apart)."""
        return self.baseline and not self.track_values

    def workload(self, track: str) -> str:
        if track == "canary":
            return f"{self.service}-canary"
        if self.baseline and track != FLEET:
            return f"{self.service}-{BASELINE}"
        return self.deployment or self.service

    def selector(self, track: str) -> str:
        scope = f'app="{self.app or self.service}",namespace="{self.namespace}"'
        if self.track_values:
            value = self.track_values["stable" if track == FLEET else track]
            return f'{scope},{self.track_label}="{value}"'
        if self.separate_fleet and track == FLEET:
            return f'{scope},{self.track_label}!~"canary|{BASELINE}"{self._sampled(track)}'
        if self.baseline and track != "canary":
            return f'{scope},{self.track_label}="{BASELINE}"'
        operator = "=" if track == "canary" else "!="
        return f'{scope},{self.track_label}{operator}"canary"'

    def pods(self, track: str) -> str:
        """The track's containers by namespace and pod name, for series without pod labels."""
        # Service names are DNS labels (letters, digits, '-'): literal inside a regex as they are.
        return (
            f'namespace="{self.namespace}",pod=~"{self.workload(track)}{POD_NAME_SUFFIX}",'
            f'container!="",container!="POD"{self._sampled(track)}'
        )

    def _sampled(self, track: str) -> str:
        """The fleet sample's matcher (``fleet_pods``), appended to the fleet's selection."""
        if track != FLEET or not self.separate_fleet or not self.fleet_pods:
            return ""
        return "," + pod_matcher(self.fleet_pods)


_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")


def promql_regex_literal(text: str) -> str:
    """``text`` matched literally by an RE2 pattern, inside a PromQL double-quoted string
    (whose own escapes double every backslash)."""
    pattern = "".join(f"\\{c}" if c in _RE2_SPECIAL else c for c in text)
    return pattern.replace("\\", "\\\\").replace('"', '\\"')


def pod_matcher(pods: Sequence[str]) -> str:
    """A PromQL matcher selecting exactly ``pods`` by name (``Subject.fleet_pods``)."""
    alternatives = "|".join(promql_regex_literal(pod) for pod in pods)
    return f'pod=~"^({alternatives})$"'


def promql_duration(seconds: float) -> str:
    """A range for ``rate()``: whole seconds when possible, else milliseconds."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


def placeholder_values(subject: Subject, track: str, window: str) -> dict[str, str]:
    """What each ``{{ placeholder }}`` stands for, for one track (``window`` as PromQL text)."""
    return {
        "selector": subject.selector(track),
        "pods": subject.pods(track),
        "window": window,
        "service": subject.service,
        "namespace": subject.namespace,
        "track": track,
        "workload": subject.workload(track),
    }


def render(template: str, subject: Subject, track: str, window: float) -> str:
    """``template`` with every ``{{ placeholder }}`` filled in for ``track``."""
    values = placeholder_values(subject, track, promql_duration(window))

    def fill(match: re.Match) -> str:
        name = match.group(1)
        if name not in values:
            raise ValueError(f"unknown placeholder {{{{ {name} }}}} in {template!r}")
        return values[name]

    return _PLACEHOLDER.sub(fill, template)
