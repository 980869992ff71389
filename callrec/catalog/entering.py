"""Entering what an audit line or a spool file says, inside one transaction.

Every merge is idempotent and order-tolerant: entering a line again, or an
older line after a newer one, leaves the rows as they were. Only facts
describing the call and the file are ever written here; a hold, a tombstone
or an erasure is changed only by the calls that mean to
(:class:`~callrec.catalog.Catalog`).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from callrec.catalog.db import Cursor
from callrec.catalog.files import FileFacts, file_facts, file_uri, uri_path
from callrec.catalog.lines import CallFacts, RecordingFacts
from callrec.catalog.model import CatalogError, RecordingState
from callrec.catalog.rows import (
    CALL_COLUMNS,
    RECORDING_COLUMNS,
    columns,
    evidence_json,
    named,
    select,
    ts,
)

# States a file found (or not) on disk decides; a hold or a tombstone it never touches.
_FILE_STATES = (RecordingState.PRESENT, RecordingState.MISSING)


def touch_recorder(cur: Cursor, recorder_id: str, seen: datetime, seq: int | None = None,
                   spool: str | None = None) -> None:  # fmt: skip
    """Add the recorder, or widen when it was seen; remember its highest audit line."""
    when = ts(seen)
    cur.run(
        "INSERT INTO recorders (recorder_id, first_seen, last_seen, spool, audit_seq) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (recorder_id) DO NOTHING",
        (recorder_id, when, when, spool, seq),
    )
    rows = cur.run(
        "SELECT first_seen, last_seen, spool, audit_seq FROM recorders WHERE recorder_id = ?",
        (recorder_id,),
    )
    first, last, old_spool, old_seq = rows[0]
    new = (
        min(first, when),
        max(last, when),
        spool or old_spool,
        old_seq if seq is None or (old_seq is not None and old_seq >= seq) else seq,
    )
    if new != (first, last, old_spool, old_seq):
        cur.run(
            "UPDATE recorders SET first_seen = ?, last_seen = ?, spool = ?, audit_seq = ? "
            "WHERE recorder_id = ?",
            (*new, recorder_id),
        )


def merge_call(cur: Cursor, recorder_id: str, call: CallFacts) -> None:
    """Enter a call; the call's own line wins over what an AGI recording line told."""
    key = (recorder_id, call.call_id)
    rows = cur.run(select(CALL_COLUMNS, "calls", "recorder_id = ? AND call_id = ?"), key)
    values = {
        "recorder_id": recorder_id,
        "call_id": call.call_id,
        "started": ts(call.started),
        "ended": ts(call.ended),
        "duration": call.duration,
        "dialled": call.dialled,
        "decision": call.decision,
        "end_reason": call.end_reason,
        "caller_pseudonym": call.caller_pseudonym,
        "caller_key_id": None,
        "frontend": call.frontend,
        "evidence": evidence_json(call.evidence),
        "audit_line": call.audit_line,
        "audit_time": ts(call.audit_time),
    }
    if not rows:
        _insert(cur, "calls", values)
        return
    old = named(CALL_COLUMNS, rows[0])
    new = dict(old)
    if call.authoritative:
        kept = ("caller_key_id", "ended")
        new.update({k: v for k, v in values.items() if k not in kept})
    new["ended"] = max(old["ended"], values["ended"])
    _update(cur, "calls", old, new, ("recorder_id", "call_id"))


