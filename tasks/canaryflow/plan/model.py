"""The release plan's shape, its defaults and its rules: the one source of truth.

A plan is one YAML file per service (``canaryflow.yaml`` in the service's repository). Its
vocabulary follows Argo Rollouts and Flagger (setWeight steps, analysis interval, failure
limits, header routes), so a user of either reads it without a manual. Every default lives
here; the compiled Argo DAG, the local run and the runbook all read the same model.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from canaryflow.analysis.spec import AnalysisSpec
from canaryflow.build.settings import GoBuildSpec
from canaryflow.duration import Duration
from canaryflow.flags.spec import FlagRolloutSpec
from canaryflow.plan.gitops import GitOpsSpec
from canaryflow.plan.routers import (
    CAPABILITIES,
    DEFAULT_ROUTER_KIND,
    HEADER_ROUTES,
    NAMED_RULES,
    RouterKind,
    routers_with,
)
from canaryflow.spec_model import SpecModel

API_VERSION = "canaryflow.dev/v1alpha1"
NOTIFY_EVENTS = ("started", "step", "promoted", "rolled-back", "failed")
# A DNS-1123 label short enough that "<name>-canary" still fits in 63 characters.
_SERVICE_NAME = r"^[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?$"
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
# Values that reach a router config, a request line or a file name are spelled conservatively:
# no quotes, spaces, control characters (CR/LF) or shell metacharacters, so none of them can
# change the structure of what they are written into.
_HEADER_NAME_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
_HEADER_VALUE = re.compile(r"^[A-Za-z0-9._~+/=:-]{1,256}$")
VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_VERSION_HINT = "use letters, digits and . _ + - (no '/', spaces or quotes), e.g. v2 or 1.4.0-rc.1"
# RFC 3986 path characters (pchar and '/'), plus a query.
_URL_PATH = r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*(\?[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?$"
# A Kubernetes object name (DNS-1123 subdomain).
_OBJECT_NAME = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = re.compile(rf"([a-z0-9]([-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_LABEL_NAME}")
_LABEL_VALUE = re.compile(_LABEL_NAME)
# Printable ASCII only: a host in Unicode can look like another (a Cyrillic a, U+0430),
# and a right-to-left override can make a URL read differently from where it goes; a real
# internationalised host is written in its punycode form (xn--...).
_URL = r"^https?://[\x21-\x7e]+$"
_URL_HINT = "an http(s) URL in plain ASCII (punycode xn--... for an international host)"


def plain_url(url: str | None) -> str | None:
    """An http(s) URL in printable ASCII, or ValueError saying what to write instead."""
    if url is None or re.fullmatch(_URL, url):
        return url
    if not re.match(r"^https?://", url, re.IGNORECASE):
        raise ValueError(f"only http:// and https:// URLs are taken: write {_URL_HINT}")
    raise ValueError(
        "has spaces, control characters or non-ASCII letters (a look-alike host or a "
        f"direction override?): write {_URL_HINT}"
    )


class PlanModel(SpecModel):
    """Plan sections: camelCase keys in YAML, unknown keys rejected, immutable once loaded."""


class ServiceSpec(PlanModel):
    name: Annotated[str, Field(pattern=_SERVICE_NAME)] = Field(
        description="The Go service: by default also its stable Deployment, its Service and its "
        "pods' `app` label (see deployment, service, selector)."
    )
    namespace: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")] = Field(
        "default", description="Kubernetes namespace of the service."
    )
    port: int = Field(8080, ge=1, le=65535, description="The port the service listens on.")
    health_path: str = Field(
        "/healthz",
        pattern=_URL_PATH,
        max_length=1024,
        description="Health endpoint the health gate probes.",
    )
    health_timeout: Duration = Field(
        120.0, gt=0, description="How long the canary may take to become healthy."
    )

    @field_validator("health_path")
    @classmethod
    def _normal_path(cls, path: str) -> str:
        """The path probed is the path written: no ``..`` or ``.`` segments, no ``//``, which
        a server normalises to another endpoint (``/../../admin`` is ``/admin``)."""
        segments = path.split("?", 1)[0].split("/")[1:]
        if any(s in (".", "..") for s in segments) or "//" in path.split("?", 1)[0]:
            raise ValueError(
                "has . or .. segments or an empty one (//): write the path the health "
                "endpoint has, e.g. /healthz"
            )
        if "%2e" in path.lower() or "%2f" in path.lower():
            raise ValueError("has an encoded . or /: write the path plainly, e.g. /healthz")
        return path

    canary_replicas: int = Field(1, ge=1, le=100, description="Replicas of the canary.")
    deployment: Annotated[str, Field(pattern=_SERVICE_NAME)] | None = Field(
        None, description="The stable Deployment (default: service.name)."
    )
    service: Annotated[str, Field(pattern=_SERVICE_NAME)] | None = Field(
        None, description="The Service in front of the stable pods (default: service.name)."
    )
    selector: dict[str, str] | None = Field(
        None,
        max_length=16,
        description="Labels that make a pod the service's; default: the Deployment's "
        "selector without version. The pods must carry app or app.kubernetes.io/name, which "
        "metrics are selected by (its value here, else service.name).",
    )

    @field_validator("selector")
    @classmethod
    def _labels(cls, selector: dict[str, str] | None) -> dict[str, str] | None:
        for key, value in (selector or {}).items():
            if not _LABEL_KEY.fullmatch(key):
                raise ValueError(
                    f"{_shown(key)} is not a label key: a name of at most 63 letters, digits, "
                    "'-', '_' or '.', with an optional DNS prefix and '/', e.g. "
                    "app.kubernetes.io/name"
                )
            if not _LABEL_VALUE.fullmatch(value):
                raise ValueError(
                    f"{_shown(value)} (label {key}) is not a label value: at most 63 letters, "
                    "digits, '-', '_' or '.', starting and ending with a letter or digit"
                )
        if selector == {}:
            raise ValueError("selector is empty: name at least one label, or omit it")
        return selector

    @property
    def deployment_name(self) -> str:
        return self.deployment or self.name

    @property
    def service_name(self) -> str:
        return self.service or self.name

    @property
    def app_label(self) -> str:
        """The value metrics are selected by (``app``): the selector's ``app`` or
        ``app.kubernetes.io/name``, else the service's name."""
        selector = self.selector or {}
        return selector.get("app") or selector.get("app.kubernetes.io/name") or self.name

    container: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")] | None = (
        Field(
            None,
            description="The container running the service in its pods: its image is "
            "replaced and its log read. Omitted: the one named like the service, else the one "
            "whose ports include service.port, else the first that is not a known sidecar.",
        )
    )


