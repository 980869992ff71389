"""The container header of a ``.crec`` file (byte layout in docs/FORMAT.md).

::

    off  size  field
    0    8     magic         89 43 52 45 43 0d 0a 1a  ("\\x89CREC\\r\\n\\x1a")
    8    1     version       02 (01 is still read: no signer field, 8 field tags)
    9    16    recording_id  random
    25   1     codec         01 ulaw, 02 alaw, 03 slin16, 04 pcm16le (callrec.media.codecs)
    26   4     sample_rate   uint32 BE, > 0
    30   1     channels      uint8, > 0
    31   8     created_at    uint64 BE, milliseconds since the Unix epoch
    39   32    signer        the recorder's Ed25519 public key; 32 zero bytes = unsigned
    71   1     recipients    count n, 1..255
    72   ...   n stanzas     kem (1) || key_id (16) || length (uint16 BE) || enc || ct
    H-68 32    header_mac    HMAC-SHA256(mac_key, bytes 0 .. H-68)
    H-36 36    field_tags    9 x 4 bytes: truncated HMAC per field, to name an edited field

The whole header (bytes 0 .. H) is the associated data of the Tink stream
that follows, so an edit also breaks every segment. The field tags are a
diagnosis aid only; security rests on header_mac and the stream binding.
A header that names a signer promises a signature record at the end of the
file (:mod:`callrec.crypto.signing`), which covers every byte before it.
"""

from __future__ import annotations

import hmac
import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from callrec.crypto.keys import (
    DATA_KEY_SIZE,
    KEMS,
    KEMS_BY_WIRE_ID,
    PrivateKey,
    PublicKey,
    fingerprint_text,
    unique_keys,
)
from callrec.crypto.limits import MAX_SAMPLE_RATE, check_header_values
from callrec.crypto.signing import fingerprint_of
from callrec.errors import FormatError, NoMatchingKeyError, RecordingUnavailable, TruncatedError
from callrec.media.codecs import CODECS, CODECS_BY_HEADER_ID, Codec

MAGIC = b"\x89CREC\r\n\x1a"
VERSION = 2  # what the writer writes
VERSION_1 = 1  # still read: recordings made before signatures
VERSIONS = (VERSION_1, VERSION)
RECORDING_ID_SIZE = 16
SIGNER_SIZE = 32  # an Ed25519 public key
NO_SIGNER = bytes(SIGNER_SIZE)
LEAD = struct.Struct(">8sB")  # magic, version: read first, the rest depends on the version
FIXED_V1 = struct.Struct(">16sBIBQB")  # recording id .. recipient count
FIXED_V2 = struct.Struct(">16sBIBQ32sB")  # recording id .. created_at, signer, count
FIXED = {VERSION_1: FIXED_V1, VERSION: FIXED_V2}
STANZA_HEAD = struct.Struct(">B16sH")  # kem, key id, wrapped length
MAC_SIZE = 32
FIELD_TAG_SIZE = 4
MAX_RECIPIENTS = 255
WRAP_LABEL = b"callrec v1 recording"
MAC_INFO = b"callrec v1 header mac"
_FIELD_TAG_PREFIX = b"field\x00"

# (name, start, end) of each field tag; ``None`` end = up to header_mac.
FIELDS_V1: tuple[tuple[str, int, int | None], ...] = (
    ("magic", 0, 8),
    ("version", 8, 9),
    ("recording_id", 9, 25),
    ("codec", 25, 26),
    ("sample_rate", 26, 30),
    ("channels", 30, 31),
    ("created_at", 31, 39),
    ("recipients", 39, None),
)
FIELDS: tuple[tuple[str, int, int | None], ...] = (
    *FIELDS_V1[:-1],
    ("signer", 39, 71),
    ("recipients", 71, None),
)
FIELDS_BY_VERSION = {VERSION_1: FIELDS_V1, VERSION: FIELDS}


def trailer_size(version: int) -> int:
    """Bytes of header_mac and field tags at the end of a header of ``version``."""
    return MAC_SIZE + FIELD_TAG_SIZE * len(FIELDS_BY_VERSION[version])


