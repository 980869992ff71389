"""Writing sealed recordings: framed audio in, encrypted segments out.

The writer is a file object (Tink ``_encrypting_stream.py``): each 4 KiB
segment is encrypted and written the moment it fills, so a crash loses at
most one partial segment plus what the fsync policy had not flushed, and no
plaintext audio ever reaches the disk. ``close()`` writes the final segment
and renames ``<id>.crec.part`` to ``<id>.crec`` atomically; closing again is
harmless and returns the same :class:`SealInfo`. Writing after close, after
a write failed, or from a forked child raises.

A recording is at most MAX_RECORDING_SECONDS long (:mod:`callrec.crypto.limits`),
counted as the reader counts it, because the reader refuses a longer one:
audio, gaps or a resume that would go past it raise
:class:`RecordingLimitReached`, and nothing that adds time is written after
that. The writer stays open, so what it holds can be sealed.

With a signing key, the header names the recorder's public key and
``close()`` appends the signature record (:mod:`callrec.crypto.signing`)
after the final segment: it covers the SHA-256 of every byte written
before it, hashed as the segments go out, so sealing never reads back.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from callrec.clock import SYSTEM_CLOCK, Clock
from callrec.crypto.format import Header, build_header, checked_params
from callrec.crypto.frames import (
    PauseFrame,
    Pauses,
    ResumeFrame,
    audio_prefix,
    encode_gap,
    encode_metadata,
    encode_pause,
    encode_resume,
)
from callrec.crypto.keys import DATA_KEY_SIZE, PublicKey
from callrec.crypto.limits import MAX_CREATED_AT_MS, MAX_RECORDING_TEXT, longest_recording
from callrec.crypto.signing import SigningKey, build_record
from callrec.crypto.stream import (
    FIRST_PLAINTEXT_SEGMENT_SIZE,
    NONCE_PREFIX_SIZE,
    SALT_SIZE,
    STREAM_HEADER_SIZE,
    TAG_SIZE,
    SegmentCipher,
)
from callrec.errors import CallrecError, RecordingUnavailable, SpoolError, WriterClosedError
from callrec.media.codecs import Codec
from callrec.spool import (
    PART_SUFFIX,
    SEALED_SUFFIX,
    fsync_dir,
    make_private_dirs,
    move_no_replace,
    os_reason,
    write_all,
)

logger = logging.getLogger(__name__)

_IOV_BATCH = 512  # below IOV_MAX (1024 on Linux)

# Updated in a forked child so every writer inherited from the parent refuses
# to write: two processes appending to one stream would corrupt it.
_PID = [os.getpid()]
_CLOSED = 0  # never a process id


def _after_fork_in_child() -> None:
    _PID[0] = os.getpid()


os.register_at_fork(after_in_child=_after_fork_in_child)


class RecordingLimitReached(CallrecError):
    """The recording would grow past MAX_RECORDING_SECONDS, which its reader refuses.

    Nothing more that adds time is written; what was written stays and can
    be sealed (:meth:`RecordingWriter.close`).
    """


@dataclass(frozen=True)
class SealInfo:
    """What the audit line records when a recording is sealed."""

    path: Path
    recording_id: str
    segments: int
    last_tag_sha256: str
    size: int
    audio_seconds: float
    signer: str | None = None  # fingerprint of the recorder key that signed it


class RecordingWriter:
    """Encrypts framed audio into ``<id>.crec.part``; use :meth:`create`."""

    def __init__(
        self,
        fd: int,
        path: Path,
        recording_id: bytes,
        cipher: SegmentCipher,
        header: Header,
        fsync_interval: float,
        clock: Clock,
        signer: SigningKey | None = None,
        written: bytes = b"",
    ) -> None:
        self._fd = fd
        self.path = path
        self.recording_id = recording_id.hex()
        self._cipher = cipher
        self.header = header
        self._fsync_interval = fsync_interval
        self._clock = clock
        # The one guard: the process that may write, or _CLOSED. Closing,
        # aborting and a failed write set _CLOSED, and a forked child has
        # another pid, so each entry point tests this one field.
        self._owner = _PID[0]
        self._failure: SpoolError | None = None
        self._sealed: SealInfo | None = None
        self._buf = bytearray()
        self._index = 0
        self._need = FIRST_PLAINTEXT_SEGMENT_SIZE
        self._last_tag = b""
        self._size = header.header_size + STREAM_HEADER_SIZE
        self._last_sync = clock.monotonic()
        self._audio_bytes = 0
        self._gap_samples = 0
        self._frame_bytes = header.codec.sample_width * header.channels
        # The length limit, as bytes of audio that still fit: a packet costs
        # one comparison. Gaps and each pause's silence (known at its resume,
        # as the reader renders it) take their share when written.
        self._audio_room = longest_recording(header.sample_rate) * self._frame_bytes
        self._pauses = Pauses(header.sample_rate)
        self._limit: str | None = None  # why the limit refused, once it has
        self._signer = signer
        # SHA-256 of every byte in the file so far (``written``: the header
        # and stream header), for the signature record.
        self._file_hash = hashlib.sha256(written)

    @classmethod
    def create(
        cls,
        directory: Path,
        recipients: Sequence[PublicKey],
        *,
        codec: Codec | str,
        sample_rate: int,
        channels: int = 1,
        recording_id: str | None = None,
        created_at: float | None = None,
        fsync_interval: float = 1.0,
        clock: Clock = SYSTEM_CLOCK,
        signer: SigningKey | None = None,
    ) -> RecordingWriter:
        """Create ``directory/<id>.crec.part`` (0600, folder 0700) and write the header now.

        With ``signer`` the recording is signed by that recorder key when
        sealed. Raises ``RecordingUnavailable`` for unusable arguments (no
        recipient) and ``SpoolError`` when the spool cannot be written.
        """
        keys, the_codec, rid = checked_params(
            recipients, codec, sample_rate, channels, recording_id
        )
        created_ms = round((clock.wall() if created_at is None else created_at) * 1000)
        if not 0 <= created_ms <= MAX_CREATED_AT_MS:  # what a reader accepts
            raise RecordingUnavailable(f"created_at {created_at} is out of range")
        data_key = os.urandom(DATA_KEY_SIZE)
        signer_raw = None if signer is None else signer.public_key().raw
        built = build_header(
            rid, the_codec, sample_rate, channels, created_ms, keys, data_key, signer_raw
        )
        header, raw = built.header, built.raw
        cipher = SegmentCipher(data_key, os.urandom(SALT_SIZE), os.urandom(NONCE_PREFIX_SIZE), raw)
        path = Path(directory) / f"{rid.hex()}{PART_SUFFIX}"
        head = raw + cipher.header
        fd = _create_part(Path(directory), path, head)
        logger.info("recording %s started in %s for %d recipient(s)", rid.hex(), path, len(keys))
        return cls(fd, path, rid, cipher, header, fsync_interval, clock, signer, head)

    @property
    def closed(self) -> bool:
        """True once sealed, aborted, or stopped by a failed write."""
        return self._owner == _CLOSED

    @property
    def audio_seconds(self) -> float:
        """Seconds of audio and gaps written so far."""
        samples = self._audio_bytes / self._frame_bytes + self._gap_samples
        return samples / self.header.sample_rate

    @property
    def segments(self) -> int:
        """Segments written so far (the final one included once closed)."""
        return self._index

    def write(self, data: bytes) -> int:
        """Append raw framed plaintext; full segments are encrypted and written at once."""
        if self._owner != _PID[0]:
            raise self._refusal()
        if len(self._buf) + len(data) < self._need:
            self._buf += data
        else:
            self._emit(memoryview(data))
        return len(data)

    def write_audio(self, payload: bytes) -> None:
        """One audio frame (e.g. one RTP payload); empty payloads are skipped."""
        if self._owner != _PID[0]:
            raise self._refusal()
        if not payload:
            return
        if self._audio_bytes + len(payload) > self._audio_room:
            raise self._too_long("audio")
        buf = self._buf
        buf += audio_prefix(len(payload))
        self._audio_bytes += len(payload)
        if len(buf) + len(payload) < self._need:
            buf += payload
        else:
            self._emit(memoryview(payload))

    def write_gap(self, samples: int) -> None:
        """Audio that never arrived: ``samples`` per channel of silence on playback."""
        frame = encode_gap(samples)
        self._take(samples, f"a gap of {samples} samples")
        self.write(frame)
        self._gap_samples += samples

    def write_pause(self, at: float, source: str | None = None) -> None:
        """Recording paused at ``at``, asked by ``source`` (``callrec.pausing.PauseSource``)."""
        frame = encode_pause(at, source)
        self._pauses.silence(PauseFrame(float(at)))  # where its silence starts
        self.write(frame)

    def write_resume(self, at: float, source: str | None = None) -> None:
        """Recording resumed at ``at``: the pause since then plays back as silence."""
        frame = encode_resume(at, source)
        self._take(self._pauses.silence(ResumeFrame(float(at))), "a pause")
        self.write(frame)

    def write_metadata(self, record: Mapping[str, Any]) -> None:
        """A JSON object (consent evidence first, closing summary last: the caller's job)."""
        self.write(encode_metadata(record))

    def flush(self) -> None:
        """fsync what is written; a partial segment stays in memory until it fills."""
        if self._owner != _PID[0]:
            raise self._refusal()
        self._sync(self._clock.monotonic())

    def close(self, final_path: Path | None = None) -> SealInfo:
        """Write the final segment, fsync, rename to ``final_path`` (default ``<id>.crec``).

        Closing a sealed writer again returns the same :class:`SealInfo`; a
        writer that was aborted or failed has nothing sealed, so that raises.
        """
        if self._sealed is not None:
            return self._sealed
        if self._owner != _PID[0]:
            raise self._refusal()
        self._write_out([self._cipher.encrypt(self._index, bytes(self._buf), True)])
        self._index += 1
        self._buf.clear()
        if self._signer is not None:
            self._write_signature(self._signer)
        self._sync(self._clock.monotonic())
        self._close_fd()
        final = (
            Path(final_path)
            if final_path
            else self.path.with_name(self.recording_id + SEALED_SUFFIX)
        )
        _seal_rename(self.path, final)
        self.path = final
        info = SealInfo(
            path=final,
            recording_id=self.recording_id,
            segments=self._index,
            last_tag_sha256=hashlib.sha256(self._last_tag).hexdigest(),
            size=self._size,
            audio_seconds=self.audio_seconds,
            signer=None if self._signer is None else self._signer.fingerprint,
        )
        logger.info(
            "recording %s sealed: %s, %d segments, %.1f s",
            self.recording_id,
            final,
            info.segments,
            info.audio_seconds,
        )
        self._sealed = info
        return info

    def abort(self) -> None:
        """Stop without a final segment: the ``.part`` stays and reads as TRUNCATED."""
        if self._owner == _PID[0]:
            self._close_fd()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None and not self.closed:
            self.close()
        else:
            self.abort()

    def _take(self, samples: int, what: str) -> None:
        """Count ``samples`` of silence into the length, or refuse them past the limit."""
        if self._owner != _PID[0]:
            raise self._refusal()
        room = self._audio_room - samples * self._frame_bytes
        if self._audio_bytes > room:
            raise self._too_long(what)
        self._audio_room = room

    def _too_long(self, what: str) -> RecordingLimitReached:
        """The limit's refusal. From the first on, everything that adds time is
        refused: audio after a refused gap or pause would stand too early."""
        if self._limit is None:
            self._audio_room = -1
            self._limit = (
                f"recording {self.recording_id}: {what} would make it longer than "
                f"{MAX_RECORDING_TEXT}, the limit its reader accepts; it records no more, "
                "and what it holds can still be sealed"
            )
        return RecordingLimitReached(self._limit)

    def _refusal(self) -> Exception:
        """Why this process may not write (the guard failed): forked, failed or closed."""
        if self._owner != _CLOSED:
            return WriterClosedError(
                f"recording {self.recording_id}: writer used in a forked child"
            )
        if self._failure is not None:
            return SpoolError(self._failure.path, self._failure.message)
        return WriterClosedError(f"recording {self.recording_id} is closed")

    def _emit(self, data: memoryview) -> None:
        """Seal every full segment of buffer + ``data``, write them at once, buffer the rest.

        Large writes are sealed straight from ``data``, without a copy.
        """
        buf, sealed = self._buf, list[bytes]()
        take = max(self._need - len(buf), 0)
        buf += data[:take]
        with memoryview(buf) as view:
            used = self._seal_full(view, sealed)
        del buf[:used]
        rest = data[take:]
        if buf:  # a frame header overfilled the buffer: continue there
            buf += rest
            with memoryview(buf) as view:
                used = self._seal_full(view, sealed)
            del buf[:used]
        else:
            used = self._seal_full(rest, sealed)
            buf += rest[used:]
        self._write_out(sealed)
        now = self._clock.monotonic()
        if now - self._last_sync >= self._fsync_interval:
            self._sync(now)

    def _seal_full(self, view: memoryview, sealed: list[bytes]) -> int:
        """Seal the full segments at the start of ``view``; bytes consumed."""
        used, self._index, self._need = self._cipher.encrypt_full(
            view, self._index, self._need, sealed
        )
        return used

    def _write_out(self, sealed: list[bytes]) -> None:
        self._last_tag = sealed[-1][-TAG_SIZE:]
        for segment in sealed:
            self._file_hash.update(segment)
        try:
            for start in range(0, len(sealed), _IOV_BATCH):
                batch = sealed[start : start + _IOV_BATCH]
                total = sum(map(len, batch))
                written = os.writev(self._fd, batch)
                if written < total:  # rare on regular files; finish one call at a time
                    write_all(self._fd, b"".join(batch)[written:])
                self._size += total
        except OSError as exc:
            self._fail(exc)

    def _write_signature(self, signer: SigningKey) -> None:
        """The signature record, after the final segment: the last bytes of the file."""
        record = build_record(signer, self._index, self._last_tag, self._file_hash.digest())
        try:
            write_all(self._fd, record)
        except OSError as exc:
            self._fail(exc)
        self._size += len(record)

    def _sync(self, now: float) -> None:
        try:
            os.fsync(self._fd)
        except OSError as exc:
            self._fail(exc)
        self._last_sync = now

    def _fail(self, exc: OSError) -> None:
        self._failure = SpoolError(str(self.path), os_reason(exc))
        logger.error("recording %s failed: %s", self.recording_id, self._failure.message)
        self._close_fd()
        raise self._failure from exc

    def _close_fd(self) -> None:
        self._owner = _CLOSED
        try:
            os.close(self._fd)
        except OSError:
            logger.warning("recording %s: close failed", self.recording_id)


def _create_part(directory: Path, path: Path, head: bytes) -> int:
    if directory.exists() and not directory.is_dir():
        raise SpoolError(str(directory), "exists and is not a folder")
    try:
        make_private_dirs(directory)  # every missing parent 0700 too, not just the last
    except OSError as exc:
        raise SpoolError(str(directory), os_reason(exc)) from exc
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise SpoolError(str(path), os_reason(exc)) from exc
    try:
        write_all(fd, head)
        os.fsync(fd)
        fsync_dir(directory)
    except OSError as exc:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise SpoolError(str(path), os_reason(exc)) from exc
    return fd


def _seal_rename(part: Path, final: Path) -> None:
    try:
        move_no_replace(part, final)
    except SpoolError as exc:
        raise SpoolError(
            exc.path, f"cannot seal: {exc.message}; the recording stays at {part}"
        ) from None
