"""A workflow pod as a local process: the container's argv and env, its volumes as directories.

What it follows:

- Kubernetes container semantics (kubernetes.io/docs/concepts/containers, "Define a command and
  arguments"): ``command`` replaces the image's ENTRYPOINT, ``args`` its CMD; ``command[0]`` is
  looked up on the PATH of the image's ENV; the container's ``env`` is laid over the image's
  ENV; ``workingDir`` (else the image's WORKDIR) is the working directory.
- Volumes (kubernetes.io/docs/concepts/storage/volumes): an ``emptyDir`` lives as long as the
  pod, a ``persistentVolumeClaim`` outlives it (shared by every pod naming the claim), a
  Workflow's ``volumeClaimTemplates`` live as long as the workflow, a ``secret`` / ``configMap``
  holds one file per key (``optional: true`` mounts an empty directory when it is missing). A
  missing non-optional Secret (of any container, the executor's token included) keeps the pod
  in ContainerCreating, the kubelet retrying the mount (FailedMount event), until it appears or
  the pod is deleted (deadline, ``argo stop``): no container runs.
- Argo's executor (workflow/executor/executor.go): input artifacts (``raw.data``) are written at
  their ``path`` before the main container starts; after it exits, output parameters are read
  from ``valueFrom.path`` (one trailing newline trimmed; ``default`` when the file is missing;
  the node errors when neither exists) and stdout is ``outputs.result``.
- Termination (``argo stop`` / a deadline): SIGTERM to the process group, SIGKILL after the
  grace period, as the kubelet does with ``terminationGracePeriodSeconds``: the template's
  ``podSpecPatch`` may set it (the only key of a patch the bed applies; any other is an error
  naming it), else the runner's default (Kubernetes' 30 s).

What differs, and why: a container sees its volumes at their ``mountPath``; a local process
cannot, so every argv element, env value and ``workingDir`` that is a path under a mount (whole,
or after ``=``) is rewritten to the volume's directory. Everything else is byte for byte the
container's. The runtime image's PATH is the worktree's ``.venv/bin`` (whose ``canaryflow`` is the
image's entrypoint) before the system's. The bed adds the cluster's own environment (the
kubeconfig standing in for the pod's service-account token, ``GOPROXY=off`` as every test sets);
each addition is listed in ``PodRunner.cluster_env``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]
_PATHS = re.compile(r"(?:(?<=^)|(?<==))(/[^\s=]*)")


@dataclass(frozen=True)
class Mount:
    path: str
    host: Path
    read_only: bool = False


@dataclass
class PodResult:
    phase: str  # Succeeded | Failed | Error
    message: str
    exit_code: int | None
    outputs: dict[str, str]
    result: str
    argv: list[str]
    env: dict[str, str]
    started_at: float
    finished_at: float


@dataclass
class Pod:
    """Everything the controller decided about one pod (all tags already substituted)."""

    name: str
    namespace: str
    template: Obj
    workflow_dir: Path
    workflow_volumes: list[Obj] = field(default_factory=list)
    claim_templates: list[Obj] = field(default_factory=list)
    executor_volumes: list[Obj] = field(default_factory=list)  # the executor's token Secret


class PodRunner:
    """Runs pods' main containers as processes; one instance per cluster."""

    def __init__(
        self,
        workdir: Path,
        image_env: Mapping[str, str],
        cluster_env: Mapping[str, str],
        secrets: Callable[[str, str], Mapping[str, bytes] | None] = lambda ns, name: None,
        config_maps: Callable[[str, str], Mapping[str, str] | None] = lambda ns, name: None,
        persistent_volumes: Mapping[str, Path] | None = None,
        image_entrypoint: tuple[str, ...] = ("canaryflow",),
        image_workdir: str = "/workspace",
        grace_s: float = 30.0,
        mount_retry_s: float = 0.5,
    ):
        self.mount_retry_s = mount_retry_s
        self.image_entrypoint = list(image_entrypoint)
        self.persistent_volumes = dict(persistent_volumes or {})
        self.workdir = Path(workdir)
        self.image_env = dict(image_env)
        self.cluster_env = dict(cluster_env)
        self.secrets = secrets
        self.config_maps = config_maps
        self.image_workdir = image_workdir
        self.grace_s = grace_s

    # volumes -----------------------------------------------------------------------------

    def mounts(self, pod: Pod, pod_dir: Path) -> list[Mount]:
        container = pod.template["container"]
        claims = {t["metadata"]["name"] for t in pod.claim_templates}
        volumes = {v["name"]: v for v in [*pod.workflow_volumes, *pod.template.get("volumes", [])]}
        mounts = []
        for mount in container.get("volumeMounts", []):
            name = mount["name"]
            if name in claims:
                host = pod.workflow_dir / "volumes" / name
            elif name in volumes:
                host = self._volume(pod, pod_dir, volumes[name])
            else:
                raise PodError(f"volumeMounts.{name}: no volume of that name in the pod")
            host.mkdir(parents=True, exist_ok=True)
            mounts.append(Mount(mount["mountPath"], host, bool(mount.get("readOnly"))))
        for artifact in pod.template.get("inputs", {}).get("artifacts", []):
            host = pod_dir / "artifacts" / artifact["name"]
            host.parent.mkdir(parents=True, exist_ok=True)
            if "raw" in artifact:
                host.write_text(artifact["raw"]["data"])
            elif not artifact.get("optional"):
                raise PodError(f"inputs.artifacts.{artifact['name']}: only raw artifacts here")
            mounts.append(Mount(artifact["path"], host, True))
        return sorted(mounts, key=lambda m: len(m.path), reverse=True)

    def _volume(self, pod: Pod, pod_dir: Path, volume: Obj) -> Path:
        name = volume["name"]
        if "emptyDir" in volume:
            return pod_dir / "volumes" / name
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            if claim in self.persistent_volumes:
                return self.persistent_volumes[claim]
            return self.workdir / "persistentvolumes" / pod.namespace / claim
        if "secret" in volume or "configMap" in volume:
            source = volume.get("secret") or volume["configMap"]
            ref = source.get("secretName") or source.get("name")
            found = (
                self.secrets(pod.namespace, ref)
                if "secret" in volume
                else self.config_maps(pod.namespace, ref)
            )
            if found is None and not source.get("optional"):
                raise PodError(f"volume {name}: {ref} not found (CreateContainerConfigError)")
            host = pod_dir / "volumes" / name
            host.mkdir(parents=True, exist_ok=True)
            for key, value in (found or {}).items():
                data = value if isinstance(value, bytes) else value.encode()
                (host / key).write_bytes(data)
            return host
        raise PodError(f"volume {name}: kind not supported by the test bed ({sorted(volume)})")

    def _missing_secret(self, pod: Pod) -> str:
        """The first non-optional Secret volume of the pod (any container's) that is missing."""
        volumes = [*pod.workflow_volumes, *pod.template.get("volumes", []), *pod.executor_volumes]
        for volume in volumes:
            source = volume.get("secret")
            if source is None or source.get("optional"):
                continue
            if self.secrets(pod.namespace, source["secretName"]) is None:
                return (
                    f'FailedMount: MountVolume.SetUp failed for volume "{volume["name"]}": '
                    f'secret "{source["secretName"]}" not found'
                )
        return ""

    def _wait_for_secrets(self, pod: Pod, stop: threading.Event) -> str:
        """The kubelet retries a missing Secret volume and starts no container meanwhile
        (ContainerCreating): "" once every Secret exists, else the FailedMount when stopped."""
        while missing := self._missing_secret(pod):
            if stop.wait(self.mount_retry_s):
                reason = getattr(stop, "reason", "") or "pod deleted"
                return f"{reason} (the pod never started: {missing})"
        return ""

    # the process ------------------------------------------------------------------------

    def run(self, pod: Pod, stop: threading.Event) -> PodResult:
        """Run the main container until it exits or ``stop`` is set (then SIGTERM)."""
        started = time.time()
        pod_dir = self.workdir / "pods" / pod.namespace / pod.name
        if pod_dir.exists():
            shutil.rmtree(pod_dir)
        pod_dir.mkdir(parents=True)
        container = pod.template["container"]
        unmounted = self._wait_for_secrets(pod, stop)
        if unmounted:
            return PodResult("Failed", unmounted, None, {}, "", [], {}, started, time.time())
        try:
            mounts = self.mounts(pod, pod_dir)
            grace_s = self._grace_s(pod.template)
        except PodError as error:
            return PodResult("Error", str(error), None, {}, "", [], {}, started, time.time())
        argv = [*(container.get("command") or self.image_entrypoint), *container.get("args", [])]
        explicit = {e["name"]: e.get("value", "") for e in container.get("env", [])}
        env = {**self.image_env, **explicit}
        local_argv = [_rewrite(arg, mounts) for arg in argv]
        # The image's PATH names host folders (this machine's venv stands in for the image's
        # /opt/canaryflow): never read it as a path inside the pod's volumes, or a checkout
        # under /tmp (the pods' own /tmp mount) would lose its `canaryflow`.
        local_env = {
            k: v if k == "PATH" and k not in explicit else _rewrite(v, mounts)
            for k, v in env.items()
        } | self.cluster_env
        cwd = Path(_rewrite(container.get("workingDir") or self.image_workdir, mounts))
        executable = shutil.which(local_argv[0], path=local_env.get("PATH")) if argv else None
        if executable is None:
            message = f"exec: {argv[:1]}: executable file not found in $PATH"
            return PodResult("Error", message, None, {}, "", argv, env, started, time.time())
        stdout_path = pod_dir / "stdout.log"
        with open(stdout_path, "wb") as stdout, open(pod_dir / "stderr.log", "wb") as stderr:
            process = subprocess.Popen(
                [executable, *local_argv[1:]],
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                cwd=cwd if cwd.is_dir() else pod_dir,
                env=local_env,
                start_new_session=True,
            )
            message = self._wait(process, stop, grace_s)
        code = process.returncode
        result = stdout_path.read_text(errors="replace").removesuffix("\n")
        outputs, missing = self._outputs(pod.template, mounts)
        phase = "Succeeded" if code == 0 and not message else "Failed"
        if not message and code != 0:
            message = f"Error (exit code {code})"
        if phase == "Succeeded" and missing:
            phase, message = "Error", missing
        return PodResult(phase, message, code, outputs, result, argv, env, started, time.time())

    def _grace_s(self, template: Obj) -> float:
        """The pod's ``terminationGracePeriodSeconds``: the template's ``podSpecPatch`` (a
        strategic merge patch of the pod spec, JSON or YAML) may set it; else the default."""
        patch = template.get("podSpecPatch")
        if not patch:
            return self.grace_s
        fields = json.loads(patch) if patch.lstrip().startswith("{") else yaml.safe_load(patch)
        unknown = sorted(set(fields) - {"terminationGracePeriodSeconds"})
        if unknown:
            raise PodError(f"podSpecPatch: {unknown} not implemented by the test bed")
        return float(fields.get("terminationGracePeriodSeconds", self.grace_s))

    def _wait(self, process: subprocess.Popen, stop: threading.Event, grace_s: float) -> str:
        while process.poll() is None:
            if stop.wait(0.05):
                _signal(process, signal.SIGTERM)
                try:
                    process.wait(grace_s)
                except subprocess.TimeoutExpired:
                    _signal(process, signal.SIGKILL)
                    process.wait(5)
                return getattr(stop, "reason", "") or "pod terminated"
        return ""

    def _outputs(self, template: Obj, mounts: list[Mount]) -> tuple[dict[str, str], str]:
        outputs, missing = {}, ""
        for parameter in template.get("outputs", {}).get("parameters", []):
            source = parameter.get("valueFrom", {})
            if "path" not in source:
                continue
            path = Path(_rewrite(source["path"], mounts))
            if path.is_file():
                outputs[parameter["name"]] = path.read_text().removesuffix("\n")
            elif "default" in source:
                outputs[parameter["name"]] = source["default"]
            else:
                missing = f"open {source['path']}: no such file or directory"
        return outputs, missing


class PodError(Exception):
    pass


def _signal(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def _rewrite(text: str, mounts: list[Mount]) -> str:
    """``text`` with each absolute path under a mount (whole, or after ``=``) made local."""

    def local(match: re.Match[str]) -> str:
        path = match.group(1)
        for mount in mounts:
            if path == mount.path or path.startswith(mount.path.rstrip("/") + "/"):
                return str(mount.host) + path[len(mount.path.rstrip("/")) :]
        return path

    return _PATHS.sub(local, text)
