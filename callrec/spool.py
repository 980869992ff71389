"""The spool: where sealed recordings are written and where they end up.

Layout::

    <root>/incoming/<id>.crec.part   while the call runs (never sealed yet)
    <root>/YYYY/MM/DD/<id>.crec      sealed, dated by UTC
    <root>/YYYY/MM/DD/<id>.crec.part left by a crash, adopted unchanged
                                     (``callrec verify`` reports TRUNCATED)

Folders are created with mode 0700. Paths are only ever built from recording
ids made by the writer, and every id is checked to be lower-case hex first:
caller data never reaches a path. Moves are atomic renames followed by an
fsync of both folders, so a crash leaves a file in exactly one place.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import secrets
import stat
import time
from pathlib import Path

from callrec.errors import SpoolError
from callrec.logutil import safe

logger = logging.getLogger(__name__)

# The one definition of the recording file names (the writer, the reader's
# sealed-or-not rule, start-up adoption and the CLI all read these).
SEALED_SUFFIX = ".crec"
# Marks a recording never sealed: its writer runs, or a crash left it.
UNSEALED_MARK = ".part"
PART_SUFFIX = SEALED_SUFFIX + UNSEALED_MARK
_RECORDING_ID = re.compile(r"^[0-9a-f]{8,128}$")
_PROBE_BYTES = b"callrec spool probe\n" * 205  # about one 4 KiB segment
_REASONS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENOTDIR: "a parent is a file, not a folder",
    errno.EEXIST: "is a file, not a folder",
    errno.EIO: "input/output error",
}


def os_reason(exc: OSError) -> str:
    """An OS error's reason in plain words ("disk full", "permission denied")."""
    return _REASONS.get(exc.errno or 0) or exc.strerror or str(exc)


def spool_error(path: Path, exc: OSError) -> SpoolError:
    """A :class:`SpoolError` naming the reason of an OS error in plain words."""
    return SpoolError(str(path), os_reason(exc))


def check_recording_id(recording_id: str, where: Path) -> str:
    """``recording_id`` if it is lower-case hex (8 to 128 digits), else SpoolError."""
    if not _RECORDING_ID.match(recording_id):
        raise SpoolError(str(where), f"invalid recording id '{safe(recording_id, 40)}'")
    return recording_id


def make_private_dirs(folder: Path) -> None:
    """Create ``folder`` and any missing parent, each with mode 0700."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    for path in reversed(missing):
        path.mkdir(mode=0o700, exist_ok=True)


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_private_dir(folder: Path) -> None:
    """:func:`make_private_dirs`, or SpoolError naming why not ("is a file, not a folder")."""
    if folder.exists() and not folder.is_dir():
        raise SpoolError(str(folder), "is a file, not a folder")
    try:
        make_private_dirs(folder)
    except OSError as exc:
        raise spool_error(folder, exc) from None


def move_no_replace(source: Path, target: Path) -> Path:
    """Rename ``source`` to ``target`` (missing folders made 0700), never replacing a file.

    Both folders are fsynced, so after a crash the file is in exactly one place.
    Raises :class:`SpoolError` naming the reason.
    """
    ensure_private_dir(target.parent)
    if target.exists():
        raise SpoolError(str(target), "already exists, not overwritten")
    try:
        os.rename(source, target)
        fsync_dir(target.parent)
        if source.parent != target.parent:
            fsync_dir(source.parent)
    except OSError as exc:
        raise spool_error(target, exc) from None
    return target


def write_file_atomic(path: Path, data: bytes, mode: int, *, replace: bool) -> None:
    """Write ``path`` whole or not at all: temporary file (``mode`` from the start), rename.

    The data and the folder entry are fsynced. With ``replace=False`` an
    existing ``path`` is left alone and ``FileExistsError`` raised. Raises
    ``OSError``; the temporary file never outlives a failure.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask may have narrowed it
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails with EEXIST instead of replacing
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB chunks; raises ``OSError``."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class Spool:
    """The spool folder tree under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.incoming = self.root / "incoming"

    def ensure(self) -> None:
        """Create the folders (0700) and prove they are writable with a probe file.

        Raises :class:`SpoolError` naming the reason ("is a file, not a
        folder", "disk full", "permission denied", ...).
        """
        for folder in (self.root, self.incoming):
            ensure_private_dir(folder)
        self._probe(self.incoming)

    def part_path(self, recording_id: str) -> Path:
        """Where the writer puts a recording while its call runs."""
        return self.incoming / f"{check_recording_id(recording_id, self.root)}{PART_SUFFIX}"

    def dated_dir(self, ts: float) -> Path:
        """``root/YYYY/MM/DD`` for the UTC day of ``ts`` (Unix seconds)."""
        return self.root / time.strftime("%Y/%m/%d", time.gmtime(ts))

    def final_path(self, recording_id: str, ts: float) -> Path:
        """Where a sealed recording lives: ``root/YYYY/MM/DD/<id>.crec``."""
        return self.dated_dir(ts) / f"{check_recording_id(recording_id, self.root)}{SEALED_SUFFIX}"

    def find(self, recording_id: str) -> Path | None:
        """Where recording ``recording_id`` is now: sealed, adopted after a crash, or
        still being written; None when this spool has no such file."""
        check_recording_id(recording_id, self.root)
        for name in (recording_id + SEALED_SUFFIX, recording_id + PART_SUFFIX):
            dated = sorted(self.root.glob(f"[0-9]*/[0-9]*/[0-9]*/{name}"))
            if dated:
                return dated[0]
        part = self.part_path(recording_id)
        return part if part.exists() else None

    def leftovers(self) -> list[Path]:
        """``incoming/*.crec.part`` files, oldest first: recordings a crash left open."""
        try:
            entries = list(self.incoming.iterdir())
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise spool_error(self.incoming, exc) from None
        found = []
        for p in entries:
            if p.name.endswith(PART_SUFFIX) and _is_regular(p):
                with contextlib.suppress(FileNotFoundError):  # gone while we looked
                    found.append((p.stat().st_mtime, p.name, p))
        return [p for _, _, p in sorted(found)]

    def adopt(self, path: Path, ts: float | None = None) -> Path:
        """Move a leftover ``.crec.part`` unchanged into the dated folder of ``ts``.

        ``ts`` defaults to the file's last modification, i.e. when the crashed
        call last wrote audio. The ``.crec.part`` suffix stays, so ``verify``
        reports the file TRUNCATED.
        """
        path = Path(path)
        if path.parent != self.incoming or not path.name.endswith(PART_SUFFIX):
            raise SpoolError(str(path), "not a leftover recording of this spool")
        check_recording_id(path.name[: -len(PART_SUFFIX)], self.root)
        when = path.stat().st_mtime if ts is None else ts
        target = move_no_replace(path, self.dated_dir(when) / path.name)
        logger.warning("adopted a recording left open by a crash: %s", target)
        return target

    def _probe(self, folder: Path) -> None:
        """Write, fsync and remove a file: the only test root cannot fool."""
        probe = folder / f".probe-{secrets.token_hex(8)}"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise spool_error(folder, exc) from None
        try:
            write_all(fd, _PROBE_BYTES)
            os.fsync(fd)
        except OSError as exc:
            raise spool_error(folder, exc) from None
        finally:
            os.close(fd)
            probe.unlink(missing_ok=True)


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (short writes happen near a full disk)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _is_regular(path: Path) -> bool:
    # lstat: a symlink in incoming is not a recording, whatever it points to.
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False
