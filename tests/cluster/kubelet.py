"""The kubelet stand-in: the fake API server's pods come alive as real processes.

Upstream behaviour followed (kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle,
"Container probes" and pkg/kubelet/prober): a pod's image is pulled (by digest, from the real
registry: ``cluster.images``), its container runs with the image's Entrypoint/Cmd unless the
container sets ``command``/``args``, with the image's Env under the container's ``env``; the pod
is Ready once its ``readinessProbe`` (``httpGet`` path and port, every ``periodSeconds``,
``failureThreshold`` misses to fall back) answers 2xx/3xx; without a probe it is Ready once
running. A container that exits is restarted with back-off (``CrashLoopBackOff``). A pod
deleted from the API (scale down, new template, Deployment deleted) has its process stopped.

The fake API server's Deployment controller makes the pods (``rollout="kubelet"``); this loop
reports their status back (``FakeApiServer.set_pod_status``), so ``readyReplicas`` is what the
probes saw.

What differs: every pod shares 127.0.0.1, so each gets its own port instead of its own IP; the
container learns it from ``listen_env`` (the sample service reads ``SAMPLE_LISTEN``), and
``address`` maps the pod's containerPort to it for the data plane and Prometheus.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kube.fake_apiserver import FakeApiServer

from canaryflow.local.process import LOOPBACK, ManagedProcess, ProcessGroup, free_port

from .images import ImageStore, PullError

Obj = dict[str, Any]


@dataclass
class RunningPod:
    namespace: str
    name: str
    owner: str  # the Deployment whose pod this is
    labels: dict[str, str]
    container: Obj
    image: str
    port: int
    process: ManagedProcess | None = None
    ready: bool = False
    restarts: int = 0
    started_at: float = field(default_factory=time.time)
    next_probe: float = 0.0
    misses: int = 0
    message: str = ""

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"


class Kubelet:
    """Reconciles the fake cluster's pods into processes every ``period_s``."""

    def __init__(
        self,
        api: FakeApiServer,
        images: ImageStore,
        group: ProcessGroup,
        listen_env: str = "SAMPLE_LISTEN",
        period_s: float = 0.1,
    ):
        self.api = api
        self.images = images
        self.group = group
        self.listen_env = listen_env
        self.period_s = period_s
        self.pods: dict[tuple[str, str], RunningPod] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kubelet", daemon=True)
        self._lock = threading.Lock()

    def start(self) -> Kubelet:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        with self._lock:
            for pod in self.pods.values():
                if pod.process is not None:
                    self.group.stop(pod.process)
            self.pods.clear()

    def ready_pods(
        self, namespace: str, selector: dict[str, str], match_all: bool = False
    ) -> list[RunningPod]:
        """Ready pods whose labels match ``selector`` (what an EndpointSlice would list); an
        empty selector selects nothing, as a Service's does, unless ``match_all``."""
        with self._lock:
            return [
                pod
                for pod in self.pods.values()
                if pod.namespace == namespace
                and pod.ready
                and (selector or match_all)
                and all(pod.labels.get(k) == v for k, v in selector.items())
            ]

    def running_pods(self) -> list[RunningPod]:
        with self._lock:
            return [p for p in self.pods.values() if p.process is not None and p.process.alive()]

    # -- the loop ---------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                self._sync()
            except Exception as error:  # keep the node alive; the next sync retries
                print(f"kubelet: sync failed: {error!r}")

    def _sync(self) -> None:
        wanted = {
            (pod["metadata"]["namespace"], pod["metadata"]["name"]): pod
            for pod in self.api.objects("Pod")
            if "fake.dev/deployment" in pod["metadata"].get("annotations", {})
        }
        with self._lock:
            gone = [key for key in self.pods if key not in wanted]
            for key in gone:
                pod = self.pods.pop(key)
                if pod.process is not None:
                    self.group.stop(pod.process)
        for key, obj in wanted.items():
            with self._lock:
                pod = self.pods.get(key)
            if pod is None:
                pod = self._admit(obj)
                with self._lock:
                    self.pods[key] = pod
            self._probe(pod)

    def _admit(self, obj: Obj) -> RunningPod:
        container = obj["spec"]["containers"][0]
        pod = RunningPod(
            namespace=obj["metadata"]["namespace"],
            name=obj["metadata"]["name"],
            owner=obj["metadata"]["annotations"]["fake.dev/deployment"],
            labels=dict(obj["metadata"].get("labels", {})),
            container=container,
            image=container["image"],
            port=free_port(),
        )
        self._start_container(pod)
        return pod

    def _start_container(self, pod: RunningPod) -> None:
        try:
            image = self.images.pull(pod.image)
        except PullError as error:
            pod.message = f"ErrImagePull: {error}"
            self._report(pod, waiting="ErrImagePull")
            return
        command = pod.container.get("command") or list(image.entrypoint)
        args = pod.container.get("args") if "args" in pod.container else list(image.cmd)
        if not command:
            pod.message = "no command and no image entrypoint"
            self._report(pod, waiting="CreateContainerError")
            return
        executable = command[0]
        if executable.startswith("/"):
            executable = str(image.rootfs / executable.lstrip("/"))
        env = {**image.env, **{e["name"]: e.get("value", "") for e in pod.container.get("env", [])}}
        env[self.listen_env] = pod.address
        pod.process = self.group.start(
            f"pod-{pod.namespace}-{pod.name}-{pod.restarts}",
            [executable, *command[1:], *args],
            env=env,
            cwd=image.rootfs,
        )
        pod.started_at, pod.next_probe, pod.ready = time.time(), 0.0, False
        self._report(pod)

    def _probe(self, pod: RunningPod) -> None:
        now = time.time()
        if pod.process is None:
            return
        if not pod.process.alive():
            if pod.ready or pod.next_probe >= 0:
                pod.ready, pod.next_probe = False, -1.0
                pod.restarts += 1
                self._report(pod, waiting="CrashLoopBackOff")
            if now - pod.started_at > min(10.0 * pod.restarts, 30.0):
                self._start_container(pod)
            return
        if now < pod.next_probe:
            return
        probe = pod.container.get("readinessProbe")
        period = float((probe or {}).get("periodSeconds", 10))
        pod.next_probe = now + period
        ok = True if probe is None else _http_probe(pod, probe)
        before = pod.ready
        if ok:
            pod.ready, pod.misses = True, 0
        else:
            pod.misses += 1
            if not pod.ready or pod.misses >= int(probe.get("failureThreshold", 3)):
                pod.ready = False
        if pod.ready != before:
            self._report(pod)

    def _report(self, pod: RunningPod, waiting: str | None = None) -> None:
        started = datetime.fromtimestamp(pod.started_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        state: Obj = {"running": {"startedAt": started}}
        if waiting:
            state = {"waiting": {"reason": waiting, "message": pod.message}}
        ready = "True" if pod.ready else "False"
        status = {
            "phase": "Running" if pod.process is not None else "Pending",
            "podIP": LOOPBACK,
            "conditions": [{"type": "Ready", "status": ready}],
            "containerStatuses": [
                {
                    "name": pod.container["name"],
                    "image": pod.image,
                    "imageID": pod.image,
                    "ready": pod.ready,
                    "started": pod.process is not None,
                    "restartCount": pod.restarts,
                    "state": state,
                }
            ],
        }
        self.api.set_pod_status(pod.namespace, pod.name, status)


def _http_probe(pod: RunningPod, probe: Obj) -> bool:
    get = probe.get("httpGet") or {}
    url = f"http://{pod.address}{get.get('path', '/')}"
    timeout = float(probe.get("timeoutSeconds", 1))
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 400
    except OSError:  # refused, reset, timed out, or an HTTPError (>= 400)
        return False
