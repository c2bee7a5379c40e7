"""Pulling an image by digest from the registry and unpacking it, as a container runtime does.

Upstream: the OCI distribution spec (GET ``/v2/<name>/manifests/<digest>`` and ``/blobs/<digest>``,
every blob checked against its digest) and the OCI image spec (a manifest's layers applied in
order onto an empty root filesystem; the config's ``Entrypoint``, ``Cmd``, ``Env`` and
``WorkingDir`` are the process defaults). An image index resolves to the manifest for this
machine's platform, as containerd's ``platforms.Default()`` matcher does (``os`` and
``architecture`` equal, Go's names: x86_64 is amd64). This client is independent of canaryflow's own
registry code on purpose: the image the pods run is read back the way a kubelet would, so a
wrong push shows up as a wrong process. Whiteouts and non-gzip layers are not handled (the
images canaryflow builds have neither).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import platform
import tarfile
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


class PullError(Exception):
    """The kubelet's ErrImagePull."""


@dataclass(frozen=True)
class PulledImage:
    reference: str
    rootfs: Path
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: dict[str, str]
    working_dir: str


class ImageStore:
    """Images pulled so far, one unpacked root filesystem per manifest digest."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self._images: dict[str, PulledImage] = {}
        self._lock = threading.Lock()

    def pull(self, reference: str) -> PulledImage:
        with self._lock:
            if reference not in self._images:
                self._images[reference] = self._pull(reference)
            return self._images[reference]

    def _pull(self, reference: str) -> PulledImage:
        name, _, digest = reference.partition("@")
        if not digest.startswith("sha256:"):
            raise PullError(f"{reference}: the test bed pulls by digest only")
        host, _, repository = name.partition("/")
        base = f"http://{host}/v2/{repository}"
        manifest_bytes = _get(f"{base}/manifests/{digest}", ", ".join(MANIFEST_TYPES + INDEX_TYPES))
        _check(manifest_bytes, digest, reference)
        manifest = json.loads(manifest_bytes)
        if manifest.get("mediaType") in INDEX_TYPES:
            digest = _for_this_platform(manifest, reference)
            manifest_bytes = _get(f"{base}/manifests/{digest}", ", ".join(MANIFEST_TYPES))
            _check(manifest_bytes, digest, reference)
            manifest = json.loads(manifest_bytes)
        config_digest = manifest["config"]["digest"]
        config_bytes = _get(f"{base}/blobs/{config_digest}")
        _check(config_bytes, config_digest, reference)
        config = json.loads(config_bytes).get("config", {})
        # One root filesystem per manifest digest, unpacked once: the same image pushed to two
        # repositories is one image, and a running binary cannot be overwritten.
        rootfs = self.workdir / digest.replace(":", "-") / "rootfs"
        if not rootfs.is_dir():
            partial = rootfs.with_name("rootfs.partial")
            partial.mkdir(parents=True, exist_ok=True)
            for layer in manifest["layers"]:
                blob = _get(f"{base}/blobs/{layer['digest']}")
                _check(blob, layer["digest"], reference)
                with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
                    tar.extractall(partial, filter="tar")
            partial.rename(rootfs)
        env = dict(item.split("=", 1) for item in config.get("Env", []))
        return PulledImage(
            reference=reference,
            rootfs=rootfs,
            entrypoint=tuple(config.get("Entrypoint") or ()),
            cmd=tuple(config.get("Cmd") or ()),
            env=env,
            working_dir=config.get("WorkingDir") or "/",
        )


def _for_this_platform(index: dict, reference: str) -> str:
    machine = platform.machine()
    wanted = {"os": "linux", "architecture": GOARCH.get(machine, machine)}
    for entry in index.get("manifests", []):
        found = entry.get("platform") or {}
        if all(found.get(key) == value for key, value in wanted.items()):
            return entry["digest"]
    raise PullError(f"{reference}: no match for platform in manifest: {wanted}")


def _get(url: str, accept: str | None = None) -> bytes:
    request = urllib.request.Request(url)
    if accept:
        request.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read()
    except OSError as error:
        raise PullError(f"GET {url}: {error}") from error


def _check(data: bytes, digest: str, reference: str) -> None:
    if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise PullError(f"{reference}: content does not match {digest}")
