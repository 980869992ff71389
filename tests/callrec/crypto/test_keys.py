"""Key pairs, key files, fingerprints and the HPKE stanza (known answers, decrypt side)."""

from __future__ import annotations

import base64
import hashlib
import stat
from pathlib import Path

import pytest

from callrec.crypto.format import WRAP_LABEL
from callrec.crypto.keys import KEM_MLKEM768_X25519, KEM_X25519, PrivateKey, PublicKey
from callrec.errors import FormatError, KeyFileError, WrongPassphraseError

X_SECRET = bytes(range(32))
X_PUBLIC = bytes.fromhex("8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f")
PQ_SECRET = bytes(range(96))  # ML-KEM-768 seed (64) || X25519 secret (32)
DATA_KEY = bytes(range(0x40, 0x60))
RECORDING_ID = bytes.fromhex("00112233445566778899aabbccddeeff")
# PublicKey.wrap(DATA_KEY, WRAP_LABEL, RECORDING_ID) for the PQ test key, made once.
PQ_STANZA = bytes.fromhex(
    "14a08666956755b0465b5b18da042b74beb3ac705221a1d960ab42dc7a23718a8f9d7d23b3cba31a80bdce43"
    "20ae7195ba3e6a775f16a4a79eba2647a536954fc0a884536c0b0dc633c7d5ccddc17b4f44ce9053b3473d49"
    "33f96e1bcd818842d137b005994dee4a52c3758b223160161b04830ba38755eef9bc1b7781b6685d05b3e937"
    "b0c091419aea28c79589849fb404f9d24cf2bda8caa0ca4aa6cb1baa227cdc19537f3900d6174c5401d6c138"
    "b66c32ffcc00f3e337e71432d3be66afcceb954fd7e1d11d27fdf9e960d345570db5bb36470fec0eb2f91449"
    "37ad071c63fa322e7f38bf7c2d3677ce1975e4a934cb544d6ec25a3708fddcebca4ffa7f674eddd45ee57c1d"
    "be52aca0c90cccbf580b12b1b97d8c36e88e4d3f2475dd31841f7f980f261a437cfb876708cae0bf4ab084dd"
    "3b7f949a74f6a4e7692c2b103bb6fc21b674325257635f303b1bd3259d9fa51b494baeacfc647d0b49ebd93a"
    "b32910ee40aa855d3ccb2e47f7b425d1de98930147ed6f4dfd7cd46cb2a9312a2c4d37f3f47332339254f1f4"
    "c00ded42deb7c837e2ad9efe7fd8e20b778fcd823b3ba1dfbbbcb3d964d9a849e00dbbb14aa4539454dfb09f"
    "3e517567dd0cb146df3f45df6b08d41f4b188c3f8daa98f371f2c8ac5ab6140a9d96a46fcfda70ecf1b60b6c"
    "9d85ca148a8b79df4ce48c2041b939b31d758ad62b5cb5ce641a9f0b6ac0466598eb1ab5739738d8ac4f4650"
    "8b60c3c1303bd98c263c1f93da1f2507462929618e65b606ccf52939a6cbcae339f20a808b3ad587cc53eb5f"
    "8bb3cdf9a2dd01216735648af6302b32ddb7e1fb35ad86cc11092dbc24ce4d6fb211d9e89efb3dbef5518423"
    "3a62496a675749575f99c2cf27bc8efb9299eadf5c0589732a3f9da3cda52b13fd7869f6f93db0b19ba1126b"
    "7cb6c2e1ba41b9908e9f2352718b11e298cc687e1f622ab831761e11172e9e9decc67e4b7078b30cae22ee39"
    "a94898597625d879fa1caf85b304b11c42fc1991be094d3dbd4d2ae39ccb6aa7b649b290d2328cafef3e82e4"
    "bfe9227951e6be1f23b4a9ffb54515769861b0025fd1f5d7d83ac9607d547326b5b625008690b1c25d9644be"
    "7a48bc12c8eb79dbc33923de17577f40e4a8c154791258eb1bdd84a880dae36c708bcac3718b2efbdfd8029f"
    "63856d7bb08e2e1905b43136eaa39e101ae1b4398002d824616b598c0e5886a8f9c382278cdd8840fb3f81d2"
    "1a3e0c2a578e1ea6feb4b92e835d811a3bc6f4b88881bf2ee17df260c024a8a7eb35ed5c45c13f78e3c0ab7d"
    "7024d5039e1399d15c2441d26ed900b8eaa40a59871edbc1666a531ac6be5e04f5a4e11389587d247decd8a1"
    "e0f2c8f11f698ec4632d03dc058219d31087dfe042d37ff043d6f287ede47f00871eb4b2aa86e7821b9988d5"
    "621305d0a32c3e7ba7687ea6dfcc0f0532cb031bb0717c7fa2a58cd27853738e16becafcdbdc58722c4068e2"
    "113c19009ae2015fc25c9ae57599309d2f0baafae588ace89914ff3360da7c63d556c68609c9e71203ed41f3"
    "def51937bfb35bbe327c01b74bb717bea98d3622b39c50d22b227b44762143a598a44e4e99c98ef46851729d"
    "374baa751d07d622b148bdfc375d67e10b890513001d5814"
)