class HeaderRouteSpec(PlanModel):
    name: str = Field("x-release-channel", description="Request header that selects the canary.")
    value: str = Field("canary", min_length=1, description="Header value that selects it.")

    @field_validator("name")
    @classmethod
    def _token(cls, value: str) -> str:
        if not _HEADER_NAME_SAFE.fullmatch(value):
            raise ValueError(
                f"{_shown(value)} is not an HTTP header name: use letters, digits and '-' "
                "(at most 64), e.g. x-release-channel"
            )
        return value.lower()

    @field_validator("value")
    @classmethod
    def _exact(cls, value: str) -> str:
        if not _HEADER_VALUE.fullmatch(value):
            raise ValueError(
                f"{_shown(value)} cannot be matched exactly by every router: use letters, "
                "digits and ._~+/=:- (no quotes, spaces or line breaks), e.g. canary"
            )
        return value


class RouterSpec(PlanModel):
    kind: RouterKind = Field(
        DEFAULT_ROUTER_KIND,
        description="Traffic router on Kubernetes (nginx-ingress and smi are deprecated). The "
        "local platform always uses its own nginx.",
    )
    header: HeaderRouteSpec | None = Field(
        default_factory=HeaderRouteSpec,
        description="Requests with this header always reach the canary; null turns it off.",
    )
    route: str | None = Field(
        None,
        pattern=_OBJECT_NAME,
        description="The user's VirtualService, Ingress, HTTPRoute or TrafficSplit to manage "
        "(default: named after the service).",
    )
    drain: Duration = Field(
        10.0,
        ge=0,
        le=600,
        description="Kubernetes: once weight 0 and no header route are verified on the router "
        "object, how long promote and rollback wait before removing the canary's pods, so "
        "that proxies still applying the change and in-flight requests finish (Argo "
        "Rollouts' scaleDownDelaySeconds). The analysis fail-safe never waits: it removes "
        "nothing.",
    )
    rule: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,251}[A-Za-z0-9])?$",
        description="istio and gateway-api: the http route (http[].name) or rule (rules[].name) "
        "of that object to split; default: the only one, or the one routing to the service.",
    )

    @model_validator(mode="after")
    def _router_can(self) -> RouterSpec:
        able = CAPABILITIES[self.kind]
        if self.header is not None and HEADER_ROUTES not in able:
            raise RouterCapabilityError(
                "header",
                f"the {self.kind} router cannot route by header: set router.header to null, or "
                f"use {_either(routers_with(HEADER_ROUTES))}",
            )
        if self.rule is not None and NAMED_RULES not in able:
            raise RouterCapabilityError(
                "rule",
                f"the {self.kind} router has no rules to choose from: remove router.rule (it "
                f"applies to {_either(routers_with(NAMED_RULES))})",
            )
        return self


