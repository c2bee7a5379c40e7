"""The Kubernetes platform a release plan describes: its service, router and health check."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

from kubernetes.client import ApiClient

from canaryflow.errors import FieldError, InputError
from canaryflow.kubernetes.canary_objects import HealthCheck
from canaryflow.kubernetes.gitops.promotion import GitOpsPromotion
from canaryflow.kubernetes.grace import TERMINATION_GRACE_ENV
from canaryflow.kubernetes.platform import (
    DEFAULT_TIMEOUTS,
    KubernetesPlatform,
    Timeouts,
    api_client_from_environment,
)
from canaryflow.kubernetes.routers import make_router
from canaryflow.plan.gitops import API_URL_ENV, BRANCH_ENV, CREDENTIALS_ENV, REPOSITORY_ENV
from canaryflow.plan.model import ReleasePlan
from canaryflow.progress import drain_sleep

# The plan's `router.route` names the user's own object; each router calls it differently.
ROUTE_SETTING = {
    "istio": "virtual_service",
    "nginx-ingress": "ingress",
    "gateway-api": "http_route",
    "smi": "traffic_split",
}
# `router.rule` names the route/rule inside it (routers with CAPABILITIES' named-rules).
RULE_SETTING = {"istio": "route", "gateway-api": "rule"}


def router_settings(plan: ReleasePlan) -> dict[str, object]:
    """The router's own options, from the plan's ``router`` section."""
    kind = plan.router.kind
    settings: dict[str, object] = {}
    if plan.router.route:
        settings[ROUTE_SETTING[kind]] = plan.router.route
    if plan.router.rule:
        settings[RULE_SETTING[kind]] = plan.router.rule
    if kind == "gateway-api":
        settings["header_rule"] = plan.router.header is not None
    if kind == "istio" and plan.service.service:
        settings["host"] = plan.service.service  # the mesh routes the Service's host
    if kind == "gateway-api" and plan.service.service:
        settings["backend"] = plan.service.service  # the rule leading to it is the managed one
    return settings


def platform_for(
    plan: ReleasePlan, api_client: ApiClient | None = None, environ: Mapping[str, str] = os.environ
) -> KubernetesPlatform:
    timeouts = timeouts_from(environ)
    client = api_client or api_client_from_environment(None, None)
    service, kind = plan.service, plan.router.kind
    router = make_router(kind, client, service.namespace, service.name, **router_settings(plan))
    return KubernetesPlatform(
        client,
        service.namespace,
        service.name,
        router,
        canary_replicas=service.canary_replicas,
        container=service.container,
        health=HealthCheck(path=service.health_path, port=service.port),
        canary_after_rollback=plan.rollback.canary,
        drain_s=plan.router.drain,
        sleep=drain_sleep,  # the drain, told as progress under canaryflow.progress.reporting
        deployment=service.deployment_name,
        service_object=service.service_name,
        selector=service.selector,
        app_label=service.app_label,
        gitops=gitops_promotion(plan),
        timeouts=timeouts,
    )


def timeouts_from(environ: Mapping[str, str] = os.environ) -> Timeouts:
    """The defaults, with the task pod's termination grace when ``TERMINATION_GRACE_ENV``
    names one (a pod spec whose ``terminationGracePeriodSeconds`` is not the default)."""
    value = environ.get(TERMINATION_GRACE_ENV, "").strip()
    if not value:
        return DEFAULT_TIMEOUTS
    try:
        grace = float(value)
    except ValueError:
        grace = math.nan
    if not math.isfinite(grace) or grace < 0:
        raise InputError(
            FieldError(
                TERMINATION_GRACE_ENV,
                f"{value!r} is not a number of seconds: set it to the task pod's "
                "terminationGracePeriodSeconds, or unset it for the default (30)",
            )
        )
    return Timeouts(termination_grace_s=grace)


def gitops_promotion(
    plan: ReleasePlan, environ: Mapping[str, str] = os.environ
) -> GitOpsPromotion | None:
    """GitOps mode when the plan asks for it: the repository from the plan, else the chart's
    (set on the promote task only, so a missing one is reported by promote); the credentials
    directory (the mounted Secret), the branch and the forge's API URL from the chart, when
    set. A plan's own repository must be on the chart repository's host (``check_repository``).
    """
    spec = plan.promotion.gitops
    if spec is None:
        return None
    chart = environ.get(REPOSITORY_ENV, "")
    credentials = environ.get(CREDENTIALS_ENV)
    return GitOpsPromotion(
        spec,
        spec.repository or chart,
        Path(credentials) if credentials else None,
        chart_repository=chart,
        chart_branch=environ.get(BRANCH_ENV) or None,
        api_url=environ.get(API_URL_ENV) or None,
    )
