"""Push a static Go binary as an OCI image, by digest: what the workflow's image-push task runs.

Inputs are all checked before the first request, so bad input changes nothing. The manifest is
built locally, so its digest is known before the push and the registry's answer is verified
against it: the reference printed is the one that was built, never whatever the tag points to.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from canaryflow.errors import FieldError, InputError, PlatformError
from canaryflow.image.auth import DockerConfig
from canaryflow.image.oci import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEX,
    LAYER_TYPES,
    MANIFEST,
    BaseImage,
    Descriptor,
    Image,
    ImageSpec,
    Layer,
    Platform,
    build_image,
    build_index,
)
from canaryflow.image.reference import (
    SCRATCH,
    Reference,
    Repository,
    check_tag,
    parse_reference,
    parse_repository,
)
from canaryflow.image.registry import Manifest, RegistryClient
from canaryflow.image.system_files import load_system_files

REVISION_LABEL = "org.opencontainers.image.revision"
VERSION_LABEL = "org.opencontainers.image.version"
SOURCE_LABEL = "org.opencontainers.image.source"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_MANIFEST_TYPES = (MANIFEST, DOCKER_MANIFEST)
_ACCEPT = (MANIFEST, INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)


@dataclass(frozen=True)
class PushRequest:
    """What to push, as given on the command line (checked by ``checked()``)."""

    binary: Path
    repository: str
    tag: str
    base: str = SCRATCH
    name: str | None = None
    docker_config: Path | None = None
    docker_config_optional: bool = False
    """``docker_config`` may be absent (an optional Secret not created): push anonymously."""
    platform: str = "linux/amd64"
    more_platforms: Mapping[str, Path] = field(default_factory=dict)
    """Further ``os/arch -> binary``: the image becomes an OCI index of one image per platform."""
    labels: Mapping[str, str] = field(default_factory=dict)
    version: str | None = None
    source: str | None = None
    insecure: bool = False
    timeout_s: float = 30.0
    system_files: bool = True
    """On a scratch base, add the CA bundle and time zones layer (``image.system_files``)."""
    ca_bundle: Path | None = None
    zoneinfo: Path | None = None


@dataclass(frozen=True)
class CheckedPush:
    request: PushRequest
    repository: Repository
    base: Reference | None
    name: str
    platform: Platform
    labels: Mapping[str, str]
    targets: tuple[tuple[Platform, Path], ...] = ()
    """Every platform's binary, ``platform`` first."""


@dataclass(frozen=True)
class PushedImage:
    """The image as pushed: ``reference`` is ``HOST/REPO@sha256:...``, pinned by digest."""

    reference: str
    digest: str
    manifest_size: int
    blobs: Mapping[str, str] = field(default_factory=dict)  # digest -> present|mounted|uploaded


def push_image(request: PushRequest) -> PushedImage:
    """One image, or with ``more_platforms`` one image per platform under an OCI index: the
    images go in by digest, the tag (and the reference printed) names the index."""
    checked = check_request(request)
    binaries = [(platform, _read_binary(path)) for platform, path in checked.targets]
    docker_config = DockerConfig.load(
        request.docker_config, optional=request.docker_config_optional
    )
    target = _client(checked.repository, docker_config, request)
    target.need_scope(checked.repository.name, "pull,push")
    base_client = None
    if checked.base is not None:
        base_client = _client_for_base(
            checked.base.repository, checked.repository, target, docker_config, request
        )
    system = None
    if checked.base is None and request.system_files:
        system = load_system_files(request.ca_bundle, request.zoneinfo)
    images: list[tuple[Platform, Image]] = []
    for platform, binary in binaries:
        base = None
        if base_client is not None and checked.base is not None:
            base = fetch_base(base_client, checked.base, platform)
        spec = ImageSpec(checked.name, binary, platform, checked.labels, base, system)
        images.append((platform, build_image(spec)))
    base_source = None
    if base_client is not None and checked.base is not None:
        base_source = (base_client, checked.base.repository.name)
    return push_images(target, checked.repository, request.tag, images, base_source)


def push_images(
    target: RegistryClient,
    repository: Repository,
    tag: str,
    images: Sequence[tuple[Platform, Image]],
    base: tuple[RegistryClient, str] | None = None,
) -> PushedImage:
    """Built images into ``repository``: every image's blobs (a base layer this build did not
    make is mounted or copied from ``base``, its client and repository), then one image's
    manifest under ``tag``, or with several each manifest by its own digest and an OCI index
    naming them (``oci.build_index``) under ``tag``. One path for a service's images
    (``push_image``) and the runtime image (``runtime.build_runtime_image``), so both push an
    index the same way; each manifest is verified against the registry's digest."""
    blobs: dict[str, str] = {}
    for _, image in images:
        blobs.update(_upload_blobs(target, repository.name, image, base))
    if len(images) == 1:
        manifest = Manifest(MANIFEST, images[0][1].manifest)
        return _put_manifest(target, repository, tag, manifest, blobs)
    for _, image in images:
        _put_manifest(target, repository, image.digest, Manifest(MANIFEST, image.manifest), blobs)
    index = Manifest(INDEX, build_index(images))
    return _put_manifest(target, repository, tag, index, blobs)


