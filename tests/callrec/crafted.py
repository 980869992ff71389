"""Crafted recordings, made as an attacker would: with a recipient's public key only.

:func:`forge` seals any plaintext with the project's own format helpers
(``build_header``, ``SegmentCipher``): the header MAC and every segment
authenticate, so only the reader's limits stand between such a file and a
traceback, a hang or gigabytes of output. :data:`CORPUS` is the regression
corpus of issue 11's findings; each entry builds one file.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from callrec.crypto import frames
from callrec.crypto.format import build_header
from callrec.crypto.keys import DATA_KEY_SIZE, PublicKey
from callrec.crypto.stream import (
    FIRST_PLAINTEXT_SEGMENT_SIZE,
    NONCE_PREFIX_SIZE,
    PLAINTEXT_SEGMENT_SIZE,
    SALT_SIZE,
    SegmentCipher,
)
from callrec.media.codecs import Codec

CREATED_MS = 1_795_910_400_000
RATE = 8000
DAY = 86_400


def forge(
    path: Path,
    recipient: PublicKey,
    plaintext: bytes,
    *,
    created_ms: int = CREATED_MS,
    sample_rate: int = RATE,
    channels: int = 1,
) -> Path:
    """A sealed, authenticated, unsigned ``.crec`` holding ``plaintext`` as its frame stream."""
    data_key = os.urandom(DATA_KEY_SIZE)
    header = build_header(
        os.urandom(16), Codec.ULAW, sample_rate, channels, created_ms, [recipient], data_key
    )
    cipher = SegmentCipher(
        data_key, os.urandom(SALT_SIZE), os.urandom(NONCE_PREFIX_SIZE), header.raw
    )
    pieces = [plaintext[:FIRST_PLAINTEXT_SEGMENT_SIZE]]
    for start in range(FIRST_PLAINTEXT_SEGMENT_SIZE, len(plaintext), PLAINTEXT_SEGMENT_SIZE):
        pieces.append(plaintext[start : start + PLAINTEXT_SEGMENT_SIZE])
    if len(pieces[-1]) == (
        FIRST_PLAINTEXT_SEGMENT_SIZE if len(pieces) == 1 else PLAINTEXT_SEGMENT_SIZE
    ):
        pieces.append(
            b""
        )  # a full last piece: the final segment is an empty one, as the writer does
    sealed = [cipher.encrypt(i, piece, i == len(pieces) - 1) for i, piece in enumerate(pieces)]
    path.write_bytes(header.raw + cipher.header + b"".join(sealed))
    return path


def frame(kind: int, body: bytes) -> bytes:
    """A frame with any body, even one the encoders refuse."""
    return frames.FRAME_HEADER.pack(kind, len(body)) + body


def audio(n: int = 160) -> bytes:
    return frames.audio_prefix(n) + b"\xff" * n


def nested_metadata(depth: int) -> bytes:
    return frame(frames.METADATA, b'{"a":' + b"[" * depth + b"]" * depth + b"}")


@dataclass(frozen=True)
class Crafted:
    """One regression case: how to make it, and what ``verify`` must say."""

    name: str
    make: Callable[[Path, PublicKey], Path]
    error: str  # the message the reader names, in verify's ERROR column and decrypt's line


def _forged(name: str, plaintext: bytes, **header: int) -> Callable[[Path, PublicKey], Path]:
    def make(folder: Path, pub: PublicKey) -> Path:
        return forge(folder / f"{name}.crec", pub, plaintext, **header)

    return make


def _case(name: str, plaintext: bytes, error: str, **header: int) -> Crafted:
    return Crafted(name, _forged(name, plaintext, **header), error)


SEVEN_DAYS = "makes the recording longer than 7 days"
CORPUS: tuple[Crafted, ...] = (
    _case(
        "created-max",
        audio(),
        "header field created_at: created_at is after the year 9999",
        created_ms=2**64 - 1,
    ),
    _case(
        "created-1e13s",
        audio(),
        "header field created_at: created_at is after the year 9999",
        created_ms=10**16,
    ),
    # The issue made it with the writer (write_gap(2**64 - 1)), which now refuses
    # such a gap (tests/callrec/test_writer_limit.py): an attacker forges it.
    _case(
        "gap-max",
        audio() + frames.encode_gap(2**64 - 1),
        f"a gap of {2**64 - 1} samples {SEVEN_DAYS}",
    ),
    _case(
        "gaps-add-up",
        audio() + frames.encode_gap(DAY * RATE) * 8,
        f"a gap of {DAY * RATE} samples {SEVEN_DAYS}",
    ),
    _case("pause-nan", audio() + frame(frames.PAUSE, b"\xff" * 8), "pause time nan is not a date"),
    _case(
        "resume-2**64-1",
        frame(frames.RESUME, struct.pack(">d", 2.0**64)),
        "resume time 1.8446744073709552e+19 is not a date",
    ),
    _case("nested-100000", nested_metadata(100_000), "metadata nested deeper than 32 levels"),
    _case(
        "metadata-1e400",
        frame(frames.METADATA, b'{"at":1e400}'),
        "metadata frame is not JSON: number 1e400 is out of range",
    ),
    _case(
        "metadata-nan",
        frame(frames.METADATA, b'{"at":NaN}'),
        "metadata frame is not JSON: NaN is not JSON",
    ),
    _case(
        "rate-2**32-1",
        audio(255 * 4),
        "header field sample_rate: sample rate 4294967295 Hz is above 768000 Hz",
        sample_rate=2**32 - 1,
        channels=255,
    ),
    # The header claims 160 MiB; the refusal comes from those 5 bytes, in segment 0,
    # so the body (only 9,000 bytes here) is never collected.
    _case(
        "frame-160MiB",
        frames.FRAME_HEADER.pack(frames.AUDIO, 160 << 20) + b"\xff" * 9000,
        f"audio frame of {160 << 20} bytes, at most {16 << 20}",
    ),
)
