"""The cluster in a box: every stand-in wired together, and services to release through it.

``ClusterInABox`` owns one of each shared part -- a real docker-registry, the stateful fake API
server, the kubelet stand-in, a real Prometheus scraping through the chart's PodMonitor, the Argo
Workflows stand-in with the rendered chart's templates applied -- and stops every process it
started, by PID, when its block ends. ``install`` puts a service in it the way a team would have
it before its first canaryflow release: a Git repository (the sample service and its own
``canaryflow.yaml``), a stable Deployment running an image pushed by digest, its Service and
router object; the data plane then routes a real keep-alive load through nginx as the router
object says. ``ServiceUnderTest.push`` commits to the repository and sends the provider's push
webhook to the rendered EventSource (served only when Argo Events would accept it,
``cluster.eventsource``) and through the rendered Sensor (``cluster.events``); the Workflow it
yields is submitted. The chart's ServiceAccounts and Secrets are applied too (the token
controller filling service-account-token Secrets): the executor's token mount reads them.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from chart_validation import CHART, render, violations
from kube.fake_apiserver import FakeApiServer
from kube.fixtures import write_kubeconfig
from registry import RunningRegistry, running_registry

from canaryflow.build.sample import SAMPLE_SERVICE_DIR, build_sample_service
from canaryflow.image.push import PushRequest, push_image
from canaryflow.local.load import LoadConfig, LoadGenerator
from canaryflow.local.process import ProcessGroup
from canaryflow.local.router import NginxRouter
from canaryflow.platform.protocol import HeaderRoute

from . import events, eventsource
from .argo.controller import Workflow, WorkflowController
from .argo.pods import PodRunner
from .argo.serviceaccounts import token_controller
from .argo.templates import TemplateStore
from .dataplane import DataPlane, Request
from .images import ImageStore
from .kubelet import Kubelet
from .monitoring import PodMonitorPrometheus, pod_monitor

Obj = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]
PAYLOADS = REPO / "tests" / "payloads"
ARGO_NAMESPACE = "argo"
SERVICE_NAMESPACE = "shop"
HOST, USER_PATH = "shop.example.com", "/checkout"
CANARY_HEADER = HeaderRoute("x-release-channel", "canary")
RUNTIME_IMAGE_ENV = {  # canaryflow.image.runtime's ENV, PATH at the worktree's venv
    "PATH": f"{REPO / '.venv' / 'bin'}:/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "CGO_ENABLED": "0",
    "GOTOOLCHAIN": "local",
}

# A failing release: the sample service's error-rate fault on by default (its SAMPLE_ switch).
FAULTY_SOURCE = """package main

import "os"