def verify_prebuilt(
    image: str,
    docker_config: Path | None = None,
    docker_config_optional: bool = False,
    insecure: bool = False,
    timeout_s: float = 30.0,
) -> PushedImage:
    """A prebuilt image (``build.image``) instead of a push: the registry must serve exactly
    that digest to the release's own credentials, or the canary could never pull it."""
    reference = parse_reference(image, "build.image")
    if reference.digest is None:
        raise InputError(FieldError("build.image", f"{image!r} is not pinned by @sha256:..."))
    config = DockerConfig.load(docker_config, optional=docker_config_optional)
    client = RegistryClient(
        reference.repository.api_host,
        config.credentials_for(reference.repository.host),
        insecure=insecure or reference.repository.is_loopback,
        timeout_s=timeout_s,
        field="build.image",
    )
    client.need_scope(reference.repository.name, "pull")
    manifest = client.get_manifest(reference.repository.name, reference.digest, _ACCEPT)
    if manifest is None:
        raise InputError(
            FieldError("build.image", f"the registry has no {reference}: push it first")
        )
    if manifest.digest != reference.digest:
        raise PlatformError(f"registry served {reference} with digest {manifest.digest}")
    pinned = f"{reference.repository}@{reference.digest}"
    return PushedImage(pinned, reference.digest, len(manifest.data))


def check_request(request: PushRequest) -> CheckedPush:
    """Every input mistake at once, before any I/O."""
    errors: list[FieldError] = []

    def attempt(check: Callable[[], object]) -> object:
        try:
            return check()
        except InputError as error:
            errors.extend(error.errors)
            return None

    repository = attempt(lambda: parse_repository(request.repository, "repository"))
    attempt(lambda: check_tag(request.tag, "tag"))
    base = None
    if request.base != SCRATCH:
        base = attempt(lambda: parse_reference(request.base, "base"))
    name = request.name or Path(request.binary).name
    if not _NAME.fullmatch(name):
        errors.append(
            FieldError("name", f"{name!r} is not a file name: use [A-Za-z0-9._-], up to 100")
        )
    targets = _targets(request, errors)
    platform = targets[0][0] if targets else None
    for key in request.labels:
        if not key or "=" in key:
            errors.append(FieldError("label", f"{key!r} is not a label key: write k=v"))
    if errors:
        raise InputError(errors)
    labels = {REVISION_LABEL: request.tag, VERSION_LABEL: request.version or request.tag}
    if request.source:
        labels[SOURCE_LABEL] = request.source
    return CheckedPush(
        request, repository, base, name, platform, {**labels, **request.labels}, tuple(targets)
    )


def _targets(request: PushRequest, errors: list[FieldError]) -> list[tuple[Platform, Path]]:
    """``(platform, binary)`` for the main platform and every further one, each checked."""
    given = [("platform", "binary", request.platform, Path(request.binary))]
    given += [
        (f"platform-binary.{text}", f"platform-binary.{text}", text, Path(path))
        for text, path in request.more_platforms.items()
    ]
    targets: list[tuple[Platform, Path]] = []
    for platform_field, binary_field, text, path in given:
        platform = None
        try:
            platform = Platform.parse(text)
        except ValueError as error:
            errors.append(FieldError(platform_field, str(error)))
        if platform is not None and any(str(platform) == str(seen) for seen, _ in targets):
            errors.append(FieldError(platform_field, f"{platform} is given twice: once each"))
        if not path.is_file():
            errors.append(FieldError(binary_field, f"{path} is not a file: build it first"))
        if platform is not None:
            targets.append((platform, path))
    return targets


def fetch_base(client: RegistryClient, reference: Reference, platform: Platform) -> BaseImage:
    """The base image's layers and config, for ``platform`` when the base is multi-platform."""
    repository = reference.repository.name
    client.need_scope(repository, "pull")
    manifest = client.get_manifest(repository, reference.version, _ACCEPT)
    if manifest is None:
        raise InputError(
            FieldError(
                "base",
                f"base image {reference} not found in registry: push it first or use scratch",
            )
        )
    if reference.digest and manifest.digest != reference.digest:
        raise PlatformError(f"registry served {reference} with digest {manifest.digest}")
    if manifest.media_type in (INDEX, DOCKER_MANIFEST_LIST):
        manifest = _platform_manifest(client, reference, manifest, platform)
    if manifest.media_type not in _MANIFEST_TYPES:
        raise InputError(
            FieldError("base", f"{reference} is a {manifest.media_type!r}, not an image manifest")
        )
    document = manifest.document()
    config = json.loads(client.get_blob(repository, document["config"]["digest"]))
    if not platform.matches(config):
        found = Platform(
            config.get("os", "?"), config.get("architecture", "?"), config.get("variant")
        )
        raise InputError(
            FieldError("base", f"base image {reference} is for {found}, not {platform}")
        )
    return BaseImage(str(reference), _base_layers(reference, document, config), config)


