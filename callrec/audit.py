"""The audit log: one JSON line per call and per incident, written durably.

Every line is a JSON object (``json.dumps`` with ``ensure_ascii`` and sorted
keys, so control characters, quotes and non-ASCII in caller data arrive
escaped and a line can never be split). Lines are hash-chained and, with a
recorder signing key, signed (:mod:`callrec.audit_chain`), so a line edited,
deleted, moved or forged is found by ``callrec audit verify``. Schema
version 2 (version 1 was the same without the chain keys):

==================  =========================================================
key                 value
==================  =========================================================
``schema``          1
``id``              random 16 hex digits naming this line
``time``            when the line was written, ISO 8601 UTC with ms
``event``           ``call`` (every call, recorded or not),
                    ``recording-adopted`` (a ``.crec.part`` left by a crash,
                    moved into the dated spool at start-up), ``failure``
                    (recording could not run: ``reason`` says why),
                    ``service`` (``callrec serve`` started, reloaded its
                    config or stopped: ``action``), or what a restarted recorder
                    found of a crashed one's calls (``ari_app/recovery.py``):
                    ``call-recovered`` (a call still up, taken over; its
                    ``call`` line follows at its end), ``call-lost-by-crash``
                    (its caller hung up while no recorder ran),
                    ``channel-without-record`` (a channel in the Stasis app
                    no live record names), ``leftovers-removed`` (stale tap
                    channels and empty bridges), ``live-record-unreadable``
``recording_id``    hex id of the recording, or null when nothing was recorded
``decision``        the consent decision (``implied``, ``declined-hangup``...)
                    or null when none was taken (e.g. disclosure failed)
``evidence``        :meth:`callrec.evidence.Evidence.to_audit`: call ids,
                    caller pseudonym, dialled number, language, prompt id and
                    SHA-256, timestamps, digits, policy, software version
``durations``       seconds: ``call``, ``recording``, ``audio`` (recovered),
                    ``gaps`` (audio lost in the network), ``paused`` (the
                    recording's pauses together), ``seal`` (from the
                    recording's end to its file sealed)
``pauses``          how many times the recording was paused (the file's
                    summary lists each: start, end, who asked)
``packets``         RTP counters: ``received``, ``lost``, ``duplicated``,
                    ``reordered``, ``foreign`` (dropped: wrong source)
``segments``        number of segments written, final one included
``last_tag_sha256`` SHA-256 (hex) of the last segment's GCM tag: tells a
                    recording later cut short from one sealed that way
``reason``          for ``failure`` lines: what went wrong, in words; for
                    ``service`` stop: ``SIGTERM``, ``SIGINT``, ``requested``
                    (by the program) or ``error`` (the events stream failed)
``action``          for ``service`` lines: ``start``, ``reload``, ``stop``
``version``         ``service`` start: callrec's version; ``pid``: the process
``config``          ``service`` start and reload: ``path`` and ``sha256`` of
                    the config file as read (null when unreadable)
``recorder_key``    ``service`` start and reload: fingerprint of the recorder's
                    signing key, or null (recordings and lines unsigned);
                    ``recipients``: fingerprints of the recipients' keys
``result``          ``service`` reload: ``ok`` or ``refused`` (the running
                    config stays); ``changed``: the sections whose settings
                    the next calls use (names only, never values);
                    ``needs_restart``: keys changed in the file that keep
                    their running value; ``problems``: why it was refused,
                    each as ``file:key``
``calls_open``      ``service`` stop: calls in the Stasis app when it began to
                    stop (their recordings are sealed, the callers stay)
``path``            for ``recording-adopted``: where the file now is
``recovery``        for a call a restarted recorder found: what it did
                    (``recording-continued``, ``continued-unrecorded``,
                    ``handed-back``, ``ended``, ``lost``); ``found``: how far
                    the call had come (``disclosing``, ``connecting``,
                    ``bridged``); ``removed``: ids of the stale channels and
                    bridges it removed; ``action`` (``channel-without-record``):
                    ``left-connected``, ``handed-back``, ``hung-up``
``continues``       on the lines of a continuation recording: ``call``,
                    ``recording_id``, ``path`` and ``part`` of the recording
                    before it (cut by a crash, or sealed by SIGTERM); the
                    continuation's first metadata record carries the same
``personal_sealed`` the personal fields (caller number and name) as an
                    HPKE envelope (:mod:`callrec.crypto.envelope`) for the
                    recording recipients, bound to this line's ``id``;
                    absent when there are none
``personal_error``  only when the personal fields could not be sealed (no
                    usable recipient key): they were dropped, never written
``seq``             position in the chain: 1, 2, 3 ...
``prev``            hex digest of the line before (64 zeros for the first)
``personal_digest`` salted hash of the personal fields (``personal_sealed``,
                    ``evidence.caller``), or null: erasure removes the fields
                    and ``personal_salt``, and the chain still verifies
``personal_salt``   random, hashed with the personal fields
``signer``, ``sig`` the recorder's Ed25519 public key and the line's
                    signature (base64), when a signing key is configured
==================  =========================================================

Keys that do not apply are null. The front ends fill them through
:func:`audit_record`; the file is created 0600 in a 0700 folder, opened with
``O_APPEND`` and locked while a line is chained onto the last one (the AGI
script and the app append to the same file; a file an erasure replaced
while a writer waited for its lock is opened again), and every line is
fsynced before :meth:`AuditLog.append` returns.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

from callrec.audit_chain import CHAIN_SCHEMA, Head, chain_line, decode_line, head_of
from callrec.clock import SYSTEM_CLOCK, Clock, iso_utc
from callrec.crypto.envelope import open_sealed, seal_for
from callrec.crypto.keys import PrivateKey, PublicKey
from callrec.crypto.signing import SigningKey
from callrec.errors import CallrecError
from callrec.evidence import Evidence
from callrec.spool import make_private_dirs, os_reason, spool_error, write_all

logger = logging.getLogger(__name__)

SCHEMA_VERSION = CHAIN_SCHEMA
# How much of the end of the log is read, at first, to find the last line.
_TAIL_BLOCK = 64 * 1024
_PERSONAL_CONTEXT = b"callrec audit personal v1\x00"


class ServiceAction(StrEnum):
    """What a ``service`` line records of ``callrec serve``'s life."""

    START = "start"
    RELOAD = "reload"
    STOP = "stop"


