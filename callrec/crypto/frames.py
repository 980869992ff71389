"""Framing of the plaintext inside the encrypted stream.

Every frame is ``type (1 byte) || body length (uint32 BE) || body``; the
bodies are pinned in docs/FORMAT.md. Frames ignore segment boundaries: the
parser runs over the verified plaintext stream, so a frame may straddle
segments, and the writer never pads.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from callrec.clock import LATEST_WALL
from callrec.crypto.limits import (
    MAX_AUDIO_FRAME,
    MAX_METADATA_DEPTH,
    MAX_METADATA_FRAME,
    MAX_METADATA_TOTAL,
    MAX_PAUSE_SOURCE,
)
from callrec.errors import FormatError

AUDIO = 0x01
GAP = 0x02
PAUSE = 0x03
RESUME = 0x04
METADATA = 0x05

FRAME_HEADER = struct.Struct(">BI")
FRAME_HEADER_SIZE = FRAME_HEADER.size  # 5
_U64 = struct.Struct(">Q")
_F64 = struct.Struct(">d")
_NAMES = {AUDIO: "audio", GAP: "gap", PAUSE: "pause", RESUME: "resume", METADATA: "metadata"}
# The largest body each frame type may have: checked from the frame header,
# before a byte of the body is collected (docs/FORMAT.md, "Limits").
_MARK = 8 + MAX_PAUSE_SOURCE  # a pause or resume: its time, then who asked
MAX_BODY = {
    AUDIO: MAX_AUDIO_FRAME,
    GAP: 8,
    PAUSE: _MARK,
    RESUME: _MARK,
    METADATA: MAX_METADATA_FRAME,
}
# Who paused or resumed, as the frame names it: a word a terminal shows safely.
_SOURCE = re.compile(rb"[a-z][a-z0-9-]*")


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """Codec payload exactly as received (e.g. one RTP payload)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class GapFrame:
    """Audio that never arrived, in samples per channel; rendered as silence."""

    samples: int


@dataclass(frozen=True, slots=True)
class PauseFrame:
    """Recording paused at ``at`` (Unix seconds), asked by ``source`` (``agent-code``,
    ``agi``, ``control``; None in files written before pauses named it)."""

    at: float
    source: str | None = None


@dataclass(frozen=True, slots=True)
class ResumeFrame:
    """Recording resumed at ``at`` (Unix seconds), asked by ``source`` (``auto-resume`` too)."""

    at: float
    source: str | None = None


@dataclass(frozen=True, slots=True)
class MetadataFrame:
    """A JSON object: consent evidence first, the closing summary last."""

    record: dict[str, Any]


Frame = AudioFrame | GapFrame | PauseFrame | ResumeFrame | MetadataFrame


def audio_prefix(length: int) -> bytes:
    """Frame header of an audio frame whose payload follows (at most MAX_AUDIO_FRAME)."""
    if length > MAX_AUDIO_FRAME:
        raise ValueError(f"audio frame of {length} bytes, at most {MAX_AUDIO_FRAME}")
    return FRAME_HEADER.pack(AUDIO, length)


def encode_gap(samples: int) -> bytes:
    if not 0 <= samples < (1 << 64):
        raise ValueError(f"gap of {samples} samples is out of range")
    return FRAME_HEADER.pack(GAP, 8) + _U64.pack(samples)


def encode_pause(at: float, source: str | None = None) -> bytes:
    return _encode_mark(PAUSE, at, source)


def encode_resume(at: float, source: str | None = None) -> bytes:
    return _encode_mark(RESUME, at, source)


def _encode_mark(kind: int, at: float, source: str | None) -> bytes:
    body = _F64.pack(_finite(at))
    if source is not None:
        body += source.encode("ascii", "replace")
        if len(body) > _MARK or not _SOURCE.fullmatch(body, 8):
            raise ValueError(
                f"{_NAMES[kind]} source {source!r} is not a word of a-z, 0-9 and - "
                f"(at most {MAX_PAUSE_SOURCE})"
            )
    return FRAME_HEADER.pack(kind, len(body)) + body


class Pauses:
    """Pairs pause and resume frames as every renderer does.

    A pause renders as silence of its true length, ``resume.at - pause.at``,
    where its resume frame stands; a second pause before a resume, or a
    resume without a pause, renders nothing; a pause still open when the
    recording ends renders nothing either (the recording ends there).
    """

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.started: float | None = None  # the open pause's start

    def silence(self, frame: PauseFrame | ResumeFrame) -> int:
        """Samples of silence ``frame`` closes (0 for a pause frame)."""
        if isinstance(frame, PauseFrame):
            if self.started is None:
                self.started = frame.at
            return 0
        start, self.started = self.started, None
        return 0 if start is None else max(0, round((frame.at - start) * self.sample_rate))