def _platform_manifest(
    client: RegistryClient, reference: Reference, index: Manifest, platform: Platform
) -> Manifest:
    entries = index.document().get("manifests", [])
    chosen = next((m for m in entries if platform.matches(m.get("platform") or {})), None)
    if chosen is None:
        raise InputError(FieldError("base", f"base image {reference} has no {platform} image"))
    manifest = client.get_manifest(reference.repository.name, chosen["digest"], _ACCEPT)
    if manifest is None or manifest.digest != chosen["digest"]:
        raise PlatformError(f"registry lost {reference}'s {platform} manifest {chosen['digest']}")
    return manifest


def _base_layers(reference: Reference, manifest: dict, config: dict) -> tuple[Layer, ...]:
    layers = manifest.get("layers", [])
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    history = [h for h in config.get("history") or [] if not h.get("empty_layer")]
    if len(diff_ids) != len(layers):
        raise PlatformError(
            f"base image {reference} is inconsistent: {len(layers)} layers, "
            f"{len(diff_ids)} diff_ids in its config"
        )
    result = []
    for index, (layer, diff_id) in enumerate(zip(layers, diff_ids, strict=True)):
        media_type = LAYER_TYPES.get(layer["mediaType"])
        if media_type is None:
            raise InputError(
                FieldError("base", f"base image {reference} has a {layer['mediaType']} layer")
            )
        created_by = history[index].get("created_by", "") if index < len(history) else ""
        result.append(
            Layer(Descriptor(media_type, layer["digest"], layer["size"]), diff_id, created_by)
        )
    return tuple(result)


def _upload_blobs(
    target: RegistryClient, repository: str, image: Image, base: tuple[RegistryClient, str] | None
) -> dict[str, str]:
    """Every layer and the config into the target repository; returns what happened to each."""
    blobs = {}
    for layer in image.layers:
        digest = layer.descriptor.digest
        if target.blob_exists(repository, digest):
            blobs[digest] = "present"
        elif layer.data is not None:
            target.upload_blob(repository, layer.data)
            blobs[digest] = "uploaded"
        elif base is not None:
            blobs[digest] = _copy_base_layer(target, repository, digest, *base)
    config = image.config_descriptor
    if target.blob_exists(repository, config.digest):
        blobs[config.digest] = "present"
    else:
        target.upload_blob(repository, image.config)
        blobs[config.digest] = "uploaded"
    return blobs


def _copy_base_layer(
    target: RegistryClient, repository: str, digest: str, base: RegistryClient, source: str
) -> str:
    """Mount within one registry; across registries (or if refused), download then upload."""
    session = None
    if base is target:
        session = target.mount_blob(repository, digest, source)
        if session is None:
            return "mounted"
    target.upload_blob(repository, base.get_blob(source, digest), session)
    return "uploaded"


def _put_manifest(
    target: RegistryClient,
    repository: Repository,
    tag: str,
    manifest: Manifest,
    blobs: dict[str, str],
) -> PushedImage:
    """PUT under ``tag`` (or its own digest) and verify the registry kept exactly these bytes."""
    stored = target.put_manifest(repository.name, tag, manifest)
    if stored != manifest.digest:
        raise PlatformError(
            f"registry {repository.host} stored the manifest as {stored or 'unknown'}, "
            f"but it was built as {manifest.digest}: refusing to report an unverified digest"
        )
    reference = f"{repository}@{manifest.digest}"
    return PushedImage(reference, manifest.digest, len(manifest.data), blobs)


def _read_binary(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise InputError(FieldError("binary", f"cannot read {path}: {error.strerror}")) from error


def _client(
    repository: Repository, config: DockerConfig, request: PushRequest, field: str = "repository"
) -> RegistryClient:
    return RegistryClient(
        repository.api_host,
        config.credentials_for(repository.host),
        insecure=request.insecure or repository.is_loopback,
        timeout_s=request.timeout_s,
        field=field,
    )


def _client_for_base(
    base: Repository,
    target_repository: Repository,
    target: RegistryClient,
    config: DockerConfig,
    request: PushRequest,
) -> RegistryClient:
    """The push's own client when the base lives in the same registry: one token, mounts work."""
    if base.api_host == target_repository.api_host:
        return target
    return _client(base, config, request, "base")
