"""A base image from Debian packages pinned by SHA-256, as Google's distroless images are made.

Everything here is pure: parsing Debian's ``Packages`` indices, comparing versions, resolving
the ``Depends`` closure of a few root packages, writing and reading the lock
(``images/runtime/debian.lock``), and turning the pinned ``.deb`` files' bytes into one
reproducible layer. Fetching (indices, packages) is ``debian_lock``'s.

No maintainer script runs (distroless runs none either): what they would have done and an
image needs is done here instead, namely the CA bundle ``update-ca-certificates`` would write,
OpenSSL's default paths the ``openssl`` package would ship, ``/usr/bin/python3``, the user
database and ``/tmp``.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import posixpath
import re
import tarfile
import tomllib
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from canaryflow.image.oci import (
    EPOCH,
    GROUP,
    LAYER_GZIP,
    NONROOT_UID,
    PASSWD,
    BaseImage,
    Descriptor,
    Layer,
    reproducible_gzip,
    sha256_digest,
)

ROOTS = (
    "python3.11-minimal",
    "libpython3.11-stdlib",
    "ca-certificates",
    "tzdata",
    "libstdc++6",
    "base-files",
    "netbase",
)
"""What the runtime base holds: CPython 3.11 with its whole standard library (``ssl``,
``sqlite3``, ``ctypes``...), the CA roots, the time zones, the C++ runtime (manylinux wheels may
link ``libstdc++.so.6``, and the locked google-re2 and frozenlist do), ``/etc/os-release``
(base-files, which image scanners read) and ``/etc/services`` (netbase); everything else is
their closure."""

EXCLUDED = {
    "debconf": "only maintainer scripts use it (tzdata, ca-certificates), and none runs",
    "debconf-2.0": "debconf's virtual name",
    "openssl": "ca-certificates wants it for update-ca-certificates: the bundle is built here",
    "awk": "base-files' maintainer scripts only",
    "mawk": "base-files' maintainer scripts only",
    "dpkg": "no package manager in the image",
    "perl-base": "maintainer scripts only",
}
"""Dependencies left out of the closure (as distroless leaves them out), with the reason."""

PYTHON = "usr/bin/python3.11"
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"
CA_SOURCE = "usr/share/ca-certificates/"
ARCHES = {"amd64": "amd64", "arm64": "arm64"}
"""OCI architecture -> Debian architecture."""

_RELATION = re.compile(
    r"^\s*([a-z0-9][a-z0-9+.-]*)(?::[a-z0-9-]+)?"  # name, an :any/:native qualifier
    r"\s*(?:\(\s*(<<|<=|=|>=|>>)\s*([^)\s]+)\s*\))?"  # (relation version)
    r"\s*(?:\[[^]]*\])?\s*$"  # [architectures], ignored: the index is one architecture's
)


class DebianError(ValueError):
    """An index, a lock or a package that does not hold what the lock says."""


# --- versions -------------------------------------------------------------------------------


def _order(char: str) -> int:
    if char == "~":
        return -1
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def _compare_part(left: str, right: str) -> int:
    """dpkg's ``verrevcmp``: alternating non-digit runs (``~`` first, letters before other
    characters) and digit runs (numerically)."""
    i = j = 0
    while i < len(left) or j < len(right):
        first_diff = 0
        while (i < len(left) and not left[i].isdigit()) or (
            j < len(right) and not right[j].isdigit()
        ):
            lc = _order(left[i]) if i < len(left) and not left[i].isdigit() else 0
            rc = _order(right[j]) if j < len(right) and not right[j].isdigit() else 0
            if lc != rc:
                return -1 if lc < rc else 1
            i, j = i + 1, j + 1
        while i < len(left) and left[i] == "0":
            i += 1
        while j < len(right) and right[j] == "0":
            j += 1
        while i < len(left) and left[i].isdigit() and j < len(right) and right[j].isdigit():
            if not first_diff:
                first_diff = ord(left[i]) - ord(right[j])
            i, j = i + 1, j + 1
        if i < len(left) and left[i].isdigit():
            return 1
        if j < len(right) and right[j].isdigit():
            return -1
        if first_diff:
            return -1 if first_diff < 0 else 1
    return 0


def _split_version(version: str) -> tuple[int, str, str]:
    epoch, _, rest = version.rpartition(":") if ":" in version else ("0", "", version)
    upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "")
    return int(epoch or 0), upstream, revision


def compare_versions(left: str, right: str) -> int:
    """-1, 0 or 1 as Debian orders two versions (``dpkg --compare-versions``)."""
    a, b = _split_version(left), _split_version(right)
    if a[0] != b[0]:
        return -1 if a[0] < b[0] else 1
    return _compare_part(a[1], b[1]) or _compare_part(a[2], b[2])


def satisfies(version: str, relation: str | None, wanted: str | None) -> bool:
    if relation is None or wanted is None:
        return True
    order = compare_versions(version, wanted)
    return {
        "<<": order < 0,
        "<=": order <= 0,
        "=": order == 0,
        ">=": order >= 0,
        ">>": order > 0,
    }[relation]


# --- indices --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Relation:
    name: str
    relation: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        return f"{self.name} ({self.relation} {self.version})" if self.relation else self.name


def parse_relations(text: str) -> tuple[tuple[Relation, ...], ...]:
    """A ``Depends`` field: groups of alternatives (``a (>= 1) | b, c``)."""
    groups = []
    for group in filter(None, (g.strip() for g in text.split(","))):
        alternatives = []
        for alternative in group.split("|"):
            match = _RELATION.match(alternative)
            if not match:
                raise DebianError(f"cannot parse the relation {alternative.strip()!r}")
            alternatives.append(Relation(*match.groups()))
        groups.append(tuple(alternatives))
    return tuple(groups)


@dataclass(frozen=True)
class Package:
    """One binary package as an index names it, and where its archive serves it."""

    name: str
    version: str
    architecture: str
    filename: str
    sha256: str
    size: int
    archive: str
    """The archive's base URL path on a mirror: ``debian`` or ``debian-security``."""
    suite: str
    depends: tuple[tuple[Relation, ...], ...] = ()
    provides: tuple[str, ...] = ()


