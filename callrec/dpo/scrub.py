"""Remove one caller's personal fields from the audit log, the chain intact (GDPR Art. 17).

The chain commits to a salted hash of a line's personal fields, never to the
fields (:mod:`callrec.audit_chain`): removing ``personal_sealed``,
``evidence.caller`` and ``personal_salt`` leaves every ``prev``, every
signature and ``personal_digest`` as they were, and ``callrec audit verify``
counts the line as erased. Nothing else of a line changes, and the other
lines are copied byte for byte.

The file is rewritten whole into a temporary file beside it, fsynced and
renamed over it, under the same ``flock`` the writers take, so a crash
leaves the old log or the new one, never a mix. A writer that opened the old
file just before the rename and was waiting for the lock would append to the
replaced file: its line is moved over to the new one afterwards.

Copies rotated away from the log (logrotate's ``audit.jsonl.1``,
``audit.jsonl-20261207``, either of them ``.gz``) hold the same personal
fields: :func:`scrub_rotated_logs` rewrites them the same way (compressed
ones stay compressed). Nothing appends to them, so they need no lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import io
import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from callrec.audit import AuditError, encode_line
from callrec.audit_chain import PERSONAL_PATHS
from callrec.spool import os_reason, write_all

_STRAGGLER_CHECKS = 3
_STRAGGLER_WAIT = 0.05


def scrub_audit_log(path: Path, pseudonym: str) -> int:
    """Erase the personal fields of ``pseudonym``'s lines in the log at ``path``.

    Returns how many lines were changed (0: the file is left untouched).
    Raises :class:`callrec.audit.AuditError` when it cannot be read or replaced.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise AuditError(str(path), os_reason(exc)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        changed, size = _rewrite(fd, path, pseudonym)
        fcntl.flock(fd, fcntl.LOCK_UN)
        if changed:
            _move_stragglers(fd, size, path)
    except OSError as exc:
        raise AuditError(str(path), os_reason(exc)) from None
    finally:
        os.close(fd)
    return changed


def rotated_logs(path: Path) -> list[Path]:
    """The copies rotated away from the log at ``path``, oldest name first.

    ``audit.jsonl.1``, ``audit.jsonl.2.gz``, ``audit.jsonl-20261207`` (logrotate's
    ``dateext``): the log's name, ``.`` or ``-``, digits, maybe ``.gz``. Links are
    not followed: a rotated copy is a file of the log's own folder.
    """
    path = Path(path)
    pattern = re.compile(re.escape(path.name) + r"[.-][0-9][0-9-]*(\.gz)?")
    try:
        names = sorted(p for p in path.parent.iterdir() if pattern.fullmatch(p.name))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise AuditError(str(path.parent), os_reason(exc)) from None
    return [p for p in names if not p.is_symlink() and p.is_file()]


def scrub_rotated_logs(path: Path, pseudonym: str) -> int:
    """:func:`scrub_audit_log` for each of :func:`rotated_logs`; the lines changed in all."""
    changed = 0
    for rotated in rotated_logs(path):
        try:
            fd = os.open(rotated, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # rotated away again meanwhile
        except OSError as exc:
            raise AuditError(str(rotated), os_reason(exc)) from None
        try:
            changed += _rewrite(fd, rotated, pseudonym, compressed=rotated.suffix == ".gz")[0]
        except (gzip.BadGzipFile, EOFError) as exc:  # before OSError: BadGzipFile is one
            raise AuditError(str(rotated), f"not gzip data ({exc})") from None
        except OSError as exc:
            raise AuditError(str(rotated), os_reason(exc)) from None
        finally:
            os.close(fd)
    return changed


def erase_personal(line: dict[str, Any]) -> dict[str, Any]:
    """``line`` without its personal fields (the same paths the chain leaves out)."""
    for keys in PERSONAL_PATHS:
        parent: Any = line
        for key in keys[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict):
            parent.pop(keys[-1], None)
    return line


def _rewrite(fd: int, path: Path, pseudonym: str, *, compressed: bool = False) -> tuple[int, int]:
    """Write the scrubbed copy and rename it over ``path``; (lines changed, bytes read)."""
    temporary = path.with_name(f".{path.name}.erasing-{secrets.token_hex(4)}")
    changed = size = 0
    out = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        # The service must still own (and append to) the log a root DPO rewrote.
        owner = os.fstat(fd)
        if (owner.st_uid, owner.st_gid) != (os.geteuid(), os.getegid()):
            os.fchown(out, owner.st_uid, owner.st_gid)
        with _sink(out, compressed) as sink:
            for raw in _lines(fd, compressed):
                size += len(raw)
                scrubbed = _scrubbed(raw, pseudonym)
                changed += scrubbed is not raw
                sink.write(scrubbed)
        os.fsync(out)
    except BaseException:
        os.close(out)
        temporary.unlink(missing_ok=True)
        raise
    os.close(out)
    if not changed:
        temporary.unlink()
        return 0, size
    os.replace(temporary, path)
    _sync_folder(path.parent)
    return changed, size


def _lines(fd: int, compressed: bool = False) -> Iterator[bytes]:
    with os.fdopen(os.dup(fd), "rb") as f:
        f.seek(0)
        if not compressed:
            yield from f
            return
        with gzip.GzipFile(fileobj=f, mode="rb") as unpacked:
            yield from unpacked


@contextlib.contextmanager
def _sink(fd: int, compressed: bool) -> Iterator[io.BufferedWriter | gzip.GzipFile]:
    """Where the scrubbed lines go: ``fd`` itself, or gzip into it (left open)."""
    with os.fdopen(os.dup(fd), "wb") as f:
        if not compressed:
            yield f
            return
        with gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as packed:
            yield packed


def _scrubbed(raw: bytes, pseudonym: str) -> bytes:
    """The line without the caller's personal fields, or ``raw`` itself when not theirs."""
    try:
        line = json.loads(raw)
    except ValueError:
        return raw  # a torn line stays as it is: verify reports it, as before
    if not isinstance(line, dict) or not _is_theirs(line, pseudonym):
        return raw
    return encode_line(erase_personal(line))


def _is_theirs(line: dict[str, Any], pseudonym: str) -> bool:
    evidence = line.get("evidence")
    return isinstance(evidence, dict) and evidence.get("caller") == pseudonym


def _move_stragglers(old: int, read: int, path: Path) -> None:
    """Lines a waiting writer appended to the replaced file, appended to the new one."""
    quiet = 0
    while quiet < _STRAGGLER_CHECKS:
        time.sleep(_STRAGGLER_WAIT)
        fcntl.flock(old, fcntl.LOCK_EX)
        size = os.fstat(old).st_size
        extra = os.pread(old, size - read, read) if size > read else b""
        fcntl.flock(old, fcntl.LOCK_UN)
        if not extra:
            quiet += 1
            continue
        quiet, read = 0, size
        _append(path, extra)


def _append(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
