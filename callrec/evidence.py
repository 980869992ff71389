"""Consent evidence: what the caller heard and did, for every call.

The same :class:`Evidence` becomes the first metadata record inside the
encrypted recording (:meth:`Evidence.to_record`, which may carry the personal
fields because that record is encrypted) and part of the audit line
(:meth:`Evidence.to_audit`, never any personal field in the clear).

The caller appears as a pseudonym: ``"p1:"`` followed by the first 32 hex
digits of HMAC-SHA256(pseudonym key, ``callrec-pseudonym-v1`` NUL, normalised
number). Normalising removes spaces and the separators ``-.()/`` and turns a
leading ``00`` into ``+``; national formats stay as they are. The key lives
on the PBX: it decrypts nothing, but whoever holds it can re-identify a
number by trying every possible number, so it must be guarded like the
recordings' metadata (:func:`callrec.crypto.keys.load_pseudonym_key` reads it).

The prompt hash is the SHA-256 of the exact bytes of the prompt's canonical
WAV file, ``<sounds_dir>/<language>/<name>.wav`` (8 kHz, 16-bit), which is
the file ``Config.prompt_for`` names.

What happened to the disclosure, in both views (times ISO 8601 UTC; null
when it did not happen):

=============================  ================================================
key                            value
=============================  ================================================
``times.prompt_start``         the disclosure began to play
``times.prompt_end``           it played to its end, or a deciding digit
                               stopped it (then ``prompt_interrupted`` too)
``times.prompt_failed``,       it could not be played, so nobody consented:
``prompt_failure``             ``prompt file missing`` (not hashable, never
                               played), ``playback failed`` (the PBX could not
                               play it on a live channel), or the PBX's error
``times.prompt_interrupted``,  it was cut short while playing:
``prompt_interrupted_by``      ``caller-hangup``; ``digit`` (the opt-out or
                               accept digit); ``call-ended`` (the recorder or
                               the PBX ended the call: the audit line's
                               ``end`` says why)
=============================  ================================================

Asterisk reports a playback cut by a hang-up as ``failed`` (trace 02); that
is an interruption, never a ``prompt_failure``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from callrec import __version__
from callrec.clock import iso_utc
from callrec.consent import ConsentGate, ConsentTimeline, Decision
from callrec.errors import AudioFileError
from callrec.prompts.names import PromptRef
from callrec.spool import file_sha256

_PSEUDONYM_PREFIX = "p1:"
_PSEUDONYM_DOMAIN = b"callrec-pseudonym-v1\x00"
_SEPARATORS = re.compile(r"[\s\-.()/]")
# What a dialled number may look like; anything else (a hostile extension
# such as "../x") is no number and never reaches a config lookup.
_NUMBER = re.compile(r"\+?[0-9*#]{1,32}")
# The disclosure failures: the prompt file cannot be hashed, or the PBX could
# not play it on a live channel (one cut short by a hang-up is no failure).
PROMPT_UNHASHED = "prompt file missing"
PLAYBACK_FAILED = "playback failed"


def dialled_number(*candidates: str) -> str:
    """The first candidate that looks like a dialled number, else ``""``."""
    return next((c for c in candidates if _NUMBER.fullmatch(c)), "")


def normalise_number(number: str) -> str:
    """The caller number as pseudonymised: no separators, ``00`` as ``+``."""
    n = _SEPARATORS.sub("", number)
    if n.startswith("00"):
        n = "+" + n[2:]
    return n


def pseudonymise(number: str, key: bytes) -> str:
    """The keyed pseudonym of a caller number, e.g. ``p1:3f…`` (35 characters)."""
    data = _PSEUDONYM_DOMAIN + normalise_number(number).encode("utf-8", "surrogatepass")
    return _PSEUDONYM_PREFIX + hmac.new(key, data, hashlib.sha256).hexdigest()[:32]


def prompt_sha256(path: Path) -> str:
    """SHA-256 (hex) of the prompt file's bytes."""
    try:
        return file_sha256(Path(path))
    except OSError as exc:
        raise AudioFileError(str(path), f"cannot read prompt: {exc.strerror}") from None


def prompt_seconds(path: Path) -> float | None:
    """The length of a prompt's audio file in seconds; None when it cannot be read."""
    import soundfile as sf  # not at import: the agi-bin script never measures prompts

    try:
        info = sf.info(str(path))
    except (OSError, RuntimeError, sf.LibsndfileError):
        return None
    return float(info.frames) / float(info.samplerate or 8000)


def _iso(ts: float | None) -> str | None:
    return None if ts is None else iso_utc(ts)


