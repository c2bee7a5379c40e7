"""What ``canaryflow doctor`` concludes from what it read: one ``Finding`` per check, each
failure naming its fix. Pure: the facts come in as data (``ClusterFacts``, read by
``canaryflow.doctor.probe``), so every rule is tested without a cluster.

The signals, and where upstream sets them:

* Argo Workflows: the tag of the ``workflow-controller`` container's image (release manifests
  pin ``quay.io/argoproj/workflow-controller:vX.Y.Z``; the Helm chart also sets the
  ``app.kubernetes.io/version`` label). v3.5 decodes ``synchronization.mutexes`` to an empty
  lock and fails every release before it runs ("cannot get LockName for a Sync of Unknown
  type"), so anything below 3.6 is refused.
* Argo Events: the ``controller-manager`` image tag (``quay.io/argoproj/argo-events:vX.Y.Z``);
  an EventSource is accepted when its ``SourcesProvided`` and ``Deployed`` conditions are True
  (pkg/apis/events/v1alpha1 ``EventSourceStatus``; an invalid one is ``SourcesProvided`` False
  with reason ``InvalidEventSource`` and no Deployment, pkg/reconciler/eventsource/).
* Tekton Pipelines: the ``pipeline.tekton.dev/release`` label of ``tekton-pipelines-controller``
  (set to the release tag by pipeline/tekton/publish.yaml).
* A tag that says no version (``latest``, a digest only) is a warning, not a pass.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MIN_ARGO_WORKFLOWS = (3, 6)
MIN_ARGO_EVENTS = (1, 9)
MIN_TEKTON_PIPELINES = (0, 50)
_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")

ARGO_CRDS = (
    "workflows.argoproj.io",
    "workflowtemplates.argoproj.io",
    "clusterworkflowtemplates.argoproj.io",
    "workflowtaskresults.argoproj.io",
)
EVENTS_CRDS = ("eventsources.argoproj.io", "sensors.argoproj.io", "eventbus.argoproj.io")
TEKTON_CRDS = (
    "tasks.tekton.dev",
    "pipelines.tekton.dev",
    "pipelineruns.tekton.dev",
    "taskruns.tekton.dev",
    "customruns.tekton.dev",
    "approvaltasks.openshift-pipelines.org",
)
TRIGGERS_CRDS = (
    "eventlisteners.triggers.tekton.dev",
    "triggers.triggers.tekton.dev",
    "triggertemplates.triggers.tekton.dev",
    "triggerbindings.triggers.tekton.dev",
)
# The API each router writes (canaryflow.kubernetes.routers), and what serves it.
ROUTER_APIS = {
    "istio": ("networking.istio.io", "v1", "Istio 1.22 or later"),
    "gateway-api": ("gateway.networking.k8s.io", "v1", "Gateway API v1.0 or later CRDs"),
    "smi": ("split.smi-spec.io", "v1alpha4", "the SMI TrafficSplit v1alpha4 CRD"),
    "nginx-ingress": ("networking.k8s.io", "v1", "Kubernetes 1.19 or later"),
}
CRD_FIX = {
    "argo": "install Argo Workflows v3.6 or later (its CRDs come with it)",
    "events": "install Argo Events v1.9 or later",
    "tekton": "install Tekton Pipelines v0.50 or later and manual-approval-gate",
    "triggers": "install Tekton Triggers",
}


class DoctorSettings(BaseModel):
    """What to check, and where things are: the defaults are the upstream install manifests'
    namespaces and the chart's names."""

    engine: Literal["argo", "tekton"] = "argo"
    events: bool = False
    namespace: str = "argo"
    """Where the chart is installed and the release workflows run."""
    argo_namespace: str = "argo"
    events_namespace: str = "argo-events"
    tekton_namespace: str = "tekton-pipelines"
    routers: tuple[str, ...] = ()
    """The routers releases use (each must have its API served): release.routerKind and
    every registered service's ``router`` in the chart's helm test."""
    build_service_account: str | None = "canaryflow-build"
    cache_claim: str | None = "canaryflow-go-cache"
    prometheus_url: str | None = None
    service: str | None = None
    service_namespace: str | None = None
    flavour: Literal["go", "otel", "grpc", "istio"] = "go"
    cluster: bool = True
    """False: only the service and Prometheus (the helm test's per-service containers)."""
    timeout_s: float = 10.0


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