@dataclass(frozen=True)
class Recipient:
    """One stanza as the public header shows it."""

    key_id: str  # printable fingerprint
    kem: str


@dataclass(frozen=True)
class Header:
    """The public header: readable without any key, authenticated once a key opens it."""

    version: int
    recording_id: str  # 32 hex digits
    codec: Codec
    sample_rate: int
    channels: int
    created_at: float  # Unix seconds (millisecond precision)
    recipients: tuple[Recipient, ...]
    header_size: int
    signer: str | None = None  # fingerprint of the signing key the header names

    @property
    def signed(self) -> bool:
        """Whether the header promises a signature record at the end of the file."""
        return self.signer is not None

    @property
    def bytes_per_second(self) -> int:
        """Audio payload bytes per second of audio."""
        return self.codec.sample_width * self.channels * self.sample_rate


@dataclass(frozen=True)
class Stanza:
    kem_id: int
    key_id: bytes
    wrapped: bytes


@dataclass(frozen=True)
class ParsedHeader:
    """A header parsed but not yet authenticated."""

    header: Header
    raw: bytes = field(repr=False)
    recording_id: bytes
    stanzas: tuple[Stanza, ...]
    signer: bytes | None = None  # the raw Ed25519 public key the header names


@dataclass(frozen=True)
class _Fixed:
    """The fixed fields of a header, version 1 or 2."""

    version: int
    recording_id: bytes
    codec: Codec
    sample_rate: int
    channels: int
    created_ms: int
    signer: bytes | None

    def pack(self, recipients: int) -> bytes:
        """Version-2 bytes after magic and version, up to the recipient count."""
        signer = self.signer or NO_SIGNER
        return FIXED_V2.pack(
            self.recording_id, self.codec.spec.header_id, self.sample_rate, self.channels,
            self.created_ms, signer, recipients,
        )  # fmt: skip


def build_header(
    recording_id: bytes,
    codec: Codec,
    sample_rate: int,
    channels: int,
    created_at_ms: int,
    recipients: Sequence[PublicKey],
    data_key: bytes,
    signer: bytes | None = None,
) -> ParsedHeader:
    """The complete version-2 header with wrapped keys, MAC and field tags, as parsed.

    ``signer`` is the raw Ed25519 public key of the recorder that will sign
    the file when it is sealed, or None for an unsigned recording.
    """
    assert len(recording_id) == RECORDING_ID_SIZE
    assert len(data_key) == DATA_KEY_SIZE
    assert 1 <= len(recipients) <= MAX_RECIPIENTS
    assert signer is None or (len(signer) == SIGNER_SIZE and signer != NO_SIGNER)
    fixed = _Fixed(VERSION, recording_id, codec, sample_rate, channels, created_at_ms, signer)
    body = bytearray(LEAD.pack(MAGIC, VERSION) + fixed.pack(len(recipients)))
    stanzas = []
    for pub in recipients:
        wrapped = pub.wrap(data_key, WRAP_LABEL, recording_id)
        stanzas.append(Stanza(KEMS[pub.kem].wire_id, pub.key_id, wrapped))
        body += STANZA_HEAD.pack(KEMS[pub.kem].wire_id, pub.key_id, len(wrapped)) + wrapped
    mac_key = derive_mac_key(data_key, recording_id)
    mac = hmac.digest(mac_key, bytes(body), "sha256")
    raw = bytes(body) + mac + field_tags(mac_key, bytes(body))
    header = _header(fixed, stanzas, len(raw))
    return ParsedHeader(header, raw, recording_id, tuple(stanzas), signer)


