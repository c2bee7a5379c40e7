"""OCI image pieces built in memory, byte-for-byte reproducible.

Everything here is pure: the same binary and inputs give the same layer, config and manifest
bytes, hence the same manifest digest, on every run. Tar entries are sorted and carry mtime 0,
owner 0:0 and no user/group names; gzip carries mtime 0 and no file name; JSON is canonical
(sorted keys, no spaces) and the only timestamp is the epoch.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

# A base image's layers keep their digests; only the Docker media type names change to OCI's.
LAYER_TYPES = {LAYER_GZIP: LAYER_GZIP, LAYER_ZSTD: LAYER_ZSTD, DOCKER_LAYER_GZIP: LAYER_GZIP}

EPOCH = "1970-01-01T00:00:00Z"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NONROOT_UID = 65532
NONROOT_USER = f"{NONROOT_UID}:{NONROOT_UID}"
APP_DIR = "app"

# Only for a scratch base: without them "nonroot" has no name, and tools that look up the
# user (and some runtimes' runAsNonRoot checks) fail.
PASSWD = (
    "root:x:0:0:root:/root:/sbin/nologin\n"
    f"nonroot:x:{NONROOT_UID}:{NONROOT_UID}:nonroot:/home/nonroot:/sbin/nologin\n"
)
GROUP = f"root:x:0:\nnonroot:x:{NONROOT_UID}:\n"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Descriptor:
    """A content-addressed blob as a manifest names it."""

    media_type: str
    digest: str
    size: int

    @classmethod
    def of(cls, media_type: str, data: bytes) -> Descriptor:
        return cls(media_type, sha256_digest(data), len(data))

    def to_json(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class Layer:
    """A layer: its descriptor (compressed) and its diff_id (sha256 of the uncompressed tar)."""

    descriptor: Descriptor
    diff_id: str
    created_by: str
    data: bytes | None = field(default=None, repr=False)  # None: reused from the base image


@dataclass(frozen=True)
class Platform:
    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``os/arch[/variant]``, e.g. ``linux/amd64`` or ``linux/arm64/v8``; ValueError if not."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"{text!r} is not os/arch[/variant], e.g. linux/amd64")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def matches(self, document: Mapping[str, Any]) -> bool:
        """Whether an image config or index ``platform`` entry is for this platform."""
        return (
            document.get("os") == self.os
            and document.get("architecture") == self.architecture
            and (self.variant is None or document.get("variant") in (None, self.variant))
        )

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def to_json(self) -> dict[str, str]:
        """As an image config and an index entry write it."""
        document = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            document["variant"] = self.variant
        return document


@dataclass(frozen=True)
class BaseImage:
    """What a base image contributes: its layers (by digest) and its config document."""

    reference: str
    layers: tuple[Layer, ...]
    config: Mapping[str, Any]


@dataclass(frozen=True)
class SystemFiles:
    """Files a scratch image needs for a Go service to call HTTPS APIs and load time zones:
    the CA bundle at Go's first Linux path (``crypto/x509/root_linux.go``) and the Go
    toolchain's ``zoneinfo.zip``, named by ``ZONEINFO`` (``time/zoneinfo_unix.go`` reads it
    first). One layer of their own, so every service on one bundle shares its digest."""

    ca_bundle: bytes = field(repr=False)
    zoneinfo_zip: bytes = field(repr=False)

    CA_PATH = "etc/ssl/certs/ca-certificates.crt"
    ZONEINFO_PATH = "usr/share/zoneinfo.zip"

    @property
    def env(self) -> tuple[str, ...]:
        return (f"ZONEINFO=/{self.ZONEINFO_PATH}",)

    def layer(self) -> Layer:
        files = {
            self.CA_PATH: (self.ca_bundle, 0o644),
            self.ZONEINFO_PATH: (self.zoneinfo_zip, 0o644),
        }
        return files_layer(files, "canaryflow image-push: CA certificates and time zones")


@dataclass(frozen=True)
class ImageSpec:
    """Everything that decides the image's bytes."""

    name: str
    binary: bytes
    platform: Platform = Platform()
    labels: Mapping[str, str] = field(default_factory=dict)
    base: BaseImage | None = None
    system_files: SystemFiles | None = None