def merge_recording(cur: Cursor, recorder_id: str, rec: RecordingFacts) -> None:
    """Enter a recording: the newest line names its file; the file fills in the rest."""
    rows = cur.run(
        select(RECORDING_COLUMNS, "recordings", "recording_id = ?"),
        (rec.recording_id,),
    )
    old = named(RECORDING_COLUMNS, rows[0]) if rows else None
    if old is not None and old["recorder_id"] != recorder_id:
        raise CatalogError(
            f"recording {rec.recording_id} is already catalogued for recorder "
            f"{old['recorder_id']!r}, not {recorder_id!r}"
        )
    newer = old is None or old["audit_time"] is None or ts(rec.audit_time) >= old["audit_time"]
    told: dict[str, Any] = {
        "call_id": rec.call_id,
        "uri": file_uri(rec.path),
        "size": rec.size,
        "segments": rec.segments,
        "last_tag_sha256": rec.last_tag_sha256,
        "duration": rec.duration,
        "started": ts(rec.started),
        "ended": ts(rec.ended),
        "signer": rec.signer,
        "continues": rec.continues,
        "audit_line": rec.audit_line,
        "audit_time": ts(rec.audit_time),
    }
    new = _blank(recording_id=rec.recording_id, recorder_id=recorder_id) if old is None else old
    new = dict(new)
    for name, value in told.items():
        if value is not None and (newer or new[name] is None):
            new[name] = value
    _settle_file(new)
    if old is None:
        _insert(cur, "recordings", new)
    else:
        _update(cur, "recordings", old, new, ("recording_id",))


def enter_file(cur: Cursor, recorder_id: str, path: Path) -> bool:
    """Enter a file no line names; False when it is already catalogued (or unreadable)."""
    facts = file_facts(path)
    if facts is None:
        return False
    if cur.run("SELECT 1 FROM recordings WHERE recording_id = ?", (facts.recording_id,)):
        return False
    new = _blank(recording_id=facts.recording_id, recorder_id=recorder_id, uri=file_uri(path))
    _settle_file(new, facts)
    _insert(cur, "recordings", new)
    return True


def link_continuation(cur: Cursor, recorder_id: str, previous: str, call_id: str) -> None:
    """The recording a crash cut short belongs to the call its continuation names."""
    cur.run(
        "UPDATE recordings SET call_id = ? "
        "WHERE recording_id = ? AND recorder_id = ? AND call_id IS NULL",
        (call_id, previous, recorder_id),
    )


def _settle_file(row: dict[str, Any], facts: FileFacts | None = None) -> None:
    """Fill what the file says (no key needed), and PRESENT or MISSING as it is found."""
    if facts is None:
        facts = file_facts(uri_path(row["uri"]))
    if facts is not None and facts.recording_id != row["recording_id"]:
        facts = None  # another recording now has this name: trust nothing of it
    state = RecordingState(row["state"])
    if state in _FILE_STATES:
        row["state"] = str(RecordingState.PRESENT if facts else RecordingState.MISSING)
    if facts is None:
        return
    found: dict[str, Any] = {
        "size": facts.size,
        "segments": facts.segments,
        "last_tag_sha256": facts.last_tag_sha256,
        "started": ts(facts.created),
        "signer": facts.signer,
    }
    for name, value in found.items():
        if row[name] is None:
            row[name] = value
    row.update(codec=facts.codec, sample_rate=facts.sample_rate, channels=facts.channels)
    row["signature"] = facts.signature


def _blank(**given: Any) -> dict[str, Any]:
    """A new recording row: every column null but the key, its file and its state."""
    row: dict[str, Any] = dict.fromkeys(RECORDING_COLUMNS)
    row.update(state=str(RecordingState.PRESENT), uri="")
    row.update(given)
    return row


def _insert(cur: Cursor, table: str, values: dict[str, Any]) -> None:
    names = list(values)
    marks = ", ".join("?" for _ in names)
    cur.run(f"INSERT INTO {table} ({columns(names)}) VALUES ({marks})",  # noqa: S608
            [values[n] for n in names])  # fmt: skip


def _update(
    cur: Cursor, table: str, old: dict[str, Any], new: dict[str, Any], key: tuple[str, ...]
) -> None:
    changed = [name for name in new if new[name] != old[name]]
    if not changed:
        return
    sets = ", ".join(f"{name} = ?" for name in changed)
    where = " AND ".join(f"{name} = ?" for name in key)
    cur.run(f"UPDATE {table} SET {sets} WHERE {where}",  # noqa: S608
            [*(new[n] for n in changed), *(old[k] for k in key)])  # fmt: skip
