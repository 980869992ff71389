"""Consent evidence: pseudonyms, prompt hashes, and what goes where."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from callrec import __version__
from callrec.clock import ManualClock
from callrec.consent import ConsentGate, ConsentPolicy
from callrec.crypto.keys import load_pseudonym_key
from callrec.errors import AudioFileError, KeyFileError
from callrec.evidence import (
    Evidence,
    normalise_number,
    prompt_sha256,
    pseudonymise,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def test_pseudonym_is_the_documented_keyed_hash() -> None:
    expected = hmac.new(KEY, b"callrec-pseudonym-v1\x00+4930123456", hashlib.sha256).hexdigest()
    assert pseudonymise("+4930123456", KEY) == "p1:" + expected[:32]


def test_pseudonym_is_deterministic_across_number_formats() -> None:
    ref = pseudonymise("+4930123456", KEY)
    for variant in ("+49 30 123456", "0049-30-123456", "+49 (30) 123.456", " +4930123456\t"):
        assert pseudonymise(variant, KEY) == ref, variant
    assert pseudonymise("+4930123457", KEY) != ref
    assert normalise_number("0049 30/123456") == "+4930123456"


def test_pseudonym_depends_on_the_key() -> None:
    # Without the key nobody can compute (or brute-force) the pseudonym.
    assert pseudonymise("+4930123456", KEY) != pseudonymise("+4930123456", OTHER_KEY)
    plain = hashlib.sha256(b"+4930123456").hexdigest()[:32]
    assert pseudonymise("+4930123456", KEY) != "p1:" + plain


def test_hostile_caller_numbers_pseudonymise_without_error() -> None:
    for number in ("", "anonymous", "\x00\x1b[2J", "\ud800", "é" * 600):
        p = pseudonymise(number, KEY)
        assert p.startswith("p1:")
        assert len(p) == 35


def test_pseudonym_key_raw_or_hex(tmp_path: Path) -> None:
    raw = tmp_path / "raw.key"
    raw.write_bytes(KEY)
    hexed = tmp_path / "hex.key"
    hexed.write_text(KEY.hex() + "\n")
    assert load_pseudonym_key(raw) == KEY
    assert load_pseudonym_key(hexed) == KEY


def test_pseudonym_key_that_cannot_be_used(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_bytes(b"\x01" * 16)
    with pytest.raises(KeyFileError) as err:
        load_pseudonym_key(short)
    assert str(err.value) == (
        f"{short}: pseudonym key must be 32 bytes or 64 hex digits, found 16 bytes"
    )
    with pytest.raises(KeyFileError, match="pseudonym key file does not exist"):
        load_pseudonym_key(tmp_path / "missing.key")


def test_prompt_hash_is_the_sha256_of_the_file_bytes(tmp_path: Path) -> None:
    wav = tmp_path / "disclosure.wav"
    wav.write_bytes(b"RIFF" + bytes(100_000))
    assert prompt_sha256(wav) == hashlib.sha256(wav.read_bytes()).hexdigest()
    with pytest.raises(AudioFileError, match="cannot read prompt"):
        prompt_sha256(tmp_path / "missing.wav")


async def _decided_evidence() -> Evidence:
    clock = ManualClock()
    policy = ConsentPolicy()
    gate = ConsentGate(policy, clock)
    gate.answered()
    clock.advance(0.25)
    gate.prompt_started()
    clock.advance(4.0)
    gate.digit("5")
    gate.prompt_finished()
    clock.advance(2.0)
    evidence = Evidence.for_call(
        uniqueid="1795915759.31",
        linkedid="1795915759.31",
        caller_number="+4930123456",
        caller_name='Eve "\x1b[2J" Mallory',
        dialled="100",
        language="de",
        pseudonym_key=KEY,
    )
    evidence.decision = await gate.decision()
    evidence.timeline = gate.timeline
    evidence.policy = policy.snapshot()
    evidence.prompt_id = "callrec/disclosure"
    evidence.prompt_sha256 = "ab" * 32
    evidence.recording_started_at = clock.wall() + 1.0
    evidence.channels = {"caller": "1795915759.31", "snoop": "snoop-1"}
    return evidence


async def test_audit_view_has_every_field_and_nothing_personal() -> None:
    evidence = await _decided_evidence()
    audit = evidence.to_audit()
    assert audit["caller"] == pseudonymise("+4930123456", KEY)
    assert audit["decision"] == "implied"
    assert audit["times"] == {
        "answer": "2026-11-29T00:00:00.000+00:00",
        "prompt_start": "2026-11-29T00:00:00.250+00:00",
        "prompt_end": "2026-11-29T00:00:04.250+00:00",
        "prompt_failed": None,
        "prompt_interrupted": None,
        "decision": "2026-11-29T00:00:06.250+00:00",
        "hangup": None,
        "recording_start": "2026-11-29T00:00:07.250+00:00",
        "recording_end": None,
    }
    assert audit["digits"] == [{"digit": "5", "at": "2026-11-29T00:00:04.250+00:00"}]
    assert (audit["prompt_failure"], audit["prompt_interrupted_by"]) == (None, None)
    assert audit["prompt"] == {"id": "callrec/disclosure", "sha256": "ab" * 32}
    assert audit["policy"]["grace"] == 2.0
    assert audit["software"] == f"callrec {__version__}"
    assert (audit["uniqueid"], audit["linkedid"], audit["dialled"], audit["language"]) == (
        "1795915759.31", "1795915759.31", "100", "de"
    )  # fmt: skip
    text = json.dumps(audit)
    assert "30123456" not in text
    assert "Mallory" not in text
    assert "personal" not in audit


async def test_recording_view_carries_the_personal_fields() -> None:
    evidence = await _decided_evidence()
    record = evidence.to_record()
    assert record["kind"] == "consent-evidence"
    assert record["personal"] == {
        "caller_number": "+4930123456",
        "caller_name": 'Eve "\x1b[2J" Mallory',
    }
    assert {k: v for k, v in record.items() if k not in ("kind", "personal")} == (
        evidence.to_audit()
    )
