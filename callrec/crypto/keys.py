"""Recipient key pairs and the one HPKE key-wrapping routine.

A recording is sealed *to* public keys; only the holder of a private key can
unwrap its data key. Two KEMs: X25519 (default) and the post-quantum hybrid
ML-KEM-768 + X25519. ``cryptography`` cannot serialise its composite hybrid
key, so we keep and serialise the two component keys ourselves (ML-KEM seed +
X25519 scalar) and build the composite when HPKE needs it. File formats and
the fingerprint are pinned in docs/FORMAT.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from callrec.crypto.limits import MAX_KEY_FILE, MAX_SCRYPT_WORK
from callrec.errors import FormatError, KeyFileError, WrongPassphraseError
from callrec.spool import os_reason, write_file_atomic
from callrec.user_files import read_bounded

KEM_X25519 = "x25519"
KEM_MLKEM768_X25519 = "mlkem768-x25519"

DATA_KEY_SIZE = 32
KEY_ID_SIZE = 16
_KEY_ID_LABEL = b"callrec key id v1\x00"

PUBLIC_PREFIX = "callrec-"
PRIVATE_TAG = "callrec-private-key-v1"
ENCRYPTED_TAG = "callrec-encrypted-key-v1"
SCRYPT_LOG2_N = 15
SCRYPT_R = 8
SCRYPT_P = 1
_SCRYPT_SALT_SIZE = 16
# AES-GCM nonce for keys used exactly once (a fresh KEK or data key per message).
ZERO_NONCE = bytes(12)
# The pseudonym key (callrec.evidence): 32 raw bytes or 64 hex digits.
PSEUDONYM_KEY_BYTES = 32
_HEX_KEY = re.compile(rb"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class KemSpec:
    """Sizes of one KEM as they appear on disk."""

    name: str
    wire_id: int  # the byte in a recording stanza
    public_size: int
    secret_size: int
    enc_size: int

    @property
    def wrapped_size(self) -> int:
        """enc || AES-256-GCM(32-byte data key): the only length a stanza may have."""
        return self.enc_size + DATA_KEY_SIZE + 16


_MLKEM_PUB = 1184
_MLKEM_SEED = 64
KEMS: dict[str, KemSpec] = {
    KEM_X25519: KemSpec(KEM_X25519, 1, 32, 32, 32),
    KEM_MLKEM768_X25519: KemSpec(KEM_MLKEM768_X25519, 2, _MLKEM_PUB + 32, _MLKEM_SEED + 32, 1120),
}
KEMS_BY_WIRE_ID: dict[int, KemSpec] = {spec.wire_id: spec for spec in KEMS.values()}

_SUITES = {
    KEM_X25519: hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM),
    KEM_MLKEM768_X25519: hpke.Suite(
        hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM
    ),
}


def key_id_for(kem: str, raw_public: bytes) -> bytes:
    """The 16-byte key id: SHA-256 over label, KEM name and raw public key, truncated."""
    return hashlib.sha256(_KEY_ID_LABEL + kem.encode() + b"\x00" + raw_public).digest()[
        :KEY_ID_SIZE
    ]


def fingerprint_text(key_id: bytes) -> str:
    """Printable key id: lower-case RFC 4648 base32 without padding (26 characters)."""
    return base64.b32encode(key_id).decode("ascii").rstrip("=").lower()


def hpke_info(label: bytes, binding: bytes, key_id: bytes) -> bytes:
    """HPKE ``info``: label, NUL, a fixed-length binding (recording id, context hash), key id."""
    return label + b"\x00" + binding + key_id


class PublicKey:
    """A recipient's public key (``NAME.pub``)."""

    def __init__(self, kem: str, raw: bytes, comment: str = "") -> None:
        spec = KEMS[kem]
        assert len(raw) == spec.public_size
        self.kem = kem
        self.raw = bytes(raw)
        self.comment = comment
        self.key_id = key_id_for(kem, self.raw)
        self.fingerprint = fingerprint_text(self.key_id)
        self._hpke_key = _hpke_public(kem, self.raw)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and (other.kem, other.raw) == (self.kem, self.raw)

    def __hash__(self) -> int:
        return hash((self.kem, self.raw))

    def __repr__(self) -> str:
        return f"PublicKey({self.kem}, {self.fingerprint})"

    def to_text(self) -> str:
        """Content of ``NAME.pub``: ``callrec-<kem> <base64> [comment]`` and a newline."""
        line = f"{PUBLIC_PREFIX}{self.kem} {base64.b64encode(self.raw).decode('ascii')}"
        if self.comment:
            line += f" {self.comment}"
        return line + "\n"

    @classmethod
    def from_text(cls, text: str, source: str = "<text>") -> PublicKey:
        """Parse ``to_text`` output; raises ``KeyFileError(source, reason)``."""
        lines = text.strip().splitlines()
        if len(lines) > 1:
            raise KeyFileError(source, f"expected one line, found {len(lines)}")
        parts = lines[0].split(maxsplit=2) if lines else []
        if len(parts) < 2 or not parts[0].startswith(PUBLIC_PREFIX):
            raise KeyFileError(
                source, "not a callrec public key (expected 'callrec-<kem> <base64>')"
            )
        kem = parts[0][len(PUBLIC_PREFIX) :]
        if kem not in KEMS:
            raise KeyFileError(source, f"unknown key type {parts[0]!r}")
        raw = _b64decode(parts[1], source, "public key")
        if len(raw) != KEMS[kem].public_size:
            raise KeyFileError(
                source,
                f"{kem} public key is {len(raw)} bytes, expected {KEMS[kem].public_size}",
            )
        try:
            return cls(kem, raw, parts[2] if len(parts) > 2 else "")
        except ValueError as exc:
            raise KeyFileError(source, f"invalid {kem} public key: {exc}") from exc

    @classmethod
    def load(cls, path: Path) -> PublicKey:
        """Read a ``.pub`` file."""
        data = read_key_file(path, "public key")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise KeyFileError(str(path), f"cannot read public key: {exc}") from exc
        return cls.from_text(text, str(path))

    def wrap(self, data_key: bytes, label: bytes, binding: bytes) -> bytes:
        """HPKE base-mode seal of ``data_key``: ``enc || ct`` (the stanza body)."""
        info = hpke_info(label, binding, self.key_id)
        return _SUITES[self.kem].encrypt(data_key, self._hpke_key, info)


