"""How catalogue entries read: a table, JSON lines, and one entry in full.

Shared by ``callrec recordings list`` and ``show`` (and whatever else lists
entries), so a listing reads the same everywhere. Caller data never reaches
it: a call carries only the caller's pseudonym, which is not printed in the
table (``--json`` and ``show`` name it, for matching across tools).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from callrec.catalog.files import file_facts, uri_path
from callrec.catalog.model import (
    CallEntry,
    CatalogError,
    Entry,
    ErasureOrder,
    RecordingEntry,
    RecordingState,
)
from callrec.logutil import safe

_HEADINGS = ("STARTED (UTC)", "RECORDER", "CALL", "DIALLED", "DECISION", "END", "SECONDS",
             "RECORDING", "STATE")  # fmt: skip
NONE = "-"


def when(value: datetime | None) -> str:
    """A time as the listings show it: ``2026-01-31 12:00:00`` (UTC), or ``-``."""
    return NONE if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="milliseconds")


def call_json(call: CallEntry) -> dict[str, Any]:
    return {
        "call_id": call.call_id,
        "recorder_id": call.recorder_id,
        "started": _iso(call.started),
        "ended": _iso(call.ended),
        "duration": call.duration,
        "dialled": call.dialled,
        "decision": call.decision,
        "end_reason": call.end_reason,
        "caller_pseudonym": call.caller_pseudonym,
        "frontend": call.frontend,
        "evidence": dict(call.evidence),
        "audit_line": call.audit_line,
    }


def recording_json(rec: RecordingEntry) -> dict[str, Any]:
    return {
        "recording_id": rec.recording_id,
        "recorder_id": rec.recorder_id,
        "call_id": rec.call_id,
        "uri": rec.uri,
        "size": rec.size,
        "segments": rec.segments,
        "last_tag_sha256": rec.last_tag_sha256,
        "codec": rec.codec,
        "sample_rate": rec.sample_rate,
        "channels": rec.channels,
        "duration": rec.duration,
        "started": _iso(rec.started),
        "ended": _iso(rec.ended),
        "signature": rec.signature,
        "signer": rec.signer,
        "verdict": rec.verdict,
        "continues": rec.continues,
        "state": str(rec.state),
        "hold": None
        if rec.hold is None
        else {"reason": rec.hold.reason, "by": rec.hold.by, "at": _iso(rec.hold.at)},
        "deletion": None
        if rec.deletion is None
        else {"by": rec.deletion.by, "at": _iso(rec.deletion.at), "rule": rec.deletion.rule},
        "audit_line": rec.audit_line,
    }


def entry_json(entry: Entry) -> dict[str, Any]:
    """One entry as a JSON object: ``call`` (or null) and its ``recordings``."""
    return {
        "call": None if entry.call is None else call_json(entry.call),
        "recordings": [recording_json(r) for r in entry.recordings],
    }


def json_line(value: Mapping[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=True)


def table(entries: Sequence[Entry]) -> list[str]:
    """The listing: one row per recording (a call without one gets a row too)."""
    rows: list[tuple[str, ...]] = [_HEADINGS]
    for entry in entries:
        rows.extend(_rows(entry))
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADINGS))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows]  # fmt: skip


def _rows(entry: Entry) -> list[tuple[str, ...]]:
    call = entry.call
    front: tuple[str, ...] = (when(entry.when), entry.recorder_id)
    if call is None:
        front += (NONE, NONE, NONE, NONE)
    else:
        front += (
            safe(call.call_id, 40), safe(call.dialled, 32) or NONE,
            call.decision or NONE, call.end_reason or NONE,
        )  # fmt: skip
    recs = entry.recordings
    seconds = NONE
    if call is not None and call.duration is not None:
        seconds = f"{call.duration:.1f}"
    elif recs and recs[0].duration is not None:
        seconds = f"{recs[0].duration:.1f}"
    if not recs:
        return [(*front, seconds, NONE, "not recorded")]
    rows = [(*front, seconds, recs[0].recording_id, str(recs[0].state))]
    blank = ("",) * (len(front) + 1)
    rows.extend((*blank, r.recording_id, str(r.state)) for r in recs[1:])
    return rows


@dataclass(frozen=True)
class FileCheck:
    """A recording's file as found now, beside what the catalogue says of it."""

    present: bool
    signature: str | None  # its signature state now (None: not readable)
    signer: str | None
    changed: str = ""  # why the file is not the one catalogued, or ""