def encode_metadata(record: Mapping[str, Any]) -> bytes:
    """UTF-8 JSON object, compact; NaN, infinities and what a reader refuses are refused."""
    body = json.dumps(dict(record), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    data = body.encode("utf-8")
    if len(data) > MAX_METADATA_FRAME:
        raise ValueError(f"metadata of {len(data)} bytes, at most {MAX_METADATA_FRAME}")
    if json_depth(record) > MAX_METADATA_DEPTH:
        raise ValueError(f"metadata nested deeper than {MAX_METADATA_DEPTH} levels")
    return FRAME_HEADER.pack(METADATA, len(data)) + data


def encode(frame: Frame) -> bytes:
    """Any frame as bytes (the writer uses the specialised encoders directly)."""
    if isinstance(frame, AudioFrame):
        return audio_prefix(len(frame.payload)) + frame.payload
    if isinstance(frame, GapFrame):
        return encode_gap(frame.samples)
    if isinstance(frame, PauseFrame):
        return encode_pause(frame.at, frame.source)
    if isinstance(frame, ResumeFrame):
        return encode_resume(frame.at, frame.source)
    return encode_metadata(frame.record)


def _finite(at: float) -> float:
    if not math.isfinite(at):
        raise ValueError(f"time {at!r} is not finite")
    if not 0 <= at <= LATEST_WALL:
        raise ValueError(f"time {at!r} is out of range (1970..9999)")
    return float(at)


def json_depth(value: object) -> int:
    """How deeply lists and objects nest in ``value`` (a scalar is 0); no recursion."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list | tuple):
            deepest = max(deepest, depth)
            todo.extend((child, depth + 1) for child in item)
    return deepest


class FrameParser:
    """Incremental parser: feed verified plaintext, take complete frames.

    A frame larger than a segment is collected as a list of pieces and joined
    once, so a long frame costs one copy, not one per segment.
    """

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._have = 0
        self._want = 0
        self._metadata = 0  # bytes of metadata so far, bounded in total

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return self._have

    def feed(self, data: bytes, segment: int) -> Iterator[Frame]:
        """Frames completed by ``data``; errors name ``segment``, where the bad frame ended."""
        if self._parts:
            self._parts.append(data)
            self._have += len(data)
            if self._have < self._want:
                return
            data = b"".join(self._parts)
            self._parts, self._have = [], 0
        pos, end, unpack = 0, len(data), FRAME_HEADER.unpack_from
        length = 0
        while end - pos >= FRAME_HEADER_SIZE:
            kind, length = unpack(data, pos)
            stop = pos + FRAME_HEADER_SIZE + length
            if kind == AUDIO and length <= MAX_AUDIO_FRAME:  # the common case, kept inline
                if stop > end:
                    break
                yield AudioFrame(data[pos + FRAME_HEADER_SIZE : stop])
            else:
                _check_header(kind, length, segment)  # before waiting for the body
                if stop > end:
                    break
                if kind == METADATA:
                    self._count_metadata(length, segment)
                yield _decode(kind, data[pos + FRAME_HEADER_SIZE : stop], segment)
            pos = stop
        if pos < end:
            rest = data[pos:]
            self._parts, self._have = [rest], len(rest)
            known = len(rest) >= FRAME_HEADER_SIZE
            self._want = FRAME_HEADER_SIZE + length if known else FRAME_HEADER_SIZE

    def _count_metadata(self, length: int, segment: int) -> None:
        self._metadata += length
        if self._metadata > MAX_METADATA_TOTAL:
            raise FormatError(
                f"more than {MAX_METADATA_TOTAL} bytes of metadata in one recording",
                segment=segment,
            )

    def finish(self, segment: int) -> None:
        """End of a complete stream: bytes left over mean a cut frame."""
        if self._have:
            raise FormatError(
                f"stream ends inside a frame ({self._have} bytes left over)", segment=segment
            )


def _check_header(kind: int, length: int, segment: int) -> None:
    """A frame header's type and length, judged before its body is read."""
    limit = MAX_BODY.get(kind)
    if limit is None:
        raise FormatError(f"unknown frame type 0x{kind:02x}", segment=segment)
    if limit == 8 and length != 8:
        raise FormatError(f"frame type {kind} has {length} bytes, expected 8", segment=segment)
    if limit == _MARK and not 8 <= length <= _MARK:
        raise FormatError(
            f"frame type {kind} has {length} bytes, expected 8 to {_MARK}", segment=segment
        )
    if length > limit:
        raise FormatError(
            f"{_NAMES[kind]} frame of {length} bytes, at most {limit}", segment=segment
        )


def _decode(kind: int, body: bytes, segment: int) -> Frame:
    if kind == AUDIO:
        return AudioFrame(body)
    if kind == METADATA:
        return MetadataFrame(_decode_json(body, segment))
    if kind == GAP:
        return GapFrame(_U64.unpack(body)[0])
    at = _F64.unpack_from(body)[0]
    if not (math.isfinite(at) and 0 <= at <= LATEST_WALL):
        raise FormatError(f"{_NAMES[kind]} time {at!r} is not a date", segment=segment)
    source = None
    if len(body) > 8:
        if not _SOURCE.fullmatch(body, 8):
            raise FormatError(
                f"{_NAMES[kind]} source is not a word of a-z, 0-9 and -", segment=segment
            )
        source = body[8:].decode("ascii")
    return PauseFrame(at, source) if kind == PAUSE else ResumeFrame(at, source)


def _decode_json(body: bytes, segment: int) -> dict[str, Any]:
    too_deep = False
    record: object = None
    try:
        record = json.loads(
            body.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite_float
        )
    except RecursionError:  # nested far deeper than the limit
        too_deep = True
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormatError(f"metadata frame is not JSON: {exc}", segment=segment) from None
    if too_deep or json_depth(record) > MAX_METADATA_DEPTH:
        raise FormatError(
            f"metadata nested deeper than {MAX_METADATA_DEPTH} levels", segment=segment
        )
    if not isinstance(record, dict):
        raise FormatError("metadata frame is not a JSON object", segment=segment)
    return record


def _no_constant(name: str) -> float:
    # json accepts NaN and Infinity; FORMAT.md and RFC 8259 do not.
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400
        raise ValueError(f"number {text[:40]} is out of range")
    return value