class Finding(BaseModel):
    check: str
    status: Status
    detail: str
    fix: str = ""


class Workload(BaseModel):
    """A controller's Deployment as read: images by container, labels."""

    model_config = ConfigDict(frozen=True)
    name: str
    images: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)


class Condition(BaseModel):
    type: str
    status: str
    reason: str = ""
    message: str = ""


class ServiceFacts(BaseModel):
    name: str
    namespace: str
    deployment_labels: dict[str, str] | None = None
    """The Deployment's pod template labels; None: no such Deployment."""
    service_selector: dict[str, str] | None = None
    """The Service's selector; None: no such Service."""
    series: int | None = None
    """How many request series Prometheus has for it; None: not asked."""
    query: str = ""
    error: str | None = None
    """Why it could not all be read."""


class ClusterFacts(BaseModel):
    """Everything the probe read. A None reads as "could not be read" (the reason in
    ``errors``)."""

    engine: Literal["argo", "tekton"]
    events: bool = False
    cluster: bool = True
    """False: the cluster-wide checks were not asked for."""
    routers: tuple[str, ...] = ()
    crds: set[str] = Field(default_factory=set)
    served: dict[str, list[str]] = Field(default_factory=dict)
    """API group -> versions the API server serves (discovery)."""
    controllers: dict[str, Workload | None] = Field(default_factory=dict)
    event_sources: dict[str, list[Condition]] = Field(default_factory=dict)
    token_secret: str | None = None
    token_secret_found: bool | None = None
    cache_claim: str | None = None
    cache_claim_phase: str | None = None
    """None: no such claim."""
    prometheus_url: str | None = None
    prometheus_error: str | None = None
    service: ServiceFacts | None = None
    errors: dict[str, str] = Field(default_factory=dict)


def parse_version(text: str | None) -> tuple[int, int, int] | None:
    """``v3.6.19`` (a tag or a label) -> (3, 6, 19); None when it names no version."""
    if not text:
        return None
    match = _VERSION.match(text)
    if not match:
        return None
    return int(match[1]), int(match[2]), int(match[3] or 0)


