"""Reading a file a user names (a plan, a flag document): bounded, regular, UTF-8, or refused.

Shared by the plan loader and the file flag store, so every input file is read the same way
and every refusal names the fix.
"""

from __future__ import annotations

import errno
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


def write_output_file(path: Path, text: str, flag: str) -> None:
    """Write ``text`` to a file a user names (``--out``): never through a symbolic link (it
    would overwrite the link's target, e.g. a file of the user running the verb), never into
    a device or FIFO; the folder is created. Refusals are InputErrors naming ``flag``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise InputError(
                f"{flag}: {str(path)[:200]} is a symbolic link: name the file itself "
                "(canaryflow does not write through links)"
            ) from None
        raise InputError(f"{flag}: cannot write {str(path)[:200]}: {error.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError(
                f"{flag}: {str(path)[:200]} is not a regular file (a device, FIFO or socket): "
                "name a file"
            )
        os.ftruncate(fd, 0)
        data = text.encode()
        while data:
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)
