"""The crash-safe state of each live call: what a restarted recorder needs.

``<spool>/live/<call id>.json`` (0600 in a 0700 folder), one file per call in
the Stasis app, written whole or not at all (:func:`callrec.spool.write_file_atomic`)
at each state change: the disclosure starts, consent is decided, the
destination is called, the call is bridged, a recording starts. The call's
end removes it. After ``kill -9`` the files left here are the calls a
restarted ``callrec serve`` looks for in Asterisk (``ari_app/recovery.py``);
after SIGTERM a bridged call keeps its file, so the next start records the
rest of it too.

No personal data in clear: channel, bridge, playback and recording ids, the
consent decision with its timeline (times, the digits of the disclosure, the
prompt's id and hash, the policy), the caller's keyed pseudonym and the
dialled number; never the caller's number or name (a restarted recorder
reads them from the live channel). Schema version 1:

================  ==========================================================
key               value
================  ==========================================================
``schema``        1
``call``          the caller's channel id (the audit line's ``channel``)
``app``           the Stasis application
``pbx_boot``      Asterisk's start time when the call was taken (a restart
                  since means the call is gone)
``state``         ``disclosing``, ``connecting`` or ``bridged``; ``recording``
                  for a dialplan call recorded over FastAGI
``started``       when the call entered Stasis (Unix seconds)
``pseudonym``     the caller's pseudonym (``p1:...``)
``dialled``       the dialled number
``playback``      the disclosure's playback id
``decision``      the consent decision, or null while it is open
``consent``       prompt id and SHA-256, policy and timeline of the decision
``destination``   the destination leg's channel id
``bridge``        the call's bridge id
``bridged_at``    when caller and destination were bridged
``tap``           ``snoop``, ``media``, ``bridge``: the recording tap's ids
``recording``     ``id``, ``file``, ``part`` (1, 2, ...), ``started``,
                  ``sealed`` (path once sealed, e.g. by SIGTERM)
``continues``     for a continuation: ``call``, ``recording_id``, ``path``,
                  ``part`` of the recording it continues
``pause``         while the recording is paused: ``start`` (when it was asked
                  for), ``source`` (who asked), ``resume_by`` (when
                  auto-resume ends it, or null); the next recording of the
                  call starts paused (``callrec/pausing.py``)
``frontend``      ``ari`` (the Stasis app; also when absent) or ``agi`` (a
                  dialplan call recorded over FastAGI, ``agi/takeover.py``)
``call_id``       the call id of its audit lines where it is not the channel
                  id (AGI's ``CALLREC_ID``)
``linkedid``      the call's linkedid (AGI ``/pause`` from another leg)
``layout``        ``mixed`` or ``stereo``: its recording's channels, kept by
                  a continuation whatever the config says then
``on_failure``    the failure policy its recording started with
``updated``       when this file was written
================  ==========================================================

The keys after ``pause`` came later within schema 1: a record without them
is the Stasis app's, its layout and policy the config's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, get_args

from callrec.consent import ConsentTimeline, Decision
from callrec.errors import CallrecError
from callrec.evidence import Evidence
from callrec.failure_policy import FailurePolicy
from callrec.media.layout import CHANNEL_MODES, ChannelMode
from callrec.pausing import OpenPause, PauseSource
from callrec.spool import (
    PART_SUFFIX,
    ensure_private_dir,
    fsync_dir,
    spool_error,
    write_file_atomic,
)

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
LIVE_DIR = "live"
LIVE_SUFFIX = ".json"
# Channel ids as Asterisk makes them ("1733.42") or callrec does
# ("callrec-dest-..."): anything else never becomes a file name.
_CALL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# A record is a few hundred bytes; a bigger file is not one of ours.
MAX_RECORD_BYTES = 64 * 1024


class LiveRecordError(CallrecError):
    """A live-call record that cannot be written or read; ``path`` and ``message`` say why."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"live call record {path}: {message}")


class LiveState(StrEnum):
    """How far a call had come (what a restarted recorder can do with it)."""

    DISCLOSING = "disclosing"  # the caller hears the disclosure; consent is open
    CONNECTING = "connecting"  # decided; the destination is being called
    BRIDGED = "bridged"  # caller and destination talk in the call's bridge
    RECORDING = "recording"  # a dialplan call recorded over FastAGI (its own flow)