def checked_params(
    recipients: Sequence[PublicKey],
    codec: Codec | str,
    sample_rate: int,
    channels: int,
    recording_id: str | None,
) -> tuple[list[PublicKey], Codec, bytes]:
    """Writer arguments checked against the header's limits; ``RecordingUnavailable`` if not.

    Returns the recipients without duplicates, the codec and the recording id
    (random when ``None``).
    """
    keys = unique_keys(recipients)
    if not keys:
        raise RecordingUnavailable("no recipient public key")
    if len(keys) > MAX_RECIPIENTS:
        raise RecordingUnavailable(f"{len(keys)} recipients, at most {MAX_RECIPIENTS}")
    if codec not in CODECS:  # a Codec is its name, so names look up too
        raise RecordingUnavailable(f"unknown codec {codec!r}")
    if not 0 < sample_rate <= MAX_SAMPLE_RATE:  # what a reader accepts
        raise RecordingUnavailable(f"sample rate {sample_rate} out of range")
    if not 0 < channels < 256:
        raise RecordingUnavailable(f"channel count {channels} out of range")
    return keys, Codec(codec), _recording_id(recording_id)


def _recording_id(text: str | None) -> bytes:
    if text is None:
        return os.urandom(RECORDING_ID_SIZE)
    try:
        rid = bytes.fromhex(text)
    except ValueError:
        rid = b""
    if len(rid) != RECORDING_ID_SIZE:
        raise RecordingUnavailable(f"recording id {text!r} is not 32 hex digits")
    return rid


