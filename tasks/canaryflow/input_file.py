"""Reading a file a user names (a plan, a flag document): bounded, regular, UTF-8, or refused.

Shared by the plan loader and the file flag store, so every input file is read the same way
and every refusal names the fix.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from canaryflow.errors import InputError


def read_input_file(path: Path, limit: int, what: str) -> str:
    """At most ``limit`` bytes of a regular file, as UTF-8; every refusal names the fix.

    Opened non-blocking and checked with ``fstat`` before a byte is read: a directory, a FIFO
    (which would hang) or a device such as /dev/zero (which never ends) is refused at once.
    """
    name = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        fix = "check the path" if error.errno == 2 else "check its permissions"
        raise InputError(f"{name}: cannot read the {what} file: {error.strerror}: {fix}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise InputError(f"{name}: is a directory: give the {what} file, not a folder")
        if not stat.S_ISREG(info.st_mode):
            raise InputError(
                f"{name}: is not a regular file (a device, FIFO or socket): "
                f"give the {what} file itself"
            )
        if info.st_size > limit:
            raise InputError(f"{name}: {too_big(info.st_size, limit, what)}")
        try:
            data = os.read(fd, limit + 1)
        except OSError as error:
            raise InputError(f"{name}: cannot read the {what} file: {error.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew while we looked
        raise InputError(f"{name}: {too_big(len(data), limit, what)}")
    if b"\0" in data:
        raise InputError(f"{name}: is binary (it contains NUL bytes): give the {what} file as text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise InputError(
            f"{name}:{line}: not UTF-8 (byte {error.start}: {data[error.start]:#04x}): "
            f"save the {what} file as UTF-8"
        ) from None


def too_big(size: int, limit: int, what: str) -> str:
    """Why a file of ``size`` bytes is refused, for an InputError."""
    return (
        f"{size} bytes is larger than the {limit // 1024} KiB a {what} file may have: "
        "is this the right file?"
    )
