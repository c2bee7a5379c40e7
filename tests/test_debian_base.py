"""The Debian base of the runtime image (``canaryflow.image.debian``, ``debian_lock``): Debian's
version order, the Depends closure, the lock, ``.deb`` reading and the reproducible layer, all
on made-up packages and without the network; and the checked-in ``images/runtime/debian.lock``.
The image built from the real packages is ``test_runtime_image``'s."""

from __future__ import annotations

import hashlib
import io
import lzma
import shutil
import tarfile
from pathlib import Path

import pytest

from canaryflow.image import debian_lock
from canaryflow.image.debian import (
    EXCLUDED,
    ROOTS,
    DebianError,
    LockedPackage,
    Relation,
    ar_members,
    ca_bundle,
    check_package,
    compare_versions,
    control_file,
    deb_entries,
    debian_base,
    entries_tar,
    merge,
    newest,
    parse_lock,
    parse_packages,
    parse_relations,
    render_lock,
    resolve,
    rootfs_entries,
)
from canaryflow.image.debian_lock import fetch_packages
from canaryflow.image.runtime import check_base, is_debian_lock

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "images/runtime/debian.lock"


@pytest.mark.parametrize(
    ("left", "right", "order"),
    [  # each as `dpkg --compare-versions` orders it (dpkg 1.21, bookworm)
        ("1.0~rc1", "1.0", -1),
        ("1.0", "1.0-0", 0),
        ("2.36-9+deb12u14", "2.36-9+deb12u7", 1),
        ("1:1.2.13", "1.3", 1),
        ("20250419~deb12u2", "20230311+deb12u1", 1),
        ("1.0a", "1.0+", -1),
        ("1.0", "1.0.0", -1),
        ("3.0.22-1~deb12u2", "3.0.22-1", -1),
        ("1.2.3-1", "1.2.3-1", 0),
        ("0:1.0", "1.0", 0),
        ("1.0~~", "1.0~", -1),
        ("1.01", "1.1", 0),
    ],
)
def test_versions_order_as_dpkg_orders_them(left, right, order):
    assert compare_versions(left, right) == order
    assert compare_versions(right, left) == -order


def test_relations_parse_alternatives_versions_and_qualifiers():
    assert parse_relations(
        "libc6 (>= 2.34), media-types | mime-support, python3:any (<< 3.12~)"
    ) == (
        (Relation("libc6", ">=", "2.34"),),
        (Relation("media-types"), Relation("mime-support")),
        (Relation("python3", "<<", "3.12~"),),
    )
    with pytest.raises(DebianError, match="cannot parse"):
        parse_relations("libc6 (>= 2.34")


def stanza(name: str, version: str = "1.0-1", depends: str = "", provides: str = "") -> str:
    lines = [
        f"Package: {name}",
        f"Version: {version}",
        "Architecture: amd64",
        f"Filename: pool/main/{name[0]}/{name}/{name}_{version}_amd64.deb",
        f"SHA256: {hashlib.sha256(name.encode()).hexdigest()}",
        "Size: 10",
    ]
    if depends:
        lines.append(f"Depends: {depends}")
    if provides:
        lines.append(f"Provides: {provides}")
    return "\n".join(lines) + "\n"


def index(*stanzas: str, suite: str = "bookworm"):
    return parse_packages("\n".join(stanzas), "debian", suite)


def test_the_closure_follows_depends_picks_alternatives_and_drops_the_excluded():
    packages = index(
        stanza("app", depends="libc6 (>= 2.36), debconf | debconf-2.0, missing | libfoo, mta"),
        stanza("libc6", "2.36-9", depends="libgcc-s1"),
        stanza("libgcc-s1"),
        stanza("libfoo", depends="libc6"),
        stanza("exim", provides="mta"),
        stanza("unrelated"),
    )
    closure = resolve(newest(packages), ["app"])
    assert [p.name for p in closure.packages] == ["app", "exim", "libc6", "libfoo", "libgcc-s1"]
    assert closure.dropped == (("app", "debconf | debconf-2.0"),)


def test_the_closure_refuses_a_dependency_no_version_satisfies():
    packages = index(stanza("app", depends="libc6 (>= 2.37)"), stanza("libc6", "2.36-9"))
    with pytest.raises(DebianError, match=r"app needs libc6 \(>= 2.37\)"):
        resolve(newest(packages), ["app"])


