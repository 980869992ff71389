"""``callrec audit verify`` as a monitoring script and an admin see it: exit codes and wording."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from callrec.audit import AuditLog, audit_record
from callrec.crypto.signing import SigningKey
from callrec.dpo.scrub import erase_personal, scrub_audit_log
from tests.callrec.cli_support import KeyPair, Run, run

ALICE = "p1:" + "a" * 32
STRIPPED = "nothing proves who wrote it (its chain stripped, or forged before the chain)"


@pytest.fixture
def recorder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> KeyPair:
    result = run(capsys, "keygen", "--signing", "--out", tmp_path / "rec", "--name", "pbx1")
    assert result.code == 0, result.err
    return KeyPair(tmp_path / "rec" / "pbx1.sign.pub", tmp_path / "rec" / "pbx1.sign.key")


def _log(path: Path, recorder: KeyPair, reasons: tuple[str, ...]) -> AuditLog:
    log = AuditLog(path, [], signer=SigningKey.load(recorder.key))
    for reason in reasons:
        record = audit_record("call", reason=reason)
        record["evidence"] = {"caller": ALICE, "dialled": "100"}
        log.append(record)
    return log


def _verify(capsys: pytest.CaptureFixture[str], path: Path, *argv: str | Path) -> Run:
    return run(capsys, "audit", "verify", path, *argv)


def test_a_torn_line_is_named_and_the_rest_still_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], recorder: KeyPair
) -> None:
    path = tmp_path / "audit.jsonl"
    log = _log(path, recorder, ("one",))
    with path.open("ab") as f:
        f.write(b'{"event":"call","decis')  # the recorder crashed mid-write
    for reason in ("two", "three"):
        log.append(audit_record("call", reason=reason))
    torn = _verify(capsys, path, "--signer", recorder.pub)
    assert torn.code == 3, torn.out
    out = torn.out.splitlines()
    assert out[0] == (
        f"{path}: line 2: torn write (a line cut short by a crash mid-write): stepped over, "
        "the next line must chain to the one before it"
    )
    assert out[1] == f"{path}: chain intact: 3 line(s), seq 1..3"
    assert "torn: 1 line(s) cut short by a crash (line 2)" in torn.out

    # A line deleted after the torn one is still found: tampering wins (exit 4).
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:2] + lines[3:]))
    cut = _verify(capsys, path, "--signer", recorder.pub)
    assert cut.code == 4
    assert f"{path}: line 3: seq 3 where 2 was expected" in cut.out


def test_signer_refuses_a_log_without_its_chain_unless_the_old_lines_are_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], recorder: KeyPair
) -> None:
    path = tmp_path / "audit.jsonl"
    old = b'{"event":"service","id":"00","reason":"start","schema":1}\n'
    path.write_bytes(old * 2)
    _log(path, recorder, ("one", "two"))

    refused = _verify(capsys, path, "--signer", recorder.pub)
    assert refused.code == 4
    assert refused.out.startswith(f"{path}: line 1: an unchained line (not allowed): {STRIPPED}")
    allowed = _verify(capsys, path, "--signer", recorder.pub, "--allow-unchained", "2")
    assert allowed.code == 0, allowed.out
    assert "unprotected: 2 line(s) before the chain started" in allowed.out
    # One forged above what the admin allowed is named.
    path.write_bytes(old + path.read_bytes())
    forged = _verify(capsys, path, "--signer", recorder.pub, "--allow-unchained", "2")
    assert forged.code == 4
    assert forged.out.startswith(f"{path}: line 3: an unchained line (more than the 2 allowed)")
    # Without --signer the origin is not checked: counted, as before.
    assert _verify(capsys, path).code == 0

    # Every chain key stripped: nothing is chained, nothing signed.
    path.write_bytes(old * 3)
    nothing = _verify(capsys, path, "--signer", recorder.pub, "--allow-unchained", "3")
    assert (nothing.code, nothing.out.splitlines()) == (
        4,
        [
            f"{path}: no chained line: nothing in it is signed (a chain stripped?)",
            "0 chained line(s) verified",
        ],
    )
    with pytest.raises(SystemExit) as usage:
        _verify(capsys, path, "--allow-unchained", "-1")
    assert usage.value.code == 2
    assert "--allow-unchained: not a number of lines: '-1'" in capsys.readouterr().err


def test_an_erasure_verifies_and_a_faked_one_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], recorder: KeyPair
) -> None:
    path = tmp_path / "audit.jsonl"
    _log(path, recorder, ("one", "two"))
    assert scrub_audit_log(path, ALICE, order="5", signer=SigningKey.load(recorder.key)) == 2
    erased = _verify(capsys, path, "--signer", recorder.pub)
    assert erased.code == 0, erased.out
    assert "erased: 2 line(s) without their personal fields (attested: erasure order 5)" in (
        erased.out
    )

    # Someone who can write the log, without the key, strips a new line's fields.
    _log(path, recorder, ("three",))
    lines = path.read_bytes().splitlines(keepends=True)
    line = erase_personal(json.loads(lines[2]))
    lines[2] = json.dumps(line, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    path.write_bytes(b"".join(lines))
    faked = _verify(capsys, path, "--signer", recorder.pub)
    assert faked.code == 4
    assert faked.out.splitlines()[0] == (
        f"{path}: line 3: personal fields removed without an erasure attestation: "
        "not erased by callrec"
    )
