"""Remove one caller's personal fields from the audit log, the chain intact (GDPR Art. 17).

The chain commits to a salted hash of a line's personal fields, never to the
fields (:mod:`callrec.audit_chain`): removing ``personal_sealed``,
``evidence.caller`` and ``personal_salt`` leaves every ``prev``, every
signature and ``personal_digest`` as they were. Each erased line gains an
attestation (outside the digest, :func:`callrec.audit_chain.attest_erasure`)
naming the erasure order, signed with the recorder's key: ``callrec audit
verify`` counts the line as erased, and names a line whose fields someone
stripped without one. Nothing else of a line changes, and the other
lines are copied byte for byte.

The file is rewritten whole into a temporary file beside it, fsynced and
renamed over it, so a crash leaves the old log or the new one, never a mix.
The copy is made in two steps so that ``serve`` never waits for it: the
lines already whole are copied without the ``flock`` the writers take (they
only ever append), then, holding it, the lines appended meanwhile, and the
rename. A writer holds back only for that tail, not for the whole log. A
writer that opened the old file before the rename and waited for the lock
finds, once it has it, that the path names another file, and opens it again
(:func:`callrec.audit.lock_current`): its line goes to the new log, chained
after the last line there.

Copies rotated away from the log (logrotate's ``audit.jsonl.1``,
``audit.jsonl-20261207``, either of them ``.gz``) hold the same personal
fields: :func:`scrub_rotated_logs` rewrites them the same way (compressed
ones stay compressed). Nothing appends to them, so they need no lock.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callrec.audit import AuditError, encode_line, lock_current, still_at
from callrec.audit_chain import PERSONAL_PATHS, attest_erasure, decode_line
from callrec.clock import SYSTEM_CLOCK, Clock, iso_utc
from callrec.crypto.signing import SigningKey
from callrec.spool import os_reason


@dataclass(frozen=True)
class _Erasure:
    """Whose lines to erase, and what each erased line is attested with."""

    pseudonym: str
    order: str | None
    time: str
    signer: SigningKey | None


def scrub_audit_log(
    path: Path,
    pseudonym: str,
    *,
    order: str | None = None,
    signer: SigningKey | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> int:
    """Erase the personal fields of ``pseudonym``'s lines in the log at ``path``.

    Each erased line is attested with the erasure ``order``'s id, signed
    with ``signer`` (the recorder's key; without it ``audit verify
    --signer`` names the line). Returns how many lines were changed (0: the
    file is left untouched). Raises :class:`callrec.audit.AuditError` when it
    cannot be read or replaced.
    """
    path = Path(path)
    erasure = _Erasure(pseudonym, order, iso_utc(clock.wall()), signer)
    while True:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise AuditError(str(path), os_reason(exc)) from None
        try:
            changed = _rewrite_live(fd, path, erasure)
        except OSError as exc:
            raise AuditError(str(path), os_reason(exc)) from None
        finally:
            os.close(fd)
        if changed is not None:
            return changed
        # Another erasure replaced the log while this one copied it: start again.


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


def scrub_rotated_logs(
    path: Path,
    pseudonym: str,
    *,
    order: str | None = None,
    signer: SigningKey | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> int:
    """:func:`scrub_audit_log` for each of :func:`rotated_logs`; the lines changed in all."""
    erasure = _Erasure(pseudonym, order, iso_utc(clock.wall()), signer)
    changed = 0
    for rotated in rotated_logs(path):
        try:
            fd = os.open(rotated, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # rotated away again meanwhile
        except OSError as exc:
            raise AuditError(str(rotated), os_reason(exc)) from None
        try:
            changed += _rewrite(fd, rotated, erasure, compressed=rotated.suffix == ".gz")
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


def _rewrite(fd: int, path: Path, erasure: _Erasure, *, compressed: bool = False) -> int:
    """Write the scrubbed copy of a rotated log and rename it over ``path``; the lines changed."""
    with _replacement(path, fd) as (temporary, out):
        with _sink(out, compressed) as sink:
            changed, _ = _scrub_into(sink, _lines(fd, compressed), erasure)
        os.fsync(out)
        if changed:
            os.replace(temporary, path)
    if changed:
        _sync_folder(path.parent)
    return changed


def _rewrite_live(fd: int, path: Path, erasure: _Erasure) -> int | None:
    """:func:`_rewrite` for the log writers append to; None when ``fd`` stopped being it.

    The whole lines are copied unlocked; the rest, appended meanwhile, and
    the rename happen under the writers' lock.
    """
    with _replacement(path, fd) as (temporary, out), os.fdopen(os.dup(out), "wb") as sink:
        changed, copied = _scrub_into(sink, _lines(fd), erasure, whole_lines=True)
        locked = lock_current(
            path, lambda: os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        )
        try:
            if not still_at(fd, path):  # locked is the file at path now
                return None  # another erasure renamed a new log over it meanwhile
            more, _ = _scrub_into(sink, _lines(locked, start=copied), erasure)
            changed += more
            sink.flush()
            os.fsync(out)
            if changed:
                os.replace(temporary, path)  # before the lock is let go
        finally:
            os.close(locked)
    if changed:
        _sync_folder(path.parent)
    return changed


@contextlib.contextmanager
def _replacement(path: Path, like: int) -> Iterator[tuple[Path, int]]:
    """A new file beside ``path``, owned as ``like`` is; gone afterwards unless renamed."""
    temporary = path.with_name(f".{path.name}.erasing-{secrets.token_hex(4)}")
    out = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        _keep_owner(like, out)
        yield temporary, out
    finally:
        os.close(out)
        temporary.unlink(missing_ok=True)  # nothing left there once renamed


def _scrub_into(
    sink: io.BufferedWriter | gzip.GzipFile,
    lines: Iterator[bytes],
    erasure: _Erasure,
    *,
    whole_lines: bool = False,
) -> tuple[int, int]:
    """Write ``lines`` to ``sink``, scrubbed; (lines changed, bytes of ``lines`` taken).

    With ``whole_lines`` a last line with no newline yet (a writer is still
    at it) is left for later; without, it is copied as it is (a torn line).
    """
    changed = taken = 0
    for raw in lines:
        if whole_lines and not raw.endswith(b"\n"):
            break
        scrubbed = _scrubbed(raw, erasure)
        changed += scrubbed is not raw
        sink.write(scrubbed)
        taken += len(raw)
    return changed, taken


def _keep_owner(fd: int, out: int) -> None:
    """The service must still own (and append to) the log a root DPO rewrote."""
    owner = os.fstat(fd)
    if (owner.st_uid, owner.st_gid) != (os.geteuid(), os.getegid()):
        os.fchown(out, owner.st_uid, owner.st_gid)


def _lines(fd: int, compressed: bool = False, *, start: int = 0) -> Iterator[bytes]:
    with os.fdopen(os.dup(fd), "rb") as f:
        f.seek(start)
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


def _scrubbed(raw: bytes, erasure: _Erasure) -> bytes:
    """The line without the caller's personal fields, attested, or ``raw`` when not theirs."""
    try:
        line = decode_line(raw)
    except ValueError:
        return raw  # a torn (or damaged) line stays as it is: verify reports it, as before
    if not _is_theirs(line, erasure.pseudonym):
        return raw
    erased = erase_personal(line)
    return encode_line(attest_erasure(erased, erasure.order, erasure.time, erasure.signer))


def _is_theirs(line: dict[str, Any], pseudonym: str) -> bool:
    evidence = line.get("evidence")
    return isinstance(evidence, dict) and evidence.get("caller") == pseudonym


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
