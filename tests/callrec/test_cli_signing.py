"""Origin on the command line: keygen --signing, --signer, seal --sign-key, audit verify."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from callrec.audit import AuditLog, audit_record
from callrec.crypto.keys import PublicKey
from callrec.crypto.signing import SigningKey, VerifyKey
from callrec.media.g711 import ulaw_encode
from callrec.recording import Codec, RecordingWriter
from tests.callrec.cli_support import KeyPair, Run, make_keys, run, speech_like
from tests.callrec.crypto.test_format import FILE as VERSION_1_FILE
from tests.callrec.crypto.test_format import KEY as VERSION_1_KEY

NOT_TRUSTED = "not signed by a trusted recorder"


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> KeyPair:
    return make_keys(capsys, tmp_path / "keys")


@pytest.fixture
def recorder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> KeyPair:
    """The recorder's signing key pair, made by `callrec keygen --signing`."""
    result = run(capsys, "keygen", "--signing", "--out", tmp_path / "rec", "--name", "pbx1")
    assert result.code == 0, result.err
    return KeyPair(tmp_path / "rec" / "pbx1.sign.pub", tmp_path / "rec" / "pbx1.sign.key")


def _recording(folder: Path, keys: KeyPair, signer: SigningKey | None, name: str) -> Path:
    writer = RecordingWriter.create(
        folder, [PublicKey.load(keys.pub)], codec=Codec.ULAW, sample_rate=8000, signer=signer
    )
    writer.write_metadata({"type": "consent"})
    writer.write_audio(ulaw_encode(speech_like(8000, 1.0)))
    return writer.close(final_path=folder / f"{name}.crec").path


def _row(result: Run, path: Path) -> list[str]:
    return next(line.split() for line in result.out.splitlines() if line.startswith(str(path)))


def test_keygen_signing_writes_the_recorder_key_pair(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], recorder: KeyPair
) -> None:
    assert stat.S_IMODE(recorder.key.stat().st_mode) == 0o600
    key, pub = SigningKey.load(recorder.key), VerifyKey.load(recorder.pub)
    assert key.public_key() == pub
    out = run(capsys, "keygen", "--signing", "--out", tmp_path / "rec", "--name", "pbx1")
    assert (out.code, out.err.strip()) == (
        1,
        f"callrec keygen: refusing to overwrite {recorder.pub}: remove it or choose another "
        "--name",
    )
    pq = run(capsys, "keygen", "--signing", "--pq", "--out", tmp_path, "--name", "x")
    assert (pq.code, pq.err.strip()) == (
        1,
        "callrec keygen: --pq is for recipient keys; a signing key is Ed25519",
    )


def test_a_passphrase_protected_signing_key_signs_sealed_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair
) -> None:
    secret = tmp_path / "pass"
    secret.write_text("correct horse\n")
    made = run(
        capsys, "keygen", "--signing", "--out", tmp_path / "k", "--name", "dpo",
        "--passphrase-file", secret,
    )  # fmt: skip
    assert made.code == 0 and "(passphrase-protected; for `callrec seal --sign-key`" in made.out
    wav = tmp_path / "old.sln"
    wav.write_bytes(bytes(3200))
    sign_key, sign_pub = tmp_path / "k" / "dpo.sign.key", tmp_path / "k" / "dpo.sign.pub"
    sealed = run(
        capsys, "seal", wav, "--to", keys.pub, "--sign-key", sign_key, "--passphrase-file", secret
    )
    fingerprint = VerifyKey.load(sign_pub).fingerprint
    assert sealed.code == 0, sealed.err
    assert sealed.out.strip().endswith(f"old.crec (signed by {fingerprint})")
    checked = run(capsys, "verify", tmp_path / "old.crec", "--key", keys.key, "--signer", sign_pub)
    assert checked.code == 0
    assert _row(checked, tmp_path / "old.crec")[1:5] == [
        "complete", "0.2", "1", f"trusted:{fingerprint}",
    ]  # fmt: skip