class Frontend(StrEnum):
    """Which front end owns a call, so each restarted front end takes over its own."""

    ARI = "ari"
    AGI = "agi"


@dataclass(frozen=True, slots=True)
class TapIds:
    """The PBX objects of a recording tap (``callrec.tap.RecordingTap``)."""

    snoop: str
    media: str
    bridge: str
    # A stereo tap's second snoop (what the caller hears), its ExternalMedia
    # and bridge; named for every tap, created only for a stereo recording.
    heard_snoop: str | None = None
    heard_media: str | None = None
    heard_bridge: str | None = None

    def ids(self) -> tuple[str, ...]:
        every = (self.snoop, self.media, self.bridge)
        return tuple(
            i for i in (*every, self.heard_snoop, self.heard_media, self.heard_bridge) if i
        )

    def channels(self) -> tuple[str, ...]:
        every = (self.snoop, self.media, self.heard_snoop, self.heard_media)
        return tuple(i for i in every if i)

    def to_json(self) -> dict[str, str]:
        """The ids by name; a mixed tap's record has no second leg's keys."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True, slots=True)
class LivePart:
    """One recording of a call: ``part`` counts from 1; ``sealed`` is its path once sealed."""

    id: str
    part: int
    started: float
    sealed: str | None = None

    @property
    def file(self) -> str:
        return f"{self.id}{PART_SUFFIX}" if self.sealed is None else Path(self.sealed).name


@dataclass(frozen=True, slots=True)
class Continues:
    """What a continuation recording continues: the call and the recording before it."""

    call: str
    recording_id: str
    path: str | None
    part: int

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class LiveCall:
    """One call's record; :meth:`changed` makes the next version."""

    call: str
    app: str
    state: LiveState
    started: float
    pseudonym: str
    dialled: str
    pbx_boot: str | None = None
    playback: str | None = None
    decision: Decision | None = None
    consent: Mapping[str, Any] | None = None
    destination: str | None = None
    bridge: str | None = None
    bridged_at: float | None = None
    tap: TapIds | None = None
    recording: LivePart | None = None
    continues: Continues | None = None
    pause: OpenPause | None = None
    frontend: Frontend = Frontend.ARI
    call_id: str | None = None
    linkedid: str | None = None
    layout: ChannelMode | None = None
    on_failure: FailurePolicy | None = None
    updated: float = 0.0

    def changed(self, **changes: Any) -> LiveCall:
        return dataclasses.replace(self, **changes)

    @property
    def channels(self) -> tuple[str, ...]:
        """Every channel id this call owns in the PBX."""
        tap = self.tap.channels() if self.tap is not None else ()
        return tuple(c for c in (self.call, self.destination, *tap) if c)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "call": self.call,
            "app": self.app,
            "pbx_boot": self.pbx_boot,
            "state": str(self.state),
            "started": self.started,
            "pseudonym": self.pseudonym,
            "dialled": self.dialled,
            "playback": self.playback,
            "decision": None if self.decision is None else str(self.decision),
            "consent": None if self.consent is None else dict(self.consent),
            "destination": self.destination,
            "bridge": self.bridge,
            "bridged_at": self.bridged_at,
            "tap": None if self.tap is None else self.tap.to_json(),
            "recording": None,
            "continues": None if self.continues is None else self.continues.to_json(),
            "pause": None if self.pause is None else self.pause.to_json(),
            "frontend": str(self.frontend),
            "call_id": self.call_id,
            "linkedid": self.linkedid,
            "layout": self.layout,
            "on_failure": self.on_failure,
            "updated": self.updated,
        }
        if self.recording is not None:
            out["recording"] = {**dataclasses.asdict(self.recording), "file": self.recording.file}
        return out

    @classmethod
    def from_json(cls, data: Any, where: str) -> LiveCall:
        """Parse one record; :class:`LiveRecordError` names the first bad key."""
        r = _Reader(data, where)
        if r.get("schema", int) != SCHEMA_VERSION:
            raise LiveRecordError(where, f"schema {data.get('schema')!r} is not {SCHEMA_VERSION}")
        tap, recording, continues = r.sub("tap"), r.sub("recording"), r.sub("continues")
        pause = r.sub("pause")
        return cls(
            call=check_call_id(r.get("call", str), where),
            app=r.get("app", str),
            state=r.enum("state", LiveState),
            started=r.number("started"),
            pseudonym=r.get("pseudonym", str),
            dialled=r.get("dialled", str),
            pbx_boot=r.opt("pbx_boot", str),
            playback=r.opt("playback", str),
            decision=None if r.opt("decision", str) is None else r.enum("decision", Decision),
            consent=r.opt("consent", dict),
            destination=r.opt("destination", str),
            bridge=r.opt("bridge", str),
            bridged_at=r.opt_number("bridged_at"),
            tap=None if tap is None else _tap_ids(tap),
            recording=None if recording is None else _part(recording),
            continues=None if continues is None else _continues(continues),
            pause=None if pause is None else _pause(pause),
            frontend=r.enum("frontend", Frontend) if "frontend" in r.data else Frontend.ARI,
            call_id=r.opt("call_id", str),
            linkedid=r.opt("linkedid", str),
            layout=r.choice("layout", CHANNEL_MODES),
            on_failure=r.choice("on_failure", get_args(FailurePolicy)),
            updated=r.opt_number("updated") or 0.0,
        )