class PrivateKey:
    """A recipient's private key (``NAME.key``); it never leaves the admin's machine."""

    def __init__(self, kem: str, secret: bytes) -> None:
        assert len(secret) == KEMS[kem].secret_size
        self.kem = kem
        self._secret = bytes(secret)
        self._hpke_key, raw_public = _hpke_private(kem, self._secret)
        self._public = PublicKey(kem, raw_public)

    def __repr__(self) -> str:
        return f"PrivateKey({self.kem}, {self._public.fingerprint})"

    @classmethod
    def generate(cls, pq: bool = False) -> PrivateKey:
        """A fresh key pair; ``pq`` selects ML-KEM-768 + X25519."""
        kem = KEM_MLKEM768_X25519 if pq else KEM_X25519
        return cls(kem, os.urandom(KEMS[kem].secret_size))

    def public_key(self) -> PublicKey:
        return self._public

    @property
    def key_id(self) -> bytes:
        return self._public.key_id

    @property
    def fingerprint(self) -> str:
        return self._public.fingerprint

    def unwrap(
        self,
        wrapped: bytes,
        label: bytes,
        binding: bytes,
        field: str,
        why: str = "stanza edited or copied from another recording, or the recording id edited",
    ) -> bytes:
        """Open a stanza body made by :meth:`PublicKey.wrap`; errors name ``field``."""
        expected = KEMS[self.kem].wrapped_size
        if len(wrapped) != expected:
            raise FormatError(
                f"wrapped key is {len(wrapped)} bytes, expected {expected} for {self.kem}",
                field=field,
            )
        info = hpke_info(label, binding, self.key_id)
        try:
            data_key = _SUITES[self.kem].decrypt(wrapped, self._hpke_key, info)
        except (InvalidTag, ValueError) as exc:
            raise FormatError(f"data key does not unwrap: {why}", field=field) from exc
        if len(data_key) != DATA_KEY_SIZE:
            raise FormatError(f"unwrapped data key is {len(data_key)} bytes", field=field)
        return data_key

    def to_bytes(self, passphrase: bytes | None = None) -> bytes:
        """Key file content; with a passphrase: scrypt + AES-256-GCM (docs/FORMAT.md)."""
        if passphrase is None:
            line = f"{PRIVATE_TAG} {self.kem} {b64(self._secret)}"
            return line.encode("ascii") + b"\n"
        return protect_secret(ENCRYPTED_TAG, self.kem, self._secret, passphrase)

    @classmethod
    def from_bytes(
        cls, data: bytes, source: str = "<bytes>", passphrase: bytes | None = None
    ) -> PrivateKey:
        """Parse :meth:`to_bytes` output."""
        try:
            fields = data.decode("ascii").split()
        except UnicodeDecodeError:
            fields = []
        if len(fields) == 3 and fields[0] == PRIVATE_TAG:
            kem = _known_kem(fields[1], source)
            return cls._checked(kem, _b64decode(fields[2], source, "private key"), source)
        if len(fields) == 8 and fields[0] == ENCRYPTED_TAG and fields[2] == "scrypt":
            return cls._decrypt_fields(fields, source, passphrase)
        raise KeyFileError(source, "not a callrec private key")

    @classmethod
    def _decrypt_fields(
        cls, fields: list[str], source: str, passphrase: bytes | None
    ) -> PrivateKey:
        kem = _known_kem(fields[1], source)
        return cls._checked(kem, open_secret(fields, source, passphrase), source)

    @classmethod
    def _checked(cls, kem: str, secret: bytes, source: str) -> PrivateKey:
        if len(secret) != KEMS[kem].secret_size:
            raise KeyFileError(
                source,
                f"{kem} private key is {len(secret)} bytes, expected {KEMS[kem].secret_size}",
            )
        try:
            return cls(kem, secret)
        except ValueError as exc:
            raise KeyFileError(source, f"invalid {kem} private key: {exc}") from exc

    def save(
        self, path: Path, passphrase: bytes | None = None, *, overwrite: bool = False
    ) -> None:
        """Write the key file atomically with mode 0600; refuses to replace one unless told."""
        _write_private(Path(path), self.to_bytes(passphrase), overwrite)

    @classmethod
    def load(cls, path: Path, passphrase: bytes | None = None) -> PrivateKey:
        """Read a key file; ``WrongPassphraseError`` or ``KeyFileError`` with the reason."""
        return cls.from_bytes(read_key_file(path), str(path), passphrase)

    @staticmethod
    def is_encrypted(data: bytes) -> bool:
        """True when key file contents ``data`` are passphrase-protected."""
        return data.startswith(ENCRYPTED_TAG.encode("ascii") + b" ")

    @classmethod
    def needs_passphrase(cls, path: Path) -> bool:
        """True when the key file at ``path`` is passphrase-protected."""
        return cls.is_encrypted(read_key_file(path))


