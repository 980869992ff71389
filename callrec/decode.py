"""Turn a sealed recording's frames into audio: the one renderer.

``callrec decrypt`` streams into a WAV/FLAC :class:`callrec.audio.AudioSink`;
the demo and ``callrec testcall`` decode into memory with
:func:`decode_recording` (nothing touches a disk). Gaps and pauses become
silence at their true length (a pause from its pause frame's time to its
resume frame's), so what was said after a pause stands where it was said;
pause/resume (with who asked) and gap positions are noted as events.
``decrypt --channel`` writes one side of a stereo recording, or both mixed
(:class:`ChannelPick`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from callrec.audio import AudioSink, PayloadStream, silence
from callrec.crypto.frames import Pauses
from callrec.crypto.keys import PrivateKey
from callrec.errors import AudioFileError, CallrecError, FormatError
from callrec.media.layout import ChannelPick
from callrec.recording import (
    AudioFrame,
    Frame,
    GapFrame,
    Header,
    MetadataFrame,
    PauseFrame,
    RecordingReader,
    RecordingTooLong,
    ResumeFrame,
    Verdict,
)

# Gaps are rendered in pieces of at most this many sample frames, so a long
# gap never needs one large buffer.
SILENCE_CHUNK = 48000


class SampleSink(Protocol):
    """Where rendered samples go: 1-D for mono, frames x channels otherwise."""

    @property
    def frames_written(self) -> int: ...

    def write(self, samples: npt.NDArray[np.int16]) -> None: ...


@dataclass
class Rendered:
    """What rendering learned besides the audio."""

    metadata: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    gaps: int = 0
    # Bytes of a last, incomplete sample frame (the writer never makes one).
    leftover: int = 0


def render(frames: Iterable[Frame], header: Header, sink: SampleSink) -> Rendered:
    """Write audio and gaps to ``sink``; collect metadata and pause/resume/gap notes."""
    rate, channels, codec = header.sample_rate, header.channels, str(header.codec)
    stream = PayloadStream(codec, channels)
    pauses = Pauses(rate)
    out = Rendered()

    def write_silence(left: int) -> None:
        while left > 0:
            n = min(left, SILENCE_CHUNK)
            sink.write(silence(codec, n, channels))
            left -= n

    for frame in frames:
        position = round(sink.frames_written / rate, 6)
        if isinstance(frame, AudioFrame):
            sink.write(stream.feed(frame.payload))
        elif isinstance(frame, GapFrame):
            out.gaps += 1
            out.events.append(
                {"event": "gap", "at_seconds": position, "seconds": frame.samples / rate}
            )
            write_silence(frame.samples)
        elif isinstance(frame, PauseFrame | ResumeFrame):
            kind = "pause" if isinstance(frame, PauseFrame) else "resume"
            paused = pauses.silence(frame)
            write_silence(paused)
            event = {"event": kind, "at": frame.at, "at_seconds": position, "source": frame.source}
            if isinstance(frame, ResumeFrame):
                event.update(at_seconds=round(sink.frames_written / rate, 6), paused=paused / rate)
            out.events.append(event)
        elif isinstance(frame, MetadataFrame):
            out.metadata.append(frame.record)
    out.leftover = stream.leftover
    return out


@contextmanager
def audio_output(path: Path, rate: int, channels: int) -> Iterator[AudioSink]:
    """An :class:`AudioSink` that makes ``path`` whole or not at all.

    The audio goes to a hidden file beside ``path``, renamed into place when
    the block ends and removed when it raises: a decrypt that fails (a full
    disk, a rate the format cannot take) never leaves an empty or partial
    file. An invalid recording's verified part is no failure: it is kept.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.part{path.suffix}")
    try:
        with AudioSink(temporary, rate, channels) as sink:
            yield sink
        os.replace(temporary, path)
    except AudioFileError as exc:  # named after the file the user asked for
        raise AudioFileError(str(path), exc.message) from exc.__cause__
    finally:
        temporary.unlink(missing_ok=True)