class ReloadResult(StrEnum):
    OK = "ok"
    REFUSED = "refused"  # the new config has problems: the running one stays


class AuditError(CallrecError):
    """The audit log cannot be written or read; ``path`` and ``message`` say why."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"audit log {path}: {message}")


def audit_record(
    event: str,
    *,
    evidence: Evidence | None = None,
    recording_id: str | None = None,
    decision: str | None = None,
    durations: Mapping[str, float] | None = None,
    packets: Mapping[str, int] | None = None,
    segments: int | None = None,
    last_tag_sha256: str | None = None,
    reason: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An audit record with every schema key; ``decision`` defaults to the evidence's."""
    if decision is None and evidence is not None and evidence.decision is not None:
        decision = str(evidence.decision)
    return {
        "event": event,
        "recording_id": recording_id,
        "decision": decision,
        "evidence": None if evidence is None else evidence.to_audit(),
        "durations": None if durations is None else dict(durations),
        "packets": None if packets is None else dict(packets),
        "segments": segments,
        "last_tag_sha256": last_tag_sha256,
        "reason": reason,
        **extra,
    }


def service_record(action: ServiceAction, **fields: Any) -> dict[str, Any]:
    """A ``service`` line; the keys each action carries are in the table above."""
    return audit_record("service", action=str(action), **fields)


def _context(line_id: str) -> bytes:
    return _PERSONAL_CONTEXT + line_id.encode("ascii")


def encode_line(record: Mapping[str, Any]) -> bytes:
    """One audit line: ASCII-only JSON, sorted keys, newline-terminated."""
    text = json.dumps(
        record, ensure_ascii=True, sort_keys=True, separators=(",", ":"), allow_nan=False,
        default=str,
    )  # fmt: skip
    return text.encode("ascii") + b"\n"


