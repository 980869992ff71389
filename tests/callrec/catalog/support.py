"""Real audit lines and real recordings for the catalogue tests.

A :class:`Recorder` is what ``callrec serve`` leaves behind for the
catalogue: a spool with sealed ``.crec`` files and an audit log whose lines
were written by the real :class:`~callrec.audit.AuditLog` from the real
evidence, on a clock the test moves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callrec.audit import AuditLog, audit_record
from callrec.clock import ManualClock
from callrec.consent import Decision
from callrec.crypto.keys import PrivateKey
from callrec.crypto.signing import SigningKey
from callrec.evidence import Evidence
from callrec.media.g711 import ulaw_encode
from callrec.recording import Codec, RecordingWriter
from callrec.spool import Spool
from tests.callrec.cli_support import speech_like

# 2026-12-01T00:00:00Z: the day the tests' calls are made.
DAY0 = 1_796_083_200.0


@dataclass
class Recorder:
    """One recorder's spool, keys and audit log, on a clock of its own."""

    root: Path
    recorder_id: str = "pbx1"
    signed: bool = False
    # Recorders sharing a catalogue share the pseudonym key, or a caller's calls never match.
    pseudonym_key: bytes = field(default_factory=lambda: os.urandom(32))
    clock: ManualClock = field(default_factory=lambda: ManualClock(DAY0))

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.key = PrivateKey.generate()
        self.key_path = self.root / "dpo.key"
        self.key.save(self.key_path)
        self.pub = self.key.public_key()
        self.pseudonym_path = self.root / "pseudonym.key"
        self.pseudonym_path.write_bytes(self.pseudonym_key)
        self.signer = SigningKey.generate() if self.signed else None
        self.spool = Spool(self.root / "spool")
        self.audit_path = self.root / "audit.jsonl"
        self.audit = AuditLog(self.audit_path, [self.pub], clock=self.clock, signer=self.signer)
        self._calls = 0

    def call(
        self,
        number: str = "+4930123456",
        dialled: str = "100",
        decision: Decision = Decision.IMPLIED,
        *,
        recorded: bool = True,
        seconds: float = 1.0,
        after: float = 60.0,
        **extra: Any,
    ) -> dict[str, Any]:
        """One call, ``after`` seconds after the last; its audit line as written."""
        self.clock.advance(after)
        self._calls += 1
        uniqueid = f"{int(self.clock.wall())}.{self._calls}"
        evidence = Evidence.for_call(
            uniqueid=uniqueid, linkedid=uniqueid, caller_number=number,
            caller_name="Erika Mustermann", dialled=dialled, language="en",
            pseudonym_key=self.pseudonym_key,
        )  # fmt: skip
        evidence.decision = decision
        fields: dict[str, Any] = {}
        durations = {"call": seconds + 3.0}
        if recorded:
            evidence.recording_started_at = self.clock.wall()
            seal = self.seal(seconds)
            evidence.recording_ended_at = self.clock.wall()
            fields = dict(
                recording_id=seal.recording_id, path=str(seal.path), sealed=True,
                segments=seal.segments, last_tag_sha256=seal.last_tag_sha256, size=seal.size,
                recording_signer=seal.signer,
            )  # fmt: skip
            durations |= {"recording": seconds, "audio": seal.audio_seconds}
        record = audit_record(
            "call", evidence=evidence, durations=durations, channel=uniqueid,
            end="caller-hangup", **fields, **extra,
        )  # fmt: skip
        return self.audit.append(record, dict(evidence.personal))

    def seal(self, seconds: float = 1.0) -> Any:
        """A real sealed recording in the dated spool (made now on the clock)."""
        writer = RecordingWriter.create(
            self.spool.incoming, [self.pub], codec=Codec.ULAW, sample_rate=8000,
            created_at=self.clock.wall(), clock=self.clock, signer=self.signer,
        )  # fmt: skip
        writer.write_audio(ulaw_encode(speech_like(8000, seconds, seed=self._calls)))
        self.clock.advance(seconds)
        final = self.spool.final_path(writer.header.recording_id, self.clock.wall())
        final.parent.mkdir(parents=True, exist_ok=True)
        return writer.close(final_path=final)

    def lines(self) -> list[dict[str, Any]]:
        from callrec.audit import read_audit

        return list(read_audit(self.audit_path))