def test_the_newest_version_across_the_suites_wins():
    main = index(stanza("libssl3", "3.0.20-1~deb12u2"), stanza("tzdata", "2026b-0+deb12u1"))
    updates = index(stanza("libssl3", "3.0.17-1~deb12u2"), suite="bookworm-updates")
    security = index(stanza("libssl3", "3.0.22-1~deb12u2"), suite="bookworm-security")
    best = newest([*main, *updates, *security])
    assert (best["libssl3"].version, best["libssl3"].suite) == (
        "3.0.22-1~deb12u2",
        "bookworm-security",
    )
    assert best["tzdata"].suite == "bookworm"


def test_the_lock_renders_and_parses_back_with_both_urls():
    closure = resolve(
        newest(index(stanza("app", "1:2.0-1", depends="libc6"), stanza("libc6"))), ["app"]
    )
    text = render_lock(
        {"amd64": closure}, roots=["app"], snapshot="20261207T000000Z", release="bookworm 12.15",
        mirror="http://deb.debian.org", header="# made by a test\n",
    )  # fmt: skip
    assert text.startswith("# made by a test\n")
    lock = parse_lock(text)
    assert (lock.snapshot, lock.roots, lock.release) == (
        "20261207T000000Z",
        ("app",),
        "bookworm 12.15",
    )
    app = lock.for_platform("amd64")[0]
    assert (app.name, app.version, app.architecture, app.size) == ("app", "1:2.0-1", "amd64", 10)
    assert app.urls == (
        "http://deb.debian.org/debian/pool/main/a/app/app_1:2.0-1_amd64.deb",
        "http://snapshot.debian.org/archive/debian/20261207T000000Z/pool/main/a/app/app_1:2.0-1_amd64.deb",
    )
    with pytest.raises(DebianError, match="no packages for arm64"):
        lock.for_platform("arm64")
    with pytest.raises(DebianError, match="not 64 hex digits"):
        parse_lock(text.replace(app.sha256, "abc"))


# --- made-up .deb files ---------------------------------------------------------------------


