"""One caller's calls and recordings, found by the pseudonym of their number.

A DPO knows a caller by their number; callrec stores only its keyed
pseudonym (:func:`callrec.evidence.pseudonymise`), so the number is turned
into it with the pseudonym key and never written anywhere.

Two sources, merged: the catalogue (every recorder's calls, holds and
tombstones) and this recorder's audit log, which stays the source of truth:
a call whose catalogue entry is still queued, or a recorder with no
catalogue yet, is found there. An audit line names the caller's pseudonym in
``evidence.caller``; a later line about the same recording id (a
``recording-adopted`` after a crash) may have moved its file.

A call is known by (recorder id, call id), as in the catalogue: two PBXs can
hand out the same Asterisk unique id, and merging by the call id alone would
lose one of them (an incomplete export, an erasure confirmed while a
recording survives). The audit log's calls are the local recorder's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from callrec.catalog import Catalog, Entry, RecordingEntry, RecordingState
from callrec.config_model import Config
from callrec.crypto.keys import load_pseudonym_key
from callrec.evidence import pseudonymise


@dataclass(frozen=True)
class FoundRecording:
    """One recording of the caller: where its file is, and whether it may go."""

    recording_id: str
    path: Path | None  # None: the catalogue knows no local file (another recorder's)
    recorder_id: str | None = None
    state: RecordingState = RecordingState.PRESENT
    hold_reason: str | None = None

    @property
    def held(self) -> bool:
        return self.state is RecordingState.HELD

    @property
    def deleted(self) -> bool:
        return self.state is RecordingState.DELETED

    def local_file(self) -> Path | None:
        """The file, when it is on this machine."""
        return self.path if self.path is not None and self.path.is_file() else None


@dataclass(frozen=True)
class FoundCall:
    """One call of the caller, as the catalogue or the audit log says it (no personal data)."""

    call_id: str
    started: datetime | None
    dialled: str
    decision: str | None
    duration: float | None = None  # seconds from answer to hang-up
    evidence: Mapping[str, Any] = field(default_factory=dict)
    recordings: tuple[FoundRecording, ...] = ()
    recorder_id: str | None = None


def pseudonym_of(number: str, config: Config) -> str:
    """The pseudonym ``number`` has in this installation's evidence."""
    return pseudonymise(number, load_pseudonym_key(config.privacy.pseudonym_key))


def file_of(uri: str) -> Path | None:
    """The local path of a ``file://`` URI (None for any other kind of place)."""
    parts = urlsplit(uri)
    return Path(unquote(parts.path)) if parts.scheme == "file" else None


def from_catalog(entries: Iterable[Entry]) -> list[FoundCall]:
    """The calls of catalogue entries (lone recordings have no caller, so none)."""
    calls = []
    for entry in entries:
        if entry.call is None:
            continue
        call = entry.call
        calls.append(
            FoundCall(
                call_id=call.call_id,
                started=call.started or call.ended,
                dialled=call.dialled,
                decision=call.decision,
                duration=call.duration,
                evidence=dict(call.evidence),
                recordings=tuple(_found(r) for r in entry.recordings),
                recorder_id=call.recorder_id,
            )
        )
    return calls


def _found(entry: RecordingEntry) -> FoundRecording:
    return FoundRecording(
        entry.recording_id,
        file_of(entry.uri),
        entry.recorder_id,
        entry.state,
        None if entry.hold is None else entry.hold.reason,
    )


def from_audit(
    lines: Iterable[Mapping[str, Any]], pseudonym: str, recorder_id: str | None = None
) -> list[FoundCall]:
    """The calls of ``pseudonym`` in audit lines, each recording at its latest path.

    ``recorder_id`` is the recorder that wrote the lines (this one).
    """
    calls: dict[str, FoundCall] = {}
    paths: dict[str, Path] = {}
    for line in lines:
        recording_id, path = line.get("recording_id"), line.get("path")
        if isinstance(recording_id, str) and isinstance(path, str):
            paths[recording_id] = Path(path)
        evidence = line.get("evidence")
        if not isinstance(evidence, Mapping) or evidence.get("caller") != pseudonym:
            continue
        call_id = str(line.get("channel") or evidence.get("uniqueid") or line.get("id"))
        known = calls.get(call_id)
        recordings = () if known is None else known.recordings
        if isinstance(recording_id, str) and recording_id not in {
            r.recording_id for r in recordings
        }:
            recordings = (*recordings, FoundRecording(recording_id, None))
        calls[call_id] = FoundCall(
            call_id=call_id,
            started=_started(evidence, line),
            dialled=str(evidence.get("dialled") or ""),
            decision=_text(line.get("decision") or evidence.get("decision")),
            duration=_call_seconds(line),
            evidence=dict(evidence),
            recordings=recordings,
            recorder_id=recorder_id,
        )
    return [
        replace(
            call,
            recordings=tuple(replace(r, path=paths.get(r.recording_id)) for r in call.recordings),
        )
        for call in calls.values()
    ]


def merge(catalogued: list[FoundCall], audited: list[FoundCall]) -> list[FoundCall]:
    """The catalogue's calls (its holds and tombstones count), plus what only the audit log has.

    A recording the catalogue knows without a local path gets the audit log's.
    """
    local = {r.recording_id: r.path for call in audited for r in call.recordings if r.path}
    known = {r.recording_id for c in catalogued for r in c.recordings}
    calls = {
        _key(c): replace(c, recordings=tuple(_with_path(r, local) for r in c.recordings))
        for c in catalogued
    }
    for call in audited:
        fresh = tuple(r for r in call.recordings if r.recording_id not in known)
        have = calls.get(_key(call))
        if have is None:
            calls[_key(call)] = replace(call, recordings=fresh)
        elif fresh:
            calls[_key(call)] = replace(have, recordings=have.recordings + fresh)
    return sorted(calls.values(), key=_order)


def _key(call: FoundCall) -> tuple[str, str]:
    return (call.recorder_id or "", call.call_id)


def _order(call: FoundCall) -> tuple[bool, str, str, str]:
    return (
        call.started is None,
        "" if call.started is None else call.started.isoformat(),
        call.call_id,
        call.recorder_id or "",
    )


def _with_path(found: FoundRecording, local: Mapping[str, Path]) -> FoundRecording:
    if found.path is not None or found.recording_id not in local:
        return found
    return replace(found, path=local[found.recording_id])


def find_calls(
    catalog: Catalog | None,
    audit: Iterable[Mapping[str, Any]],
    pseudonym: str,
    recorder_id: str | None = None,
) -> list[FoundCall]:
    """Every call of ``pseudonym``: the catalogue's (when there is one) and the audit log's.

    ``audit`` is the log of recorder ``recorder_id`` (default: the one the
    catalogue was opened for).
    """
    catalogued = [] if catalog is None else from_catalog(catalog.list(pseudonym=pseudonym))
    if recorder_id is None and catalog is not None:
        recorder_id = catalog.recorder_id
    return merge(catalogued, from_audit(audit, pseudonym, recorder_id))


def _started(evidence: Mapping[str, Any], line: Mapping[str, Any]) -> datetime | None:
    times = evidence.get("times")
    for raw in (
        times.get("answer") if isinstance(times, Mapping) else None,
        line.get("time"),
    ):
        if isinstance(raw, str):
            try:
                return datetime.fromisoformat(raw)
            except ValueError:
                continue
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _call_seconds(line: Mapping[str, Any]) -> float | None:
    durations = line.get("durations")
    seconds = durations.get("call") if isinstance(durations, Mapping) else None
    return float(seconds) if isinstance(seconds, int | float) else None
