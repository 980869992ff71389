"""The container header of a ``.crec`` file (byte layout in docs/FORMAT.md).

::

    off  size  field
    0    8     magic         89 43 52 45 43 0d 0a 1a  ("\\x89CREC\\r\\n\\x1a")
    8    1     version       01
    9    16    recording_id  random
    25   1     codec         01 ulaw, 02 alaw, 03 slin16, 04 pcm16le (callrec.media.codecs)
    26   4     sample_rate   uint32 BE, > 0
    30   1     channels      uint8, > 0
    31   8     created_at    uint64 BE, milliseconds since the Unix epoch
    39   1     recipients    count n, 1..255
    40   ...   n stanzas     kem (1) || key_id (16) || length (uint16 BE) || enc || ct
    H-64 32    header_mac    HMAC-SHA256(mac_key, bytes 0 .. H-64)
    H-32 32    field_tags    8 x 4 bytes: truncated HMAC per field, to name an edited field

The whole header (bytes 0 .. H) is the associated data of the Tink stream
that follows, so an edit also breaks every segment. The field tags are a
diagnosis aid only; security rests on header_mac and the stream binding.
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
from callrec.errors import FormatError, NoMatchingKeyError, RecordingUnavailable, TruncatedError
from callrec.media.codecs import CODECS, CODECS_BY_HEADER_ID, Codec

MAGIC = b"\x89CREC\r\n\x1a"
VERSION = 1
RECORDING_ID_SIZE = 16
FIXED = struct.Struct(">8sB16sBIBQB")  # magic .. recipient count
FIXED_SIZE = FIXED.size  # 40
STANZA_HEAD = struct.Struct(">B16sH")  # kem, key id, wrapped length
MAC_SIZE = 32
FIELD_TAG_SIZE = 4
TRAILER_SIZE = MAC_SIZE + 8 * FIELD_TAG_SIZE  # 64
MAX_RECIPIENTS = 255
WRAP_LABEL = b"callrec v1 recording"
MAC_INFO = b"callrec v1 header mac"
_FIELD_TAG_PREFIX = b"field\x00"

# (name, start, end) of each field tag; ``None`` end = up to header_mac.
FIELDS: tuple[tuple[str, int, int | None], ...] = (
    ("magic", 0, 8),
    ("version", 8, 9),
    ("recording_id", 9, 25),
    ("codec", 25, 26),
    ("sample_rate", 26, 30),
    ("channels", 30, 31),
    ("created_at", 31, 39),
    ("recipients", 39, None),
)


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


def build_header(
    recording_id: bytes,
    codec: Codec,
    sample_rate: int,
    channels: int,
    created_at_ms: int,
    recipients: Sequence[PublicKey],
    data_key: bytes,
) -> ParsedHeader:
    """The complete header with wrapped keys, MAC and field tags, as parse_header sees it."""
    assert len(recording_id) == RECORDING_ID_SIZE
    assert len(data_key) == DATA_KEY_SIZE
    assert 1 <= len(recipients) <= MAX_RECIPIENTS
    fixed = (
        MAGIC,
        VERSION,
        recording_id,
        codec.spec.header_id,
        sample_rate,
        channels,
        created_at_ms,
        len(recipients),
    )
    body = bytearray(FIXED.pack(*fixed))
    stanzas = []
    for pub in recipients:
        wrapped = pub.wrap(data_key, WRAP_LABEL, recording_id)
        stanzas.append(Stanza(KEMS[pub.kem].wire_id, pub.key_id, wrapped))
        body += STANZA_HEAD.pack(KEMS[pub.kem].wire_id, pub.key_id, len(wrapped)) + wrapped
    mac_key = derive_mac_key(data_key, recording_id)
    mac = hmac.digest(mac_key, bytes(body), "sha256")
    raw = bytes(body) + mac + field_tags(mac_key, bytes(body))
    header = _header(recording_id, codec, sample_rate, channels, created_at_ms, stanzas, len(raw))
    return ParsedHeader(header, raw, recording_id, tuple(stanzas))


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
    if not 0 < sample_rate < (1 << 32):
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
    """One 4-byte tag per field: HMAC-SHA256(mac_key, "field" 00 name 00 value)[:4]."""
    out = bytearray()
    for name, start, end in FIELDS:
        value = body[start:end]
        msg = _FIELD_TAG_PREFIX + name.encode("ascii") + b"\x00" + value
        out += hmac.digest(mac_key, msg, "sha256")[:FIELD_TAG_SIZE]
    return bytes(out)


def parse_header(read: Callable[[int], bytes]) -> ParsedHeader:
    """Parse from a ``read(n)`` callable; raises FormatError or TruncatedError naming the field."""
    raw = bytearray(_read_exact(read, FIXED_SIZE, 0, "magic"))
    magic, version, rid, codec_id, rate, channels, created_ms, count = FIXED.unpack(raw)
    _check_fixed(magic, version, codec_id, rate, channels, count)
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
    raw += _read_exact(read, TRAILER_SIZE, len(raw), "header_mac")
    codec = CODECS_BY_HEADER_ID[codec_id]
    header = _header(rid, codec, rate, channels, created_ms, stanzas, len(raw))
    return ParsedHeader(header, bytes(raw), rid, tuple(stanzas))


def _header(
    rid: bytes,
    codec: Codec,
    rate: int,
    channels: int,
    created_ms: int,
    stanzas: Sequence[Stanza],
    size: int,
) -> Header:
    return Header(
        version=VERSION,
        recording_id=rid.hex(),
        codec=codec,
        sample_rate=rate,
        channels=channels,
        created_at=created_ms / 1000,
        recipients=tuple(
            Recipient(fingerprint_text(s.key_id), KEMS_BY_WIRE_ID[s.kem_id].name) for s in stanzas
        ),
        header_size=size,
    )


def _check_fixed(
    magic: bytes, version: int, codec_id: int, rate: int, channels: int, count: int
) -> None:
    if magic != MAGIC:
        raise FormatError("not a callrec recording (bad magic)", field="magic")
    if version != VERSION:
        raise FormatError(
            f"unsupported version {version} (this callrec reads version {VERSION})",
            field="version",
        )
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
    body_end = len(raw) - TRAILER_SIZE
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
    for i, (name, _start, _end) in enumerate(FIELDS):
        span = slice(i * FIELD_TAG_SIZE, (i + 1) * FIELD_TAG_SIZE)
        if not hmac.compare_digest(expected_tags[span], tags[span]):
            raise FormatError(f"{name} was edited (header authentication failed)", field=name)
    raise FormatError("header MAC edited (header authentication failed)", field="header_mac")