// This release is broken: half of the user requests fail.
func init() {
\tif os.Getenv("SAMPLE_ERROR_RATE") == "" {
\t\tos.Setenv("SAMPLE_ERROR_RATE", "0.5")
\t}
}
"""


@dataclass(frozen=True)
class ChartInstall:
    """One ``helm install`` of the chart: its namespace and rendered objects."""

    namespace: str
    rendered: list[Obj]

    def of_kind(self, kind: str) -> list[Obj]:
        return [obj for obj in self.rendered if obj["kind"] == kind]


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    namespace: str
    router: str  # istio | nginx-ingress | gateway-api

    @property
    def github(self) -> str:
        return f"acme/{self.name}"

    @property
    def gitlab(self) -> str:
        return f"{self.namespace}/{self.name}"


def short_plan(spec: ServiceSpec, prometheus_url: str, steps: list[Obj], **extra: Any) -> Obj:
    """A plan with windows of seconds, judged every second: CI-sized, the production model."""
    plan: Obj = {
        "apiVersion": "canaryflow.dev/v1alpha1",
        "kind": "ReleasePlan",
        "service": {"name": spec.name, "namespace": spec.namespace, "healthTimeout": "60s"},
        "router": {
            "kind": spec.router,
            "header": {"name": CANARY_HEADER.name, "value": CANARY_HEADER.value},
            # CI-sized: the data plane here applies a change within ~50 ms
            "drain": "2s",
        },
        "steps": steps,
        "analysis": {
            "prometheus": {"url": prometheus_url},
            # CI-sized warm-up (the default is a scrape + 30 s); the fresh baseline stays on
            "warmup": "2s",
            "interval": "1s",
            "queryWindow": "4s",
            "minCanaryRequests": 3,
            "inconclusiveLimit": 6,
            "consecutiveErrorLimit": 2,
            "gates": [{"metric": "error-rate", "threshold": {"max": 0.05}}],
        },
    }
    return plan | extra


class ClusterInABox:
    """Use as ``with ClusterInABox(workdir) as bed:``."""

    def __init__(
        self, workdir: Path, chart_values: Mapping[str, Any] | None = None, chart: Path = CHART
    ):
        self.workdir = Path(workdir)
        self.chart = Path(chart)
        self.extra_values = dict(chart_values or {})
        self._stack = ExitStack()
        self.secrets: dict[tuple[str, str], dict[str, bytes]] = {}
        self.service_accounts: dict[tuple[str, str], Obj] = {}

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> ClusterInABox:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _start(self) -> None:
        stack = self._stack
        self.group = stack.enter_context(ProcessGroup(self.workdir / "processes"))
        self.registry: RunningRegistry = stack.enter_context(
            running_registry(self.workdir / "registry")
        )
        self.api = stack.enter_context(FakeApiServer(default_rollout="kubelet"))
        self.kubeconfig = write_kubeconfig(self.workdir / "kubeconfig", self.api.url)
        self.kubelet = Kubelet(self.api, ImageStore(self.workdir / "images"), self.group).start()
        stack.callback(self.kubelet.stop)
        self.templates = TemplateStore()
        self._installs: dict[str, ChartInstall] = {}
        monitoring = {"podMonitor": {"enabled": True, "interval": "1s"}}
        chart = {"events": {"enabled": False}, "monitoring": monitoring}
        monitor = pod_monitor(self.render(ARGO_NAMESPACE, self.values(chart)))
        self.prometheus = PodMonitorPrometheus(self.group, self.workdir / "prometheus", monitor)
        self.prometheus.start()
        stack.callback(self.prometheus.stop)
        self.prometheus.follow(self.kubelet)
        pods = PodRunner(
            self.workdir / "nodes",
            image_env=RUNTIME_IMAGE_ENV,
            cluster_env={"KUBECONFIG": str(self.kubeconfig), "GOPROXY": "off"},
            persistent_volumes={"canaryflow-go-cache": warm_go_cache(self.workdir / "go-cache")},
            secrets=lambda ns, name: self.secrets.get((ns, name)),
            config_maps=self._config_map,
        )
        self.controller = WorkflowController(
            self.templates, pods, self.workdir / "argo", self._service_account
        )
        stack.callback(self.controller.shutdown)

    def values(self, overrides: Mapping[str, Any] | None = None) -> Obj:
        """The chart values a platform team would install with, pointing at this bed."""
        values: Obj = {
            "events": {
                "enabled": True,
                "webhookSecret": {"name": "git-webhooks"},
                "branches": ["main"],
                "gitlab": {"enabled": True, "accessToken": {"name": "gitlab-access"}},
            },
            "release": {
                "imageRepository": f"{self.registry.host}/services",
                "namespaces": [SERVICE_NAMESPACE],
            },
        }
        prometheus = getattr(self, "prometheus", None)  # (not yet while it is being set up)
        if prometheus is not None:  # the installation's (issue 21, item 3): plans need not name it
            values["analysis"] = {"prometheus": {"url": prometheus.url}}
        values = _merge(values, copy.deepcopy(self.extra_values))
        return _merge(values, copy.deepcopy(dict(overrides or {})))

    def install_chart(
        self,
        namespace: str,
        overrides: Mapping[str, Any] | None = None,
        registry_login: bool = False,
    ) -> ChartInstall:
        """``helm install`` into ``namespace``: the rendered objects applied to the bed.

        The bed's registry takes anonymous pushes, so by default no ``canaryflow-registry``
        Secret exists (image-push mounts it optional and pushes anonymously);
        ``registry_login`` creates it as a platform team would."""
        if namespace in self._installs:
            raise ValueError(f"the chart is already installed in {namespace}")
        rendered = self.render(namespace, self.values(overrides))
        self.templates.apply(rendered, namespace)
        self._apply_accounts_and_secrets(rendered, namespace)
        if registry_login:
            config = self.registry.docker_config(self.workdir / "registry-auth")
            self.secrets[(namespace, "canaryflow-registry")] = {
                ".dockerconfigjson": config.read_bytes()
            }
        self._installs[namespace] = ChartInstall(namespace, rendered)
        return self._installs[namespace]

    def install_for(self, specs: list[ServiceSpec], namespace: str) -> ChartInstall:
        """One install releasing ``specs``, each listed in ``events.services`` under its GitHub
        and its GitLab path, with its router kind. ``release.routerKind`` stays empty (the
        chart's default): each service's own plan chooses its router, so one install serves
        every router kind."""
        services = {}
        for spec in specs:
            entry = {
                "service": spec.name,
                "namespace": spec.namespace,
                "imageRepository": f"{self.registry.host}/{spec.namespace}/{spec.name}",
                "router": spec.router,  # its namespace's Role grants the kinds registered
            }
            services[spec.github] = entry
            services[spec.gitlab] = entry
        return self.install_chart(namespace, {"events": {"services": services}})

    def render(self, namespace: str, values: Obj) -> list[Obj]:
        """The chart rendered by Helm's engine; every object schema-valid."""
        rendered = render(values, self.chart, namespace)
        objects = [obj for docs in rendered.values() for obj in docs]
        # shared/schemas has no prometheus-operator CRDs: a PodMonitor is read, not validated.
        checked = [o for o in objects if o["kind"] != "PodMonitor"]
        broken = {f"{o['kind']}/{o['metadata']['name']}": violations(o) for o in checked}
        broken = {k: v for k, v in broken.items() if v}
        if broken:
            raise AssertionError(f"the rendered chart has invalid objects: {broken}")
        return objects

    def _apply_accounts_and_secrets(self, rendered: list[Obj], namespace: str) -> None:
        """The chart's ServiceAccounts, then its Secrets as the token controller leaves them
        (``argo.serviceaccounts.token_controller``): what the executor's token mount reads."""
        for obj in rendered:
            if obj["kind"] == "ServiceAccount":
                ns = obj["metadata"].get("namespace") or namespace
                self.service_accounts[(ns, obj["metadata"]["name"])] = obj
        for obj in rendered:
            if obj["kind"] == "Secret":
                ns = obj["metadata"].get("namespace") or namespace
                data = token_controller(obj, self._service_account, ns)
                self.secrets[(ns, obj["metadata"]["name"])] = {
                    key: value.encode() if isinstance(value, str) else value
                    for key, value in data.items()
                }

    def _service_account(self, namespace: str, name: str) -> Obj | None:
        return self.service_accounts.get((namespace, name))

    def _config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        found = self.api.get("ConfigMap", namespace, name)
        return None if found is None else dict(found.get("data") or {})

    # -- services ---------------------------------------------------------------------------

    def install(
        self,
        spec: ServiceSpec,
        plan: Obj,
        chart: ChartInstall,
        load_rate: float = 60.0,
    ) -> ServiceUnderTest:
        service = ServiceUnderTest(self, spec, chart)
        service.create_repository(plan)
        image = service.push_stable_image()
        for obj in user_objects(spec, image):
            self.api.seed(obj)
        stable = service.wait_ready(f"{spec.name}", timeout_s=30)
        router = NginxRouter(self.workdir / "routers" / spec.name, self.group, stable)
        router.start()
        self._stack.callback(router.stop)
        service.dataplane = DataPlane(
            self.api,
            self.kubelet,
            router,
            spec.router,
            spec.namespace,
            spec.name,
            Request(HOST, USER_PATH),
            CANARY_HEADER,
        ).start()
        self._stack.callback(service.dataplane.stop)
        service.load = LoadGenerator(
            LoadConfig(
                url=router.url,
                rate=load_rate,
                clients=4,
                paths=(USER_PATH,),
                override_share=0.05,
                override=CANARY_HEADER,
                max_duration_s=1800,
            )
        ).start()
        self._stack.callback(service.load.stop)
        return service


def user_objects(spec: ServiceSpec, image: str) -> list[Obj]:
    """What the team has before canaryflow: a stable Deployment, its Service, its route."""
    # As the chart README asks: stable pods carry app and version (no track label), the
    # Deployment does not pin the version (promotion relabels), the stable Service selects the
    # stable version where the router splits by Service; Istio subsets pick by version.
    labels = {"app": spec.name, "version": "v1"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": {"app": spec.name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": spec.name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": spec.name,
                            "image": image,
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "readinessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http"},
                                "periodSeconds": 1,
                            },
                            # As a team serving production has it: a terminating pod keeps
                            # serving while proxies drop it from their endpoints.
                            "lifecycle": {"preStop": {"sleep": {"seconds": 1}}},
                        }
                    ]
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": spec.name, "namespace": spec.namespace},
        "spec": {
            "selector": {"app": spec.name}
            if spec.router == "istio"
            else {"app": spec.name, "version": "v1"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }
    return [deployment, service, route_object(spec)]


def route_object(spec: ServiceSpec) -> Obj:
    meta = {"name": spec.name, "namespace": spec.namespace}
    if spec.router == "istio":
        return {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": meta,
            "spec": {
                "hosts": [spec.name],
                "http": [
                    {
                        "name": "admin",
                        "match": [{"uri": {"prefix": "/admin"}}],
                        "route": [{"destination": {"host": "admin"}}],
                    },
                    {
                        "name": "canaryflow-primary",
                        "route": [{"destination": {"host": spec.name, "port": {"number": 80}}}],
                    },
                ],
            },
        }
    backend = {"service": {"name": spec.name, "port": {"number": 80}}}
    if spec.router == "nginx-ingress":
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": meta,
            "spec": {
                "ingressClassName": "nginx",
                "rules": [
                    {
                        "host": HOST,
                        "http": {
                            "paths": [{"path": USER_PATH, "pathType": "Prefix", "backend": backend}]
                        },
                    }
                ],
            },
        }
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": meta,
        "spec": {
            "parentRefs": [{"name": "public"}],
            "hostnames": [HOST],
            "rules": [
                {
                    "name": "canaryflow-primary",
                    "matches": [{"path": {"type": "PathPrefix", "value": USER_PATH}}],
                    "backendRefs": [{"name": spec.name, "port": 80}],
                }
            ],
        },
    }