class RouterCapabilityError(ValueError):
    """A router asked for what it cannot do; ``subpath`` names the key."""

    def __init__(self, key: str, message: str):
        self.subpath = (key,)
        super().__init__(message)


def _either(kinds: list[str]) -> str:
    return " or ".join(", ".join(kinds).rsplit(", ", 1))


class ApproveSpec(PlanModel):
    message: str = Field("Promote?", max_length=500, description="What the approver is asked.")
    timeout: Duration | None = Field(
        None, gt=0, description="Roll back when nobody approves in time; unset waits forever."
    )


class StepSpec(PlanModel):
    """Either a traffic step (weight + analysis window) or a manual approval."""

    weight: int | None = Field(
        None, ge=1, le=100, description="Percent of traffic on the canary during this step."
    )
    duration: Duration | None = Field(
        None,
        gt=0,
        description="Analysis window of the step: gates run throughout; not a blind pause.",
    )
    approve: ApproveSpec | None = Field(
        None, description="Suspend until a person approves (argo resume)."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> StepSpec:
        if self.approve is not None:
            if self.weight is not None or self.duration is not None:
                raise ValueError("a step is either {weight, duration} or {approve}, not both")
        elif self.weight is None or self.duration is None:
            missing = "weight" if self.weight is None else "duration"
            raise ValueError(f"a traffic step needs both weight and duration: add {missing}")
        return self

    @property
    def is_traffic(self) -> bool:
        return self.weight is not None


class RollbackPolicy(PlanModel):
    on_inconclusive: Literal["rollback", "hold"] = Field(
        "rollback",
        description="What an inconclusive window does: roll back (safe default) or hold "
        "for a person to approve or abort. Never promote.",
    )
    canary: Literal["delete", "scale-to-zero"] = Field(
        "delete", description="What happens to the canary once traffic is back on stable."
    )


class PromotionPolicy(PlanModel):
    auto: bool = Field(
        True, description="Promote when every step passed; false asks a person first."
    )
    gitops: GitOpsSpec | None = Field(
        None,
        description="Promote through the configuration repository that Argo CD or Flux "
        "reconciles, instead of patching the stable Deployment (GitOps mode).",
    )


class NotificationSpec(PlanModel):
    """Where an event goes: a key of the chart's notifications Secret holding the URL
    (``secretKey``; the URL stays out of the repository), or the URL itself (``webhook``)."""

    secret_key: Annotated[str, Field(pattern=r"^[-._a-zA-Z0-9]{1,253}$")] | None = Field(
        None,
        description="Key of the notifications Secret (chart value notifications.secretName) "
        "whose value is the webhook URL. Preferred: webhook URLs are credentials.",
    )
    webhook: str | None = Field(
        None,
        max_length=2048,
        description="URL that receives a JSON POST per event (visible to every reader).",
    )

    _webhook = field_validator("webhook")(lambda cls, url: plain_url(url))
    format: Literal["slack", "json"] = Field(
        "slack", description="slack: {text: ...}; json: the release summary object."
    )
    events: list[Literal["started", "step", "promoted", "rolled-back", "failed"]] = Field(
        default_factory=lambda: list(NOTIFY_EVENTS), description="Which events to send."
    )

    @model_validator(mode="after")
    def _one_target(self) -> NotificationSpec:
        if (self.secret_key is None) == (self.webhook is None):
            raise ValueError("give exactly one of secretKey (preferred) or webhook")
        return self


class OwnersSpec(PlanModel):
    team: str = Field(description="Team that owns the service (named in the runbook).")
    contacts: list[str] = Field(default_factory=list, description="People to page or ask.")
    channel: str | None = Field(None, description="Chat channel for the release.")
    runbook_url: str | None = Field(
        None, max_length=2048, description="Where the team keeps its own runbook: an http(s) URL."
    )

    _runbook_url = field_validator("runbook_url")(lambda cls, url: plain_url(url))


class ProgramSpec(PlanModel):
    """A stable or canary program for the local platform."""

    command: list[str] | None = Field(
        None,
        min_length=1,
        description="argv of the program; {port} is replaced by the port it must listen on.",
    )
    go_package: str | None = Field(
        None, description="A Go main package directory to build (static, version-stamped)."
    )
    version: str | None = Field(None, description="Version label of this program.")

    @field_validator("version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        if value is not None and not VERSION.fullmatch(value):
            raise ValueError(f"{_shown(value)} is not a version: {_VERSION_HINT}")
        return value

    @field_validator("command")
    @classmethod
    def _argv(cls, value: list[str] | None) -> list[str] | None:
        for part in value or []:
            if "\0" in part:
                raise ValueError("an argument contains a NUL byte: remove it")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> ProgramSpec:
        if (self.command is None) == (self.go_package is None):
            raise ValueError("give exactly one of command or goPackage")
        return self


class LoadSpec(PlanModel):
    rate: float = Field(50.0, gt=0, le=5000, description="Requests per second, all clients.")
    clients: int = Field(8, ge=1, le=256, description="Keep-alive connections.")
    paths: list[Annotated[str, Field(pattern=_URL_PATH, max_length=1024)]] = Field(
        default_factory=lambda: ["/"], min_length=1, max_length=100
    )
    headers: dict[str, str] = Field(
        default_factory=dict, max_length=32, description="Sent with every request."
    )
    header_share: float = Field(
        0.02, ge=0, le=1, description="Share of requests that carry the canary header."
    )
    users: int = Field(1000, ge=1, le=10_000_000, description="User IDs 0..users-1 in X-User-Id.")

    @field_validator("headers")
    @classmethod
    def _plain_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not _HEADER_NAME_SAFE.fullmatch(name):
                raise ValueError(
                    f"header name {_shown(name)}: use letters, digits and '-' (at most 64)"
                )
            if not _HEADER_VALUE.fullmatch(value):
                raise ValueError(
                    f"header {name} value {_shown(value)}: use letters, digits and ._~+/=:- "
                    "(no quotes, spaces or line breaks)"
                )
        return headers


class LocalSpec(PlanModel):
    """How `canaryflow run --platform local` runs this plan on one machine."""

    stable: ProgramSpec | None = Field(None, description="Default: the sample service, v1.")
    canary: ProgramSpec | None = Field(None, description="Default: the sample service, v2.")
    load: LoadSpec = Field(default_factory=LoadSpec)
    scrape_interval: Duration = Field(1.0, gt=0, description="Prometheus scrape interval.")


def _default_steps() -> list[StepSpec]:
    return [
        StepSpec(weight=5, duration=60),
        StepSpec(weight=25, duration=120),
        StepSpec(weight=50, duration=120),
        StepSpec(weight=100, duration=60),
    ]


_PINNED_IMAGE = re.compile(
    r"[a-z0-9][a-z0-9.:-]*(/[a-z0-9._-]+)+(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?@sha256:[0-9a-f]{64}"
)
#: Go's ``GOOS/GOARCH`` pairs an image may be built for: what Kubernetes nodes run.
IMAGE_PLATFORMS = ("linux/amd64", "linux/arm64", "linux/arm/v7", "linux/ppc64le", "linux/s390x")


class BuildSpec(PlanModel):
    go: GoBuildSpec = Field(
        default_factory=GoBuildSpec,
        description="Go module settings for go-test and go-build (over the chart's go.env).",
    )
    platforms: list[Literal[IMAGE_PLATFORMS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["linux/amd64", "linux/arm64"],
        min_length=1,
        max_length=len(IMAGE_PLATFORMS),
        description="Platforms the image is built for: one binary each, pushed as one OCI "
        "index, so amd64 and arm64 nodes pull the same digest.",
    )

    image: str | None = Field(
        None,
        max_length=512,
        description="A prebuilt image to release, pinned by digest (HOST/REPO@sha256:...): "
        "go-build builds nothing and image-push pushes nothing; it checks the registry serves "
        "that digest and releases it.",
    )

    @field_validator("image")
    @classmethod
    def _pinned(cls, image: str | None) -> str | None:
        if image is not None and not _PINNED_IMAGE.fullmatch(image):
            raise ValueError(
                f"{image[:100]!r} is not pinned by digest: write HOST/REPO@sha256:<64 hex> "
                "(a tag can move between the canary and the promotion)"
            )
        return image

    @field_validator("platforms")
    @classmethod
    def _once_each(cls, platforms: list[str]) -> list[str]:
        if len(set(platforms)) != len(platforms):
            raise ValueError("a platform is listed twice: list each once")
        return platforms


class ReleasePlan(PlanModel):
    api_version: Literal["canaryflow.dev/v1alpha1"] = Field(API_VERSION)
    kind: Literal["ReleasePlan"] = "ReleasePlan"
    service: ServiceSpec
    owners: OwnersSpec | None = None
    router: RouterSpec = Field(default_factory=RouterSpec)
    steps: list[StepSpec] = Field(
        default_factory=_default_steps,
        min_length=1,
        max_length=200,
        description="Traffic steps in order; each window is analysed. Then promotion.",
    )
    build: BuildSpec = Field(default_factory=BuildSpec)
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    rollback: RollbackPolicy = Field(default_factory=RollbackPolicy)
    promotion: PromotionPolicy = Field(default_factory=PromotionPolicy)
    notifications: list[NotificationSpec] = Field(default_factory=list, max_length=20)
    local: LocalSpec = Field(default_factory=LocalSpec)
    flag: FlagRolloutSpec | None = Field(
        None, description="A feature flag rolled out to growing user segments (flag-rollout)."
    )

    @field_validator("steps")
    @classmethod
    def _weights_increase(cls, steps: list[StepSpec]) -> list[StepSpec]:
        previous = 0
        for index, step in enumerate(steps):
            if step.weight is None:
                continue
            if step.weight <= previous:
                raise StepOrderError(index, step.weight, previous)
            previous = step.weight
        if previous == 0:
            raise ValueError("no traffic step: add at least one {weight, duration}")
        return steps

    @property
    def traffic_steps(self) -> list[StepSpec]:
        return [step for step in self.steps if step.is_traffic]


def _shown(value: object, limit: int = 60) -> str:
    """A value quoted in a message, cut short: errors never echo a whole input."""
    text = repr(value[: limit + 1] if isinstance(value, str) else value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


class StepOrderError(ValueError):
    """Weights must increase; ``subpath`` lets the error name ``steps[i].weight``."""

    def __init__(self, index: int, weight: int, previous: int):
        self.subpath = (index, "weight")
        super().__init__(
            f"{weight} does not increase on the previous step's {previous}: "
            "weights must rise step by step (e.g. 5, 25, 50, 100)"
        )
