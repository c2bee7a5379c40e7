"""Where a scratch image's CA bundle and time zones come from, in the task image.

Both come from pinned dependencies of the task image, so the layer they make is the same on
every run of one canaryflow version: the CA bundle is certifi's (the Mozilla roots, versioned
with the package), the time zones the Go toolchain's own ``lib/time/zoneinfo.zip`` (versioned
with Go). A platform team with a private CA passes its own bundle instead.
"""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from canaryflow.build.go import GoToolchain
from canaryflow.errors import FieldError, InputError
from canaryflow.image.oci import SystemFiles

MAX_FILE_BYTES = 16 << 20


def load_system_files(ca_bundle: Path | None = None, zoneinfo: Path | None = None) -> SystemFiles:
    """The CA bundle and ``zoneinfo.zip``: the ones given, else the task image's defaults."""
    ca_path = ca_bundle or _certifi_bundle()
    zone_path = zoneinfo or _go_zoneinfo()
    return SystemFiles(
        ca_bundle=_read(ca_path, "ca-bundle", "a PEM file of CA certificates"),
        zoneinfo_zip=_read(zone_path, "zoneinfo", "Go's zoneinfo.zip"),
    )


def _certifi_bundle() -> Path:
    import certifi  # requests' own dependency; imported here to keep the CLI start light

    return Path(certifi.where())


def _go_zoneinfo() -> Path:
    try:
        go = GoToolchain.find().go
        goroot = subprocess.run(
            [str(go), "env", "GOROOT"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
    except (InputError, OSError, subprocess.SubprocessError):
        raise InputError(
            FieldError(
                "zoneinfo",
                "no Go toolchain on PATH to take lib/time/zoneinfo.zip from: pass --zoneinfo "
                "PATH, or --no-system-files for an image without time zones",
            )
        ) from None
    return Path(goroot) / "lib" / "time" / "zoneinfo.zip"


def _read(path: Path, field: str, what: str) -> bytes:
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE_BYTES:
            raise InputError(
                FieldError(field, f"{path} is not a regular file under 16 MiB: give {what}")
            )
        return path.read_bytes()
    except OSError as error:
        raise InputError(
            FieldError(field, f"cannot read {path}: {error.strerror}: give {what}")
        ) from None