def test_verify_with_signer_rejects_what_the_recorder_did_not_sign(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair, recorder: KeyPair
) -> None:
    mine = _recording(tmp_path, keys, SigningKey.load(recorder.key), "mine")
    intruder = SigningKey.generate()
    forged = _recording(tmp_path, keys, None, "forged")  # only the public key was needed
    other = _recording(tmp_path, keys, intruder, "other")
    old = tmp_path / "old.crec"
    old.write_bytes(VERSION_1_FILE)
    fp = VerifyKey.load(recorder.pub).fingerprint

    result = run(
        capsys, "verify", mine, forged, other, "--key", keys.key, "--signer", recorder.pub
    )
    assert result.code == 4
    assert _row(result, mine)[1] == "complete" and _row(result, mine)[4] == f"trusted:{fp}"
    assert " ".join(_row(result, forged)[1:]) == (
        f"untrusted 1.0 2 unsigned {NOT_TRUSTED} (the file is unsigned)"
    )
    assert " ".join(_row(result, other)[1:]) == (
        f"untrusted 1.0 2 untrusted:{intruder.fingerprint} {NOT_TRUSTED} "
        f"(signed by {intruder.fingerprint})"
    )
    assert result.out.splitlines()[-1] == "3 files: 1 complete, 2 untrusted"
    assert "origin not checked" not in result.out

    # Several trusted recorders: a file signed by any one of them is accepted.
    intruder_pub = tmp_path / "intruder.sign.pub"
    intruder_pub.write_text(intruder.public_key().to_text())
    both = ("--signer", recorder.pub, "--signer", intruder_pub)
    assert run(capsys, "verify", mine, other, "--key", keys.key, *both).code == 0
    # A version-1 file still verifies, unsigned; with --signer it is not trusted.
    v1_key = tmp_path / "v1.key"
    v1_key.write_bytes(VERSION_1_KEY.to_bytes())
    assert run(capsys, "verify", old, "--key", v1_key).code == 0
    assert run(capsys, "verify", old, "--key", v1_key, "--signer", recorder.pub).code == 4


def test_without_signer_verify_says_the_origin_was_not_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair, recorder: KeyPair
) -> None:
    mine = _recording(tmp_path, keys, SigningKey.load(recorder.key), "mine")
    result = run(capsys, "verify", mine, "--key", keys.key)
    assert result.code == 0
    fp = VerifyKey.load(recorder.pub).fingerprint
    assert _row(result, mine)[4] == f"signed:{fp}"
    assert result.out.splitlines()[-2].startswith("origin not checked:")


def test_a_never_sealed_part_is_truncated_and_unsigned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair, recorder: KeyPair
) -> None:
    writer = RecordingWriter.create(
        tmp_path, [PublicKey.load(keys.pub)], codec=Codec.ULAW, sample_rate=8000,
        signer=SigningKey.load(recorder.key),
    )  # fmt: skip
    writer.write_audio(bytes(20000))
    writer.abort()  # kill -9
    result = run(capsys, "verify", writer.path, "--key", keys.key, "--signer", recorder.pub)
    assert result.code == 3
    assert _row(result, writer.path)[1:2] + _row(result, writer.path)[4:5] == [
        "truncated",
        "missing",
    ]
    # A .part that does not even claim this recorder is rejected outright.
    stranger = RecordingWriter.create(
        tmp_path, [PublicKey.load(keys.pub)], codec=Codec.ULAW, sample_rate=8000
    )
    stranger.write_audio(bytes(20000))
    stranger.abort()
    rejected = run(capsys, "verify", stranger.path, "--key", keys.key, "--signer", recorder.pub)
    assert rejected.code == 4
    assert f"{NOT_TRUSTED} (the file is unsigned)" in rejected.out


def test_decrypt_with_signer_writes_a_never_sealed_part_only_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair, recorder: KeyPair
) -> None:
    """A .part's header may name the trusted recorder, but anyone can write that header.

    Made here with only the public keys (the recorder's verify key standing in
    for its signing key in the header), as a forger would: ``decrypt --signer``
    writes nothing unless ``--accept-unsealed`` says the unproven origin is known.
    """
    trusted = VerifyKey.load(recorder.pub)
    # Only what the header takes from a signing key: its public half.
    claims = cast(SigningKey, SimpleNamespace(public_key=lambda: trusted))
    forged = RecordingWriter.create(
        tmp_path, [PublicKey.load(keys.pub)], codec=Codec.ULAW, sample_rate=8000, signer=claims
    )
    forged.write_metadata({"type": "consent", "decision": "implied"})
    forged.write_audio(ulaw_encode(speech_like(8000, 1.0)))
    forged.abort()  # left as a .crec.part, as a crash would leave it
    out = tmp_path / "out.wav"
    argv = ("decrypt", forged.path, "--key", keys.key, "--signer", recorder.pub, "-o", out)
    refused = run(capsys, *argv)
    assert refused.code == 4
    assert f"{forged.path}: {NOT_TRUSTED} (never sealed, so never signed" in refused.err
    assert "--accept-unsealed writes it anyway); nothing written" in refused.err
    assert not out.exists() and not out.with_suffix(".json").exists()

    accepted = run(capsys, *argv, "--accept-unsealed")
    assert accepted.code == 3  # truncated: its origin unproven, its audio as verified
    assert out.exists()
    meta = json.loads(out.with_suffix(".json").read_text())
    assert (meta["verdict"], meta["signature"]) == ("truncated", "missing")
    # verify only reports: the same file stays truncated there, no output written.
    verified = run(capsys, "verify", forged.path, "--key", keys.key, "--signer", recorder.pub)
    assert verified.code == 3


