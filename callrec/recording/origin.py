"""Who made a recording: the signature record at the end of a signed ``.crec``.

The check needs no private key: the header names the recorder's public key,
and the record signs the SHA-256 of every byte before it (header, stream
header, every segment), so it breaks when any byte of the file changes and
holds without decrypting anything. Whether that recorder is *trusted* is
the caller's question (``callrec verify --signer``): anyone can sign a file
with a key of their own. Layout: :mod:`callrec.crypto.signing`, docs/FORMAT.md.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from callrec.crypto.format import ParsedHeader, parse_header
from callrec.crypto.signing import RECORD_SIZE, SignatureRecord, VerifyKey, parse_record
from callrec.crypto.stream import (
    CIPHERTEXT_SEGMENT_SIZE,
    FIRST_CIPHERTEXT_SEGMENT_SIZE,
    STREAM_HEADER_SIZE,
    TAG_SIZE,
)
from callrec.errors import FormatError, TruncatedError
from callrec.spool import os_reason

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

_HASH_BLOCK = 1 << 20


class Signature(StrEnum):
    """The state of a recording's signature, judged from the file alone."""

    UNSIGNED = "unsigned"  # the header names no signer (version 1, or sealed without a key)
    SIGNED = "signed"  # the record verifies with the key the header names
    MISSING = "missing"  # the header names a signer but no record ends the file
    INVALID = "invalid"  # a record that does not verify, or does not fit the file


NEVER_SEALED = "no signature record: the recording was never sealed, or its end was cut"


@dataclass(frozen=True)
class Origin:
    """A recording's signature state; ``stream_end`` is where its Tink stream stops."""

    signature: Signature
    stream_end: int
    signer: VerifyKey | None = None  # the key the header names
    error: FormatError | None = None  # why MISSING or INVALID

    @property
    def fingerprint(self) -> str | None:
        return None if self.signer is None else self.signer.fingerprint

    def trusted(self, key_ids: Collection[bytes]) -> bool:
        """Signed, and by one of the recorders whose key ids are given."""
        return (
            self.signature is Signature.SIGNED
            and self.signer is not None
            and self.signer.key_id in key_ids
        )


def read_origin(f: BinaryIO, parsed: ParsedHeader, size: int) -> Origin:
    """Check the signature of the open file ``f`` (``size`` bytes, header ``parsed``).

    Reads with ``pread``: ``f``'s position is left where it was.
    """
    if parsed.signer is None:
        return Origin(Signature.UNSIGNED, size)
    key = VerifyKey(parsed.signer)
    fd = f.fileno()
    end = size - RECORD_SIZE
    record = None
    if end >= parsed.header.header_size + STREAM_HEADER_SIZE + TAG_SIZE:
        record = parse_record(os.pread(fd, RECORD_SIZE, end))
    if record is None:
        return Origin(Signature.MISSING, size, key, TruncatedError(NEVER_SEALED))
    problem = _mismatch(fd, record, key, end - parsed.header.header_size, end)
    if problem:
        return Origin(Signature.INVALID, end, key, FormatError(problem))
    return Origin(Signature.SIGNED, end, key)


def _mismatch(fd: int, record: SignatureRecord, key: VerifyKey, stream: int, end: int) -> str:
    """Why ``record`` does not sign the ``end`` bytes before it, or ""."""
    if not record.verifies(key):
        return "signature does not verify: the signature record was edited or forged"
    segments = segment_count(stream)
    if record.segments != segments:
        return f"signature covers {record.segments} segments, the file holds {segments}"
    if record.last_tag != os.pread(fd, TAG_SIZE, end - TAG_SIZE):
        return "signature covers another final segment: the end of the file was replaced"
    if record.file_sha256 != _sha256(fd, end):
        return "the file was changed after it was signed (its SHA-256 differs)"
    return ""


def segment_count(stream_size: int) -> int:
    """Segments in a Tink stream of ``stream_size`` bytes (stream header included)."""
    body = stream_size - STREAM_HEADER_SIZE
    if body <= FIRST_CIPHERTEXT_SEGMENT_SIZE:
        return 1
    rest = body - FIRST_CIPHERTEXT_SEGMENT_SIZE
    return 1 + -(-rest // CIPHERTEXT_SEGMENT_SIZE)


def _sha256(fd: int, end: int) -> bytes:
    digest, pos = hashlib.sha256(), 0
    while pos < end:
        block = os.pread(fd, min(_HASH_BLOCK, end - pos), pos)
        if not block:  # the file shrank while it was read
            break
        digest.update(block)
        pos += len(block)
    return digest.digest()


def origin_of(path: Path) -> tuple[ParsedHeader, Origin]:
    """The (unauthenticated) header and the signature state of a file, with no key."""
    try:
        with open(path, "rb") as f:
            parsed = parse_header(f.read)
            return parsed, read_origin(f, parsed, os.fstat(f.fileno()).st_size)
    except OSError as exc:
        raise FormatError(f"cannot read {path}: {os_reason(exc)}") from exc


class _Slice(io.RawIOBase):
    """Bytes ``start .. end`` of an open file, read with ``pread``."""

    def __init__(self, fd: int, start: int, end: int) -> None:
        super().__init__()
        self._fd, self._pos, self._end = fd, start, end

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._end - self._pos)
        if want <= 0:
            return 0
        data = os.pread(self._fd, want, self._pos)
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)


def stream_slice(f: BinaryIO, start: int, end: int) -> BinaryIO:
    """The Tink stream of a recording: ``f`` from ``start`` up to ``end`` (before any record)."""
    return io.BufferedReader(_Slice(f.fileno(), start, end))
