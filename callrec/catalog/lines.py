"""From an audit line to the catalogue's rows: what the line says of a call and a recording.

Pure: no database, no files. The audit line (``callrec.audit``) is the source
of truth; this is the one place that knows which of its keys go where.

- ``call`` / ``failure`` lines of the Stasis app: one call, and its
  recording when one ran (sealed, or a ``.crec.part`` left unsealed);
- the FastAGI front end writes two: ``stage: consent`` (the call) and
  ``stage: recording`` (its recording), both naming ``call_id``;
- ``recording-adopted``: a crash's ``.crec.part`` moved into the dated spool
  (its call is named by the ``continues`` of the call line that follows);
- every other event names no call and enters nothing.

The caller is kept only as the pseudonym the evidence already holds; the
evidence summary is the line's evidence without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

_CALL_EVENTS = frozenset({"call", "failure"})
ADOPTED = "recording-adopted"
_RECORDING_STAGE = "recording"
# Evidence keys that identify the caller; the summary leaves them out.
_PERSONAL_EVIDENCE = ("caller",)


@dataclass(frozen=True)
class CallFacts:
    """A call as one audit line tells it."""

    call_id: str
    started: datetime | None
    ended: datetime
    duration: float | None
    dialled: str
    decision: str | None
    end_reason: str | None
    caller_pseudonym: str | None
    frontend: str | None
    evidence: dict[str, Any]
    audit_line: str | None
    audit_time: datetime
    authoritative: bool  # the call's own line (not an AGI recording's): its facts win


@dataclass(frozen=True)
class RecordingFacts:
    """A recording as one audit line tells it; facts it does not tell are None."""

    recording_id: str
    call_id: str | None
    path: Path
    size: int | None
    segments: int | None
    last_tag_sha256: str | None
    duration: float | None
    started: datetime | None
    ended: datetime | None
    signer: str | None
    continues: str | None
    audit_line: str | None
    audit_time: datetime


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 time from a line, as aware UTC; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def call_facts(line: Mapping[str, Any]) -> CallFacts | None:
    """The call a line describes, or None (not a call's line, or no call id in it)."""
    if line.get("event") not in _CALL_EVENTS:
        return None
    evidence = _mapping(line.get("evidence"))
    call_id = call_id_of(line)
    written = parse_time(line.get("time"))
    if call_id is None or written is None:
        return None
    durations = _mapping(line.get("durations"))
    duration = _number(durations.get("call"))
    times = _mapping(evidence.get("times"))
    if duration is not None:
        started: datetime | None = written - timedelta(seconds=duration)
    else:
        started = parse_time(times.get("answer")) or parse_time(times.get("prompt_start"))
    decision = line.get("decision") or evidence.get("decision")
    return CallFacts(
        call_id=call_id,
        started=started,
        ended=written,
        duration=duration,
        dialled=str(evidence.get("dialled") or ""),
        decision=None if decision is None else str(decision),
        end_reason=_text(line.get("end")),
        caller_pseudonym=_text(evidence.get("caller")),
        frontend=_text(evidence.get("frontend")),
        evidence={k: v for k, v in evidence.items() if k not in _PERSONAL_EVIDENCE},
        audit_line=_text(line.get("id")),
        audit_time=written,
        authoritative=line.get("stage") != _RECORDING_STAGE,
    )


def call_id_of(line: Mapping[str, Any]) -> str | None:
    """The call a line is about: the AGI ``call_id``, else the caller's channel."""
    evidence = _mapping(line.get("evidence"))
    return (
        _text(line.get("call_id")) or _text(line.get("channel")) or _text(evidence.get("uniqueid"))
    )


def recording_facts(line: Mapping[str, Any]) -> RecordingFacts | None:
    """The recording a line describes (sealed, left unsealed, or adopted), or None."""
    event = line.get("event")
    recording_id = _text(line.get("recording_id"))
    path = _text(line.get("path"))
    written = parse_time(line.get("time"))
    if recording_id is None or path is None or written is None:
        return None
    if event not in _CALL_EVENTS and event != ADOPTED:
        return None
    evidence = _mapping(line.get("evidence"))
    times = _mapping(evidence.get("times"))
    durations = _mapping(line.get("durations"))
    duration = _number(durations.get("audio"))
    if duration is None:
        duration = _number(durations.get("recording"))
    continues = _mapping(line.get("continues"))
    return RecordingFacts(
        recording_id=recording_id,
        call_id=None if event == ADOPTED else call_id_of(line),
        path=Path(path),
        size=_integer(line.get("size")),
        segments=_integer(line.get("segments")),
        last_tag_sha256=_text(line.get("last_tag_sha256")),
        duration=duration,
        started=parse_time(times.get("recording_start")),
        ended=parse_time(times.get("recording_end")) or parse_time(line.get("last_written")),
        signer=_text(line.get("recording_signer")),
        continues=_text(continues.get("recording_id")),
        audit_line=_text(line.get("id")),
        audit_time=written,
    )


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