class _Reader:
    """Typed access to one JSON object, naming the key when a value is wrong."""

    def __init__(self, data: Any, where: str, prefix: str = "") -> None:
        if not isinstance(data, dict):
            raise LiveRecordError(where, f"{prefix.rstrip('.') or 'record'} is not a JSON object")
        self.data, self.where, self.prefix = data, where, prefix

    def _bad(self, key: str, what: str) -> LiveRecordError:
        return LiveRecordError(self.where, f"{self.prefix}{key}: {what}")

    def get(self, key: str, kind: type[Any]) -> Any:
        value = self.data.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise self._bad(key, f"missing or not a {kind.__name__}")
        return value

    def sub(self, key: str) -> _Reader | None:
        """The nested object under ``key``, or None when it is null."""
        value = self.data.get(key)
        return None if value is None else _Reader(value, self.where, f"{self.prefix}{key}.")

    def opt(self, key: str, kind: type[Any]) -> Any:
        return None if self.data.get(key) is None else self.get(key, kind)

    def number(self, key: str) -> Any:
        value = self.data.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self._bad(key, "missing or not a number")
        return value

    def opt_number(self, key: str) -> float | None:
        return None if self.data.get(key) is None else float(self.number(key))

    def choice(self, key: str, allowed: tuple[str, ...]) -> Any:
        """One of ``allowed``, or None when absent."""
        value = self.opt(key, str)
        if value is not None and value not in allowed:
            raise self._bad(key, f"unknown value {value[:40]!r}")
        return value

    def enum(self, key: str, kind: type[StrEnum]) -> Any:
        value = self.get(key, str)
        try:
            return kind(value)
        except ValueError:
            raise self._bad(key, f"unknown value {value[:40]!r}") from None


def _tap_ids(r: _Reader) -> TapIds:
    heard = (r.opt(key, str) for key in ("heard_snoop", "heard_media", "heard_bridge"))
    return TapIds(r.get("snoop", str), r.get("media", str), r.get("bridge", str), *heard)


def _part(r: _Reader) -> LivePart:
    sealed = r.opt("sealed", str)
    return LivePart(r.get("id", str), int(r.number("part")), r.number("started"), sealed)


def _continues(r: _Reader) -> Continues:
    path = r.opt("path", str)
    return Continues(r.get("call", str), r.get("recording_id", str), path, int(r.number("part")))


def _pause(r: _Reader) -> OpenPause:
    return OpenPause(r.number("start"), r.enum("source", PauseSource), r.opt_number("resume_by"))


def check_call_id(call_id: str, where: str) -> str:
    """``call_id`` if it can name a record file, else :class:`LiveRecordError`."""
    if not _CALL_ID.match(call_id):
        raise LiveRecordError(where, f"call id {call_id[:40]!r} cannot name a record")
    return call_id


# --- the consent evidence, without the personal fields -------------------


