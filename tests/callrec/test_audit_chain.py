"""The audit chain: every edit, deletion, move and forgery is found and its line named."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from callrec.audit import AuditLog, audit_record, open_personal, read_audit
from callrec.audit_chain import GENESIS, BadLine, ChainReport, line_digest, verify_chain
from callrec.crypto.keys import PrivateKey
from callrec.crypto.signing import SigningKey
from callrec.evidence import Evidence

DPO = PrivateKey.generate()
RECORDER = SigningKey.generate()
TRUSTED = {RECORDER.public_key().key_id}
NUMBER = "+4930123456"


def _evidence() -> Evidence:
    return Evidence.for_call(
        uniqueid="1795915759.31",
        linkedid="1795915759.30",
        caller_number=NUMBER,
        caller_name="Alice",
        dialled="100",
        language="en",
        pseudonym_key=bytes(range(32)),
    )


def _log(path: Path, lines: int = 5, signer: SigningKey | None = RECORDER) -> list[bytes]:
    log = AuditLog(path, [DPO.public_key()], signer=signer)
    for i in range(lines):
        evidence = _evidence()
        log.append(audit_record("call", evidence=evidence, reason=f"call {i}"), evidence.personal)
    return path.read_bytes().splitlines(keepends=True)


def _check(path: Path, trusted: set[bytes] | None = TRUSTED) -> ChainReport:
    return verify_chain(_numbered(path), trusted)


def _numbered(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as f:
        yield from enumerate(f, 1)


def _edit(raw: bytes, **changes: Any) -> bytes:
    line = json.loads(raw)
    line.update(changes)
    return json.dumps(line, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def test_every_line_is_chained_and_signed(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _log(path)
    lines = list(read_audit(path))
    assert [line["seq"] for line in lines] == [1, 2, 3, 4, 5]
    assert lines[0]["prev"] == GENESIS
    assert [line["prev"] for line in lines[1:]] == [line_digest(line) for line in lines[:-1]]
    report = _check(path)
    assert report.bad is None
    assert (report.chained, report.signed, report.signers) == (5, 5, {RECORDER.fingerprint})
    assert report.head.seq == 5
    # The personal fields are still sealed for the DPO and bound to their line.
    assert open_personal(lines[2], [DPO])["caller_number"] == NUMBER


def test_an_edited_signed_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = _log(path)
    lines[2] = _edit(lines[2], decision="explicit")
    path.write_bytes(b"".join(lines))
    bad = _check(path).bad
    assert bad is not None and bad.number == 3
    assert bad.message.startswith("signature does not verify: the line was edited")


def test_an_edit_in_an_unsigned_log_breaks_the_next_link(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = _log(path, signer=None)
    lines[1] = _edit(lines[1], reason="nothing happened")
    path.write_bytes(b"".join(lines))
    assert _check(path, None).bad == BadLine(
        3, "prev does not match the line before it: that line was edited, or lines were swapped"
    )


def test_a_deleted_line_is_named_by_the_line_after_the_gap(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = _log(path)
    path.write_bytes(b"".join(lines[:2] + lines[3:]))
    assert _check(path).bad == BadLine(
        3, "seq 4 where 3 was expected: 1 line(s) before it deleted or moved"
    )
    path.write_bytes(b"".join(lines[1:]))  # the first line gone
    assert _check(path).bad == BadLine(
        1, "seq 2 where 1 was expected: 1 line(s) before it deleted or moved"
    )


def test_reordered_lines_are_named(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = _log(path)
    path.write_bytes(b"".join([lines[0], lines[2], lines[1], *lines[3:]]))
    assert _check(path).bad == BadLine(
        2, "seq 3 where 2 was expected: 1 line(s) before it deleted or moved"
    )
    path.write_bytes(b"".join([*lines, lines[1]]))  # a line copied to the end
    assert _check(path).bad == BadLine(6, "seq 2 where 6 was expected: moved here or duplicated")


def test_a_line_forged_without_the_key_is_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _log(path)
    # Someone who can write the log appends through callrec itself, with another key ...
    AuditLog(path, [DPO.public_key()], signer=SigningKey.generate()).append(
        audit_record("service", reason="stop")
    )
    bad = _check(path).bad
    assert bad is not None and bad.number == 6
    assert bad.message.startswith("not signed by a trusted recorder (signed by ")
    assert _check(path, None).bad is None  # a chain, but its origin is not checked
    # ... or with no key at all.
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:5]))
    AuditLog(path, [DPO.public_key()]).append(audit_record("service", reason="stop"))
    assert _check(path).bad == BadLine(
        6, "not signed by a trusted recorder (the line is unsigned)"
    )


def test_erasing_the_personal_fields_keeps_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = _log(path)
    line = json.loads(lines[1])
    del line["personal_sealed"], line["personal_salt"], line["evidence"]["caller"]
    lines[1] = json.dumps(line, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    path.write_bytes(b"".join(lines))
    erased = path.read_bytes()
    assert NUMBER.encode() not in erased
    assert _evidence().caller_pseudonym.encode() not in erased.splitlines()[1]
    report = _check(path)
    assert (report.bad, report.chained, report.erased) == (None, 5, 1)


def test_moved_personal_fields_are_found(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = _log(path)
    other = json.loads(lines[0])
    lines[1] = _edit(lines[1], personal_sealed=other["personal_sealed"])
    path.write_bytes(b"".join(lines))
    assert _check(path).bad == BadLine(
        2, "personal fields edited (their hash differs from personal_digest)"
    )


def test_schema_1_lines_before_the_chain_are_counted_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    old = b'{"event":"service","id":"00","reason":"start","schema":1}\n'
    path.write_bytes(old * 2)
    _log(path, 2)
    report = _check(path)
    assert (report.bad, report.legacy, report.chained) == (None, 2, 2)
    assert list(read_audit(path))[2]["seq"] == 1
    path.write_bytes(path.read_bytes() + old)  # and after the chain started: inserted
    assert _check(path).bad == BadLine(5, "an unchained line after the chain started: inserted")


def test_a_torn_line_is_stepped_over_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _log(path, 2)
    with path.open("ab") as f:
        f.write(b'{"schema":2,"ev')  # a crash in the middle of a write
    _log(path, 1)  # the next line starts on a line of its own and links to line 2
    lines = path.read_bytes().splitlines()
    assert json.loads(lines[3])["seq"] == 3
    assert _check(path).bad == BadLine(
        3, "not valid JSON (a torn write after a crash, or an edit)"
    )


_APPENDER = """
import sys
from pathlib import Path
from callrec.audit import AuditLog, audit_record
from callrec.crypto.signing import SigningKey
log = AuditLog(Path(sys.argv[1]), [], signer=SigningKey(bytes.fromhex(sys.argv[2])))
for i in range(30):
    log.append(audit_record("service", reason=f"line {i}"))
"""


def test_two_processes_appending_at_once_keep_one_chain(tmp_path: Path) -> None:
    # The app and the AGI script append to the same file: the lock keeps one chain.
    path = tmp_path / "audit.jsonl"
    seed = bytes(range(32))
    argv = [sys.executable, "-c", _APPENDER, str(path), seed.hex()]
    procs = [subprocess.Popen(argv, cwd=Path(__file__).parents[2]) for _ in range(2)]
    assert [proc.wait(timeout=60) for proc in procs] == [0, 0]
    report = _check(path, {SigningKey(seed).public_key().key_id})
    assert (report.bad, report.chained) == (None, 60)


def test_deleting_the_last_lines_leaves_a_shorter_chain(tmp_path: Path) -> None:
    # The file alone cannot show it: compare the head (seq, digest) that
    # `callrec audit verify` prints with a copy kept elsewhere.
    path = tmp_path / "audit.jsonl"
    lines = _log(path)
    path.write_bytes(b"".join(lines[:-1]))
    report = _check(path)
    assert (report.bad, report.head.seq) == (None, 4)
    assert report.head.digest == line_digest(json.loads(lines[3]))