def derive_mac_key(data_key: bytes, recording_id: bytes) -> bytes:
    """HKDF-SHA256(ikm = data key, salt = recording id, info = MAC_INFO), 32 bytes."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=recording_id, info=MAC_INFO)
    return hkdf.derive(data_key)


def field_tags(mac_key: bytes, body: bytes) -> bytes:
    """One 4-byte tag per field: HMAC-SHA256(mac_key, "field" 00 name 00 value)[:4].

    The fields are those of the version in ``body`` (byte 8).
    """
    out = bytearray()
    for name, start, end in FIELDS_BY_VERSION[body[8]]:
        value = body[start:end]
        msg = _FIELD_TAG_PREFIX + name.encode("ascii") + b"\x00" + value
        out += hmac.digest(mac_key, msg, "sha256")[:FIELD_TAG_SIZE]
    return bytes(out)


def parse_header(read: Callable[[int], bytes]) -> ParsedHeader:
    """Parse from a ``read(n)`` callable; raises FormatError or TruncatedError naming the field."""
    raw = bytearray(_read_exact(read, LEAD.size, 0, "magic"))
    magic, version = LEAD.unpack(raw)
    _check_lead(magic, version)
    raw += _read_exact(read, FIXED[version].size, len(raw), "magic")
    fixed, count = _unpack_fixed(version, bytes(raw))
    stanzas = []
    for i in range(count):
        head = _read_exact(read, STANZA_HEAD.size, len(raw), f"recipients[{i}]")
        raw += head
        kem_id, key_id, length = STANZA_HEAD.unpack(head)
        spec = KEMS_BY_WIRE_ID.get(kem_id)
        if spec is None:
            raise FormatError(f"unknown key type {kem_id}", field=f"recipients[{i}].kem")
        if length != spec.wrapped_size:
            raise FormatError(
                f"wrapped key is {length} bytes, expected {spec.wrapped_size} for {spec.name}",
                field=f"recipients[{i}].wrapped_key",
            )
        wrapped = _read_exact(read, length, len(raw), f"recipients[{i}].wrapped_key")
        raw += wrapped
        stanzas.append(Stanza(kem_id, key_id, wrapped))
    raw += _read_exact(read, trailer_size(version), len(raw), "header_mac")
    header = _header(fixed, stanzas, len(raw))
    return ParsedHeader(header, bytes(raw), fixed.recording_id, tuple(stanzas), fixed.signer)


def _unpack_fixed(version: int, raw: bytes) -> tuple[_Fixed, int]:
    """The fixed fields after magic and version, checked; and the recipient count."""
    values = FIXED[version].unpack_from(raw, LEAD.size)
    if version == VERSION_1:  # no signer field: an unsigned recording
        values = (*values[:5], NO_SIGNER, values[5])
    rid, codec_id, rate, channels, created_ms, signer, count = values
    _check_fixed(codec_id, rate, channels, count)
    check_header_values(rate, created_ms)  # docs/FORMAT.md, "Limits"
    codec = CODECS_BY_HEADER_ID[codec_id]
    named = None if signer == NO_SIGNER else signer
    return _Fixed(version, rid, codec, rate, channels, created_ms, named), count


def _header(fixed: _Fixed, stanzas: Sequence[Stanza], size: int) -> Header:
    return Header(
        version=fixed.version,
        recording_id=fixed.recording_id.hex(),
        codec=fixed.codec,
        sample_rate=fixed.sample_rate,
        channels=fixed.channels,
        created_at=fixed.created_ms / 1000,
        recipients=tuple(
            Recipient(fingerprint_text(s.key_id), KEMS_BY_WIRE_ID[s.kem_id].name) for s in stanzas
        ),
        header_size=size,
        signer=None if fixed.signer is None else fingerprint_of(fixed.signer),
    )


def _check_lead(magic: bytes, version: int) -> None:
    if magic != MAGIC:
        raise FormatError("not a callrec recording (bad magic)", field="magic")
    if version not in VERSIONS:
        raise FormatError(
            f"unsupported version {version} (this callrec reads versions 1 and 2)",
            field="version",
        )


def _check_fixed(codec_id: int, rate: int, channels: int, count: int) -> None:
    if codec_id not in CODECS_BY_HEADER_ID:
        raise FormatError(f"unknown codec id {codec_id}", field="codec")
    if rate == 0:
        raise FormatError("sample rate is 0", field="sample_rate")
    if channels == 0:
        raise FormatError("channel count is 0", field="channels")
    if count == 0:
        raise FormatError("no recipients", field="recipients")


def _read_exact(read: Callable[[int], bytes], size: int, offset: int, field: str) -> bytes:
    data = read(size)
    if len(data) < size:
        if offset == 0 and not data:
            raise TruncatedError("file is empty, not a callrec recording", field=field)
        raise TruncatedError(
            f"file ends inside the header (at byte {offset + len(data)})", field=field
        )
    return data


def open_header(parsed: ParsedHeader, keys: Sequence[PrivateKey]) -> bytes:
    """Unwrap the data key with the first matching key and authenticate the header."""
    by_id = {key.key_id: key for key in keys}
    for i, stanza in enumerate(parsed.stanzas):
        key = by_id.get(stanza.key_id)
        if key is None or KEMS_BY_WIRE_ID[stanza.kem_id].name != key.kem:
            continue
        data_key = key.unwrap(stanza.wrapped, WRAP_LABEL, parsed.recording_id, f"recipients[{i}]")
        authenticate(parsed, data_key)
        return data_key
    listed = ", ".join(f"{r.key_id} ({r.kem})" for r in parsed.header.recipients)
    given = ", ".join(key.fingerprint for key in keys) or "none"
    raise NoMatchingKeyError(
        f"none of the given keys ({given}) is a recipient; recipients: {listed}",
        field="recipients",
    )


def authenticate(parsed: ParsedHeader, data_key: bytes) -> None:
    """Check header_mac; on failure the field tags name the edited field."""
    raw = parsed.raw
    fields = FIELDS_BY_VERSION[parsed.header.version]
    body_end = len(raw) - trailer_size(parsed.header.version)
    body, mac, tags = (
        raw[:body_end],
        raw[body_end : body_end + MAC_SIZE],
        raw[body_end + MAC_SIZE :],
    )
    mac_key = derive_mac_key(data_key, parsed.recording_id)
    expected_tags = field_tags(mac_key, body)
    if hmac.compare_digest(hmac.digest(mac_key, body, "sha256"), mac):
        if not hmac.compare_digest(expected_tags, tags):
            raise FormatError(
                "field tags edited (header authentication failed)", field="field_tags"
            )
        return
    for i, (name, _start, _end) in enumerate(fields):
        span = slice(i * FIELD_TAG_SIZE, (i + 1) * FIELD_TAG_SIZE)
        if not hmac.compare_digest(expected_tags[span], tags[span]):
            raise FormatError(f"{name} was edited (header authentication failed)", field=name)
    raise FormatError("header MAC edited (header authentication failed)", field="header_mac")
