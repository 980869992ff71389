"""Erasing a caller's fields from the audit log: only theirs, the chain intact, no line lost."""

from __future__ import annotations

import gzip
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from callrec import audit
from callrec.audit import AuditLog, audit_record, open_personal, read_audit
from callrec.audit_chain import verify_chain
from callrec.crypto.keys import PrivateKey
from callrec.dpo import scrub
from callrec.dpo.scrub import scrub_audit_log

ALICE, BOB = "p1:" + "a" * 32, "p1:" + "b" * 32


def _line(caller: str) -> dict[str, Any]:
    record = audit_record("call", recording_id=None, channel=caller[-4:])
    record["evidence"] = {"caller": caller, "dialled": "100"}
    return record


def _log(path: Path, key: PrivateKey) -> AuditLog:
    return AuditLog(path, [key.public_key()])


def _verified(path: Path) -> int:
    with path.open("rb") as f:
        report = verify_chain(enumerate(f, 1))
    assert report.bad is None, report.bad
    return report.erased


def test_only_the_callers_lines_lose_their_personal_fields(tmp_path: Path) -> None:
    key = PrivateKey.generate()
    path = tmp_path / "audit.jsonl"
    log = _log(path, key)
    for caller in (ALICE, BOB, ALICE):
        log.append(_line(caller), {"caller_number": caller[-6:]})
    before = path.read_bytes().splitlines(keepends=True)

    assert scrub_audit_log(path, ALICE) == 2
    after = path.read_bytes().splitlines(keepends=True)
    assert after[1] == before[1]  # Bob's line, byte for byte
    lines = list(read_audit(path))
    for line in (lines[0], lines[2]):
        assert "personal_sealed" not in line and "personal_salt" not in line
        assert "caller" not in line["evidence"] and line["evidence"]["dialled"] == "100"
    assert open_personal(lines[1], [key]) == {"caller_number": BOB[-6:]}
    assert _verified(path) == 2
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in tmp_path.iterdir()] == ["audit.jsonl"]  # no temporary left

    log.append(_line(BOB), {"caller_number": "1"})  # the service keeps appending
    assert _verified(path) == 2
    assert scrub_audit_log(path, "p1:" + "c" * 32) == 0