def protect_secret(tag: str, kind: str, secret: bytes, passphrase: bytes) -> bytes:
    """A passphrase-protected key-file line: scrypt + AES-256-GCM (docs/FORMAT.md).

    ``tag kind scrypt log2N r p salt sealed``; recipient keys and recorder
    signing keys share it, so both are protected (and bounded) alike.
    """
    salt = os.urandom(_SCRYPT_SALT_SIZE)
    prefix = f"{tag} {kind} scrypt {SCRYPT_LOG2_N} {SCRYPT_R} {SCRYPT_P} {b64(salt)}"
    kek = _scrypt(passphrase, salt, SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P)
    sealed = AESGCM(kek).encrypt(ZERO_NONCE, secret, prefix.encode("ascii"))
    return f"{prefix} {b64(sealed)}\n".encode("ascii")


def open_secret(fields: list[str], source: str, passphrase: bytes | None) -> bytes:
    """The secret of a :func:`protect_secret` line split into its 8 fields."""
    if passphrase is None:
        raise KeyFileError(source, "private key is protected by a passphrase, but none was given")
    try:
        log2_n, r, p = (int(x) for x in fields[3:6])
    except ValueError:
        raise KeyFileError(source, "bad scrypt parameters") from None
    # Bounded so a hostile key file cannot cost a minute and gigabytes
    # before a wrong passphrase shows (docs/FORMAT.md, "Limits").
    if not (10 <= log2_n <= 20 and 1 <= r <= 32 and 1 <= p <= 16):
        raise KeyFileError(source, f"scrypt parameters out of range: {log2_n} {r} {p}")
    work = (r * p) << log2_n
    if work > MAX_SCRYPT_WORK:
        raise KeyFileError(
            source,
            f"scrypt parameters out of range: {log2_n} {r} {p} cost N·r·p = {work:,}; "
            f"callrec accepts at most {MAX_SCRYPT_WORK:,} (about a second on a laptop)",
        )
    salt = _b64decode(fields[6], source, "salt")
    sealed = _b64decode(fields[7], source, "encrypted key")
    prefix = " ".join(fields[:7]).encode("ascii")
    kek = _scrypt(passphrase, salt, log2_n, r, p)
    try:
        return AESGCM(kek).decrypt(ZERO_NONCE, sealed, prefix)
    except InvalidTag:
        raise WrongPassphraseError(source, "wrong passphrase (or damaged key file)") from None


