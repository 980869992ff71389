"""Recorders without a PBX: real sealed files and real audit lines, for erasure across recorders.

Each :class:`Recorder` has its own config, spool and audit log and shares
one SQLite catalogue with the others, as two ``callrec serve`` hosts share
one PostgreSQL catalogue. A call is what the app would leave: a sealed
recording in the dated spool, its ``call`` audit line (personal fields
sealed, the pseudonym in ``evidence.caller``), and its catalogue entry.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from callrec.audit import AuditLog, audit_record
from callrec.catalog import Catalog
from callrec.config import Config, load_config
from callrec.consent import Decision
from callrec.crypto.keys import PrivateKey, PublicKey, load_pseudonym_key
from callrec.evidence import Evidence
from callrec.media.g711 import ulaw_encode
from callrec.recording import Codec, RecordingWriter
from tests.callrec.cli_support import speech_like


@dataclass
class Recorder:
    folder: Path
    recorder_id: str
    config_path: Path

    @classmethod
    def make(cls, folder: Path, recorder_id: str, shared: Path, key: PrivateKey) -> Recorder:
        """A recorder in ``folder``; ``shared`` holds the catalogue and the keys all use."""
        folder.mkdir(parents=True)
        config = folder / "callrec.toml"
        config.write_text(
            f'[recording]\nspool = "{folder / "spool"}"\nrecipients = ["{shared / "dpo.pub"}"]\n'
            f'[privacy]\npseudonym_key = "{shared / "pseudonym.key"}"\n'
            f'audit_log = "{folder / "audit.jsonl"}"\n'
            f'[catalog]\nurl = "sqlite:///{shared / "catalog.sqlite3"}"\n'
            f'recorder_id = "{recorder_id}"\n'
        )
        if not (shared / "dpo.pub").exists():
            (shared / "dpo.pub").write_text(key.public_key().to_text())
            (shared / "pseudonym.key").write_bytes(bytes(range(32)))
            (shared / "pseudonym.key").chmod(0o600)
        return cls(folder, recorder_id, config)

    @property
    def config(self) -> Config:
        return load_config(self.config_path, check_files=False, need_ari=False)

    @property
    def audit_path(self) -> Path:
        return self.folder / "audit.jsonl"

    def call(
        self, number: str, dialled: str = "100", uniqueid: str | None = None
    ) -> tuple[str, Path]:
        """A recorded call from ``number``: (recording id, sealed file).

        ``uniqueid``: the call id Asterisk gave it (two PBXs may give the same one).
        """
        config = self.config
        evidence = Evidence.for_call(
            uniqueid=uniqueid or f"{time.time():.6f}",
            linkedid="-",
            caller_number=number,
            caller_name="Caller",
            dialled=dialled,
            language="en",
            pseudonym_key=load_pseudonym_key(config.privacy.pseudonym_key),
        )
        evidence.decision = Decision.IMPLIED
        day = config.recording.spool / time.strftime("%Y/%m/%d", time.gmtime())
        day.mkdir(parents=True, exist_ok=True)
        recipients = [PublicKey.load(p) for p in config.recording.recipients]
        writer = RecordingWriter.create(day, recipients, codec=Codec.ULAW, sample_rate=8000)
        writer.write_metadata(evidence.to_record())
        writer.write_audio(ulaw_encode(speech_like(8000, 1.0)))
        seal = writer.close()
        line = self._audit(evidence, seal.recording_id, seal.path)
        catalog = Catalog.from_config(config)
        try:
            catalog.record_call(line)
        finally:
            catalog.close()
        return seal.recording_id, seal.path

    def _audit(self, evidence: Evidence, recording_id: str, path: Path) -> dict[str, Any]:
        record = audit_record(
            "call",
            evidence=evidence,
            recording_id=recording_id,
            durations={"call": 3.0, "audio": 1.0},
            channel=evidence.uniqueid,
            end="caller-hangup",
            path=str(path),
            sealed=True,
        )
        log = AuditLog(self.audit_path, self.config.recipient_keys())
        return log.append(record, evidence.personal)


def make_older(catalog: Catalog, days: int) -> None:
    """Make every catalogued call and recording ``days`` older, as if made that long ago.

    Retention judges by the catalogue's times, and ``retention run`` only
    deletes as of now: this is how a test lets time pass.
    """
    with catalog._db().transaction() as cur:
        for table, key in (("calls", "call_id"), ("recordings", "recording_id")):
            rows = cur.run(f"SELECT {key}, started, ended FROM {table}")  # noqa: S608
            for ident, started, ended in rows:
                cur.run(
                    f"UPDATE {table} SET started = ?, ended = ? WHERE {key} = ?",  # noqa: S608
                    (_earlier(started, days), _earlier(ended, days), ident),
                )


def _earlier(stored: str | None, days: int) -> str | None:
    if stored is None:
        return None
    earlier = datetime.fromisoformat(stored) - timedelta(days=days)
    return earlier.isoformat(timespec="milliseconds")
