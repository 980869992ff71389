"""Recorder signatures: pinned key files, the version-2 header and a whole signed ``.crec``.

Every value is in docs/FORMAT.md ("Origin signatures"); the Ed25519 checks
here go straight to ``cryptography``, not through callrec's own verifier.
"""

from __future__ import annotations

import hashlib
import hmac
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from callrec.crypto import format as fmt
from callrec.crypto.signing import SIGN_LABEL, SigningKey, VerifyKey
from callrec.errors import FormatError, KeyFileError, WrongPassphraseError
from callrec.recording import RecordingReader, Verdict, verify
from callrec.recording.origin import Signature, origin_of
from tests.callrec.crypto.test_format import (
    DATA_KEY,
    KEY,
    MAC_KEY,
    NONCE_PREFIX,
    SALT,
    STANZA,
    _reader,
)

# The signing test key: Ed25519 seed c0 c1 .. df.
SEED = bytes(range(0xC0, 0xE0))
SIGNER_PUB = bytes.fromhex("dde3bccec7f3a66a1115f45d720f4dc135c3ae7c4e22dca38fdb1efd6a495ff8")
SIGNER_FINGERPRINT = "xesfvct3glgk4ci37syha56bfq"
SIGN_PUB_TEXT = "callrec-ed25519 3eO8zsfzpmoRFfRdcg9NwTXDrnxOItyjj9se/WpJX/g=\n"
SIGN_KEY_TEXT = b"callrec-signing-key-v1 ed25519 wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX2Nna29zd3t8=\n"

V2_BODY = (
    bytes.fromhex(
        "89435245430d0a1a"  # magic
        "02"  # version 2
        "00112233445566778899aabbccddeeff"  # recording id
        "01"  # codec ulaw
        "00001f40"  # sample rate 8000
        "01"  # channels
        "000001a22499f800"  # created at 1795910400000 ms
    )
    + SIGNER_PUB  # signer
    + bytes.fromhex("01")  # one recipient
    + STANZA  # the version-1 stanza: HPKE binds the recording id, not the version
)
V2_MAC = bytes.fromhex("c6677a84c8f49837da3060b17742c9c5418e624c1738195b379c77e56433e122")
V2_TAGS = bytes.fromhex(
    "77441d7d" "74afe696" "326f6955" "7387718a" "3ebb07d7" "7c98c7f9" "32409bd1"
    "55102f67"  # signer
    "0aa35614"  # recipients
)  # fmt: skip
V2_HEADER = V2_BODY + V2_MAC + V2_TAGS
V2_SEGMENT_0 = bytes.fromhex(
    "eb8389fb48a2633ddce3e95d571778d687ffed842c14d5dd29e3c818db8bee52bae51c395af8ff524edb555f"
    "df9eaf64432bda518fe916062d2612d0f6277d79"
)
FILE_SHA256 = bytes.fromhex("3ab61718e092cff01dd1a21b142a7a354b31771c2f360667807b5482025f1cc5")
RECORD = bytes.fromhex(
    "8943524543534947"  # "\x89CRECSIG"
    "00000001"  # one segment
    "432bda518fe916062d2612d0f6277d79"  # the final segment's tag
    "3ab61718e092cff01dd1a21b142a7a354b31771c2f360667807b5482025f1cc5"  # SHA-256 of bytes 0..343
    "7ce7191d96679b46706baf682c908823329cac168f54931e11dcdb384d6167c7"  # Ed25519 signature
    "ae1df53e73ef43c5d265174e9da41ca1faaa0c70b7d47d031e4d79861e86660d"
)
STREAM_HEADER = bytes.fromhex("28") + SALT + NONCE_PREFIX
SIGNED_FILE = V2_HEADER + STREAM_HEADER + V2_SEGMENT_0 + RECORD


def test_signing_key_files_are_pinned() -> None:
    key = SigningKey(SEED)
    pub = key.public_key()
    assert pub.raw == SIGNER_PUB
    assert (
        pub.raw
        == ed25519.Ed25519PrivateKey.from_private_bytes(SEED).public_key().public_bytes_raw()
    )
    assert (
        pub.key_id
        == hashlib.sha256(b"callrec key id v1\x00ed25519\x00" + SIGNER_PUB).digest()[:16]
    )
    assert pub.fingerprint == SIGNER_FINGERPRINT
    assert pub.to_text() == SIGN_PUB_TEXT
    assert key.to_bytes() == SIGN_KEY_TEXT
    assert VerifyKey.from_text(SIGN_PUB_TEXT) == pub
    assert SigningKey.from_bytes(SIGN_KEY_TEXT).public_key() == pub