@dataclass(frozen=True)
class Image:
    """A built image: the blobs to upload and the manifest to put."""

    layers: tuple[Layer, ...]
    config: bytes
    manifest: bytes

    @property
    def config_descriptor(self) -> Descriptor:
        return Descriptor.of(CONFIG, self.config)

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)


def build_image(spec: ImageSpec) -> Image:
    base_layers = spec.base.layers if spec.base else ()
    added = (
        *([spec.system_files.layer()] if spec.system_files else []),
        app_layer(spec.name, spec.binary, with_user_db=spec.base is None),
    )
    layers = (*base_layers, *added)
    config = canonical_json(image_config(spec, layers, added))
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": Descriptor.of(CONFIG, config).to_json(),
            "layers": [layer.descriptor.to_json() for layer in layers],
        }
    )
    return Image(layers=layers, config=config, manifest=manifest)


def build_index(images: Sequence[tuple[Platform, Image]]) -> bytes:
    """An OCI image index naming one image manifest per platform, in the order given: what a
    node pulls through one digest whatever its architecture."""
    manifests = []
    for platform, image in images:
        entry = Descriptor(MANIFEST, image.digest, len(image.manifest)).to_json()
        entry["platform"] = platform.to_json()
        manifests.append(entry)
    return canonical_json({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests})


def app_layer(name: str, binary: bytes, *, with_user_db: bool) -> Layer:
    """The binary at ``/app/<name>`` (0755, root-owned, so the non-root user cannot modify it)."""
    files: dict[str, tuple[bytes, int]] = {f"{APP_DIR}/{name}": (binary, 0o755)}
    if with_user_db:
        files["etc/passwd"] = (PASSWD.encode(), 0o644)
        files["etc/group"] = (GROUP.encode(), 0o644)
    return files_layer(files, f"canaryflow image-push: COPY {name} /{APP_DIR}/{name}")


def files_layer(files: Mapping[str, tuple[bytes, int]], created_by: str) -> Layer:
    """A reproducible gzip layer of ``path -> (content, mode)``."""
    tar = reproducible_tar(files)
    blob = reproducible_gzip(tar)
    return Layer(
        descriptor=Descriptor.of(LAYER_GZIP, blob),
        diff_id=sha256_digest(tar),
        created_by=created_by,
        data=blob,
    )


def reproducible_tar(files: Mapping[str, tuple[bytes, int]]) -> bytes:
    """A tar of ``path -> (content, mode)`` with every parent directory, in sorted order."""
    directories = {
        "/".join(path.split("/")[:depth])
        for path in files
        for depth in range(1, path.count("/") + 1)
    }
    entries = sorted(
        [(d + "/", None, 0o755) for d in directories]
        + [(path, content, mode) for path, (content, mode) in files.items()]
    )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path, content, mode in entries:
            info = tarfile.TarInfo(path.rstrip("/"))
            info.mode, info.mtime, info.uid, info.gid = mode, 0, 0, 0
            info.uname = info.gname = ""
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def reproducible_gzip(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=6) as gz:
        gz.write(data)
    return buffer.getvalue()


def image_config(
    spec: ImageSpec, layers: Sequence[Layer], added: Sequence[Layer] = ()
) -> dict[str, Any]:
    """The OCI image config: non-root user, entrypoint, PATH, labels, rootfs and history
    (one entry per layer this image adds on its base)."""
    base = spec.base.config if spec.base else {}
    base_runtime = base.get("config") or {}
    env = list(base_runtime.get("Env") or [])
    if not any(entry.startswith("PATH=") for entry in env):
        env.insert(0, DEFAULT_PATH)
    if spec.system_files:
        env.extend(spec.system_files.env)
    history = list(base.get("history") or [])
    history.extend(
        {"created": EPOCH, "created_by": layer.created_by} for layer in added or layers[-1:]
    )
    return {
        **spec.platform.to_json(),
        "created": EPOCH,
        "config": {
            "User": NONROOT_USER,
            "Entrypoint": [f"/{APP_DIR}/{spec.name}"],
            "Env": env,
            "WorkingDir": "/",
            "Labels": {**(base_runtime.get("Labels") or {}), **spec.labels},
        },
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": history,
    }