def check_file(rec: RecordingEntry) -> FileCheck:
    """Look at the file: there or not, signed or not, still the file catalogued."""
    try:
        path = uri_path(rec.uri)
    except CatalogError:
        return FileCheck(False, None, None)
    facts = file_facts(path)
    if facts is None:
        return FileCheck(path.exists(), None, None)
    changed = ""
    if facts.recording_id != rec.recording_id:
        changed = f"the file now holds recording {facts.recording_id}"
    elif rec.size is not None and facts.size != rec.size:
        changed = f"its size is {facts.size} bytes, {rec.size} when catalogued"
    elif rec.last_tag_sha256 and facts.last_tag_sha256 != rec.last_tag_sha256:
        changed = "its last segment is not the one catalogued"
    return FileCheck(True, facts.signature, facts.signer, changed)


def show(
    entry: Entry, checks: Mapping[str, FileCheck], orders: Sequence[ErasureOrder]
) -> list[str]:
    """One entry in full, for ``callrec recordings show``."""
    lines: list[str] = []
    call = entry.call
    if call is None:
        lines.append("call: unknown (a recording no audit line of a call names)")
    else:
        lines += [
            f"call: {safe(call.call_id, 80)}",
            f"recorder: {call.recorder_id}",
            f"started: {when(call.started)} UTC",
            f"ended: {when(call.ended)} UTC",
            f"duration: {NONE if call.duration is None else f'{call.duration:.1f} s'}",
            f"dialled: {safe(call.dialled, 32) or NONE}",
            f"decision: {call.decision or 'none (no decision was taken)'}",
            f"end: {call.end_reason or NONE}",
            f"caller: {call.caller_pseudonym or 'erased'}",
            f"front end: {call.frontend or NONE}",
            "evidence:",
            *("  " + line for line in json.dumps(dict(call.evidence), indent=2,
                                                  sort_keys=True).splitlines()),
        ]  # fmt: skip
    if not entry.recordings:
        lines.append("recordings: none")
    for rec in entry.recordings:
        lines += _recording_lines(rec, checks.get(rec.recording_id))
    for order in orders:
        waiting = ", ".join(order.pending) or "nobody"
        lines.append(
            f"erasure order {order.order_id} of {when(order.requested_at)} UTC by "
            f"{order.requested_by} ({safe(order.reason, 120)}): not yet carried out by {waiting}"
        )
    return lines


def _recording_lines(rec: RecordingEntry, check: FileCheck | None) -> list[str]:
    lines = [
        f"recording: {rec.recording_id}",
        f"  file: {rec.uri}",
        f"  audio: {rec.codec or NONE} {rec.sample_rate or NONE} Hz, {rec.channels or NONE} "
        f"channel(s), {NONE if rec.duration is None else f'{rec.duration:.1f} s'}, "
        f"{NONE if rec.size is None else rec.size} bytes, {rec.segments or NONE} segments",
        f"  state: {rec.state}",
    ]
    if rec.continues:
        lines.append(f"  continues: {rec.continues} (cut short by a crash)")
    if rec.hold is not None:
        lines.append(f"  on hold since {when(rec.hold.at)} UTC by {rec.hold.by}: "
                     f"{safe(rec.hold.reason, 200)}")  # fmt: skip
    if rec.deletion is not None:
        d = rec.deletion
        done = "being deleted since" if rec.state is RecordingState.DELETING else "deleted"
        lines.append(f"  {done} {when(d.at)} UTC by {d.by} under {d.rule}")
    if check is not None and rec.state is not RecordingState.DELETED:
        lines.append(f"  present: {'yes' if check.present else 'no, the file is not there'}")
        if check.changed:
            lines.append(f"  CHANGED since catalogued: {check.changed}")
        signature = check.signature or rec.signature or "unknown"
        signer = check.signer or rec.signer
        lines.append(f"  signed: {signature}" + (f" by {signer}" if signer else ""))
    elif check is None or rec.state is RecordingState.DELETED:
        lines.append(f"  signed: {rec.signature or 'unknown'} (when catalogued)")
    verdict = rec.verdict or "not verified (give --key to verify it)"
    lines.append(f"  verified: {verdict}")
    return lines
