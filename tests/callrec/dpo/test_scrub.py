"""Erasing a caller's fields from the audit log: only theirs, the chain intact, no line lost."""

from __future__ import annotations

import fcntl
import gzip
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from callrec import audit
from callrec.audit import AuditLog, audit_record, open_personal, read_audit
from callrec.audit_chain import verify_chain
from callrec.clock import ManualClock, iso_utc
from callrec.crypto.keys import PrivateKey
from callrec.crypto.signing import SigningKey
from callrec.dpo import scrub
from callrec.dpo.scrub import scrub_audit_log

ALICE, BOB = "p1:" + "a" * 32, "p1:" + "b" * 32


def _line(caller: str) -> dict[str, Any]:
    record = audit_record("call", recording_id=None, channel=caller[-4:])
    record["evidence"] = {"caller": caller, "dialled": "100"}
    return record


def _log(path: Path, key: PrivateKey) -> AuditLog:
    return AuditLog(path, [key.public_key()])


def _alice_then_bob(path: Path) -> AuditLog:
    log = _log(path, PrivateKey.generate())
    for caller in (ALICE, BOB):
        log.append(_line(caller), {"caller_number": caller[-6:]})
    return log


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


def test_a_writer_waiting_on_the_replaced_log_appends_to_the_new_one(tmp_path: Path) -> None:
    # The service opened the log, then the erasure renamed a new one over it
    # before the service got the lock: its line must go to the new log, chained.
    path = tmp_path / "audit.jsonl"
    log = _log(path, PrivateKey.generate())
    log.append(_line(ALICE), {"caller_number": "1"})
    stale = os.open(path, os.O_RDWR | os.O_APPEND)
    opened = [stale]
    late = AuditLog(path, [])
    fresh_open = late._open
    late._open = lambda: opened.pop() if opened else fresh_open()  # type: ignore[method-assign]

    assert scrub_audit_log(path, ALICE) == 1
    log.append(_line(BOB), {"caller_number": "2"})  # a writer that opened the new log
    late.append(_line(BOB))
    assert opened == []  # the stale descriptor was taken, then given up
    lines = list(read_audit(path))
    assert [line["seq"] for line in lines] == [1, 2, 3]
    assert "caller" not in lines[0]["evidence"]
    assert _verified(path) == 1


def test_the_service_appends_while_an_erasure_copies_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # serve must not wait for an erasure to copy the whole log: the lines
    # already there are copied without the writers' lock, and a line that
    # arrives meanwhile (the caller's own, too) is in the new log, erased.
    path = tmp_path / "audit.jsonl"
    log = _alice_then_bob(path)
    real = scrub._scrubbed
    appended: list[bool] = []

    def copying(raw: bytes, erasure: Any) -> bytes:
        if not appended:
            probe = os.open(path, os.O_RDONLY)
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a writer takes
                fcntl.flock(probe, fcntl.LOCK_UN)
                free = True
            except BlockingIOError:
                free = False
            finally:
                os.close(probe)
            appended.append(free)
            if free:
                log.append(_line(ALICE), {"caller_number": "late"})
        return real(raw, erasure)

    monkeypatch.setattr(scrub, "_scrubbed", copying)
    assert scrub_audit_log(path, ALICE, order="7") == 2
    assert appended == [True], "a writer had to wait for the erasure's copy"
    lines = list(read_audit(path))
    assert [line["seq"] for line in lines] == [1, 2, 3]
    assert ALICE.encode() not in path.read_bytes()
    assert _verified(path) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["audit.jsonl"]


def test_an_erasure_that_finds_the_log_replaced_copies_the_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two DPOs erase at once: the second one's copy was of a log the first
    # renamed away; it starts again on the new log and loses neither erasure.
    path = tmp_path / "audit.jsonl"
    _alice_then_bob(path)
    real = scrub.lock_current
    raced: list[int] = []

    def lock_after_another_erasure(target: Path, opener: Any) -> int:
        if not raced:
            monkeypatch.setattr(scrub, "lock_current", real)
            raced.append(scrub_audit_log(path, BOB, order="1"))
        return real(target, opener)

    monkeypatch.setattr(scrub, "lock_current", lock_after_another_erasure)
    assert scrub_audit_log(path, ALICE, order="2") == 1
    assert raced == [1]
    data = path.read_bytes()
    assert ALICE.encode() not in data and BOB.encode() not in data
    assert _verified(path) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["audit.jsonl"]


_WRITER = """
import sys
from pathlib import Path
from callrec.audit import AuditLog, audit_record
log = AuditLog(Path(sys.argv[1]), [])
for i in range(int(sys.argv[3])):
    record = audit_record("call", reason=f"{sys.argv[2]} {i}")
    record["evidence"] = {"caller": sys.argv[4 + i % 2], "dialled": "100"}
    log.append(record)
"""


def test_erasing_while_two_processes_append_loses_no_line(tmp_path: Path) -> None:
    # The app and an AGI script append while the DPO erases, again and again.
    path = tmp_path / "audit.jsonl"
    log = _log(path, PrivateKey.generate())
    log.append(_line(BOB), {"caller_number": "1"})
    each = 60
    argv = [sys.executable, "-c", _WRITER, str(path)]
    writers = [
        subprocess.Popen([*argv, name, str(each), ALICE, BOB], cwd=Path(__file__).parents[3])
        for name in ("app", "agi")
    ]
    erasures = 0
    while any(w.poll() is None for w in writers):
        erasures += scrub_audit_log(path, ALICE, order="1") > 0
    assert [w.wait(timeout=60) for w in writers] == [0, 0]
    scrub_audit_log(path, ALICE, order="1")
    lines = list(read_audit(path))
    reasons = sorted(str(line["reason"]) for line in lines[1:])
    assert reasons == sorted(f"{name} {i}" for name in ("app", "agi") for i in range(each))
    assert ALICE.encode() not in path.read_bytes()
    assert _verified(path) == each  # every Alice line erased and attested, the chain whole
    assert erasures > 0
    assert [p.name for p in tmp_path.iterdir()] == ["audit.jsonl"]


def test_an_erasure_is_attested_with_its_order_and_the_recorders_key(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    recorder = SigningKey.generate()
    log = AuditLog(path, [PrivateKey.generate().public_key()], signer=recorder)
    for caller in (ALICE, BOB):
        log.append(_line(caller), {"caller_number": caller[-6:]})
    clock = ManualClock(1_796_000_000.0)
    assert scrub_audit_log(path, ALICE, order="42", signer=recorder, clock=clock) == 1
    erased = next(read_audit(path))
    assert erased["erasure"]["order"] == "42"
    assert erased["erasure"]["time"] == iso_utc(1_796_000_000.0)
    assert erased["erasure"]["signer"] == erased["signer"]
    trusted = {recorder.public_key().key_id}
    with path.open("rb") as f:
        report = verify_chain(enumerate(f, 1), trusted)
    assert (report.bad, report.erased, report.orders) == (None, 1, {"42"})

    # Erased by an account that cannot read the recorder's key: unsigned, named by --signer.
    log.append(_line(ALICE), {"caller_number": "1"})
    assert scrub_audit_log(path, ALICE, order="43") == 1
    with path.open("rb") as f:
        bad = verify_chain(enumerate(f, 1), trusted).bad
    assert bad is not None and bad.number == 3
    assert bad.message.startswith("erasure attestation: not signed by a trusted recorder")


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
