"""The segment layer: Tink streaming AEAD ``AES256_GCM_HKDF_4KB``, byte for byte.

A Tink stream is a 40-byte stream header (length byte 0x28, 32-byte salt,
7-byte nonce prefix) followed by AES-256-GCM segments of 4096 ciphertext
bytes; segment 0 is 40 bytes shorter so the header and segment 0 together
fill one 4096-byte block. Each segment has its own nonce (prefix || uint32 BE
index || last-segment flag), so segments cannot be reordered, dropped,
duplicated or moved between streams without failing authentication.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from callrec.crypto.limits import DIAGNOSE_DISTANCE
from callrec.errors import FormatError, TruncatedError

STREAM_HEADER_SIZE = 40  # also the header's own first byte
SALT_SIZE = 32
NONCE_PREFIX_SIZE = 7
TAG_SIZE = 16
CIPHERTEXT_SEGMENT_SIZE = 4096
PLAINTEXT_SEGMENT_SIZE = CIPHERTEXT_SEGMENT_SIZE - TAG_SIZE  # 4080
FIRST_PLAINTEXT_SEGMENT_SIZE = PLAINTEXT_SEGMENT_SIZE - STREAM_HEADER_SIZE  # 4040
FIRST_CIPHERTEXT_SEGMENT_SIZE = CIPHERTEXT_SEGMENT_SIZE - STREAM_HEADER_SIZE  # 4056
SEGMENT_KEY_SIZE = 32

_NONCE = struct.Struct(">7sIB")


def derive_segment_key(data_key: bytes, salt: bytes, associated_data: bytes) -> bytes:
    """HKDF-SHA256(ikm = data key, salt, info = associated data), 32 bytes (Tink's rule)."""
    hkdf = HKDF(
        algorithm=hashes.SHA256(), length=SEGMENT_KEY_SIZE, salt=salt, info=associated_data
    )
    return hkdf.derive(data_key)


def segment_nonce(prefix: bytes, index: int, last: bool) -> bytes:
    """prefix (7) || uint32 BE index || 0x01 for the last segment, else 0x00."""
    return _NONCE.pack(prefix, index, last)  # a bool packs as 0 or 1


def stream_header(salt: bytes, nonce_prefix: bytes) -> bytes:
    """The 40-byte Tink stream header."""
    assert len(salt) == SALT_SIZE
    assert len(nonce_prefix) == NONCE_PREFIX_SIZE
    return bytes([STREAM_HEADER_SIZE]) + salt + nonce_prefix


def ciphertext_size(index: int) -> int:
    """Ciphertext bytes in a full segment ``index``."""
    return FIRST_CIPHERTEXT_SEGMENT_SIZE if index == 0 else CIPHERTEXT_SEGMENT_SIZE


class SegmentCipher:
    """Encrypts or decrypts the segments of one stream; one AESGCM object per stream."""

    def __init__(self, data_key: bytes, salt: bytes, nonce_prefix: bytes, ad: bytes) -> None:
        self.header = stream_header(salt, nonce_prefix)
        self._prefix = nonce_prefix
        self._aead = AESGCM(derive_segment_key(data_key, salt, ad))

    @classmethod
    def from_header(cls, data_key: bytes, header: bytes, ad: bytes) -> SegmentCipher:
        """Build from a 40-byte stream header; the caller checked its length byte."""
        salt = header[1 : 1 + SALT_SIZE]
        return cls(data_key, salt, header[1 + SALT_SIZE : STREAM_HEADER_SIZE], ad)

    def encrypt(self, index: int, plaintext: bytes | memoryview, last: bool) -> bytes:
        return self._aead.encrypt(segment_nonce(self._prefix, index, last), plaintext, None)

    def encrypt_full(
        self, view: memoryview, index: int, size: int, out: list[bytes]
    ) -> tuple[int, int, int]:
        """Seal every full non-last segment at the start of ``view`` into ``out``.

        ``size`` is the plaintext size of segment ``index``. Returns (bytes
        consumed, next index, next size). The writer's hot loop, kept tight.
        """
        encrypt, nonce, prefix = self._aead.encrypt, segment_nonce, self._prefix
        pos, end = 0, len(view)
        while end - pos >= size:
            out.append(encrypt(nonce(prefix, index, False), view[pos : pos + size], None))
            pos += size
            index += 1
            size = PLAINTEXT_SEGMENT_SIZE
        return pos, index, size

    def decrypt_full(
        self, view: memoryview, index: int, out: list[bytes]
    ) -> tuple[int, int, bool]:
        """Open the non-last segments at the start of ``view`` into ``out``.

        A segment is the last one exactly when nothing follows it, so only
        segments with at least one more byte after them are opened here.
        Returns (bytes consumed, next index, failed): ``failed`` means the
        segment at the returned offset and index did not authenticate. The
        reader's hot loop, kept as tight as :meth:`encrypt_full`.
        """
        decrypt, nonce, prefix = self._aead.decrypt, segment_nonce, self._prefix
        pos, end = 0, len(view)
        size = ciphertext_size(index)
        while end - pos > size:
            try:
                out.append(decrypt(nonce(prefix, index, False), view[pos : pos + size], None))
            except InvalidTag:
                return pos, index, True
            pos += size
            index += 1
            size = CIPHERTEXT_SEGMENT_SIZE
        return pos, index, False

    def decrypt(self, index: int, ciphertext: bytes | memoryview, last: bool) -> bytes | None:
        """The plaintext, or ``None`` when authentication fails."""
        try:
            return self._aead.decrypt(segment_nonce(self._prefix, index, last), ciphertext, None)
        except InvalidTag:
            return None

    def identify(
        self, ciphertext: bytes | memoryview, candidates: range
    ) -> tuple[int, bool] | None:
        """Which (index, last) of ``candidates`` this segment was sealed as.

        Only called after a failure, to tell a reordered or duplicated segment
        from a corrupted or foreign one; costs two decryptions per candidate.
        """
        for index in candidates:
            for last in (False, True):
                if self.decrypt(index, ciphertext, last) is not None:
                    return index, last
        return None


TINK_TYPE_URL = "type.googleapis.com/google.crypto.tink.AesGcmHkdfStreamingKey"
_HASH_SHA256 = 3  # google.crypto.tink.HashType.SHA256


def tink_key_proto(data_key: bytes) -> bytes:
    """Serialised ``AesGcmHkdfStreamingKey`` (version 0; params: segment 4096, key 32, SHA256).

    Hand-encoded protobuf, so exporting needs no Tink or protobuf at run time.
    """
    params = (
        b"\x08"
        + _varint(CIPHERTEXT_SEGMENT_SIZE)
        + b"\x10"
        + _varint(SEGMENT_KEY_SIZE)
        + b"\x18"
        + _varint(_HASH_SHA256)
    )
    return b"\x12" + _varint(len(params)) + params + b"\x1a" + _varint(len(data_key)) + data_key


def tink_keyset_json(data_key: bytes, key_id: int) -> str:
    """A Tink cleartext JSON keyset holding ``data_key`` as its one streaming key."""
    keyset = {
        "primaryKeyId": key_id,
        "key": [
            {
                "keyData": {
                    "typeUrl": TINK_TYPE_URL,
                    "value": base64.b64encode(tink_key_proto(data_key)).decode("ascii"),
                    "keyMaterialType": "SYMMETRIC",
                },
                "status": "ENABLED",
                "keyId": key_id,
                "outputPrefixType": "RAW",
            }
        ],
    }
    return json.dumps(keyset, indent=2) + "\n"


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


READ_BLOCK = 1 << 18


def open_stream(f: BinaryIO, data_key: bytes, ad: bytes) -> SegmentCipher:
    """Read the 40-byte stream header at ``f``'s position; the cipher for its segments."""
    head = f.read(STREAM_HEADER_SIZE)
    if len(head) < STREAM_HEADER_SIZE:
        raise TruncatedError("stream header missing (file ends after the header)", segment=0)
    if head[0] != STREAM_HEADER_SIZE:
        raise FormatError(
            f"stream header length byte is {head[0]}, expected 40", field="stream_header"
        )
    return SegmentCipher.from_header(data_key, head, ad)


def read_segments(
    f: BinaryIO, cipher: SegmentCipher, stream_size: int
) -> Iterator[tuple[int, bytes]]:
    """Verified (index, plaintext) of each segment, in order, from ``f`` after the stream header.

    Returns normally after a valid last segment. Raises ``TruncatedError``
    when the end is missing or fails (after yielding every good segment) and
    ``FormatError`` for a bad segment before the end.
    """
    data, pos, eof, index = b"", 0, False, 0
    opened: list[bytes] = []
    while True:
        size = ciphertext_size(index)
        if len(data) - pos <= size:
            if eof:  # what is left ends the file
                yield from _last_segment(cipher, data[pos:], index, stream_size)
                return
            # Refill in big blocks: a segment is the last one exactly when
            # nothing follows it, so always look at least one byte ahead.
            more = f.read(max(READ_BLOCK, size + 1))
            eof = not more
            data, pos = data[pos:] + more, 0
            continue
        first = index
        used, index, failed = cipher.decrypt_full(memoryview(data)[pos:], index, opened)
        for offset, plaintext in enumerate(opened):
            yield first + offset, plaintext
        opened.clear()
        pos += used
        if failed:
            size = ciphertext_size(index)
            raise diagnose(cipher, data[pos : pos + size], index, stream_size, False)


def _last_segment(
    cipher: SegmentCipher, data: bytes, index: int, stream_size: int
) -> Iterator[tuple[int, bytes]]:
    if not data:
        raise TruncatedError("final segment missing", segment=index)
    if len(data) < TAG_SIZE:
        raise TruncatedError(f"cut: {len(data)} bytes, shorter than a tag", segment=index)
    plaintext = cipher.decrypt(index, data, True)
    if plaintext is not None:
        yield index, plaintext
        return
    if len(data) == ciphertext_size(index):
        plaintext = cipher.decrypt(index, data, False)
        if plaintext is not None:  # a whole segment, but the final one never came
            yield index, plaintext
            raise TruncatedError("final segment missing", segment=index + 1)
    raise diagnose(cipher, data, index, stream_size, at_end=True)


def diagnose(
    cipher: SegmentCipher, data: bytes, index: int, stream_size: int, at_end: bool
) -> FormatError:
    """Name what happened to the segment at ``index`` (only on the failure path).

    Only indices near ``index`` are tried: a file's size (a sparse one can
    claim gigabytes it does not hold) must not set the work.
    """
    highest = min(stream_size // CIPHERTEXT_SEGMENT_SIZE + 1, index + DIAGNOSE_DISTANCE)
    candidates = range(max(0, index - DIAGNOSE_DISTANCE), highest + 1)
    found = cipher.identify(data, candidates)
    if found is None:
        kind = TruncatedError if at_end else FormatError
        why = "authentication failed (corrupted, cut, or spliced from another recording)"
        return kind(why, segment=index)
    other, last = found
    if other < index:
        return FormatError(f"holds segment {other}: duplicated or reordered", segment=index)
    if other > index:
        return FormatError(
            f"holds segment {other}: segment {index} dropped or segments reordered",
            segment=index,
        )
    if last:
        return FormatError("final segment followed by more data (appended)", segment=index)
    return FormatError("not marked final but the file ends here", segment=index)