def _hpke_public(kem: str, raw: bytes) -> x25519.X25519PublicKey | hpke.MLKEM768X25519PublicKey:
    if kem == KEM_X25519:
        return x25519.X25519PublicKey.from_public_bytes(raw)
    return hpke.MLKEM768X25519PublicKey(
        mlkem.MLKEM768PublicKey.from_public_bytes(raw[:_MLKEM_PUB]),
        x25519.X25519PublicKey.from_public_bytes(raw[_MLKEM_PUB:]),
    )


def _hpke_private(
    kem: str, secret: bytes
) -> tuple[x25519.X25519PrivateKey | hpke.MLKEM768X25519PrivateKey, bytes]:
    if kem == KEM_X25519:
        key = x25519.X25519PrivateKey.from_private_bytes(secret)
        return key, key.public_key().public_bytes_raw()
    ml = mlkem.MLKEM768PrivateKey.from_seed_bytes(secret[:_MLKEM_SEED])
    xk = x25519.X25519PrivateKey.from_private_bytes(secret[_MLKEM_SEED:])
    raw = ml.public_key().public_bytes_raw() + xk.public_key().public_bytes_raw()
    return hpke.MLKEM768X25519PrivateKey(ml, xk), raw


def _scrypt(passphrase: bytes, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=1 << log2_n, r=r, p=p).derive(passphrase)


def _write_private(path: Path, data: bytes, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise KeyFileError(str(path), "already exists; refusing to overwrite a private key")
    try:
        write_file_atomic(path, data, 0o600, replace=overwrite)
    except FileExistsError:  # appeared since the check above
        raise KeyFileError(
            str(path), "already exists; refusing to overwrite a private key"
        ) from None
    except OSError as exc:
        raise KeyFileError(str(path), f"cannot write private key: {os_reason(exc)}") from exc


def _known_kem(name: str, source: str) -> str:
    if name not in KEMS:
        raise KeyFileError(source, f"unknown key type {name!r}")
    return name


def b64(data: bytes) -> str:
    """Standard base64 text of ``data``."""
    return base64.b64encode(data).decode("ascii")


def b64decode_strict(text: str) -> bytes:
    """Standard base64 with nothing else in it; ``ValueError`` otherwise."""
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None


def unique_keys(recipients: Iterable[PublicKey]) -> list[PublicKey]:
    """``recipients`` in order, each key once (the same key given twice seals once)."""
    return list({key.key_id: key for key in recipients}.values())


def load_pseudonym_key(path: Path) -> bytes:
    """The 32-byte pseudonym key: raw bytes, or 64 hex digits (whitespace ignored).

    Not a recipient key: it decrypts nothing, but it re-identifies numbers
    by brute force, so it is read and refused as carefully (callrec.evidence).
    """
    data = read_key_file(path, "pseudonym key", missing="pseudonym key file does not exist")
    if len(data) == PSEUDONYM_KEY_BYTES:
        return data
    text = data.strip()
    if _HEX_KEY.match(text):
        return bytes.fromhex(text.decode("ascii"))
    raise KeyFileError(
        str(path),
        f"pseudonym key must be {PSEUDONYM_KEY_BYTES} bytes or 64 hex digits, "
        f"found {len(data)} bytes",
    )


def read_key_file(
    path: str | os.PathLike[str], what: str = "private key", *, missing: str = ""
) -> bytes:
    """The bytes of a key file: a regular file of at most MAX_KEY_FILE bytes.

    ``KeyFileError`` names what is wrong: ``missing`` (or "cannot read WHAT:
    No such file or directory"), a directory, a FIFO or device (never waited
    on or read without end), a file too large to be a key, permission denied.
    """
    try:
        return read_bounded(path, MAX_KEY_FILE)
    except FileNotFoundError:
        if not missing:
            missing = f"cannot read {what}: No such file or directory"
        raise KeyFileError(str(path), missing) from None
    except OSError as exc:
        raise KeyFileError(str(path), f"cannot read {what}: {os_reason(exc)}") from None


def _b64decode(text: str, source: str, what: str) -> bytes:
    try:
        return b64decode_strict(text)
    except ValueError:
        raise KeyFileError(source, f"{what} is not valid base64") from None
