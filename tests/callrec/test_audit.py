"""The audit log: durable JSON lines, personal fields only sealed, hostile text escaped."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from callrec.audit import AuditError, AuditLog, audit_record, open_personal, read_audit
from callrec.clock import ManualClock
from callrec.consent import Decision
from callrec.crypto.keys import PrivateKey
from callrec.errors import FormatError, NoMatchingKeyError
from callrec.evidence import Evidence

KEY = bytes(range(32))
NUMBER = "+4930123456"
HOSTILE_NAME = 'Bob\r\n{"event":"fake"}\x1b[2J\x7f\'../../etc/passwd\' Ünal 🎧 ' + "x" * 600


def _evidence(name: str = "Alice", dialled: str = "100") -> Evidence:
    evidence = Evidence.for_call(
        uniqueid="1795915759.31",
        linkedid="1795915759.30",
        caller_number=NUMBER,
        caller_name=name,
        dialled=dialled,
        language="en",
        pseudonym_key=KEY,
    )
    evidence.decision = Decision.IMPLIED
    return evidence


@pytest.fixture
def dpo() -> PrivateKey:
    return PrivateKey.generate()


def test_a_call_line_hides_personal_fields_that_the_dpo_can_open(
    tmp_path: Path, dpo: PrivateKey
) -> None:
    path = tmp_path / "log" / "audit.jsonl"
    log = AuditLog(path, [dpo.public_key()], clock=ManualClock())
    evidence = _evidence()
    written = log.append(
        audit_record(
            "call", evidence=evidence, recording_id="ab" * 16, segments=3,
            durations={"call": 12.5, "recording": 10.0}, packets={"received": 500, "lost": 0},
            last_tag_sha256="cd" * 32,
        ),
        evidence.personal,
    )  # fmt: skip
    raw = path.read_bytes()
    assert NUMBER.encode() not in raw
    assert b"Alice" not in raw
    [line] = read_audit(path)
    assert line == written
    assert line["schema"] == 2
    assert line["time"] == "2026-11-29T00:00:00.000+00:00"
    assert (line["event"], line["decision"], line["recording_id"]) == (
        "call",
        "implied",
        "ab" * 16,
    )
    assert line["evidence"]["caller"] == evidence.caller_pseudonym
    assert line["segments"] == 3
    assert open_personal(line, [dpo]) == {"caller_number": NUMBER, "caller_name": "Alice"}


def test_the_file_is_private(tmp_path: Path, dpo: PrivateKey) -> None:
    path = tmp_path / "new" / "deeper" / "audit.jsonl"
    AuditLog(path, [dpo.public_key()]).append(audit_record("service", reason="start"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700


def test_an_existing_world_readable_file_is_made_private(tmp_path: Path, dpo: PrivateKey) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text("")
    path.chmod(0o644)
    AuditLog(path, [dpo.public_key()]).append(audit_record("service", reason="start"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_other_keys_cannot_open_and_envelopes_cannot_move(tmp_path: Path, dpo: PrivateKey) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, [dpo.public_key()])
    first = log.append(audit_record("call", evidence=_evidence("Alice")), {"caller_name": "Alice"})
    second = log.append(audit_record("call", evidence=_evidence("Bob")), {"caller_name": "Bob"})
    with pytest.raises(NoMatchingKeyError):
        open_personal(first, [PrivateKey.generate()])
    swapped = {**second, "personal_sealed": first["personal_sealed"]}
    with pytest.raises(FormatError):
        open_personal(swapped, [dpo])
    with pytest.raises(AuditError, match="no sealed personal fields"):
        open_personal(audit_record("service"), [dpo])


def test_several_recipients_each_open_it(tmp_path: Path, dpo: PrivateKey) -> None:
    archive = PrivateKey.generate()
    log = AuditLog(tmp_path / "audit.jsonl", [dpo.public_key(), archive.public_key()])
    line = log.append(audit_record("call"), {"caller_number": NUMBER})
    assert (
        open_personal(line, [dpo]) == open_personal(line, [archive]) == {"caller_number": NUMBER}
    )


def test_hostile_text_arrives_escaped_in_one_ascii_line(tmp_path: Path, dpo: PrivateKey) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, [dpo.public_key()])
    evidence = _evidence(name=HOSTILE_NAME, dialled='1"00\n../\x00')
    log.append(
        audit_record("failure", evidence=evidence, reason=f"bad variable {HOSTILE_NAME}"),
        evidence.personal,
    )
    log.append(audit_record("service", reason="stop"))
    raw = path.read_bytes()
    assert raw.count(b"\n") == 2  # exactly one line each: nothing forged a line break
    assert all(32 <= b < 127 for b in raw.replace(b"\n", b""))
    assert b"\\u001b" in raw
    assert b"\\r\\n" in raw
    first, second = read_audit(path)
    assert first["reason"] == f"bad variable {HOSTILE_NAME}"
    assert first["evidence"]["dialled"] == '1"00\n../\x00'
    assert open_personal(first, [dpo])["caller_name"] == HOSTILE_NAME
    assert second["reason"] == "stop"
    assert "fake" not in [line.get("event") for line in (first, second)]


def test_without_a_recipient_personal_fields_are_dropped_not_written(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    line = AuditLog(path, []).append(audit_record("call"), {"caller_number": NUMBER})
    assert NUMBER.encode() not in path.read_bytes()
    assert "personal_sealed" not in line
    assert line["personal_error"] == "not sealed: no recipient public key"
    assert next(read_audit(path))["event"] == "call"


def test_a_folder_removed_between_lines_is_made_again(tmp_path: Path, dpo: PrivateKey) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    log = AuditLog(path, [dpo.public_key()])
    log.append(audit_record("service", reason="start"))
    path.unlink()
    path.parent.rmdir()
    log.append(audit_record("service", reason="stop"))
    assert [line["reason"] for line in read_audit(path)] == ["stop"]
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_full_disk_is_an_audit_error() -> None:
    log = AuditLog(Path("/dev/full"), [])
    with pytest.raises(AuditError) as err:
        log.append(audit_record("service"))
    assert str(err.value) == "audit log /dev/full: disk full"


def test_a_file_where_the_folder_should_be(tmp_path: Path) -> None:
    (tmp_path / "log").write_text("")
    with pytest.raises(AuditError) as err:
        AuditLog(tmp_path / "log" / "audit.jsonl", []).append(audit_record("service"))
    assert err.value.message == "a parent is a file, not a folder"


def test_a_torn_last_line_is_reported_after_the_good_ones(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    AuditLog(path, []).append(audit_record("service", reason="start"))
    with path.open("ab") as f:
        f.write(b'{"schema":1,"ev')
    lines = read_audit(path)
    assert next(lines)["reason"] == "start"
    with pytest.raises(AuditError) as err:
        next(lines)
    assert str(err.value) == f"audit log {path}: line 2: not valid JSON"


def test_record_has_every_schema_key() -> None:
    record = audit_record("recording-adopted", recording_id="ef" * 16, path="/spool/x.crec.part")
    assert set(record) == {
        "event", "recording_id", "decision", "evidence", "durations", "packets", "segments",
        "last_tag_sha256", "reason", "path",
    }  # fmt: skip
    assert json.loads(json.dumps(record)) == record
