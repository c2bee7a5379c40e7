"""Image references (``host[:port]/repo[:tag][@sha256:...]``) and tags, parsed and checked.

The grammar follows the distribution reference spec. A reference must name its registry host:
a task pod has no "default registry", and guessing one would push or pull somewhere unexpected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from canaryflow.errors import FieldError, InputError

TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9-]+)*(?::\d{1,5})?")
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost"}

# Docker Hub's name in references is not the host serving its API.
_API_HOSTS = {"docker.io": "registry-1.docker.io", "index.docker.io": "registry-1.docker.io"}

SCRATCH = "scratch"


@dataclass(frozen=True)
class Repository:
    """A repository in a registry: ``host`` as written in references, ``name`` inside it."""

    host: str
    name: str

    def __str__(self) -> str:
        return f"{self.host}/{self.name}"

    @property
    def api_host(self) -> str:
        return _API_HOSTS.get(self.host, self.host)

    @property
    def is_loopback(self) -> bool:
        """Plain http is safe here: the traffic never leaves the machine (or the pod)."""
        hostname = self.host.rsplit(":", 1)[0] if self.host.count(":") == 1 else self.host
        return hostname in _LOOPBACK_HOSTS


@dataclass(frozen=True)
class Reference:
    """A repository plus a tag or a digest (the digest wins when both are given)."""

    repository: Repository
    tag: str | None = None
    digest: str | None = None

    @property
    def version(self) -> str:
        """What the manifest endpoint is asked for."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        text = str(self.repository)
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_repository(text: str, field: str) -> Repository:
    """``HOST/REPO`` with no tag or digest, e.g. ``127.0.0.1:5000/shop/checkout``."""
    host, _, name = text.partition("/")
    if not name or not _looks_like_host(host):
        raise InputError(
            FieldError(
                field,
                f"{text!r} names no registry host: write it as HOST/REPO, "
                "e.g. 127.0.0.1:5000/shop/checkout or ghcr.io/acme/checkout",
            )
        )
    if not _HOST.fullmatch(host):
        raise InputError(FieldError(field, f"{host!r} is not a registry host[:port]"))
    bad = [part for part in name.split("/") if not _COMPONENT.fullmatch(part)]
    if bad:
        raise InputError(
            FieldError(
                field,
                f"repository path component {bad[0]!r} is invalid: use lowercase letters, "
                "digits and single separators (. _ __ -) between them",
            )
        )
    return Repository(host=host, name=name)


def parse_reference(text: str, field: str) -> Reference:
    """``HOST/REPO[:TAG][@sha256:...]``."""
    rest, _, digest = text.partition("@")
    if digest and not DIGEST.fullmatch(digest):
        raise InputError(FieldError(field, f"{digest!r} is not a sha256:<64 hex> digest"))
    tag = None
    slash, colon = rest.rfind("/"), rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        check_tag(tag, field)
    return Reference(parse_repository(rest, field), tag=tag, digest=digest or None)


def check_tag(tag: str, field: str) -> str:
    if not TAG.fullmatch(tag):
        raise InputError(
            FieldError(
                field,
                f"{tag!r} is not a valid tag: use 1-128 of [A-Za-z0-9._-], "
                "not starting with . or - (a commit SHA is fine)",
            )
        )
    return tag


def _looks_like_host(first: str) -> bool:
    # The distribution rule: the first component is a host if it has a dot, a port, or is localhost.
    return "." in first or ":" in first or first == "localhost"