def test_decrypt_with_signer_writes_nothing_for_an_untrusted_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair, recorder: KeyPair
) -> None:
    forged = _recording(tmp_path, keys, None, "forged")
    out = tmp_path / "out.wav"
    result = run(capsys, "decrypt", forged, "--key", keys.key, "--signer", recorder.pub, "-o", out)
    assert result.code == 4
    assert result.err.strip() == (
        f"callrec decrypt: {forged}: {NOT_TRUSTED} (the file is unsigned); nothing written"
    )
    assert not out.exists() and not out.with_suffix(".json").exists()

    mine = _recording(tmp_path, keys, SigningKey.load(recorder.key), "mine")
    fp = VerifyKey.load(recorder.pub).fingerprint
    ok = run(capsys, "decrypt", mine, "--key", keys.key, "--signer", recorder.pub, "-o", out)
    assert ok.code == 0
    assert ok.out.strip() == f"{mine} -> {out} (1.00 s, complete, trusted:{fp})"
    meta = json.loads(out.with_suffix(".json").read_text())
    assert (meta["signer"], meta["signature"], meta["origin_checked"]) == (fp, "signed", True)
    unchecked = run(capsys, "decrypt", mine, "--key", keys.key, "-o", out, "--force")
    assert unchecked.out.strip().endswith(f"(1.00 s, complete, origin not checked: signed:{fp})")


def test_inspect_checks_the_signature_without_any_private_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair, recorder: KeyPair
) -> None:
    mine = _recording(tmp_path, keys, SigningKey.load(recorder.key), "mine")
    forged = _recording(tmp_path, keys, SigningKey.generate(), "forged")
    fp = VerifyKey.load(recorder.pub).fingerprint
    trusted = run(capsys, "inspect", mine, "--signer", recorder.pub, "--json")
    assert trusted.code == 0
    info = json.loads(trusted.out)
    assert (info["signer"], info["signature"], info["origin"]) == (fp, "signed", f"trusted:{fp}")
    assert "metadata" not in info  # nothing decrypted
    rejected = run(capsys, "inspect", forged, "--signer", recorder.pub)
    assert rejected.code == 4
    assert f"{NOT_TRUSTED} (signed by " in rejected.err
    unchecked = run(capsys, "inspect", mine)
    assert unchecked.code == 0
    assert f'origin: "signed:{fp}"' in unchecked.out
    assert "origin not checked" in unchecked.err
    # One changed byte and the signature no longer holds, key or no key.
    data = bytearray(mine.read_bytes())
    data[len(data) // 2] ^= 1
    mine.write_bytes(bytes(data))
    broken = run(capsys, "inspect", mine, "--json")
    assert broken.code == 4
    assert json.loads(broken.out)["signature_error"] == (
        "the file was changed after it was signed (its SHA-256 differs)"
    )


def test_audit_verify_names_the_first_bad_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], recorder: KeyPair
) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, [], signer=SigningKey.load(recorder.key))
    for reason in ("start", "call", "stop"):
        log.append(audit_record("service", reason=reason))
    fp = VerifyKey.load(recorder.pub).fingerprint
    good = run(capsys, "audit", "verify", path, "--signer", recorder.pub)
    assert good.code == 0, good.out
    lines = good.out.splitlines()
    assert lines[0] == f"{path}: chain intact: 3 line(s), seq 1..3"
    assert lines[1] == f"signatures: all 3 by trusted recorders ({fp})"
    assert lines[2].startswith("head: seq 3, digest ")
    assert "origin not checked" in run(capsys, "audit", "verify", path).out

    raw = path.read_bytes().splitlines(keepends=True)
    raw[1] = raw[1].replace(b'"reason":"call"', b'"reason":"none"')
    path.write_bytes(b"".join(raw))
    bad = run(capsys, "audit", "verify", path, "--signer", recorder.pub)
    assert bad.code == 4
    assert bad.out.splitlines()[0] == (
        f"{path}: line 2: signature does not verify: the line was edited (signer {fp})"
    )

    other = tmp_path / "other.sign.pub"
    other.write_text(SigningKey.generate().public_key().to_text())
    path.write_bytes(b"".join(raw[:1]))
    wrong = run(capsys, "audit", "verify", path, "--signer", other)
    assert wrong.code == 4
    assert wrong.out.startswith(f"{path}: line 1: {NOT_TRUSTED} (signed by {fp})")
    missing = run(capsys, "audit", "verify", tmp_path / "nope.jsonl")
    assert missing.code == 1
    assert "No such file or directory" in missing.err