def consent_of(evidence: Evidence) -> dict[str, Any]:
    """What a continuation needs of the consent evidence: prompt, policy, timeline."""
    return {
        "prompt_id": evidence.prompt_id,
        "prompt_sha256": evidence.prompt_sha256,
        "language": evidence.language,
        "policy": dict(evidence.policy),
        "timeline": dataclasses.asdict(evidence.timeline),
    }


def restore_consent(evidence: Evidence, call: LiveCall) -> None:
    """Put a record's consent decision, prompt, policy and timeline into ``evidence``."""
    consent = call.consent or {}
    evidence.decision = call.decision
    for key in ("prompt_id", "prompt_sha256", "language"):
        value = consent.get(key)
        if isinstance(value, str):
            setattr(evidence, key, value)
    if isinstance(consent.get("policy"), dict):
        evidence.policy = dict(consent["policy"])
    timeline = ConsentTimeline()
    saved = consent.get("timeline")
    for f in dataclasses.fields(ConsentTimeline):
        value = saved.get(f.name) if isinstance(saved, dict) else None
        if f.name == "digits" and isinstance(value, list):
            timeline.digits = [(str(d), float(at)) for d, at in value]
        elif value is not None:
            setattr(timeline, f.name, value)
    evidence.timeline = timeline


# --- the folder ------------------------------------------------------------


class LiveStore:
    """``<spool>/live``: one record per live call."""

    def __init__(self, spool_root: Path) -> None:
        self.folder = Path(spool_root) / LIVE_DIR

    def ensure(self) -> None:
        """Create the folder (0700); :class:`~callrec.errors.SpoolError` says why not."""
        ensure_private_dir(self.folder)

    def path(self, call_id: str) -> Path:
        return self.folder / f"{check_call_id(call_id, str(self.folder))}{LIVE_SUFFIX}"

    def save(self, call: LiveCall) -> None:
        """Write the record whole (0600), replacing the last one; :class:`LiveRecordError`."""
        path = self.path(call.call)
        data = json.dumps(call.to_json(), sort_keys=True, ensure_ascii=True).encode("ascii")
        try:
            ensure_private_dir(self.folder)
            write_file_atomic(path, data + b"\n", 0o600, replace=True)
        except CallrecError as exc:
            raise LiveRecordError(str(path), str(exc)) from None
        except OSError as exc:
            raise LiveRecordError(str(path), spool_error(path, exc).message) from None

    def remove(self, call_id: str) -> None:
        """Forget a call that ended; a record already gone is fine."""
        path = self.path(call_id)
        try:
            path.unlink(missing_ok=True)
            with contextlib.suppress(FileNotFoundError):
                fsync_dir(self.folder)
        except OSError as exc:
            raise LiveRecordError(str(path), spool_error(path, exc).message) from None

    def load(self) -> tuple[list[LiveCall], list[LiveRecordError]]:
        """Every record here, oldest call first, and why any other file is unusable."""
        try:
            entries = sorted(self.folder.iterdir())
        except FileNotFoundError:
            return [], []
        except OSError as exc:
            return [], [LiveRecordError(str(self.folder), spool_error(self.folder, exc).message)]
        calls, problems = [], []
        for path in entries:
            if not path.name.endswith(LIVE_SUFFIX) or path.name.startswith("."):
                continue  # an atomic write's temporary file, or not ours
            try:
                calls.append(self._read(path))
            except LiveRecordError as exc:
                problems.append(exc)
        return sorted(calls, key=lambda c: (c.started, c.call)), problems

    def discard(self, path: Path) -> None:
        """Remove an unusable record (its problem is logged and audited by the caller)."""
        if path.parent == self.folder:
            path.unlink(missing_ok=True)

    def _read(self, path: Path) -> LiveCall:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as f:
                raw = f.read(MAX_RECORD_BYTES + 1)
        except OSError as exc:
            raise LiveRecordError(str(path), spool_error(path, exc).message) from None
        if len(raw) > MAX_RECORD_BYTES:
            raise LiveRecordError(str(path), f"larger than {MAX_RECORD_BYTES} bytes")
        try:
            data = json.loads(raw)
        except ValueError:
            raise LiveRecordError(str(path), "not valid JSON") from None
        call = LiveCall.from_json(data, str(path))
        if path.name != f"{call.call}{LIVE_SUFFIX}":
            raise LiveRecordError(str(path), f"names call {call.call!r}, not its file name")
        return call