def tar_xz(members: list[tuple[str, str, bytes | str | None]]) -> bytes:
    """(name, kind, content-or-link) as a .deb's tar.xz member writes them (``./`` names)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, kind, content in members:
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname = 1700000000, 0, 0, "root"
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, str(content)
                tar.addfile(info)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, str(content)
                tar.addfile(info)
            else:
                data = content if isinstance(content, bytes) else b""
                info.mode, info.size = 0o755 if kind == "exe" else 0o644, len(data)
                tar.addfile(info, io.BytesIO(data))
    return lzma.compress(buffer.getvalue())


def ar(members: list[tuple[str, bytes]]) -> bytes:
    out = b"!<arch>\n"
    for name, data in members:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        out += header + data + (b"\n" if len(data) % 2 else b"")
    return out


def deb(name: str, files: list[tuple[str, str, bytes | str | None]]) -> bytes:
    control = f"Package: {name}\nVersion: 1.0-1\nArchitecture: amd64\nDescription: test\n"
    return ar([
        ("debian-binary", b"2.0\n"),
        ("control.tar.xz", tar_xz([("./", "dir", None), ("./control", "file", control.encode())])),
        ("data.tar.xz", tar_xz([("./", "dir", None), *files])),
    ])  # fmt: skip


def locked(name: str, data: bytes, urls: tuple[str, ...] = ("file:///nowhere",)) -> LockedPackage:
    sha = hashlib.sha256(data).hexdigest()
    return LockedPackage(name, "1.0-1", "amd64", "amd64", sha, len(data), urls)


PYTHON_DEB = [
    ("./usr/", "dir", None),
    ("./usr/bin/", "dir", None),
    ("./usr/bin/python3.11", "exe", b"\x7fELF python"),
    ("./usr/bin/pydoc3.11", "hardlink", "./usr/bin/python3.11"),
    ("./lib64/", "dir", None),
    ("./lib64/ld-linux-x86-64.so.2", "symlink", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
]
CA_DEB = [
    ("./usr/share/ca-certificates/mozilla/B_Root.crt", "file", b"-----B-----"),
    ("./usr/share/ca-certificates/mozilla/A_Root.crt", "file", b"-----A-----\n"),
]


def test_a_deb_is_read_without_dpkg():
    data = deb("python3.11-minimal", PYTHON_DEB)
    assert list(ar_members(data)) == ["debian-binary", "control.tar.xz", "data.tar.xz"]
    assert control_file(data).startswith("Package: python3.11-minimal\n")
    entries = {e.path: e for e in deb_entries(data, "python3.11-minimal")}
    assert entries["usr/bin/python3.11"].content == b"\x7fELF python"
    assert entries["usr/bin/python3.11"].mode == 0o755
    assert entries["usr/bin/pydoc3.11"].hardlink == "usr/bin/python3.11"
    assert entries["lib64/ld-linux-x86-64.so.2"].link.startswith("/lib/x86_64-linux-gnu/")
    with pytest.raises(DebianError, match="not an ar archive"):
        ar_members(b"PK\x03\x04")


def test_nothing_but_the_locked_bytes_is_used():
    data = deb("python3.11-minimal", PYTHON_DEB)
    package = locked("python3.11-minimal", data)
    assert check_package(package, data) is data
    with pytest.raises(DebianError, match=r"python3.11-minimal 1.0-1: got sha256 .* the lock pins"):
        check_package(package, data + b"x")
    with pytest.raises(DebianError, match="the lock pins"):
        rootfs_entries([(package, data[:-1] + b"!")])


def test_the_rootfs_adds_what_maintainer_scripts_would_and_is_reproducible():
    debs = [
        (locked("python3.11-minimal", d := deb("python3.11-minimal", PYTHON_DEB)), d),
        (locked("ca-certificates", c := deb("ca-certificates", CA_DEB)), c),
    ]
    entries = rootfs_entries(debs)
    paths = [e.path for e in entries]
    assert paths == sorted(paths)
    by_path = {e.path: e for e in entries}
    assert by_path["etc/ssl/certs/ca-certificates.crt"].content == b"-----A-----\n-----B-----\n"
    assert by_path["usr/lib/ssl/cert.pem"].link == "/etc/ssl/certs/ca-certificates.crt"
    assert by_path["usr/bin/python3"].link == "python3.11"
    assert by_path["usr/bin/pydoc3.11"].content == by_path["usr/bin/python3.11"].content
    assert "nonroot:x:65532:65532" in by_path["etc/passwd"].content.decode()
    assert (by_path["tmp"].mode, by_path["home/nonroot"].uid) == (0o1777, 65532)
    assert by_path["var/lib/dpkg/status.d/ca-certificates"].content.startswith(b"Package: ca-")
    assert by_path["usr/share/ca-certificates"].kind == "directory"  # parents are added

    first, second = debian_base(debs, "sha256:" + "0" * 64), debian_base(debs, "sha256:" + "0" * 64)
    assert first.layers[0].descriptor == second.layers[0].descriptor
    with tarfile.open(fileobj=io.BytesIO(entries_tar(entries))) as tar:
        members = tar.getmembers()
    assert {(m.mtime, m.uname, m.gname) for m in members} == {(0, "", "")}
    assert [m.name for m in members] == paths


def test_a_rootfs_without_python_or_certificates_is_refused():
    only_certs = [(locked("ca-certificates", c := deb("ca-certificates", CA_DEB)), c)]
    with pytest.raises(DebianError, match=r"no /usr/bin/python3\.11"):
        rootfs_entries(only_certs)
    only_python = [(locked("python3.11-minimal", d := deb("python3.11-minimal", PYTHON_DEB)), d)]
    with pytest.raises(DebianError, match="no CA certificates"):
        rootfs_entries(only_python)


def test_two_packages_installing_one_path_differently_are_refused():
    one = deb_entries(deb("one", [("./etc/", "dir", None), ("./etc/x", "file", b"1")]), "one")
    two = deb_entries(deb("two", [("./etc/", "dir", None), ("./etc/x", "file", b"2")]), "two")
    same = deb_entries(deb("same", [("./etc/", "dir", None), ("./etc/x", "file", b"1")]), "same")
    assert [e.path for e in merge([("one", one), ("same", same)])] == ["etc", "etc/x"]
    with pytest.raises(DebianError, match="/etc/x: one and two install it differently"):
        merge([("one", one), ("two", two)])


def test_the_ca_bundle_is_the_certificates_in_sorted_order():
    entries = deb_entries(deb("ca-certificates", CA_DEB), "ca-certificates")
    assert ca_bundle(entries) == b"-----A-----\n-----B-----\n"


# --- fetching -------------------------------------------------------------------------------


def test_packages_come_from_the_first_url_serving_the_locked_bytes_and_then_the_cache(tmp_path):
    data = deb("netbase", [("./etc/", "dir", None), ("./etc/services", "file", b"http 80/tcp\n")])
    (tmp_path / "good.deb").write_bytes(data)
    (tmp_path / "tampered.deb").write_bytes(data + b"tampered")
    urls = (f"file://{tmp_path}/missing.deb", f"file://{tmp_path}/tampered.deb",
            f"file://{tmp_path}/good.deb")  # fmt: skip
    package = locked("netbase", data, urls)
    lock = parse_lock(
        "snapshot = 'x'\n[[package]]\nname = 'netbase'\nversion = '1.0-1'\narchitecture = 'all'\n"
        f"platform = 'amd64'\nsha256 = '{package.sha256}'\nsize = {package.size}\n"
        f"urls = {list(urls)!r}\n".replace("'", '"')
    )
    cache = tmp_path / "cache"
    assert [d for _, d in fetch_packages(lock, "amd64", cache)] == [data]
    assert (cache / "netbase_1.0-1_all.deb").read_bytes() == data
    (tmp_path / "good.deb").unlink()
    assert [d for _, d in fetch_packages(lock, "amd64", cache, offline=True)] == [data]
    (cache / "netbase_1.0-1_all.deb").write_bytes(b"corrupted")
    with pytest.raises(DebianError, match="not in the cache"):
        fetch_packages(lock, "amd64", cache, offline=True)
    with pytest.raises(DebianError, match=r"missing.deb: .*tampered.deb: .*the lock pins"):
        fetch_packages(lock, "amd64", cache)


@pytest.mark.skipif(not shutil.which("gpgv"), reason="no gpgv")
def test_an_index_whose_signature_or_hash_does_not_check_is_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(debian_lock, "fetch", lambda url: b"-----BEGIN PGP SIGNED MESSAGE-----\n")
    with pytest.raises(DebianError, match="gpgv refused its signature"):
        debian_lock.verified_release("http://mirror", "debian", "bookworm", debian_lock.KEYRING)
    release = "Origin: Debian\nSHA256:\n " + "0" * 64 + " 10 main/binary-amd64/Packages.xz\n"
    with pytest.raises(DebianError, match="not the InRelease's SHA-256"):
        debian_lock.suite_packages("http://mirror", "debian", "bookworm", "amd64", release)


# --- the checked-in lock --------------------------------------------------------------------


@pytest.mark.parametrize("architecture", ["amd64", "arm64"])
def test_the_checked_in_lock_holds_a_cpython_runtime_with_urls_on_the_mirror_and_snapshot(
    architecture,
):
    text = LOCK.read_text()
    assert "python -m canaryflow.image.debian_lock --output images/runtime/debian.lock" in text
    lock = parse_lock(text)
    packages = {p.name: p for p in lock.for_platform(architecture)}
    wanted = {"libc6", "libssl3", "zlib1g", "libffi8", "libexpat1", "libsqlite3-0", "libbz2-1.0",
              "liblzma5", "libpython3.11-minimal", "libstdc++6"}  # fmt: skip
    assert set(ROOTS) | wanted <= set(packages)
    python = packages["python3.11-minimal"].version
    assert (
        packages["libpython3.11-minimal"].version
        == packages["libpython3.11-stdlib"].version
        == python
    )
    assert {p.architecture for p in packages.values()} == {architecture, "all"}
    for package in packages.values():
        mirror, snapshot = package.urls
        assert mirror.startswith(
            ("http://deb.debian.org/debian/pool/", "http://deb.debian.org/debian-security/pool/")
        )
        assert snapshot.startswith("http://snapshot.debian.org/archive/debian")
        assert f"/{lock.snapshot}/pool/" in snapshot and snapshot.endswith(
            mirror.split("/pool/")[1]
        )
        assert package.name not in EXCLUDED


def test_a_base_ending_in_lock_is_a_debian_lock_and_any_other_needs_a_digest():
    assert is_debian_lock("images/runtime/debian.lock")
    assert check_base("images/runtime/debian.lock") == "images/runtime/debian.lock"
    assert not is_debian_lock(f"registry.example.com/x.lock@sha256:{'a' * 64}")