class AuditLog:
    """Appends audit lines to ``path``; personal fields sealed for ``recipients``.

    With ``signer`` (the recorder's signing key) every line is signed.
    """

    def __init__(
        self,
        path: Path,
        recipients: Sequence[PublicKey],
        *,
        clock: Clock = SYSTEM_CLOCK,
        signer: SigningKey | None = None,
    ) -> None:
        self.path = Path(path)
        self.recipients = list(recipients)
        self.signer = signer
        self._clock = clock
        # Called with each line once it is on disk (the metrics count calls from them).
        self.listeners: list[Callable[[Mapping[str, Any]], None]] = []

    def append(
        self, record: Mapping[str, Any], personal: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """Write one line, fsync it, and return what was written.

        ``personal`` is only ever written sealed. When it cannot be sealed
        (no usable recipient key) the line is still written, without the
        personal fields and with ``personal_error`` saying why: the audit
        trail must not stop because a key is missing. Raises
        :class:`AuditError` when the line cannot be written.
        """
        line: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "id": secrets.token_hex(8),
            "time": iso_utc(self._clock.wall()),
            **record,
        }
        if personal:
            plain = json.dumps(dict(personal), ensure_ascii=True, sort_keys=True).encode()
            try:
                line["personal_sealed"] = seal_for(self.recipients, plain, _context(line["id"]))
            except CallrecError as exc:
                logger.error("audit: personal fields dropped, cannot seal them: %s", exc)
                line["personal_error"] = f"not sealed: {exc}"
        # JSON values only from here on, exactly as every reader will see them,
        # so the digest the next line names is the one a verifier computes.
        line = json.loads(encode_line(line))
        self._write(line)
        for listener in self.listeners:
            try:
                listener(line)
            except Exception:  # the line is written: a listener's bug must not fail the call
                logger.exception("audit listener %r failed", listener)
        return line

    def _write(self, line: dict[str, Any]) -> None:
        try:
            fd = lock_current(self.path, self._open)  # released by close(): one line at a time
        except OSError as exc:
            raise AuditError(str(self.path), spool_error(self.path, exc).message) from None
        try:
            mode = os.fstat(fd).st_mode
            if stat.S_ISREG(mode) and mode & 0o077:
                os.fchmod(fd, 0o600)  # an admin-created file must not stay readable by others
            head, torn = _tail(fd) if stat.S_ISREG(mode) else (Head(), False)
            data = encode_line(chain_line(line, head, self.signer))
            write_all(fd, b"\n" + data if torn else data)  # never glued to a torn line
            os.fsync(fd)
        except OSError as exc:
            raise AuditError(str(self.path), spool_error(self.path, exc).message) from None
        finally:
            os.close(fd)

    def _open(self) -> int:
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            return os.open(self.path, flags, 0o600)
        except FileNotFoundError:
            # Only the first line (or one after the folder was removed) gets here:
            # create the folders 0700 then, not on every appended line.
            make_private_dirs(self.path.parent)
            return os.open(self.path, flags, 0o600)


def lock_current(path: Path, opener: Callable[[], int]) -> int:
    """A descriptor ``opener`` opened, locked exclusively, of the file that is *now* at ``path``.

    An erasure replaces the log (a new file renamed over it) while holding
    the old one's lock; a writer that opened the old file before and waited
    for that lock must not append to a file nobody will read again, nor chain
    onto a head the new file has moved past: it opens the path again.
    """
    while True:
        fd = opener()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if still_at(fd, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def still_at(fd: int, path: Path) -> bool:
    """Whether ``fd`` is the file now at ``path`` (not one renamed away from it)."""
    opened = os.fstat(fd)
    try:
        now = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return (opened.st_dev, opened.st_ino) == (now.st_dev, now.st_ino)


def _tail(fd: int) -> tuple[Head, bool]:
    """The chain head the log ends with, and whether it ends inside a torn line.

    Reads back from the end until a whole line parses: a torn last line (a
    crash mid-write), or one callrec cannot have written (NaN, nested too
    deeply), is stepped over; a schema-1 line means the chain starts now.
    Only a damaged end costs more than one small read.
    """
    size = os.fstat(fd).st_size
    if size == 0:
        return Head(), False
    torn = os.pread(fd, 1, size - 1) != b"\n"
    window = _TAIL_BLOCK
    while True:
        start = max(0, size - window)
        lines = os.pread(fd, size - start, start).split(b"\n")
        for raw in reversed(lines if start == 0 else lines[1:]):  # lines[0] may be cut
            line = _json_object(raw)
            if line is not None:
                return head_of(line) or Head(), torn
        if start == 0:
            return Head(), torn
        window *= 4


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        return decode_line(raw) if raw.strip() else None
    except ValueError:
        return None


def read_audit(path: Path) -> Iterator[dict[str, Any]]:
    """The audit lines of ``path`` in order; a damaged line raises :class:`AuditError`."""
    try:
        with Path(path).open("rb") as f:
            yield from _parse(str(path), f)
    except OSError as exc:
        raise AuditError(str(path), os_reason(exc)) from None


def _parse(path: str, lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            obj = decode_line(raw)
        except json.JSONDecodeError:
            raise AuditError(path, f"line {number}: not valid JSON") from None
        except ValueError as exc:
            raise AuditError(path, f"line {number}: {exc}") from None
        yield obj


def open_personal(record: Mapping[str, Any], keys: Sequence[PrivateKey]) -> dict[str, str]:
    """The personal fields of an audit line, opened with a recipient's private key.

    Raises :class:`callrec.errors.NoMatchingKeyError` or
    :class:`callrec.errors.FormatError` (also when the envelope was moved to
    another line), or :class:`AuditError` when the line has none.
    """
    sealed = record.get("personal_sealed")
    if not isinstance(sealed, Mapping):
        raise AuditError(str(record.get("id")), "no sealed personal fields in this line")
    plain = open_sealed(sealed, keys, _context(str(record.get("id"))))
    fields = json.loads(plain)
    return {str(k): str(v) for k, v in fields.items()}
