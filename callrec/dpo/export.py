"""The folder handed to a caller who asks for their recordings (GDPR Art. 15).

``callrec subject export`` finds the caller's calls (:mod:`.subjects`),
decrypts each recording that is on this machine into a WAV, writes its
consent evidence as JSON, and an ``index.html`` (:mod:`.page`) that lists
every call, recorded or not, and plays each recording in any browser,
offline. The facts on the page come from inside the recording (the
authenticated evidence record) when there is one; from the audit log or the
catalogue for a call that was not recorded.

Everything is written 0600 in a 0700 folder: it is the caller's audio in
the clear, to be handed over and then removed. A recording that does not
verify is exported up to where it fails (as ``callrec decrypt`` would) and
the page says so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from callrec.audio import open_private
from callrec.crypto.keys import PrivateKey
from callrec.decode import render_file
from callrec.dpo.subjects import FoundCall, FoundRecording
from callrec.errors import CallrecError
from callrec.recording import RecordingReader
from callrec.spool import os_reason


class ExportError(CallrecError):
    """The export folder cannot be made or written."""


@dataclass(frozen=True)
class ExportedRecording:
    """One recording as exported: its files (names inside the folder) and what it held."""

    recording_id: str
    wav: str | None  # None: not exported (why says why)
    evidence_json: str | None
    seconds: float | None
    verdict: str | None
    why: str = ""  # a problem, in words, for the page and the terminal


@dataclass(frozen=True)
class ExportedCall:
    """One line of the page: the call and its recordings."""

    call: FoundCall
    evidence: Mapping[str, Any]  # the recording's own when there is one, else the call's
    evidence_json: str
    recordings: tuple[ExportedRecording, ...] = ()

    @property
    def started(self) -> datetime | None:
        times = self.evidence.get("times")
        answer = times.get("answer") if isinstance(times, Mapping) else None
        if isinstance(answer, str):
            try:
                return datetime.fromisoformat(answer)
            except ValueError:
                pass
        return self.call.started


@dataclass
class Export:
    """What :func:`export_subject` wrote."""

    folder: Path
    calls: list[ExportedCall] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [f"{r.recording_id}: {r.why}" for c in self.calls for r in c.recordings if r.why]

    @property
    def recording_ids(self) -> list[str]:
        return [r.recording_id for c in self.calls for r in c.recordings if r.wav]


def empty_folder(path: Path) -> Path:
    """``path`` as a new 0700 folder, or an empty one: an export never mixes with other files."""
    if path.exists() and not path.is_dir():
        raise ExportError(f"{path} exists and is not a folder")
    try:
        if path.is_dir() and any(path.iterdir()):
            raise ExportError(f"{path} is not empty: give a new folder for the export")
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)
    except OSError as exc:
        raise ExportError(f"cannot create the folder {path}: {os_reason(exc)}") from None
    return path


def export_calls(calls: Sequence[FoundCall], keys: Sequence[PrivateKey], folder: Path) -> Export:
    """Write every call of ``calls`` into the empty ``folder`` (the page comes after:
    :func:`callrec.dpo.page.write_page`)."""
    export = Export(empty_folder(folder))
    for number, call in enumerate(calls, 1):
        export.calls.append(_export_call(folder, number, call, keys))
    return export


def _export_call(
    folder: Path, number: int, call: FoundCall, keys: Sequence[PrivateKey]
) -> ExportedCall:
    stem = _stem(number, call)
    recordings = []
    evidence: Mapping[str, Any] = call.evidence
    for index, found in enumerate(call.recordings, 1):
        name = stem if len(call.recordings) == 1 else f"{stem}-{index}"
        done, inside = _export_recording(folder, name, found, keys)
        recordings.append(done)
        if inside is not None and evidence is call.evidence:
            evidence = inside  # the authenticated record beats the audit view
    call_json = f"{stem}.json"
    if not any(r.evidence_json == call_json for r in recordings):
        _write_json(folder / call_json, {"kind": "call", "evidence": dict(call.evidence)})
    return ExportedCall(call, evidence, call_json, tuple(recordings))


def _stem(number: int, call: FoundCall) -> str:
    when = "unknown-time" if call.started is None else call.started.strftime("%Y-%m-%d_%H-%M-%S")
    return f"call-{number:02d}_{when}"


def _export_recording(
    folder: Path, name: str, found: FoundRecording, keys: Sequence[PrivateKey]
) -> tuple[ExportedRecording, Mapping[str, Any] | None]:
    """The WAV and JSON of one recording, and its consent evidence record (if it opened)."""
    rid = found.recording_id
    path = found.local_file()
    if found.deleted:
        return ExportedRecording(rid, None, None, None, None, "deleted before this export"), None
    if path is None:
        where = f"on recorder {found.recorder_id}" if found.recorder_id else "not on this machine"
        return ExportedRecording(rid, None, None, None, None, f"file {where}"), None
    wav, meta = f"{name}.wav", f"{name}.json"
    try:
        with RecordingReader(path, keys) as reader:
            rendered, frames = render_file(reader, folder / wav)
            seconds = frames / reader.header.sample_rate
            verdict, error = str(reader.verdict), reader.error
    except (CallrecError, OSError) as exc:
        return ExportedRecording(rid, None, None, None, None, f"cannot be opened: {exc}"), None
    record = {
        "kind": "recording",
        "recording_id": rid,
        "verdict": verdict,
        "error": None if error is None else str(error),
        "audio_seconds": seconds,
        "metadata": rendered.metadata,
        "events": rendered.events,
    }
    _write_json(folder / meta, record)
    why = "" if error is None else f"{verdict}: only the {seconds:.1f} s before {error} exported"
    return ExportedRecording(rid, wav, meta, seconds, verdict, why), _consent(rendered.metadata)


def _consent(metadata: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    return next((m for m in metadata if m.get("kind") == "consent-evidence"), None)


def _write_json(path: Path, value: Any) -> None:
    text = json.dumps(value, indent=2, ensure_ascii=True, sort_keys=True, default=str)
    write_private(path, text.encode("ascii") + b"\n")


def write_private(path: Path, data: bytes) -> None:
    try:
        with os.fdopen(open_private(path), "wb") as f:
            f.write(data)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {os_reason(exc)}") from None
