"""What the catalogue holds, as the :class:`~callrec.catalog.Catalog` API returns it.

Plain frozen dataclasses and enums, no database: the CLI, ``callrec serve``
and the DPO tools (``callrec.dpo``) read these, never rows. Times are aware
``datetime`` objects in UTC. Nothing here holds a caller number: a caller is
known only by the pseudonym :func:`callrec.evidence.pseudonymise` gives it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from callrec.errors import CallrecError


class CatalogError(CallrecError):
    """A catalogue request that cannot be done (unknown id, a held recording deleted...).

    ``message`` says why in words an admin can act on.
    """

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class CatalogUnavailable(CatalogError):
    """The catalogue's database cannot be reached or written; a later try may work.

    ``callrec serve`` keeps its entries queued and retries; the CLI exits 1.
    The message never holds a password from the URL.
    """


class RecordingState(StrEnum):
    """What became of a recording's file (the catalogue row always stays)."""

    PRESENT = "present"  # in the spool, may be deleted when it expires
    HELD = "held"  # legal hold: never deleted until released
    # Claimed by a deleter (retention, erasure) that found it not held: its file is being
    # deleted, a hold is refused; the tombstone follows (a run cut short: the next finishes it).
    DELETING = "deleting"
    DELETED = "deleted"  # a tombstone: who deleted it, when, under which rule
    MISSING = "missing"  # not where the catalogue says, and no deletion is known


@dataclass(frozen=True)
class Hold:
    """A legal hold: why, by whom, since when."""

    reason: str
    by: str
    at: datetime


@dataclass(frozen=True)
class Deletion:
    """What a tombstone says: who deleted the file, when, under which rule.

    On a recording still ``deleting``: who claimed it, when, and the rule.
    """

    by: str
    at: datetime
    rule: str  # e.g. "retention 90 days", "erasure order <id>"


@dataclass(frozen=True)
class RecordingEntry:
    """One recording file as catalogued (sealed, or adopted after a crash)."""

    recording_id: str
    recorder_id: str
    call_id: str | None  # None: a file no audit line names (found by a rebuild)
    uri: str  # file:///... (a URI, so object storage can come later)
    size: int | None
    segments: int | None
    last_tag_sha256: str | None
    codec: str | None
    sample_rate: int | None
    channels: int | None
    duration: float | None  # seconds of audio
    started: datetime | None
    ended: datetime | None
    signature: str | None  # callrec.recording.origin.Signature value when entered
    signer: str | None  # fingerprint of the recorder key that signed it
    verdict: str | None  # callrec.recording.reader.Verdict value, None: not verified
    continues: str | None  # the recording this one continues (cut by a crash)
    state: RecordingState = RecordingState.PRESENT
    hold: Hold | None = None
    deletion: Deletion | None = None
    audit_line: str | None = None  # id of the audit line it was entered from
    caller_key_id: str | None = None  # reserved: per-caller keys (crypto-shredding)

    @property
    def sealed(self) -> bool:
        """Whether the file was sealed (an adopted ``.crec.part`` never was)."""
        return not self.uri.endswith(".part")


@dataclass(frozen=True)
class CallEntry:
    """One call as catalogued: what its audit line says, without personal data."""

    call_id: str
    recorder_id: str
    started: datetime | None
    ended: datetime
    duration: float | None
    dialled: str
    decision: str | None
    end_reason: str | None
    caller_pseudonym: str | None  # None once the caller was erased
    frontend: str | None
    evidence: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    audit_line: str | None = None
    caller_key_id: str | None = None  # reserved: per-caller keys (crypto-shredding)


@dataclass(frozen=True)
class Entry:
    """One line of a listing: a call and its recordings, or a recording with no known call."""

    call: CallEntry | None
    recordings: tuple[RecordingEntry, ...] = ()

    @property
    def recorder_id(self) -> str:
        return self.call.recorder_id if self.call else self.recordings[0].recorder_id

    @property
    def when(self) -> datetime | None:
        """When it started (the call's start, else its first recording's)."""
        if self.call is not None:
            return self.call.started or self.call.ended
        times = [t for r in self.recordings for t in (r.started or r.ended,) if t is not None]
        return min(times, default=None)


@dataclass(frozen=True)
class ErasureOrder:
    """An order to erase one caller (GDPR Art. 17), carried out by every recorder.

    ``confirmations`` maps each recorder that must carry it out to when it
    confirmed (None: not yet). ``caller_pseudonym`` is the only personal data
    it holds, needed by the recorders that have still to carry it out.
    """

    order_id: str
    caller_pseudonym: str
    reason: str
    requested_by: str
    requested_at: datetime
    confirmations: Mapping[str, datetime | None] = field(
        default_factory=lambda: MappingProxyType({})
    )

    @property
    def pending(self) -> tuple[str, ...]:
        """The recorders that have not confirmed it yet."""
        return tuple(sorted(r for r, at in self.confirmations.items() if at is None))


@dataclass(frozen=True)
class Recorder:
    """A recorder (a ``callrec serve`` with its own spool) that writes to the catalogue."""

    recorder_id: str
    first_seen: datetime
    last_seen: datetime
    spool: str | None