def test_x25519_known_answers() -> None:
    key = PrivateKey(KEM_X25519, X_SECRET)
    pub = key.public_key()
    assert pub.raw == X_PUBLIC
    key_id = hashlib.sha256(b"callrec key id v1\x00x25519\x00" + X_PUBLIC).digest()[:16]
    assert pub.key_id == key_id == bytes.fromhex("5f3926f9cb8860c381dea94b3ed727de")
    assert pub.fingerprint == "l44sn6olrbqmhao6vfft5vzh3y"
    assert pub.fingerprint == base64.b32encode(key_id).decode().rstrip("=").lower()
    assert pub.to_text() == "callrec-x25519 j0DFrbaPJWJK5bIU6nZ6bslNgp09e14a0bpvPiE4KF8=\n"
    assert key.to_bytes() == (
        b"callrec-private-key-v1 x25519 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
    )


def test_pq_known_answers_and_pinned_stanza() -> None:
    key = PrivateKey(KEM_MLKEM768_X25519, PQ_SECRET)
    pub = key.public_key()
    assert len(pub.raw) == 1216
    assert hashlib.sha256(pub.raw).hexdigest() == (
        "d99e4496af749b54ee4a2d270c8057450624ecc5dc0866295ffc504a26134ad4"
    )
    assert pub.fingerprint == "42arupvkcpqhq2ugethisr7tdu"
    assert len(PQ_STANZA) == 1168
    assert key.unwrap(PQ_STANZA, WRAP_LABEL, RECORDING_ID, "recipients[0]") == DATA_KEY
    with pytest.raises(FormatError, match="does not unwrap") as info:
        key.unwrap(PQ_STANZA, WRAP_LABEL, bytes(16), "recipients[0]")
    assert info.value.field == "recipients[0]"
    for offset in (0, 1119, 1120, 1167):  # ML-KEM ciphertext, X25519 share, AEAD tag
        bad = bytearray(PQ_STANZA)
        bad[offset] ^= 0x01
        with pytest.raises(FormatError, match="does not unwrap"):
            key.unwrap(bytes(bad), WRAP_LABEL, RECORDING_ID, "recipients[0]")


@pytest.mark.parametrize("pq", [False, True])
def test_generate_wrap_unwrap_and_text_round_trip(pq: bool) -> None:
    key = PrivateKey.generate(pq=pq)
    assert key.kem == (KEM_MLKEM768_X25519 if pq else KEM_X25519)
    pub = PublicKey.from_text(key.public_key().to_text())
    assert pub == key.public_key()
    assert pub.fingerprint == key.fingerprint
    wrapped = pub.wrap(DATA_KEY, WRAP_LABEL, RECORDING_ID)
    assert key.unwrap(wrapped, WRAP_LABEL, RECORDING_ID, "f") == DATA_KEY
    again = PrivateKey.from_bytes(key.to_bytes())
    assert again.public_key() == pub


def test_wrapped_key_of_unexpected_length_is_rejected_first() -> None:
    key = PrivateKey(KEM_X25519, X_SECRET)
    wrapped = key.public_key().wrap(DATA_KEY, WRAP_LABEL, RECORDING_ID)
    for bad in (wrapped[:-1], wrapped + b"\x00", b""):
        with pytest.raises(FormatError) as info:
            key.unwrap(bad, WRAP_LABEL, RECORDING_ID, "recipients[3]")
        assert info.value.field == "recipients[3]"
        assert info.value.message == f"wrapped key is {len(bad)} bytes, expected 80 for x25519"