class ChannelChoiceError(CallrecError):
    """``--channel caller|callee`` asked of a recording that has no such channel."""


def pick_channel(samples: npt.NDArray[np.int16], pick: ChannelPick) -> npt.NDArray[np.int16]:
    """Sample frames (frames x channels, or 1-D) as one channel: a side, or the sum
    of every channel clipped to 16 bits (as Asterisk mixes a snoop's two directions)."""
    if samples.ndim == 1:
        return samples
    side = pick.side
    if side is not None:
        return np.ascontiguousarray(samples[:, side])
    total = samples.astype(np.int32).sum(axis=1)
    return np.clip(total, -32768, 32767).astype(np.int16)


class _PickedSink:
    """A :class:`SampleSink` writing one channel (or the mix) of what it is given."""

    def __init__(self, sink: SampleSink, pick: ChannelPick) -> None:
        self._sink = sink
        self._pick = pick

    @property
    def frames_written(self) -> int:
        return self._sink.frames_written

    def write(self, samples: npt.NDArray[np.int16]) -> None:
        self._sink.write(pick_channel(samples, self._pick))


def render_file(
    reader: RecordingReader, path: Path, pick: ChannelPick | None = None
) -> tuple[Rendered, int]:
    """Render ``reader``'s recording into the audio file ``path``; (notes, sample frames).

    With ``pick`` the file has one channel: that side of a stereo recording,
    or every channel mixed. The whole recording is read once before a byte
    is written: one that adds up to more than a week (a 400-byte file of
    gaps can) writes nothing and raises :class:`RecordingTooLong`, instead
    of gigabytes of silence first. Any other damage still gives the verified
    audio before it.
    """
    header = reader.header
    problem = None if pick is None else pick.problem(str(header.codec), header.channels)
    if problem is not None:
        raise ChannelChoiceError(problem)
    check_length(reader)
    channels = header.channels if pick is None else 1
    with audio_output(path, header.sample_rate, channels) as sink:
        target: SampleSink = sink if pick is None else _PickedSink(sink, pick)
        rendered = render(reader.frames(), header, target)
    return rendered, sink.frames_written


def check_length(reader: RecordingReader) -> None:
    """Read the whole recording once; :class:`RecordingTooLong` if it adds up to over a week."""
    for _frame in reader.frames():
        pass
    if isinstance(reader.error, RecordingTooLong):
        raise reader.error


class MemorySink:
    """A :class:`SampleSink` that keeps the samples (for checks, never a file)."""

    def __init__(self) -> None:
        self.frames_written = 0
        self._parts: list[npt.NDArray[np.int16]] = []

    def write(self, samples: npt.NDArray[np.int16]) -> None:
        self._parts.append(samples)
        self.frames_written += len(samples)

    def samples(self) -> npt.NDArray[np.int16]:
        if not self._parts:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self._parts)


@dataclass
class Decoded:
    """A recording decrypted into memory, with the reader's judgement."""

    samples: npt.NDArray[np.int16]
    rate: int
    channels: int
    verdict: Verdict | None
    error: FormatError | None
    metadata: list[dict[str, Any]]
    events: list[dict[str, Any]]
    gaps: int

    def mono(self) -> npt.NDArray[np.int16]:
        """The channel mix (the samples themselves for a mono recording)."""
        if self.samples.ndim == 1:
            return self.samples
        return np.asarray(self.samples.mean(axis=1), dtype=np.int16)


def decode_recording(path: Path, keys: Sequence[PrivateKey]) -> Decoded:
    """Verify and decode ``path`` into memory, segment by segment."""
    sink = MemorySink()
    with RecordingReader(path, keys) as reader:
        check_length(reader)  # gaps are rendered as silence: in memory, here
        header = reader.header
        notes = render(reader.frames(), header, sink)
        return Decoded(
            samples=sink.samples(),
            rate=header.sample_rate,
            channels=header.channels,
            verdict=reader.verdict,
            error=reader.error,
            metadata=notes.metadata,
            events=notes.events,
            gaps=notes.gaps,
        )