@dataclass
class ServiceUnderTest:
    bed: ClusterInABox
    spec: ServiceSpec
    chart: ChartInstall
    dataplane: DataPlane | None = None
    load: LoadGenerator | None = None
    pushes: list[str] = field(default_factory=list)

    @property
    def repository(self) -> Path:
        return self.bed.workdir / "git" / f"{self.spec.name}.git"

    @property
    def checkout(self) -> Path:
        return self.bed.workdir / "git" / f"{self.spec.name}-work"

    def create_repository(self, plan: Obj) -> None:
        """A bare repository with the sample service and the plan, as the team's origin."""
        shutil.copytree(
            SAMPLE_SERVICE_DIR,
            self.checkout,
            ignore=shutil.ignore_patterns("README.md"),
        )
        (self.checkout / "canaryflow.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
        _git(
            self.checkout.parent,
            "init",
            "--quiet",
            "--bare",
            "--initial-branch=main",
            str(self.repository),
        )
        _git(self.checkout, "init", "--quiet", "--initial-branch=main")
        _git(self.checkout, "remote", "add", "origin", str(self.repository))
        self.commit("v1: the stable service")

    def commit(self, message: str, files: Mapping[str, str | None] | None = None) -> str:
        for name, text in (files or {}).items():
            path = self.checkout / name
            if text is None:
                path.unlink(missing_ok=True)
            else:
                path.write_text(text)
        _git(self.checkout, "add", "-A")
        _git(self.checkout, "commit", "--quiet", "--allow-empty", "-m", message)
        _git(self.checkout, "push", "--quiet", "origin", "HEAD:main")
        return _git(self.checkout, "rev-parse", "HEAD").strip()

    def push_stable_image(self) -> str:
        binary = build_sample_service(self.bed.workdir / "builds", "v1")
        repository = f"{self.bed.registry.host}/{self.spec.namespace}/{self.spec.name}"
        pushed = push_image(PushRequest(binary, repository, "v1"))
        return pushed.reference

    def plan(self, plan: Obj) -> None:
        self.commit("release plan", {"canaryflow.yaml": yaml.safe_dump(plan, sort_keys=False)})

    def push(
        self,
        message: str,
        files: Mapping[str, str | None] | None = None,
        provider: str = "github",
        branch: str = "main",
    ) -> Workflow | None:
        """Commit, then deliver the provider's push webhook to the Sensor; submit what it makes."""
        if branch == "main":
            revision = self.commit(message, files)
        else:  # the current commit pushed to another branch
            _git(self.checkout, "push", "--quiet", "origin", f"HEAD:refs/heads/{branch}")
            revision = _git(self.checkout, "rev-parse", "HEAD").strip()
        event = self.push_event(provider, revision, branch)
        (source,) = self.chart.of_kind("EventSource")
        route = eventsource.route_for(source, provider)  # an invalid one serves nothing
        sensors = self.chart.of_kind("Sensor")
        workflow = events.submitted_by(sensors, event, route)
        if workflow is None:
            return None
        workflow["metadata"]["namespace"] = sensors[0]["metadata"]["namespace"]
        problems = violations(workflow)
        assert problems == [], f"the Sensor's Workflow would be rejected: {problems}"
        self.pushes.append(revision)
        return self.bed.controller.submit(workflow)

    def push_event(self, provider: str, revision: str, branch: str) -> Obj:
        """A real webhook payload (tests/payloads) pointing at this repository and commit."""
        url = f"file://{self.repository}"
        if provider == "github":
            event = json.loads((PAYLOADS / "github-push-main.json").read_text())
            body = event["body"]
            body["after"], body["ref"] = revision, f"refs/heads/{branch}"
            body["repository"].update(
                name=self.spec.name, full_name=self.spec.github, clone_url=url
            )
        else:
            event = json.loads((PAYLOADS / "gitlab-push-main.json").read_text())
            body = event["body"]
            body["after"] = body["checkout_sha"] = revision
            body["ref"] = f"refs/heads/{branch}"
            body["project"].update(
                git_http_url=url,
                path_with_namespace=self.spec.gitlab,
                name=self.spec.name,
            )
        return event

    def wait_ready(self, deployment: str, timeout_s: float) -> str:
        """The address of the Deployment's first ready pod."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            obj = self.bed.api.get("Deployment", self.spec.namespace, deployment)
            selector = obj["spec"]["selector"]["matchLabels"] if obj else {}
            pods = self.bed.kubelet.ready_pods(self.spec.namespace, selector)
            if pods:
                return pods[0].address
            time.sleep(0.1)
        raise TimeoutError(f"deployment {deployment} not ready after {timeout_s}s")

    def stable_image(self) -> str:
        obj = self.bed.api.get("Deployment", self.spec.namespace, self.spec.name)
        return obj["spec"]["template"]["spec"]["containers"][0]["image"]


def warm_go_cache(root: Path) -> Path:
    """The ``canaryflow-go-cache`` claim as a long-lived cluster has it: already warm.

    Its ``go-build`` directory is this machine's Go build cache, filled here once with what the
    sample service's tests and build need (the go-test and go-build pods' Go settings), so a
    release compiles only what its commit changed, as with a cache PVC that outlived many
    workflows. ``go-mod`` and ``go`` stay private to the bed, under ``root`` (the bed's own
    folder, so a test session leaves nothing in the machine's temp dir).
    """
    go = str(REPO / ".venv" / "bin" / "go")
    root.mkdir(parents=True, exist_ok=True)
    link = root / "go-build"
    if not link.exists():
        cache = subprocess.run(
            [go, "env", "GOCACHE"], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
        Path(cache).mkdir(parents=True, exist_ok=True)
        link.symlink_to(cache)
    env = {
        "PATH": RUNTIME_IMAGE_ENV["PATH"],
        "HOME": str(root),
        "CGO_ENABLED": "0",
        "GOFLAGS": "-trimpath",
        "GOCACHE": str(link),
        "GOMODCACHE": str(root / "go-mod"),
        "GOPATH": str(root / "go"),
        "GOTOOLCHAIN": "local",
        "GOPROXY": "off",
    }
    for argv in ([go, "test", "-run", "^$", "./..."], [go, "build", "-o", os.devnull, "."]):
        subprocess.run(
            argv, cwd=SAMPLE_SERVICE_DIR, env=env, check=True, capture_output=True, timeout=600
        )
    return root


def _git(cwd: Path, *argv: str) -> str:
    done = subprocess.run(
        ["git", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "GIT_AUTHOR_NAME": "bed",
            "GIT_AUTHOR_EMAIL": "bed@example.com",
            "GIT_COMMITTER_NAME": "bed",
            "GIT_COMMITTER_EMAIL": "bed@example.com",
            "HOME": str(cwd),
            "PATH": "/usr/bin:/bin",
        },
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(argv)}: {done.stderr}")
    return done.stdout


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            merged[key] = _merge(base.get(key), value)
        return merged
    return over


@contextmanager
def cluster_in_a_box(workdir: Path, **values: Any) -> Iterator[ClusterInABox]:
    with ClusterInABox(workdir, values) as bed:
        yield bed