def parse_stanzas(text: str) -> list[dict[str, str]]:
    """RFC 822-style paragraphs (``Packages``, ``Release``, a ``control`` file)."""
    stanzas, current, key = [], {}, None
    for line in text.splitlines():
        if not line.strip():
            if current:
                stanzas.append(current)
            current, key = {}, None
        elif line[0] in " \t" and key:
            current[key] += "\n" + line
        else:
            key, _, value = line.partition(":")
            current[key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def parse_packages(text: str, archive: str, suite: str) -> list[Package]:
    packages = []
    for stanza in parse_stanzas(text):
        depends = ", ".join(
            stanza[field] for field in ("Pre-Depends", "Depends") if stanza.get(field)
        )
        provides = tuple(r[0].name for r in parse_relations(stanza.get("Provides", "")))
        packages.append(
            Package(
                name=stanza["Package"],
                version=stanza["Version"],
                architecture=stanza["Architecture"],
                filename=stanza["Filename"],
                sha256=stanza["SHA256"],
                size=int(stanza["Size"]),
                archive=archive,
                suite=suite,
                depends=parse_relations(depends),
                provides=provides,
            )
        )
    return packages


def release_sha256(release: str) -> dict[str, tuple[str, int]]:
    """A ``Release`` file's ``SHA256`` list: index path -> (sha256, size)."""
    stanza = parse_stanzas(release)[0] if release.strip() else {}
    files = {}
    for line in stanza.get("SHA256", "").splitlines():
        parts = line.split()
        if len(parts) == 3:
            files[parts[2]] = (parts[0], int(parts[1]))
    return files


def newest(packages: Iterable[Package]) -> dict[str, Package]:
    """One package per name, the highest version across the suites given (``bookworm``,
    ``-updates``, ``-security``), as apt would pick; ties keep the first suite's."""
    best: dict[str, Package] = {}
    for package in packages:
        held = best.get(package.name)
        if held is None or compare_versions(package.version, held.version) > 0:
            best[package.name] = package
    return best


# --- closure --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Closure:
    packages: tuple[Package, ...]
    """Sorted by name."""
    dropped: tuple[tuple[str, str], ...]
    """(package, dependency group) left out because of ``EXCLUDED``."""


def resolve(
    index: Mapping[str, Package],
    roots: Sequence[str] = ROOTS,
    excluded: Mapping[str, str] | None = None,
) -> Closure:
    """The ``Pre-Depends``/``Depends`` closure of ``roots`` (no Recommends, as distroless):
    a group an already chosen package satisfies needs nothing more; else its first
    alternative the index has in a fitting version (a real package before a virtual one's
    single provider). A group naming an excluded package is dropped, and recorded."""
    excluded = EXCLUDED if excluded is None else excluded
    providers: dict[str, list[Package]] = {}
    for package in index.values():
        for name in package.provides:
            providers.setdefault(name, []).append(package)
    chosen: dict[str, Package] = {}
    dropped: list[tuple[str, str]] = []
    pending = [_pick(index, providers, (Relation(r),), r) for r in roots]
    while pending:
        package = pending.pop(0)
        if package.name in chosen:
            continue
        chosen[package.name] = package
        for group in package.depends:
            if any(r.name in excluded for r in group):
                dropped.append((package.name, " | ".join(map(str, group))))
                continue
            if any(_satisfied(chosen, providers, r) for r in group):
                continue
            pending.append(_pick(index, providers, group, package.name))
    for package in chosen.values():
        for group in package.depends:
            if not any(r.name in excluded for r in group) and not any(
                _satisfied(chosen, providers, r) for r in group
            ):
                wanted = " | ".join(map(str, group))
                raise DebianError(f"{package.name} needs {wanted}: the closure has no such version")
    return Closure(tuple(sorted(chosen.values(), key=lambda p: p.name)), tuple(sorted(dropped)))


def _satisfied(chosen: Mapping[str, Package], providers, relation: Relation) -> bool:
    held = chosen.get(relation.name)
    if held is not None and satisfies(held.version, relation.relation, relation.version):
        return True
    return relation.relation is None and any(
        p.name in chosen for p in providers.get(relation.name, ())
    )


def _pick(index, providers, group: Sequence[Relation], wanted_by: str) -> Package:
    for relation in group:
        package = index.get(relation.name)
        if package and satisfies(package.version, relation.relation, relation.version):
            return package
    for relation in group:
        offered = sorted(providers.get(relation.name, ()), key=lambda p: p.name)
        if relation.relation is None and len(offered) == 1:
            return offered[0]
    wanted = " | ".join(map(str, group))
    raise DebianError(f"{wanted_by} needs {wanted}: no package in the index satisfies it")


# --- the lock -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LockedPackage:
    name: str
    version: str
    architecture: str
    """Debian's: ``amd64``, ``arm64`` or ``all``."""
    platform: str
    """The image architecture it was resolved for (``amd64``/``arm64``)."""
    sha256: str
    size: int
    urls: tuple[str, ...]
    """Where to fetch it, in order: the mirror's pool, then snapshot.debian.org's."""


@dataclass(frozen=True)
class DebianLock:
    snapshot: str
    packages: tuple[LockedPackage, ...]
    roots: tuple[str, ...] = ROOTS
    release: str = ""

    def for_platform(self, architecture: str) -> tuple[LockedPackage, ...]:
        chosen = tuple(p for p in self.packages if p.platform == architecture)
        if not chosen:
            raise DebianError(f"the Debian lock has no packages for {architecture}")
        return chosen


def package_urls(package: Package, mirror: str, snapshot: str) -> tuple[str, ...]:
    return (
        f"{mirror}/{package.archive}/{package.filename}",
        f"http://snapshot.debian.org/archive/{package.archive}/{snapshot}/{package.filename}",
    )


def render_lock(
    closures: Mapping[str, Closure],
    *,
    roots: Sequence[str] = ROOTS,
    snapshot: str,
    release: str,
    mirror: str,
    header: str,
) -> str:
    """The lock's text: ``header`` (comments), then TOML, one ``[[package]]`` per package and
    image architecture, sorted by architecture then name."""
    listed = ", ".join(f'"{r}"' for r in roots)
    lines = [header.rstrip("\n"), "", f'snapshot = "{snapshot}"', f'release = "{release}"',
             f"roots = [{listed}]", ""]  # fmt: skip
    for platform in sorted(closures):
        closure = closures[platform]
        for name, group in closure.dropped:
            lines.append(f"# {platform}: {name} Depends: {group}: left out ({_reason(group)})")
        for package in closure.packages:
            urls = ", ".join(f'"{u}"' for u in package_urls(package, mirror, snapshot))
            lines += [
                "",
                "[[package]]",
                f'name = "{package.name}"',
                f'version = "{package.version}"',
                f'architecture = "{package.architecture}"',
                f'platform = "{platform}"',
                f'suite = "{package.suite}"',
                f'sha256 = "{package.sha256}"',
                f"size = {package.size}",
                f"urls = [{urls}]",
            ]
        lines.append("")
    return "\n".join(lines)


def _reason(group: str) -> str:
    names = [part.split()[0] for part in group.split("|")]
    return next((EXCLUDED[n] for n in names if n in EXCLUDED), "excluded")


def parse_lock(text: str) -> DebianLock:
    try:
        document = tomllib.loads(text)
        packages = tuple(
            LockedPackage(
                name=p["name"],
                version=p["version"],
                architecture=p["architecture"],
                platform=p["platform"],
                sha256=p["sha256"],
                size=int(p["size"]),
                urls=tuple(p["urls"]),
            )
            for p in document.get("package", [])
        )
        lock = DebianLock(
            snapshot=document["snapshot"],
            packages=packages,
            roots=tuple(document.get("roots", ROOTS)),
            release=document.get("release", ""),
        )
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as error:
        raise DebianError(f"not a Debian lock: {error}") from None
    for package in packages:
        if not re.fullmatch(r"[0-9a-f]{64}", package.sha256):
            raise DebianError(f"{package.name}: sha256 {package.sha256!r} is not 64 hex digits")
        if not package.urls:
            raise DebianError(f"{package.name}: no URL")
    return lock


def check_package(package: LockedPackage, data: bytes) -> bytes:
    """``data`` if it is exactly the locked file, else DebianError: nothing unverified is used."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != package.sha256 or len(data) != package.size:
        raise DebianError(
            f"{package.name} {package.version}: got sha256 {digest} ({len(data)} bytes), "
            f"the lock pins {package.sha256} ({package.size} bytes)"
        )
    return data


# --- .deb files -----------------------------------------------------------------------------


def ar_members(data: bytes) -> dict[str, bytes]:
    """The members of an ``ar`` archive (a ``.deb`` is one)."""
    if not data.startswith(b"!<arch>\n"):
        raise DebianError("not an ar archive (a .deb starts with !<arch>)")
    members, offset = {}, 8
    while offset + 60 <= len(data):
        header = data[offset : offset + 60]
        if header[58:60] != b"`\n":
            raise DebianError(f"a bad ar member header at byte {offset}")
        name = header[:16].decode("ascii").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        start = offset + 60
        members[name] = data[start : start + size]
        offset = start + size + (size % 2)
    return members


def _decompress(name: str, blob: bytes) -> bytes:
    if name.endswith(".xz"):
        return lzma.decompress(blob)
    if name.endswith(".gz"):
        return zlib.decompress(blob, 16 + zlib.MAX_WBITS)
    if name.endswith(".tar"):
        return blob
    raise DebianError(f"{name}: only .tar, .tar.gz and .tar.xz members are read (Debian's)")


def deb_part(data: bytes, part: str) -> bytes:
    """``control`` or ``data``: the uncompressed tar of that member of a ``.deb``."""
    for name, blob in ar_members(data).items():
        if name.startswith(f"{part}.tar"):
            return _decompress(name, blob)
    raise DebianError(f"no {part}.tar member in the .deb")


def control_file(data: bytes) -> str:
    with tarfile.open(fileobj=io.BytesIO(deb_part(data, "control"))) as tar:
        for member in tar.getmembers():
            if member.name.lstrip("./") == "control":
                extracted = tar.extractfile(member)
                assert extracted is not None
                return extracted.read().decode()
    raise DebianError("no control file in the .deb")


@dataclass(frozen=True)
class Entry:
    """One path in the layer: a directory (``content`` None, no link), a file, a symlink
    (``link``) or a hard link (``hardlink``, the path it repeats)."""

    path: str
    mode: int
    content: bytes | None = field(default=None, repr=False)
    link: str | None = None
    hardlink: str | None = None
    uid: int = 0

    @property
    def kind(self) -> str:
        if self.link is not None:
            return "symlink"
        if self.hardlink is not None:
            return "hardlink"
        return "directory" if self.content is None else "file"


def deb_entries(data: bytes, package: str) -> list[Entry]:
    """What a ``.deb`` installs: its ``data.tar`` entries, owned by root whatever the tar says."""
    entries = []
    with tarfile.open(fileobj=io.BytesIO(deb_part(data, "data"))) as tar:
        for member in tar.getmembers():
            path = _clean(member.name)
            if not path:
                continue
            mode = member.mode & 0o7777
            if member.isdir():
                entries.append(Entry(path, mode))
            elif member.issym():
                entries.append(Entry(path, 0o777, link=member.linkname))
            elif member.islnk():
                entries.append(Entry(path, mode, hardlink=_clean(member.linkname)))
            elif member.isfile():
                extracted = tar.extractfile(member)
                assert extracted is not None
                entries.append(Entry(path, mode, content=extracted.read()))
            else:
                raise DebianError(f"{package}: {path} is neither file, directory nor link")
    return entries


def _clean(name: str) -> str:
    """A member name as a path under the root, without ``./``; the root itself is ``""``."""
    path = posixpath.normpath("/" + name).lstrip("/")
    if ".." in name.split("/"):
        raise DebianError(f"{name}: a path outside the root")
    return path


# --- the rootfs -----------------------------------------------------------------------------


def ca_bundle(entries: Iterable[Entry]) -> bytes:
    """``update-ca-certificates``' bundle: every ``.crt`` under /usr/share/ca-certificates in
    sorted order (its default ``/etc/ca-certificates.conf`` lists them all), each ending in a
    newline."""
    certs = sorted(
        (e.path, e.content)
        for e in entries
        if e.path.startswith(CA_SOURCE) and e.path.endswith(".crt") and e.content is not None
    )
    return b"".join(c if c.endswith(b"\n") else c + b"\n" for _, c in certs)


def extra_entries(entries: Sequence[Entry]) -> list[Entry]:
    """What maintainer scripts and the packages left out would have provided, and the image's
    own: the CA bundle (and OpenSSL's default paths to it), ``/usr/bin/python3``, root and
    nonroot (65532) in ``/etc/passwd`` and ``/etc/group``, their homes, and ``/tmp``."""
    have = {e.path for e in entries}
    if PYTHON not in have:
        raise DebianError(f"the packages hold no /{PYTHON}")
    bundle = ca_bundle(entries)
    if not bundle:
        raise DebianError(f"no CA certificates under /{CA_SOURCE}")
    return [
        Entry(CA_BUNDLE, 0o644, content=bundle),
        Entry("usr/lib/ssl", 0o755),
        Entry("usr/lib/ssl/certs", 0o777, link="/etc/ssl/certs"),
        Entry("usr/lib/ssl/cert.pem", 0o777, link="/" + CA_BUNDLE),
        Entry("usr/bin/python3", 0o777, link="python3.11"),
        Entry("etc/passwd", 0o644, content=PASSWD.encode()),
        Entry("etc/group", 0o644, content=GROUP.encode()),
        Entry("root", 0o700),
        Entry("home", 0o755),
        Entry("home/nonroot", 0o700, uid=NONROOT_UID),
        Entry("tmp", 0o1777),
    ]


def status_entry(control: str) -> Entry:
    """``/var/lib/dpkg/status.d/<name>``: the package's control file, where image scanners
    (Trivy, Grype, Syft) look for distroless images' packages."""
    name = parse_stanzas(control)[0]["Package"]
    return Entry(f"var/lib/dpkg/status.d/{name}", 0o644, content=control.encode())


def merge(groups: Sequence[tuple[str, Sequence[Entry]]]) -> list[Entry]:
    """The union of each package's entries (and the extras), sorted by path; parent
    directories added; hard links made copies of their files; the same path twice must be the
    same entry (directories: the first one's mode), else DebianError naming both owners."""
    merged: dict[str, tuple[str, Entry]] = {}
    for owner, entries in groups:
        for entry in entries:
            held = merged.get(entry.path)
            if held is None:
                merged[entry.path] = (owner, entry)
            elif held[1] != entry and not (held[1].kind == entry.kind == "directory"):
                raise DebianError(f"/{entry.path}: {held[0]} and {owner} install it differently")
    for path in list(merged):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            merged.setdefault(parent, ("parent", Entry(parent, 0o755)))
    for path, (owner, entry) in list(merged.items()):
        if entry.kind == "hardlink":  # a copy: in sorted order the link may precede its target
            target = merged.get(entry.hardlink or "", ("", Entry("", 0)))[1]
            if target.kind != "file":
                raise DebianError(f"/{path}: {owner} links it to /{entry.hardlink}, not a file")
            merged[path] = (owner, Entry(path, entry.mode, content=target.content))
    return [merged[path][1] for path in sorted(merged)]


def entries_tar(entries: Sequence[Entry]) -> bytes:
    """A tar of the entries in their order: mtime 0, numeric owners only (root, or nonroot's
    home), no user or group names (PAX, for long link targets)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.path)
            info.mode, info.mtime, info.uid, info.gid = entry.mode, 0, entry.uid, entry.uid
            info.uname = info.gname = ""
            if entry.kind == "directory":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif entry.kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, entry.link or ""
                tar.addfile(info)
            elif entry.kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, entry.hardlink or ""
                tar.addfile(info)
            else:
                content = entry.content or b""
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def rootfs_entries(debs: Sequence[tuple[LockedPackage, bytes]]) -> list[Entry]:
    """Every verified ``.deb``'s files, their dpkg status records and the extras, merged."""
    groups: list[tuple[str, Sequence[Entry]]] = []
    for package, data in debs:
        check_package(package, data)
        groups.append((package.name, deb_entries(data, package.name)))
        groups.append((package.name, [status_entry(control_file(data))]))
    installed = [entry for _, entries in groups for entry in entries]
    return merge([*groups, ("canaryflow", extra_entries(installed))])


BASE_ENV = (
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "SSL_CERT_FILE=/" + CA_BUNDLE,
)
"""No ``LANG``: the image has no locales (they are libc-bin's), and in the C locale CPython
runs in UTF-8 mode by itself (PEP 540)."""


def debian_base(debs: Sequence[tuple[LockedPackage, bytes]], lock_digest: str) -> BaseImage:
    """The base as ``runtime.assemble`` takes one: one layer of the packages, and a config
    naming the lock it came from (``lock_digest``: the sha256 of the lock file)."""
    tar = entries_tar(rootfs_entries(debs))
    blob = reproducible_gzip(tar)
    created_by = (
        f"canaryflow make image: Debian packages of images/runtime/debian.lock ({lock_digest})"
    )
    layer = Layer(Descriptor.of(LAYER_GZIP, blob), sha256_digest(tar), created_by, blob)
    config = {
        "config": {"Env": list(BASE_ENV)},
        "history": [{"created": EPOCH, "created_by": created_by}],
    }
    return BaseImage(reference=f"debian.lock@{lock_digest}", layers=(layer,), config=config)