def test_torn_and_unchained_lines_stay_as_they_were(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    legacy = b'{"event":"call","evidence":{"caller":"' + ALICE.encode() + b'"},"schema":1}\n'
    path.write_bytes(legacy)
    log = _log(path, PrivateKey.generate())
    log.append(_line(ALICE), {"caller_number": "1"})
    with path.open("ab") as f:
        f.write(b'{"event":"call","evid')  # a crash mid-write
    scrub_audit_log(path, ALICE)
    data = path.read_bytes()
    assert data.endswith(b'{"event":"call","evid')
    assert b'"caller"' not in data.splitlines()[1]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_the_log_stays_the_services_when_root_erases(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _log(path, PrivateKey.generate()).append(_line(ALICE), {"caller_number": "1"})
    os.chown(path, 4321, 4321)
    scrub_audit_log(path, ALICE)
    assert (path.stat().st_uid, path.stat().st_gid) == (4321, 4321)


def test_a_line_written_while_the_log_is_replaced_is_not_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = PrivateKey.generate()
    path = tmp_path / "audit.jsonl"
    log = _log(path, key)
    log.append(_line(ALICE), {"caller_number": "1"})
    rewrite = scrub._rewrite
    writer = threading.Thread(target=lambda: log.append(_line(BOB), {"caller_number": "2"}))

    def late_writer(fd: int, target: Path, pseudonym: str) -> tuple[int, int]:
        # The service opens the old file and waits for the lock the erasure holds.
        opened = threading.Event()
        real_open = audit.AuditLog._open

        def open_then_signal(self: AuditLog) -> int:
            fd = real_open(self)
            opened.set()
            return fd

        monkeypatch.setattr(audit.AuditLog, "_open", open_then_signal)
        writer.start()
        assert opened.wait(10)
        time.sleep(0.1)  # now blocked in flock on the file about to be replaced
        return rewrite(fd, target, pseudonym)

    monkeypatch.setattr(scrub, "_rewrite", late_writer)
    assert scrub_audit_log(path, ALICE) == 1
    writer.join(10)
    lines = list(read_audit(path))
    assert [line["evidence"]["caller"] for line in lines[1:]] == [BOB]
    assert "caller" not in lines[0]["evidence"]
    assert _verified(path) == 1


def _generation(path: Path, key: PrivateKey, callers: tuple[str, ...]) -> bytes:
    """One rotation's worth of lines, written by the service, then rotated away."""
    log = _log(path, key)
    for caller in callers:
        log.append(_line(caller), {"caller_number": caller[-6:]})
    data = path.read_bytes()
    path.unlink()
    return data


def test_copies_rotated_away_lose_the_callers_fields_too(tmp_path: Path) -> None:
    """logrotate's names, compressed or not; other files and links are left alone."""
    key = PrivateKey.generate()
    path = tmp_path / "audit.jsonl"
    oldest = _generation(path, key, (ALICE, BOB))
    older = _generation(path, key, (BOB, ALICE, ALICE))
    (tmp_path / "audit.jsonl-20261201.gz").write_bytes(gzip.compress(oldest))
    (tmp_path / "audit.jsonl.1").write_bytes(older)
    (tmp_path / "audit.jsonl.bak").write_bytes(older)  # an admin's copy: not a rotation
    outside = tmp_path / "elsewhere.jsonl"
    outside.write_bytes(older)
    (tmp_path / "audit.jsonl.2").symlink_to(outside)
    _log(path, key).append(_line(BOB), {"caller_number": "1"})
    for name in ("audit.jsonl-20261201.gz", "audit.jsonl.1"):
        os.chmod(tmp_path / name, 0o600)

    assert scrub.rotated_logs(path) == [
        tmp_path / "audit.jsonl-20261201.gz",
        tmp_path / "audit.jsonl.1",
    ]
    assert scrub.scrub_rotated_logs(path, ALICE) == 3
    unpacked = gzip.decompress((tmp_path / "audit.jsonl-20261201.gz").read_bytes())
    plain = (tmp_path / "audit.jsonl.1").read_bytes()
    for scrubbed, original in ((unpacked, oldest), (plain, older)):
        assert ALICE.encode() not in scrubbed
        kept = [line for line in original.splitlines() if BOB.encode() in line]
        assert kept and all(line in scrubbed.splitlines() for line in kept)  # Bob's, byte for byte
        report = verify_chain(enumerate(scrubbed.splitlines(keepends=True), 1))
        assert report.bad is None, report.bad
    assert _verified(tmp_path / "audit.jsonl.1") == 2
    for name in ("audit.jsonl-20261201.gz", "audit.jsonl.1"):
        assert oct((tmp_path / name).stat().st_mode & 0o777) == "0o600"
    assert (tmp_path / "audit.jsonl.bak").read_bytes() == older
    assert outside.read_bytes() == older  # never through a link
    assert not [p for p in tmp_path.iterdir() if "erasing" in p.name]
    assert scrub.scrub_rotated_logs(path, ALICE) == 0  # nothing of Alice's is left


def test_a_rotated_copy_that_is_not_gzip_is_named(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    (tmp_path / "audit.jsonl.3.gz").write_bytes(b"not compressed at all\n")
    with pytest.raises(audit.AuditError) as caught:
        scrub.scrub_rotated_logs(path, ALICE)
    assert "audit.jsonl.3.gz" in str(caught.value) and "not gzip data" in str(caught.value)
    assert (tmp_path / "audit.jsonl.3.gz").read_bytes() == b"not compressed at all\n"
