"""Reading sealed recordings: verify segment by segment, judge, export for Tink.

The reader releases frames only from verified segments; how a failure is
judged (TRUNCATED or INVALID) depends on whether the file was sealed
(docs/FORMAT.md, "Verdicts"): a ``.crec.part`` was never sealed, so a bad
ending there is a crash, not tampering.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from callrec.crypto.format import (
    FIELDS,
    RECORDING_ID_SIZE,
    Header,
    open_header,
    parse_header,
)
from callrec.crypto.frames import (
    AudioFrame,
    Frame,
    FrameParser,
    GapFrame,
    PauseFrame,
    Pauses,
    ResumeFrame,
)
from callrec.crypto.keys import PrivateKey
from callrec.crypto.limits import MAX_RECORDING_TEXT, longest_recording
from callrec.crypto.stream import open_stream, read_segments, tink_keyset_json
from callrec.errors import FormatError, TruncatedError
from callrec.recording.origin import Origin, read_origin, stream_slice
from callrec.spool import UNSEALED_MARK, os_reason
from callrec.user_files import open_regular

logger = logging.getLogger(__name__)

_ID_START = {name: start for name, start, _end in FIELDS}["recording_id"]
_ID_END = _ID_START + RECORDING_ID_SIZE


class RecordingTooLong(FormatError):
    """Audio, gaps and pauses add up to more than MAX_RECORDING_SECONDS: no call is that long.

    A file callrec wrote never does: its writer stops at the limit
    (:class:`~callrec.recording.writer.RecordingLimitReached`).
    """


class Verdict(StrEnum):
    """How a recording reads (docs/FORMAT.md, "Verdicts"); CLI exit codes 0, 3, 4."""

    COMPLETE = "complete"
    TRUNCATED = "truncated"
    INVALID = "invalid"


@dataclass(frozen=True)
class VerifyResult:
    """One file's verdict; ``error`` names the segment or header field when not COMPLETE."""

    path: Path
    verdict: Verdict
    error: FormatError | None
    segments: int
    audio_seconds: float
    recording_id: str
    origin: Origin | None = None  # the signature; None when the header could not be read


@dataclass(frozen=True)
class TinkExport:
    """What any Tink implementation needs to decrypt the stream part of a ``.crec``."""

    keyset_json: str
    stream_offset: int  # stream bytes are file[stream_offset : stream_offset + stream_length]
    stream_length: int
    associated_data: bytes  # the container header, file[0 : stream_offset]


def is_sealed_name(path: Path) -> bool:
    """Whether a file's name says it was sealed: a ``.part`` file never was."""
    return not Path(path).name.endswith(UNSEALED_MARK)


def judge(error: FormatError, sealed: bool) -> Verdict:
    """A cut is TRUNCATED only in a file never sealed (a crash); anything else is INVALID."""
    if isinstance(error, TruncatedError) and not sealed:
        return Verdict.TRUNCATED
    return Verdict.INVALID


def read_header(path: Path) -> Header:
    """The public header, without a key and therefore NOT authenticated."""
    with _open(Path(path)) as f:
        return parse_header(f.read).header