def image_tag(image: str) -> str | None:
    """The tag of an image reference (``host:port/repo:tag@sha256:...`` -> ``tag``)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def workload_version(
    workload: Workload, container: str, label: str
) -> tuple[tuple[int, int, int] | None, str]:
    """The version a controller runs and where it was read."""
    image = workload.images.get(container) or next(iter(workload.images.values()), "")
    found = parse_version(image_tag(image))
    if found:
        return found, f"image {image}"
    labelled = parse_version(workload.labels.get(label))
    if labelled:
        return labelled, f"label {label}={workload.labels[label]}"
    return None, f"image {image or '(none)'}"


def _text(version: tuple[int, ...]) -> str:
    return "v" + ".".join(str(n) for n in version)


def version_finding(
    check: str,
    workload: Workload | None,
    container: str,
    label: str,
    minimum: tuple[int, int],
    fix: str,
    why: str,
    error: str | None = None,
) -> Finding:
    if workload is None:
        detail = error or "its controller Deployment was not found"
        return Finding(check=check, status=Status.FAIL, detail=detail, fix=fix)
    version, source = workload_version(workload, container, label)
    if version is None:
        return Finding(
            check=check,
            status=Status.WARN,
            detail=f"{workload.name}: no version in its {source}",
            fix=f"pin the controller by version tag, or confirm it is {_text(minimum)} or "
            "later by hand",
        )
    if version[:2] < minimum:
        return Finding(
            check=check,
            status=Status.FAIL,
            detail=f"{workload.name} runs {_text(version)} ({source}); canaryflow needs "
            f"{_text(minimum)} or later: {why}",
            fix=fix,
        )
    return Finding(check=check, status=Status.OK, detail=f"{_text(version)} ({source})")


def controller_findings(facts: ClusterFacts) -> list[Finding]:
    found = []
    if facts.engine == "argo":
        found.append(
            version_finding(
                "argo-workflows",
                facts.controllers.get("argo-workflows"),
                "workflow-controller",
                "app.kubernetes.io/version",
                MIN_ARGO_WORKFLOWS,
                "upgrade Argo Workflows to v3.6 or later "
                "(https://argo-workflows.readthedocs.io/en/latest/upgrading/)",
                "v3.5 reads synchronization.mutexes as an empty lock and fails every release "
                "before it starts (cannot get LockName for a Sync of Unknown type)",
                facts.errors.get("argo-workflows"),
            )
        )
        if facts.events:
            found.append(
                version_finding(
                    "argo-events",
                    facts.controllers.get("argo-events"),
                    "controller-manager",
                    "app.kubernetes.io/version",
                    MIN_ARGO_EVENTS,
                    "install or upgrade Argo Events to v1.9 or later",
                    "the chart's EventSource and Sensor use the v1.9 fields",
                    facts.errors.get("argo-events"),
                )
            )
    else:
        found.append(
            version_finding(
                "tekton-pipelines",
                facts.controllers.get("tekton-pipelines"),
                "tekton-pipelines-controller",
                "pipeline.tekton.dev/release",
                MIN_TEKTON_PIPELINES,
                "install or upgrade Tekton Pipelines to v0.50 or later",
                "the Tasks and Pipelines are tekton.dev/v1 with fields from v0.50",
                facts.errors.get("tekton-pipelines"),
            )
        )
    return found


def required_crds(facts: ClusterFacts) -> dict[str, tuple[str, ...]]:
    if facts.engine == "argo":
        groups = {"argo": ARGO_CRDS}
        if facts.events:
            groups["events"] = EVENTS_CRDS
    else:
        groups = {"tekton": TEKTON_CRDS}
        if facts.events:
            groups["triggers"] = TRIGGERS_CRDS
    return groups


def crd_findings(facts: ClusterFacts) -> list[Finding]:
    if "crds" in facts.errors:
        return [
            Finding(
                check="crds",
                status=Status.FAIL,
                detail=facts.errors["crds"],
                fix="give doctor read access to customresourcedefinitions",
            )
        ]
    found = []
    for group, names in required_crds(facts).items():
        missing = [name for name in names if name not in facts.crds]
        if missing:
            found.append(
                Finding(
                    check=f"crds/{group}",
                    status=Status.FAIL,
                    detail="missing: " + ", ".join(missing),
                    fix=CRD_FIX[group],
                )
            )
        else:
            found.append(
                Finding(check=f"crds/{group}", status=Status.OK, detail=f"{len(names)} present")
            )
    return found


def event_source_findings(facts: ClusterFacts) -> list[Finding]:
    if facts.engine != "argo" or not facts.events:
        return []
    if "event-sources" in facts.errors:
        return [
            Finding(
                check="event-source",
                status=Status.FAIL,
                detail=facts.errors["event-sources"],
                fix="install the chart with events.enabled=true",
            )
        ]
    if not facts.event_sources:
        return [
            Finding(
                check="event-source",
                status=Status.FAIL,
                detail="no EventSource of the chart was found",
                fix="install the chart with events.enabled=true",
            )
        ]
    found = []
    for name, conditions in sorted(facts.event_sources.items()):
        by_type = {c.type: c for c in conditions}
        bad = [
            by_type.get(kind) or Condition(type=kind, status="Unknown", message="not reported yet")
            for kind in ("SourcesProvided", "Deployed")
            if by_type.get(kind) is None or by_type[kind].status != "True"
        ]
        if bad:
            said = "; ".join(f"{c.type}={c.status} {c.reason} {c.message}".strip() for c in bad)
            found.append(
                Finding(
                    check=f"event-source/{name}",
                    status=Status.FAIL,
                    detail=f"not accepted: {said}",
                    fix="fix the chart's events values the message names (a GitLab access "
                    "token Secret, the listed repositories or projects) and upgrade the "
                    "release; `kubectl describe eventsource " + name + "` shows the same",
                )
            )
        else:
            found.append(
                Finding(
                    check=f"event-source/{name}",
                    status=Status.OK,
                    detail="SourcesProvided and Deployed",
                )
            )
    return found


def token_secret_finding(facts: ClusterFacts) -> list[Finding]:
    if facts.token_secret is None:
        return []
    if facts.token_secret_found:
        return [
            Finding(
                check="executor-token",
                status=Status.OK,
                detail=f"Secret {facts.token_secret} exists",
            )
        ]
    account = facts.token_secret.removesuffix(".service-account-token")
    return [
        Finding(
            check="executor-token",
            status=Status.FAIL,
            detail=facts.errors.get("executor-token")
            or f"Secret {facts.token_secret} is missing: Argo mounts it into go-test's and "
            "go-build's executor (automountServiceAccountToken: false), so their pods never "
            "start on Kubernetes 1.24 or later",
            fix=f"create a kubernetes.io/service-account-token Secret {facts.token_secret} "
            f"annotated kubernetes.io/service-account.name: {account} (the chart does it)",
        )
    ]


def cache_claim_finding(facts: ClusterFacts) -> list[Finding]:
    if facts.cache_claim is None:
        return []
    phase = facts.cache_claim_phase
    if phase == "Bound":
        return [
            Finding(
                check="go-cache", status=Status.OK, detail=f"claim {facts.cache_claim} is Bound"
            )
        ]
    detail = (
        f"claim {facts.cache_claim} is missing"
        if phase is None
        else f"claim {facts.cache_claim} is {phase}, not Bound"
    )
    # A WaitForFirstConsumer class binds at the first pod: Pending is not yet a fault.
    status = Status.WARN if phase == "Pending" else Status.FAIL
    return [
        Finding(
            check="go-cache",
            status=status,
            detail=facts.errors.get("go-cache") or detail,
            fix="check its StorageClass (`kubectl describe pvc " + facts.cache_claim + "`), "
            "or set go.cache.persistentVolumeClaim.enabled=false for an emptyDir",
        )
    ]


def router_findings(facts: ClusterFacts) -> list[Finding]:
    found = []
    for kind, (group, version, needs) in ROUTER_APIS.items():
        served = facts.served.get(group, [])
        if kind not in facts.routers:
            if served:
                found.append(
                    Finding(
                        check=f"router/{kind}",
                        status=Status.OK,
                        detail=f"{group} serves {', '.join(served)}",
                    )
                )
            continue
        if version in served:
            found.append(
                Finding(
                    check=f"router/{kind}", status=Status.OK, detail=f"{group}/{version} served"
                )
            )
        else:
            has = ", ".join(served) or "nothing"
            found.append(
                Finding(
                    check=f"router/{kind}",
                    status=Status.FAIL,
                    detail=f"the {kind} router writes {group}/{version}; the API server "
                    f"serves {has} of {group}",
                    fix=f"install {needs}, or release with another router (router.kind; a "
                    "service registered with this one: events.services.<repository>.router)",
                )
            )
    return found


def prometheus_finding(facts: ClusterFacts) -> list[Finding]:
    if facts.prometheus_url is None:
        return [Finding(check="prometheus", status=Status.SKIP, detail="no --prometheus URL")]
    if facts.prometheus_error:
        return [
            Finding(
                check="prometheus",
                status=Status.FAIL,
                detail=f"{facts.prometheus_url}: {facts.prometheus_error}",
                fix="point --prometheus (the chart's analysis.prometheusURL) at a Prometheus "
                "that answers /api/v1/query from the release pods' namespace",
            )
        ]
    return [
        Finding(
            check="prometheus", status=Status.OK, detail=f"{facts.prometheus_url} answers queries"
        )
    ]


def service_findings(facts: ClusterFacts) -> list[Finding]:
    service = facts.service
    if service is None:
        return []
    where = f"{service.namespace}/{service.name}"
    found = []
    if service.error is not None:
        return [
            Finding(
                check="service/read",
                status=Status.FAIL,
                detail=service.error,
                fix="give doctor get on Deployments and Services in the service's namespace, "
                "and a Prometheus it can query",
            )
        ]
    labels = service.deployment_labels
    if labels is None:
        found.append(
            Finding(
                check="service/deployment",
                status=Status.FAIL,
                detail=f"no Deployment {where}",
                fix="deploy the stable version first: canaryflow releases "
                "beside a running Deployment of the service's name",
            )
        )
    elif (labels.get("app") or labels.get("app.kubernetes.io/name")) != service.name:
        # The scrape copies app, else app.kubernetes.io/name, onto app (kubernetes.scrape).
        found.append(
            Finding(
                check="service/deployment",
                status=Status.FAIL,
                detail=f"Deployment {where}: pod label app={labels.get('app')!r}, "
                f"app.kubernetes.io/name={labels.get('app.kubernetes.io/name')!r}",
                fix=f"label its pod template app.kubernetes.io/name (or app): {service.name} "
                "(the gates select series by it and namespace)",
            )
        )
    else:
        found.append(
            Finding(
                check="service/deployment",
                status=Status.OK,
                detail=f"Deployment {where}, pods labelled as {service.name}",
            )
        )
    selector = service.service_selector
    if selector is None:
        found.append(
            Finding(
                check="service/service",
                status=Status.FAIL,
                detail=f"no Service {where}",
                fix=f"create a Service {service.name} selecting the pods",
            )
        )
    elif labels is not None and not selector.items() <= labels.items():
        found.append(
            Finding(
                check="service/service",
                status=Status.FAIL,
                detail=f"Service {where} selects {selector}, which the Deployment's pods "
                f"({labels}) do not all carry",
                fix="make the Service's selector a subset of the pod template's labels",
            )
        )
    elif selector is not None and labels is not None:
        found.append(
            Finding(
                check="service/service",
                status=Status.OK,
                detail=f"Service {where} selects the Deployment's pods",
            )
        )
    if service.series is not None:
        if service.series > 0:
            found.append(
                Finding(
                    check="service/metrics",
                    status=Status.OK,
                    detail=f"{service.series} series for {service.query}",
                )
            )
        else:
            found.append(
                Finding(
                    check="service/metrics",
                    status=Status.FAIL,
                    detail=f"Prometheus has no series for {service.query}",
                    fix="expose /metrics with http_requests_total and let Prometheus scrape "
                    "it (the chart's monitoring.podMonitor), or use the istio metrics flavour",
                )
            )
    return found


def evaluate(facts: ClusterFacts) -> list[Finding]:
    """Every finding, in the order a person fixes them: versions, CRDs, objects, data."""
    if not facts.cluster:
        return [*prometheus_finding(facts), *service_findings(facts)]
    return [
        *controller_findings(facts),
        *crd_findings(facts),
        *event_source_findings(facts),
        *token_secret_finding(facts),
        *cache_claim_finding(facts),
        *router_findings(facts),
        *prometheus_finding(facts),
        *service_findings(facts),
    ]


def failed(findings: list[Finding]) -> bool:
    return any(f.status == Status.FAIL for f in findings)