def test_comment_survives(tmp_path: Path) -> None:
    pub = PrivateKey.generate().public_key()
    path = tmp_path / "dpo.pub"
    text = pub.to_text().rstrip("\n") + " dpo@example.org archive\n"
    path.write_text(text)
    loaded = PublicKey.load(path)
    assert loaded == pub
    assert loaded.comment == "dpo@example.org archive"
    assert loaded.to_text() == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not a callrec public key (expected 'callrec-<kem> <base64>')"),
        ("ssh-ed25519 AAAA", "not a callrec public key (expected 'callrec-<kem> <base64>')"),
        ("callrec-rsa AAAA", "unknown key type 'callrec-rsa'"),
        ("callrec-x25519 !!!!", "public key is not valid base64"),
        ("callrec-x25519 AAAA", "x25519 public key is 3 bytes, expected 32"),
        ("callrec-x25519 AAAA\ncallrec-x25519 AAAA\n", "expected one line, found 2"),
    ],
)
def test_bad_public_key_text(text: str, message: str) -> None:
    with pytest.raises(KeyFileError) as info:
        PublicKey.from_text(text, "dpo.pub")
    assert (info.value.path, info.value.message) == ("dpo.pub", message)


def test_missing_public_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read public key: No such file or directory"):
        PublicKey.load(tmp_path / "nope.pub")


def test_save_load_plain(tmp_path: Path) -> None:
    key = PrivateKey.generate()
    path = tmp_path / "archive.key"
    key.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not PrivateKey.needs_passphrase(path)
    assert PrivateKey.load(path).public_key() == key.public_key()
    assert [p.name for p in tmp_path.iterdir()] == ["archive.key"]  # no temp file left


def test_save_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "archive.key"
    first, second = PrivateKey.generate(), PrivateKey.generate()
    first.save(path)
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        second.save(path)
    assert PrivateKey.load(path).fingerprint == first.fingerprint
    second.save(path, overwrite=True)
    assert PrivateKey.load(path).fingerprint == second.fingerprint


def test_passphrase_protected_key(tmp_path: Path) -> None:
    key = PrivateKey.generate(pq=True)
    path = tmp_path / "dpo.key"
    key.save(path, b"correct horse")
    content = path.read_bytes()
    assert content.startswith(b"callrec-encrypted-key-v1 mlkem768-x25519 scrypt 15 8 1 ")
    assert PrivateKey.needs_passphrase(path)
    assert PrivateKey.load(path, b"correct horse").public_key() == key.public_key()
    with pytest.raises(WrongPassphraseError) as wrong:
        PrivateKey.load(path, b"battery staple")
    assert wrong.value.message == "wrong passphrase (or damaged key file)"
    assert wrong.value.path == str(path)
    with pytest.raises(KeyFileError) as missing:
        PrivateKey.load(path)
    assert not isinstance(missing.value, WrongPassphraseError)
    assert missing.value.message == "private key is protected by a passphrase, but none was given"


@pytest.mark.parametrize("params", [("21", "8", "1"), ("20", "16", "1"), ("9", "8", "1")])
def test_scrypt_cost_out_of_range(tmp_path: Path, params: tuple[str, str, str]) -> None:
    path = tmp_path / "hostile.key"
    PrivateKey.generate().save(path, b"pw")
    fields = path.read_text().split()
    fields[3:6] = params
    path.write_text(" ".join(fields) + "\n")
    with pytest.raises(KeyFileError, match="scrypt parameters out of range"):
        PrivateKey.load(path, b"pw")


def test_edited_encrypted_key_file_fails(tmp_path: Path) -> None:
    path = tmp_path / "dpo.key"
    PrivateKey.generate().save(path, b"pw")
    fields = path.read_text().split()
    fields[3] = "14"  # weaker scrypt cost is bound into the AEAD's associated data
    path.write_text(" ".join(fields) + "\n")
    with pytest.raises(WrongPassphraseError):
        PrivateKey.load(path, b"pw")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a callrec private key"),
        (b"\xff\xfe", "not a callrec private key"),
        (b"callrec-private-key-v1 rsa AAAA\n", "unknown key type 'rsa'"),
        (b"callrec-private-key-v1 x25519 AAAA\n", "x25519 private key is 3 bytes, expected 32"),
        (
            b"callrec-x25519 j0DFrbaPJWJK5bIU6nZ6bslNgp09e14a0bpvPiE4KF8=\n",
            "not a callrec private key",
        ),
    ],
)
def test_bad_private_key_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.key"
    path.write_bytes(content)
    with pytest.raises(KeyFileError) as info:
        PrivateKey.load(path)
    assert (info.value.path, info.value.message) == (str(path), message)
    with pytest.raises(KeyFileError, match="No such file"):
        PrivateKey.load(tmp_path / "missing.key")