def test_version_2_header_fields_mac_and_tags() -> None:
    assert len(V2_HEADER) == 239
    assert hmac.digest(MAC_KEY, V2_BODY, "sha256") == V2_MAC
    assert fmt.field_tags(MAC_KEY, V2_BODY) == V2_TAGS
    signer_tag = hmac.digest(MAC_KEY, b"field\x00signer\x00" + SIGNER_PUB, "sha256")[:4]
    assert V2_TAGS[28:32] == signer_tag
    parsed = fmt.parse_header(_reader(SIGNED_FILE))
    assert parsed.raw == V2_HEADER
    assert (parsed.header.version, parsed.header.signer) == (2, SIGNER_FINGERPRINT)
    assert parsed.signer == SIGNER_PUB
    assert fmt.open_header(parsed, [KEY]) == DATA_KEY


def test_the_signature_record_is_pinned() -> None:
    assert SIGNED_FILE[-124:] == RECORD and len(SIGNED_FILE) == 467
    assert hashlib.sha256(SIGNED_FILE[:343]).digest() == FILE_SHA256 == RECORD[28:60]
    assert RECORD[12:28] == V2_SEGMENT_0[-16:]
    # Checked with cryptography itself: the signature is over the label and bytes 0..60.
    ed25519.Ed25519PublicKey.from_public_bytes(SIGNER_PUB).verify(
        RECORD[60:], b"callrec v2 recording signature\x00" + RECORD[:60]
    )
    assert SIGN_LABEL == b"callrec v2 recording signature\x00"


def test_the_pinned_signed_file_reads_complete_and_signed(tmp_path: Path) -> None:
    path = tmp_path / "kat.crec"
    path.write_bytes(SIGNED_FILE)
    with RecordingReader(path, [KEY]) as reader:
        frames = list(reader.frames())
    assert reader.verdict is Verdict.COMPLETE
    assert len(frames) == 3
    assert (reader.origin.signature, reader.origin.fingerprint) == (
        Signature.SIGNED,
        SIGNER_FINGERPRINT,
    )
    # Without any private key: the signature alone says who made it.
    _header, origin = origin_of(path)
    assert (origin.signature, origin.stream_end) == (Signature.SIGNED, 343)
    assert origin.trusted({SigningKey(SEED).public_key().key_id})
    assert not origin.trusted({SigningKey.generate().public_key().key_id})


def test_flipping_any_byte_of_a_signed_file_breaks_it(tmp_path: Path) -> None:
    path = tmp_path / "flipped.crec"
    for offset in range(len(SIGNED_FILE)):
        bad = bytearray(SIGNED_FILE)
        bad[offset] ^= 0x01
        path.write_bytes(bytes(bad))
        try:
            _header, origin = origin_of(path)
        except FormatError:  # magic, version or a length no longer parses
            continue
        assert origin.signature is not Signature.SIGNED, offset
        assert verify(path, [KEY]).verdict is Verdict.INVALID, offset


def test_key_files_round_trip_private_and_protected(tmp_path: Path) -> None:
    key = SigningKey.generate()
    plain, protected = tmp_path / "a.sign.key", tmp_path / "b.sign.key"
    key.save(plain)
    key.save(protected, b"correct horse")
    for path in (plain, protected):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SigningKey.load(plain).public_key() == key.public_key()
    assert SigningKey.is_encrypted(protected.read_bytes())
    assert SigningKey.load(protected, b"correct horse").public_key() == key.public_key()
    with pytest.raises(WrongPassphraseError, match="wrong passphrase"):
        SigningKey.load(protected, b"wrong")
    with pytest.raises(KeyFileError, match="protected by a passphrase, but none was given"):
        SigningKey.load(protected)
    with pytest.raises(KeyFileError, match="already exists"):
        key.save(plain)


def test_the_wrong_kind_of_key_file_is_named(tmp_path: Path) -> None:
    recipient_pub = tmp_path / "dpo.pub"
    recipient_pub.write_text(KEY.public_key().to_text())
    with pytest.raises(KeyFileError) as err:
        VerifyKey.load(recipient_pub)
    assert err.value.message == (
        "not a callrec signing public key (found 'callrec-x25519'): expected one line "
        "'callrec-ed25519 <base64>', as `callrec keygen --signing` writes"
    )
    recipient_key = tmp_path / "dpo.key"
    recipient_key.write_bytes(KEY.to_bytes())
    with pytest.raises(KeyFileError, match=r"not a callrec signing key \(create one with"):
        SigningKey.load(recipient_key)
    with pytest.raises(KeyFileError, match="signing key file does not exist"):
        SigningKey.load(tmp_path / "missing.sign.key")
    with pytest.raises(
        KeyFileError, match="cannot read signing public key: is a directory, not a file"
    ):
        VerifyKey.load(tmp_path)
