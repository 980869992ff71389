"""The catalogue's columns, and rows turned into :mod:`callrec.catalog.model` entries.

One list of columns per table, read by the SELECTs and the conversions, so
a column added by a migration is added in one place.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from callrec.catalog.model import (
    CallEntry,
    Deletion,
    Hold,
    Recorder,
    RecordingEntry,
    RecordingState,
)

CALL_COLUMNS = (
    "recorder_id", "call_id", "started", "ended", "duration", "dialled", "decision",
    "end_reason", "caller_pseudonym", "caller_key_id", "frontend", "evidence", "audit_line",
    "audit_time",
)  # fmt: skip
RECORDING_COLUMNS = (
    "recording_id", "recorder_id", "call_id", "uri", "size", "segments", "last_tag_sha256",
    "codec", "sample_rate", "channels", "duration", "started", "ended", "signature", "signer",
    "verdict", "continues", "state", "hold_reason", "held_by", "held_at", "deleted_by",
    "deleted_at", "deleted_rule", "caller_key_id", "audit_line", "audit_time",
)  # fmt: skip
RECORDER_COLUMNS = ("recorder_id", "first_seen", "last_seen", "spool", "audit_seq")


def columns(names: Sequence[str], prefix: str = "") -> str:
    """``a, b, c`` (or ``p.a, p.b, p.c``) for a SELECT."""
    return ", ".join(prefix + name for name in names)


def select(names: Sequence[str], table: str, where: str = "1 = 1", prefix: str = "") -> str:
    """A SELECT of ``names`` from one of the catalogue's tables (or a join).

    Only the constants of this package reach it; every value goes in as a
    ``?`` parameter.
    """
    return " ".join(("SELECT", columns(names, prefix), "FROM", table, "WHERE", where))


def ts(when: datetime | None) -> str | None:
    """A time as stored: ISO 8601 UTC with milliseconds, which sorts as it reads."""
    if when is None:
        return None
    return when.astimezone(UTC).isoformat(timespec="milliseconds")


def dt(text: object) -> datetime | None:
    """A stored time back as an aware UTC datetime."""
    return datetime.fromisoformat(text) if isinstance(text, str) and text else None


def named(names: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    return dict(zip(names, row, strict=True))


def call_entry(row: Sequence[Any]) -> CallEntry:
    r = named(CALL_COLUMNS, row)
    ended = dt(r["ended"])
    assert ended is not None  # NOT NULL in the schema
    evidence = json.loads(r["evidence"]) if r["evidence"] else {}
    return CallEntry(
        call_id=r["call_id"],
        recorder_id=r["recorder_id"],
        started=dt(r["started"]),
        ended=ended,
        duration=r["duration"],
        dialled=r["dialled"],
        decision=r["decision"],
        end_reason=r["end_reason"],
        caller_pseudonym=r["caller_pseudonym"],
        frontend=r["frontend"],
        evidence=MappingProxyType(evidence if isinstance(evidence, dict) else {}),
        audit_line=r["audit_line"],
        caller_key_id=r["caller_key_id"],
    )


def recording_entry(row: Sequence[Any]) -> RecordingEntry:
    r = named(RECORDING_COLUMNS, row)
    held_at, deleted_at = dt(r["held_at"]), dt(r["deleted_at"])
    hold = None
    if r["hold_reason"] is not None and held_at is not None:
        hold = Hold(r["hold_reason"], r["held_by"] or "", held_at)
    deletion = None
    if deleted_at is not None:
        deletion = Deletion(r["deleted_by"] or "", deleted_at, r["deleted_rule"] or "")
    return RecordingEntry(
        recording_id=r["recording_id"],
        recorder_id=r["recorder_id"],
        call_id=r["call_id"],
        uri=r["uri"],
        size=r["size"],
        segments=r["segments"],
        last_tag_sha256=r["last_tag_sha256"],
        codec=r["codec"],
        sample_rate=r["sample_rate"],
        channels=r["channels"],
        duration=r["duration"],
        started=dt(r["started"]),
        ended=dt(r["ended"]),
        signature=r["signature"],
        signer=r["signer"],
        verdict=r["verdict"],
        continues=r["continues"],
        state=RecordingState(r["state"]),
        hold=hold,
        deletion=deletion,
        audit_line=r["audit_line"],
        caller_key_id=r["caller_key_id"],
    )


def recorder(row: Sequence[Any]) -> Recorder:
    r = named(RECORDER_COLUMNS, row)
    first, last = dt(r["first_seen"]), dt(r["last_seen"])
    assert first is not None  # NOT NULL in the schema
    assert last is not None
    return Recorder(r["recorder_id"], first, last, r["spool"])


def evidence_json(evidence: Mapping[str, Any]) -> str:
    """The evidence summary as stored: canonical JSON (sorted keys), so equal is equal."""
    return json.dumps(dict(evidence), sort_keys=True, separators=(",", ":"), default=str)
