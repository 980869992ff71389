"""Recorder signing keys (Ed25519) and the signature record of a sealed recording.

Encryption keeps a recording secret but proves nothing about who made it:
the recipients' public keys sit on every PBX. Each recorder therefore holds
its own Ed25519 signing key and signs every recording it seals (and every
audit line it writes), so anyone given the recorder's ``NAME.sign.pub`` can
tell its files from files made by anyone else with a recipient's public key.
Layouts are pinned in docs/FORMAT.md ("Origin signatures")::

    NAME.sign.pub   callrec-ed25519 <base64 of the 32-byte public key> [comment]
    NAME.sign.key   callrec-signing-key-v1 ed25519 <base64 of the 32-byte seed>
                    (or protected: callrec-encrypted-signing-key-v1 ed25519 scrypt ...)

    signature record (the last RECORD_SIZE = 124 bytes of a signed .crec)
    off  size  field
    0    8     magic        89 43 52 45 43 53 49 47  ("\\x89CRECSIG")
    8    4     segments     uint32 BE, final segment included
    12   16    last_tag     the final segment's GCM tag
    28   32    file_sha256  SHA-256 of every byte before the record
    60   64    signature    Ed25519 over SIGN_LABEL || bytes 0 .. 60 of the record
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from callrec.crypto.keys import (
    b64,
    b64decode_strict,
    fingerprint_text,
    key_id_for,
    open_secret,
    protect_secret,
    read_key_file,
)
from callrec.errors import KeyFileError
from callrec.spool import os_reason, write_file_atomic

ALGORITHM = "ed25519"
PUBLIC_TAG = f"callrec-{ALGORITHM}"
PRIVATE_TAG = "callrec-signing-key-v1"
ENCRYPTED_TAG = "callrec-encrypted-signing-key-v1"
PUBLIC_SUFFIX = ".sign.pub"
PRIVATE_SUFFIX = ".sign.key"
PUBLIC_SIZE = 32
SEED_SIZE = 32
SIGNATURE_SIZE = 64

SIG_MAGIC = b"\x89CRECSIG"
RECORD_BODY = struct.Struct(">8sI16s32s")  # magic, segments, last tag, file SHA-256
RECORD_SIZE = RECORD_BODY.size + SIGNATURE_SIZE  # 124
SIGN_LABEL = b"callrec v2 recording signature\x00"


class VerifyKey:
    """A recorder's public signing key (``NAME.sign.pub``): checks its signatures."""

    def __init__(self, raw: bytes, comment: str = "") -> None:
        assert len(raw) == PUBLIC_SIZE
        self.raw = bytes(raw)
        self.comment = comment
        self.key_id = key_id_for(ALGORITHM, self.raw)
        self.fingerprint = fingerprint_text(self.key_id)
        self._key = ed25519.Ed25519PublicKey.from_public_bytes(self.raw)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyKey) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return f"VerifyKey({self.fingerprint})"

    def verify(self, signature: bytes, message: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``."""
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def to_text(self) -> str:
        """Content of ``NAME.sign.pub``: ``callrec-ed25519 <base64> [comment]`` and a newline."""
        line = f"{PUBLIC_TAG} {b64(self.raw)}"
        return line + (f" {self.comment}" if self.comment else "") + "\n"

    @classmethod
    def from_text(cls, text: str, source: str = "<text>") -> VerifyKey:
        """Parse :meth:`to_text` output; ``KeyFileError(source, reason)`` otherwise."""
        lines = text.strip().splitlines()
        parts = lines[0].split(maxsplit=2) if len(lines) == 1 else []
        if len(parts) < 2 or parts[0] != PUBLIC_TAG:
            found = f" (found {parts[0]!r})" if parts and parts[0].startswith("callrec-") else ""
            raise KeyFileError(
                source,
                f"not a callrec signing public key{found}: expected one line "
                f"'{PUBLIC_TAG} <base64>', as `callrec keygen --signing` writes",
            )
        raw = _decode(parts[1], source, "public key")
        if len(raw) != PUBLIC_SIZE:
            raise KeyFileError(source, f"public key is {len(raw)} bytes, expected {PUBLIC_SIZE}")
        return cls(raw, parts[2] if len(parts) > 2 else "")

    @classmethod
    def load(cls, path: Path) -> VerifyKey:
        """Read a ``.sign.pub`` file."""
        data = read_key_file(Path(path), "signing public key")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise KeyFileError(str(path), "not a callrec signing public key (not text)") from None
        return cls.from_text(text, str(path))


class SigningKey:
    """A recorder's private signing key (``NAME.sign.key``); stays on the recorder."""

    def __init__(self, seed: bytes) -> None:
        assert len(seed) == SEED_SIZE
        self._seed = bytes(seed)
        self._key = ed25519.Ed25519PrivateKey.from_private_bytes(self._seed)
        self._public = VerifyKey(self._key.public_key().public_bytes_raw())

    def __repr__(self) -> str:
        return f"SigningKey({self._public.fingerprint})"

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(os.urandom(SEED_SIZE))

    def public_key(self) -> VerifyKey:
        return self._public

    @property
    def fingerprint(self) -> str:
        return self._public.fingerprint

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message`` (deterministic, RFC 8032)."""
        return self._key.sign(message)

    def to_bytes(self, passphrase: bytes | None = None) -> bytes:
        """Key file content; with a passphrase, protected like a recipient key."""
        if passphrase is None:
            return f"{PRIVATE_TAG} {ALGORITHM} {b64(self._seed)}\n".encode("ascii")
        return protect_secret(ENCRYPTED_TAG, ALGORITHM, self._seed, passphrase)

    @classmethod
    def from_bytes(
        cls, data: bytes, source: str = "<bytes>", passphrase: bytes | None = None
    ) -> SigningKey:
        """Parse :meth:`to_bytes` output."""
        try:
            fields = data.decode("ascii").split()
        except UnicodeDecodeError:
            fields = []
        if len(fields) == 3 and fields[:2] == [PRIVATE_TAG, ALGORITHM]:
            return cls._checked(_decode(fields[2], source, "signing key"), source)
        if len(fields) == 8 and fields[:3] == [ENCRYPTED_TAG, ALGORITHM, "scrypt"]:
            return cls._checked(open_secret(fields, source, passphrase), source)
        raise KeyFileError(
            source, "not a callrec signing key (create one with `callrec keygen --signing`)"
        )

    @classmethod
    def _checked(cls, seed: bytes, source: str) -> SigningKey:
        if len(seed) != SEED_SIZE:
            raise KeyFileError(source, f"signing key is {len(seed)} bytes, expected {SEED_SIZE}")
        return cls(seed)

    @staticmethod
    def is_encrypted(data: bytes) -> bool:
        """True when key file contents ``data`` are passphrase-protected."""
        return data.startswith(ENCRYPTED_TAG.encode("ascii") + b" ")

    @classmethod
    def load(cls, path: Path, passphrase: bytes | None = None) -> SigningKey:
        """Read a ``.sign.key`` file; ``KeyFileError`` names the file and the reason."""
        data = read_key_file(path, "signing key", missing="signing key file does not exist")
        return cls.from_bytes(data, str(path), passphrase)

    def save(self, path: Path, passphrase: bytes | None = None) -> None:
        """Write the key file atomically, mode 0600; never replaces an existing one."""
        try:
            write_file_atomic(Path(path), self.to_bytes(passphrase), 0o600, replace=False)
        except FileExistsError:
            raise KeyFileError(str(path), "already exists; refusing to overwrite a key") from None
        except OSError as exc:
            raise KeyFileError(str(path), f"cannot write signing key: {os_reason(exc)}") from exc


# --- the signature record of a sealed recording ------------------------------------


@dataclass(frozen=True)
class SignatureRecord:
    """The parsed trailer of a signed recording (not yet verified)."""

    segments: int
    last_tag: bytes
    file_sha256: bytes
    signature: bytes
    signed: bytes  # the record bytes the signature covers (0 .. 60)

    def verifies(self, key: VerifyKey) -> bool:
        """Whether ``key`` signed this record."""
        return key.verify(self.signature, SIGN_LABEL + self.signed)


def build_record(key: SigningKey, segments: int, last_tag: bytes, file_sha256: bytes) -> bytes:
    """The RECORD_SIZE-byte signature record appended when a recording is sealed."""
    body = RECORD_BODY.pack(SIG_MAGIC, segments, last_tag, file_sha256)
    return body + key.sign(SIGN_LABEL + body)


def parse_record(data: bytes) -> SignatureRecord | None:
    """The record in the last RECORD_SIZE bytes of a file, or None if they are not one."""
    if len(data) != RECORD_SIZE or not data.startswith(SIG_MAGIC):
        return None
    _magic, segments, last_tag, digest = RECORD_BODY.unpack_from(data)
    body = data[: RECORD_BODY.size]
    return SignatureRecord(segments, last_tag, digest, data[RECORD_BODY.size :], body)


def _decode(text: str, source: str, what: str) -> bytes:
    try:
        return b64decode_strict(text)
    except ValueError:
        raise KeyFileError(source, f"{what} is not valid base64") from None


def fingerprint_of(raw_public: bytes) -> str:
    """The printable key id of a raw Ed25519 public key (as shown for recipients)."""
    return fingerprint_text(key_id_for(ALGORITHM, raw_public))