class RecordingReader:
    """Decrypts and verifies a ``.crec`` (or ``.crec.part``) segment by segment.

    ``sealed`` defaults from the name: a ``.part`` file was never sealed, so a
    bad ending there is a crash (TRUNCATED), not tampering (INVALID).
    """

    def __init__(
        self, path: Path, keys: Sequence[PrivateKey], *, sealed: bool | None = None
    ) -> None:
        self.path = Path(path)
        self.sealed = is_sealed_name(self.path) if sealed is None else sealed
        self._file = _open(self.path)
        try:
            parsed = parse_header(self._file.read)
            self._data_key = open_header(parsed, keys)
        except BaseException:
            self._file.close()
            raise
        self.header = parsed.header
        self._ad = parsed.raw
        size = os.fstat(self._file.fileno()).st_size
        # Checked first, without the key: the stream then stops before the record.
        self.origin = read_origin(self._file, parsed, size)
        self._stream_size = self.origin.stream_end - self.header.header_size
        self.verdict: Verdict | None = None
        self.error: FormatError | None = None
        self.segments_verified = 0
        self.audio_seconds = 0.0

    def __enter__(self) -> RecordingReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def frames(self) -> Iterator[Frame]:
        """Frames from verified segments only; on failure stop and set verdict/error.

        The length so far is checked before a frame is released, so whoever
        renders the frames never writes more than MAX_RECORDING_SECONDS.
        """
        parser = FrameParser()
        width = self.header.codec.sample_width * self.header.channels
        longest = longest_recording(self.header.sample_rate)
        samples = 0.0
        pauses, paused = Pauses(self.header.sample_rate), 0  # rendered as silence too
        index = -1
        try:
            for index, plaintext in self.chunks():
                for frame in parser.feed(plaintext, index):
                    if isinstance(frame, AudioFrame):
                        samples += len(frame.payload) / width
                    elif isinstance(frame, GapFrame):
                        samples += frame.samples
                    elif isinstance(frame, PauseFrame | ResumeFrame):
                        paused += pauses.silence(frame)
                    if samples + paused > longest:
                        raise _too_long(frame, index)
                    self.audio_seconds = samples / self.header.sample_rate
                    yield frame
            if self.verdict is Verdict.COMPLETE:
                parser.finish(index)
        except FormatError as exc:
            self._settle(exc)

    def chunks(self) -> Iterator[tuple[int, bytes]]:
        """(segment index, plaintext) of each verified segment: the raw layer under frames()."""
        stream = stream_slice(self._file, self.header.header_size, self.origin.stream_end)
        try:
            cipher = open_stream(stream, self._data_key, self._ad)
            for index, plaintext in read_segments(stream, cipher, self._stream_size):
                self.segments_verified = index + 1
                yield index, plaintext
        except FormatError as exc:
            self._settle(exc)
            return
        if self.origin.error is not None:  # a whole stream, but unsigned or signed wrongly
            self._settle(self.origin.error)
            return
        self.verdict = Verdict.COMPLETE

    def _settle(self, error: FormatError) -> None:
        self.verdict = judge(error, self.sealed)
        self.error = error
        logger.info("recording %s: %s: %s", self.header.recording_id, self.verdict, error)


def verify(path: Path, keys: Sequence[PrivateKey], *, sealed: bool | None = None) -> VerifyResult:
    """Read a whole recording and judge it; header problems become a verdict too."""
    path = Path(path)
    is_sealed = is_sealed_name(path) if sealed is None else sealed
    try:
        reader = RecordingReader(path, keys, sealed=is_sealed)
    except FormatError as exc:
        return VerifyResult(path, judge(exc, is_sealed), exc, 0, 0.0, _peek_id(path))
    with reader:
        for _frame in reader.frames():
            pass
    assert reader.verdict is not None
    return VerifyResult(
        path,
        reader.verdict,
        reader.error,
        reader.segments_verified,
        reader.audio_seconds,
        reader.header.recording_id,
        reader.origin,
    )


def export_tink(path: Path, keys: Sequence[PrivateKey]) -> TinkExport:
    """The Tink keyset, stream slice and associated data of a recording (no stream check)."""
    path = Path(path)
    with _open(path) as f:
        parsed = parse_header(f.read)
        data_key = open_header(parsed, keys)
        size = read_origin(f, parsed, os.fstat(f.fileno()).st_size).stream_end
    key_id = int.from_bytes(bytes.fromhex(parsed.header.recording_id)[:4], "big") & 0x7FFFFFFF
    offset = parsed.header.header_size
    return TinkExport(tink_keyset_json(data_key, key_id or 1), offset, size - offset, parsed.raw)


def _too_long(frame: Frame, segment: int) -> RecordingTooLong:
    what = "audio"
    if isinstance(frame, GapFrame):
        what = f"a gap of {frame.samples} samples"
    elif isinstance(frame, ResumeFrame):
        what = "a pause"
    return RecordingTooLong(
        f"{what} makes the recording longer than {MAX_RECORDING_TEXT}",
        segment=segment,
    )


def _open(path: Path) -> BinaryIO:
    try:
        return open_regular(path)
    except OSError as exc:
        raise FormatError(f"cannot read {path}: {os_reason(exc)}") from exc


def _peek_id(path: Path) -> str:
    try:
        with open_regular(path) as f:
            head = f.read(_ID_END)
    except OSError:
        return ""
    return head[_ID_START:_ID_END].hex() if len(head) == _ID_END else ""
