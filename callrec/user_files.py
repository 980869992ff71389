"""Opening the files a user names: regular files only, read with a size limit.

A path given as a key, a config or a recording may name a folder, a FIFO
(opening it waits for a writer, forever) or ``/dev/zero`` (reading it never
ends). Each is refused here with an ``OSError`` whose ``strerror`` says what
the path is, so every caller can print one clear line with
:func:`callrec.spool.os_reason`.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
    (stat.S_ISSOCK, "a socket"),
)


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """``path`` opened for reading; OSError unless it is a regular file.

    Opened non-blocking, so a FIFO is refused instead of waiting for a writer.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except ValueError:  # a NUL byte: no file can have that name
        raise OSError(errno.EINVAL, "the path contains a NUL byte", str(path)) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, _not_regular(mode), str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bounded(path: str | os.PathLike[str], limit: int) -> bytes:
    """The whole regular file at ``path``; OSError when it is larger than ``limit`` bytes."""
    with open_regular(path) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit} bytes", str(path))
    return data


def _not_regular(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    kind = next((name for test, name in _KINDS if test(mode)), None)
    return "is not a regular file" if kind is None else f"is {kind}, not a regular file"


def describe(path: Path) -> str:
    """What ``path`` is when it is not a regular file ("is a directory, ..."), or ""."""
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):
        return ""
    return "" if stat.S_ISREG(mode) else _not_regular(mode)