def _str(value: StrEnum | None) -> str | None:
    return None if value is None else str(value)


@dataclass
class Evidence:
    """Everything needed to show what a caller heard and decided.

    ``channels`` names the call's channel ids by role (``caller``,
    ``destination``, ``snoop``, ``external_media``). ``personal`` holds the
    caller's number and name; it is only ever written encrypted.
    """

    uniqueid: str
    linkedid: str
    caller_pseudonym: str
    dialled: str
    language: str
    frontend: str = "ari"
    prompt_id: str | None = None
    prompt_sha256: str | None = None
    decision: Decision | None = None
    policy: dict[str, Any] = field(default_factory=dict)
    timeline: ConsentTimeline = field(default_factory=ConsentTimeline)
    recording_started_at: float | None = None
    recording_ended_at: float | None = None
    channels: dict[str, str] = field(default_factory=dict)
    software_version: str = __version__
    personal: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_call(
        cls,
        *,
        uniqueid: str,
        linkedid: str,
        caller_number: str,
        caller_name: str,
        dialled: str,
        language: str,
        pseudonym_key: bytes,
        frontend: str = "ari",
    ) -> Evidence:
        """Start the evidence of a call: pseudonymise the caller, keep the rest apart."""
        return cls(
            uniqueid=uniqueid,
            linkedid=linkedid,
            caller_pseudonym=pseudonymise(caller_number, pseudonym_key),
            dialled=dialled,
            language=language,
            frontend=frontend,
            personal={"caller_number": caller_number, "caller_name": caller_name},
        )

    @classmethod
    def for_disclosure(
        cls,
        gate: ConsentGate,
        prompt: PromptRef,
        *,
        uniqueid: str,
        linkedid: str,
        caller_number: str,
        caller_name: str,
        dialled: str,
        pseudonym_key: bytes,
        frontend: str,
    ) -> Evidence:
        """The evidence of a call about to hear ``prompt``, on ``gate``'s timeline.

        Its language is the prompt's, the one the caller hears (never the
        channel's raw language). ``prompt_sha256`` stays None when the file
        cannot be read: a prompt that cannot be proven must not be played,
        so the front end reports :data:`PROMPT_UNHASHED` as a failed
        disclosure (nobody consented).
        """
        evidence = cls.for_call(
            uniqueid=uniqueid,
            linkedid=linkedid,
            caller_number=caller_number,
            caller_name=caller_name,
            dialled=dialled,
            language=prompt.language,
            pseudonym_key=pseudonym_key,
            frontend=frontend,
        )
        evidence.prompt_id = f"{prompt.language}/{prompt.name}"
        evidence.policy = gate.policy.snapshot()
        # One timeline: what the gate saw is what the evidence proves.
        evidence.timeline = gate.timeline
        evidence.channels["caller"] = uniqueid
        with contextlib.suppress(AudioFileError):
            evidence.prompt_sha256 = prompt_sha256(prompt.path_wav)
        return evidence

    def to_audit(self) -> dict[str, Any]:
        """The evidence without personal fields (timestamps as ISO UTC)."""
        t = self.timeline
        return {
            "uniqueid": self.uniqueid,
            "linkedid": self.linkedid,
            "caller": self.caller_pseudonym,
            "dialled": self.dialled,
            "language": self.language,
            "frontend": self.frontend,
            "prompt": {"id": self.prompt_id, "sha256": self.prompt_sha256},
            "decision": _str(self.decision),
            "policy": dict(self.policy),
            "times": {
                "answer": _iso(t.answered_at),
                "prompt_start": _iso(t.prompt_started_at),
                "prompt_end": _iso(t.prompt_finished_at),
                "prompt_failed": _iso(t.prompt_failed_at),
                "prompt_interrupted": _iso(t.prompt_interrupted_at),
                "decision": _iso(t.decided_at),
                "hangup": _iso(t.hangup_at),
                "recording_start": _iso(self.recording_started_at),
                "recording_end": _iso(self.recording_ended_at),
            },
            "prompt_failure": t.prompt_failure,
            "prompt_interrupted_by": _str(t.prompt_interrupted_by),
            "digits": [{"digit": d, "at": iso_utc(at)} for d, at in t.digits],
            "channels": dict(self.channels),
            "software": f"callrec {self.software_version}",
        }

    def to_record(self) -> dict[str, Any]:
        """The evidence for the encrypted metadata record, personal fields included."""
        record = self.to_audit()
        record["kind"] = "consent-evidence"
        record["personal"] = dict(self.personal)
        return record
