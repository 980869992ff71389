"""The audit chain: every edit, deletion, move and forgery is found and its line named."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callrec.audit import AuditError, AuditLog, audit_record, open_personal, read_audit
from callrec.audit_chain import (
    GENESIS,
    BadLine,
    ChainReport,
    attest_erasure,
    line_digest,
    verify_chain,
)
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


def _check(
    path: Path, trusted: set[bytes] | None = TRUSTED, allow_unchained: int | None = None
) -> ChainReport:
    return verify_chain(_numbered(path), trusted, allow_unchained=allow_unchained)


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


def _erased(raw: bytes, order: str | None = "7", signer: SigningKey | None = RECORDER) -> bytes:
    line = json.loads(raw)
    del line["personal_sealed"], line["personal_salt"], line["evidence"]["caller"]
    if order is not None:
        attest_erasure(line, order, "2026-12-07T10:00:00.000Z", signer)
    return json.dumps(line, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def test_erasing_the_personal_fields_keeps_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = _log(path)
    lines[1] = _erased(lines[1])
    path.write_bytes(b"".join(lines))
    erased = path.read_bytes()
    assert NUMBER.encode() not in erased
    assert _evidence().caller_pseudonym.encode() not in erased.splitlines()[1]
    report = _check(path)
    assert (report.bad, report.chained, report.erased, report.orders) == (None, 5, 1, {"7"})


def test_personal_fields_stripped_without_an_erasure_are_named(tmp_path: Path) -> None:
    # Someone who can write the log but holds no key hides a call from the
    # caller's export by removing the fields the search finds it by.
    path = tmp_path / "audit.jsonl"
    lines = _log(path)
    path.write_bytes(b"".join([lines[0], _erased(lines[1], order=None), *lines[2:]]))
    missing = BadLine(
        2, "personal fields removed without an erasure attestation: not erased by callrec"
    )
    assert _check(path).bad == missing
    assert _check(path, None).bad == missing
    # An attestation signed with some other key, or none, proves nothing with --signer.
    path.write_bytes(b"".join([lines[0], _erased(lines[1], signer=SigningKey.generate())]))
    bad = _check(path).bad
    assert bad is not None and bad.number == 2
    assert bad.message.startswith("erasure attestation: not signed by a trusted recorder")
    path.write_bytes(b"".join([lines[0], _erased(lines[1], signer=None)]))
    bad = _check(path).bad
    assert bad is not None and "attestation: not signed by a trusted recorder" in bad.message
    assert _check(path, None).bad is None  # unsigned, as an unsigned log is: origin unchecked
    # A genuine attestation moved onto another line, or its order changed, fails.
    donor = json.loads(_erased(lines[1]))
    stripped = json.loads(_erased(lines[2], order=None))
    stripped["erasure"] = donor["erasure"]
    moved = json.dumps(stripped, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    path.write_bytes(b"".join([*lines[:2], moved]))
    bad = _check(path).bad
    assert bad is not None and bad.number == 3
    assert bad.message.startswith("erasure attestation: signature does not verify")
    donor["erasure"]["order"] = "8"
    changed = json.dumps(donor, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    path.write_bytes(b"".join([lines[0], changed]))
    bad = _check(path).bad
    assert bad is not None and bad.message.startswith("erasure attestation: signature does not")


def test_moved_personal_fields_are_found(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = _log(path)
    other = json.loads(lines[0])
    lines[1] = _edit(lines[1], personal_sealed=other["personal_sealed"])
    path.write_bytes(b"".join(lines))
    assert _check(path).bad == BadLine(
        2, "personal fields edited (their hash differs from personal_digest)"
    )


OLD = b'{"event":"service","id":"00","reason":"start","schema":1}\n'
NOT_ALLOWED = (
    "an unchained line (not allowed): nothing proves who wrote it (its chain stripped, or "
    "forged before the chain); --allow-unchained N accepts the N lines a log kept from "
    "before callrec chained them"
)


def test_schema_1_lines_before_the_chain_are_counted_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(OLD * 2)
    _log(path, 2)
    report = _check(path, None)
    assert (report.bad, report.legacy, report.chained) == (None, 2, 2)
    assert list(read_audit(path))[2]["seq"] == 1
    # Requiring a trusted recorder's signature, unchained lines need the admin's word.
    assert _check(path).bad == BadLine(1, NOT_ALLOWED)
    report = _check(path, allow_unchained=2)
    assert (report.bad, report.legacy, report.chained, report.signed) == (None, 2, 2, 2)
    bad = _check(path, allow_unchained=1).bad
    assert bad is not None and bad.number == 2
    assert bad.message.startswith("an unchained line (more than the 1 allowed)")
    path.write_bytes(path.read_bytes() + OLD)  # and after the chain started: inserted
    assert _check(path, None).bad == BadLine(
        5, "an unchained line after the chain started: inserted"
    )


def test_a_stripped_chain_or_lines_forged_above_it_fail_with_signer(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = _log(path, 3)
    # Without the key, the chain keys are stripped and a decision rewritten.
    stripped = []
    for raw in lines:
        line = json.loads(raw)
        for key in ("seq", "prev", "sig", "signer", "personal_digest", "personal_salt"):
            line.pop(key)
        stripped.append(_edit(json.dumps({**line, "schema": 1}).encode(), decision="implied"))
    path.write_bytes(b"".join(stripped))
    assert _check(path).bad == BadLine(1, NOT_ALLOWED)
    assert _check(path, allow_unchained=3).bad == BadLine(
        0, "no chained line: nothing in it is signed (a chain stripped?)"
    )
    assert _check(path, None).bad is None  # origin not checked: counted as unprotected
    # A forged unchained line on top of the genuine signed chain.
    forged = b'{"decision":"implied","event":"call","recording_id":"FORGED","schema":1}\n'
    path.write_bytes(forged + b"".join(lines))
    assert _check(path).bad == BadLine(1, NOT_ALLOWED)
    path.write_bytes(b"")
    assert _check(path).bad == BadLine(
        0, "no chained line: nothing in it is signed (a chain stripped?)"
    )


def test_a_torn_line_is_stepped_over_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _log(path, 2)
    with path.open("ab") as f:
        f.write(b'{"schema":2,"ev')  # a crash in the middle of a write
    report = _check(path)
    assert (report.bad, report.torn, report.head.seq) == (None, [3], 2)  # the file ends torn
    _log(path, 3)  # the next line starts on a line of its own and links to line 2
    lines = path.read_bytes().splitlines(keepends=True)
    assert json.loads(lines[3])["seq"] == 3
    report = _check(path)
    assert (report.bad, report.torn, report.chained, report.head.seq) == (None, [3], 5, 5)
    # What follows a torn line is still checked: a deleted or edited line is named.
    path.write_bytes(b"".join(lines[:4] + lines[5:]))
    assert _check(path).bad == BadLine(
        5, "seq 5 where 4 was expected: 1 line(s) before it deleted or moved"
    )
    path.write_bytes(b"".join([*lines[:4], _edit(lines[4], decision="explicit"), lines[5]]))
    bad = _check(path).bad
    assert bad is not None and bad.number == 5 and bad.message.startswith("signature does not")
    # A signed line replaced by something torn-looking leaves a gap the next line shows.
    path.write_bytes(b"".join([*lines[:4], b'{"schema":2,"dec\n', lines[5]]))
    report = _check(path)
    assert report.torn == [3, 5] and report.bad == BadLine(
        6, "seq 5 where 4 was expected: 1 line(s) before it deleted or moved"
    )
    # Bytes that are no start of a line callrec writes are an edit, not a crash.
    path.write_bytes(b"".join([*lines[:4], b"hello\n", *lines[4:]]))
    assert _check(path).bad == BadLine(
        5, "not valid JSON, and not a line cut short by a crash: an edit"
    )


def test_a_line_not_written_as_callrec_writes_it_is_named(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = _log(path, 3)
    noncanonical = (
        "not written as callrec writes a line (a duplicate key, spacing, key order): edited"
    )
    # A duplicate key: parsers keep the last, grep and eyes see the first.
    duplicated = b'{"decision":"declined-dtmf","recording_id":"FAKE",' + lines[1][1:]
    spaced = json.dumps(json.loads(lines[1]), sort_keys=True).encode() + b"\n"
    reordered = dict(reversed(json.loads(lines[1]).items()))
    unsorted = json.dumps(reordered, separators=(",", ":")).encode() + b"\n"
    for edited in (duplicated, spaced, unsorted):
        path.write_bytes(b"".join([lines[0], edited, lines[2]]))
        assert _check(path).bad == BadLine(2, noncanonical)
        assert _check(path, None).bad == BadLine(2, noncanonical)


def test_a_line_callrec_cannot_have_written_is_named(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = _log(path, 2)
    deep = b'{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
    for raw, why in [
        (b'{"x": NaN,' + lines[1][1:], "NaN is not a number JSON allows"),
        (b'{"x":-Infinity,' + lines[1][1:], "-Infinity is not a number JSON allows"),
        (b'{"x":' + b"[" * 40 + b"]" * 40 + b"}\n", "nested deeper than 32 levels"),
        (deep, "nested deeper than 32 levels"),
        (b"[1,2]\n", "not a JSON object"),
    ]:
        path.write_bytes(b"".join([lines[0], raw, lines[1]]))
        assert _check(path).bad == BadLine(2, f"not a line callrec writes: {why}")
        with pytest.raises(AuditError, match=f"line 2: {why}"):
            list(read_audit(path))
        # The writer steps over it as over a torn line: the chain goes on.
        path.write_bytes(lines[0] + raw)
        AuditLog(path, [], signer=RECORDER).append(audit_record("service", reason="next"))
        assert json.loads(path.read_bytes().splitlines()[2])["seq"] == 2


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
