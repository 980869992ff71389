"""Audio helpers shared by ``seal``, ``decrypt``, the app and the tests.

Payloads inside a sealed recording are in one of four codecs (the table is
``callrec.media.codecs``): ``ulaw``, ``alaw``, ``slin16`` (16-bit
big-endian, as Asterisk sends it over RTP) and ``pcm16le`` (16-bit
little-endian interleaved, any rate; what ``seal`` stores for WAV/FLAC).
Samples leave this module as ``int16`` numpy arrays: 1-D for mono,
``frames x channels`` otherwise, which is what ``soundfile`` reads and writes.

Functions take a codec by name (``Codec`` is a StrEnum, so either works).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile as sf

from callrec.errors import AudioFileError, MediaError
from callrec.media.codecs import (
    EXACT_SUBTYPES,
    PCM16_SUBTYPE,
    RAW_FORMATS,
    Codec,
    bytes_per_sample,
    codec_of,
)
from callrec.media.g711 import (
    alaw_decode,
    alaw_encode,
    ulaw_decode,
    ulaw_encode,
)

Int16Array = npt.NDArray[np.int16]

# Output formats by extension: lossless 16-bit only, so decrypt never alters
# a sample.
SINK_FORMATS: dict[str, str] = {".wav": "WAV", ".flac": "FLAC"}


def decode_payload(codec: str, payload: bytes, channels: int) -> Int16Array:
    """Decode one payload to ``int16`` samples (1-D for mono, frames x channels).

    Raises MediaError when the payload is not a whole number of sample frames.
    """
    frame_bytes = bytes_per_sample(codec) * channels
    if len(payload) % frame_bytes:
        raise MediaError(
            f"{codec} payload of {len(payload)} bytes is not a whole number "
            f"of {channels}-channel sample frames"
        )
    if codec == Codec.ULAW:
        samples = ulaw_decode(payload)
    elif codec == Codec.ALAW:
        samples = alaw_decode(payload)
    elif codec == Codec.SLIN16:
        samples = np.frombuffer(payload, dtype=">i2").astype(np.int16)
    else:
        samples = np.frombuffer(payload, dtype="<i2").astype(np.int16)
    return _shape(samples, channels)


def encode_payload(codec: str, samples: Int16Array) -> bytes:
    """The inverse of :func:`decode_payload`: ``int16`` samples (1-D, or
    frames x channels, interleaved) as a ``codec`` payload."""
    flat = np.ascontiguousarray(samples, dtype=np.int16).reshape(-1)
    if codec == Codec.ULAW:
        return ulaw_encode(flat)
    if codec == Codec.ALAW:
        return alaw_encode(flat)
    if codec == Codec.SLIN16:
        return flat.astype(">i2").tobytes()
    if codec == Codec.PCM16:
        return encode_pcm16le(flat)
    raise MediaError(f"unknown codec {codec!r}")


class PayloadStream:
    """Decodes a sequence of payloads whose boundaries may split a sample frame.

    A stereo or 16-bit payload cut at an odd byte carries the odd bytes over
    to the next one; :attr:`leftover` says how many bytes are still waiting.
    """

    def __init__(self, codec: str, channels: int) -> None:
        self.codec = codec
        self.channels = channels
        self._frame_bytes = bytes_per_sample(codec) * channels
        self._rest = b""

    def feed(self, payload: bytes) -> Int16Array:
        """The whole sample frames now available."""
        data = self._rest + payload if self._rest else payload
        cut = len(data) - len(data) % self._frame_bytes
        self._rest = data[cut:]
        return decode_payload(self.codec, data[:cut], self.channels)

    @property
    def leftover(self) -> int:
        return len(self._rest)


def silence(codec: str, samples: int, channels: int) -> Int16Array:
    """``samples`` sample frames of digital silence (a gap rendered as audio).

    Always zeros, whatever the codec (A-law has no code for 0, its quietest
    decodes to +-8); the codec is validated for symmetry with
    :func:`decode_payload`.
    """
    bytes_per_sample(codec)
    if samples < 0:
        raise MediaError(f"negative silence length {samples}")
    return _shape(np.zeros(samples * channels, dtype=np.int16), channels)


def silence_payload(codec: str, samples: int, channels: int) -> bytes:
    """Encoded silence in ``codec`` (what a writer may store for a short gap)."""
    return codec_of(codec).spec.silence * (samples * channels)


def _shape(samples: Int16Array, channels: int) -> Int16Array:
    if channels == 1:
        return samples
    return samples.reshape(-1, channels)


def encode_pcm16le(samples: Int16Array) -> bytes:
    """Interleaved little-endian bytes of ``samples`` (the ``pcm16le`` payload)."""
    return np.ascontiguousarray(samples, dtype="<i2").tobytes()


# --- reading source files --------------------------------------------------


@dataclass(frozen=True)
class AudioInfo:
    """What :func:`read_audio_blocks` found: payload codec, rate, channels.

    ``frames`` is the number of sample frames; ``kind`` names the container
    (``"WAV"``, ``"FLAC"``, ... or ``"raw"``), ``subtype`` the sample encoding
    as libsndfile names it (``"PCM_16"``, ``"VORBIS"``, ...; the codec for raw).
    """

    path: Path
    codec: Codec
    sample_rate: int
    channels: int
    frames: int
    kind: str
    subtype: str

    @property
    def exact(self) -> bool:
        """True when the payload holds the source's samples unchanged (no rounding)."""
        return self.kind == "raw" or self.subtype in EXACT_SUBTYPES


def read_audio_blocks(
    path: str | os.PathLike[str], blocksize: int = 8000
) -> tuple[AudioInfo, Iterator[bytes]]:
    """Open an audio file and stream it as payload bytes in ``info.codec``.

    Files ``soundfile`` reads (WAV, FLAC, OGG, ...) come out as ``pcm16le``
    at their own rate and channel count; raw Asterisk files (``.ulaw``,
    ``.alaw``, ``.sln*``) come out unchanged. Each block holds at most
    ``blocksize`` sample frames, so no file is ever held in memory whole.
    """
    p = Path(path)
    if blocksize <= 0:
        raise MediaError(f"block size must be positive, not {blocksize}")
    raw = RAW_FORMATS.get(p.suffix.lower())
    if raw is not None:
        return _read_raw(p, raw.codec, raw.sample_rate, blocksize)
    return _read_soundfile(p, blocksize)


def _read_raw(
    path: Path, codec: Codec, rate: int, blocksize: int
) -> tuple[AudioInfo, Iterator[bytes]]:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise AudioFileError(str(path), exc.strerror or str(exc)) from exc
    width = bytes_per_sample(codec)
    if size % width:
        raise AudioFileError(str(path), f"raw {codec} file has an odd length ({size} bytes)")
    info = AudioInfo(path, codec, rate, 1, size // width, "raw", codec)
    return info, _raw_blocks(path, blocksize * width)


def _raw_blocks(path: Path, chunk: int) -> Iterator[bytes]:
    with path.open("rb") as f:
        while block := f.read(chunk):
            yield block


def _read_soundfile(path: Path, blocksize: int) -> tuple[AudioInfo, Iterator[bytes]]:
    try:
        f = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioFileError(str(path), f"not a readable audio file ({_sf_reason(exc)})") from exc
    info = AudioInfo(
        path, Codec.PCM16, int(f.samplerate), int(f.channels), int(f.frames), f.format, f.subtype
    )
    return info, _sf_blocks(f, blocksize)


def _sf_blocks(f: Any, blocksize: int) -> Iterator[bytes]:
    with f:
        for block in f.blocks(blocksize=blocksize, dtype="int16", always_2d=True):
            yield encode_pcm16le(block)


def _sf_reason(exc: BaseException) -> str:
    text = str(exc)
    # libsndfile prefixes its message with the path, which the error has already.
    return text.split(": ", 1)[-1] if ": " in text else text


def resample(samples: npt.ArrayLike, rate: int, target: int) -> Int16Array:
    """Mono samples (``int16``, or float on the ``int16`` scale) at ``target``
    Hz, rounded and clipped to ``int16``."""
    data = np.asarray(samples, dtype=np.float32)
    if rate != target and data.size:
        import soxr  # only the simulator and test calls resample

        data = soxr.resample(data, rate, target)
    return np.clip(np.rint(data), -32768, 32767).astype(np.int16)


def load_mono(path: str | os.PathLike[str], rate: int) -> Int16Array:
    """Any soundfile-readable file as mono ``int16`` at ``rate`` Hz (channels
    averaged, then resampled)."""
    try:
        data, file_rate = sf.read(os.fspath(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioFileError(str(path), f"not a readable audio file ({_sf_reason(exc)})") from exc
    return resample(data.mean(axis=1) * 32768.0, int(file_rate), rate)


# --- writing decrypted audio -------------------------------------------------


class AudioSink:
    """A WAV or FLAC file (by extension) written block by block, mode 0600.

    16-bit PCM only, so every decoded sample is stored exactly. Existing files
    are replaced; the file is never readable by others, even for a moment.
    """

    def __init__(self, path: str | os.PathLike[str], sample_rate: int, channels: int) -> None:
        self.path = Path(path)
        kind = SINK_FORMATS.get(self.path.suffix.lower())
        if kind is None:
            allowed = ", ".join(sorted(SINK_FORMATS))
            raise AudioFileError(
                str(self.path),
                f"cannot write audio with extension {self.path.suffix or '(none)'!r}; "
                f"use one of: {allowed}",
            )
        self.channels = channels
        self.frames_written = 0
        try:
            fd = open_private(self.path)
        except OSError as exc:
            raise AudioFileError(str(self.path), exc.strerror or str(exc)) from exc
        try:
            # A descriptor, not a Python file object: libsndfile then does its own
            # I/O and reports a full disk as an error instead of losing it in a callback.
            self._sf = sf.SoundFile(
                fd,
                "w",
                samplerate=sample_rate,
                channels=channels,
                subtype=PCM16_SUBTYPE,
                format=kind,
                closefd=True,
            )
        except (RuntimeError, ValueError) as exc:
            with contextlib.suppress(OSError):  # libsndfile may have closed it already
                os.close(fd)
            raise AudioFileError(str(self.path), f"cannot write audio: {exc}") from exc

    def write(self, samples: Int16Array) -> None:
        """Append sample frames (1-D for mono, frames x channels otherwise)."""
        if samples.size == 0:
            return
        data = _shape(np.asarray(samples, dtype=np.int16).reshape(-1), self.channels)
        try:
            self._sf.write(data)
        except (RuntimeError, OSError) as exc:  # LibsndfileError is a RuntimeError
            raise AudioFileError(
                str(self.path), f"cannot write audio (disk full?): {exc}"
            ) from exc
        self.frames_written += len(data)

    def close(self) -> None:
        """Finish the file (FLAC and WAV headers are completed here)."""
        if not self._sf.closed:
            self._sf.close()

    def __enter__(self) -> AudioSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_private(path: str | os.PathLike[str]) -> int:
    """A read-write fd of ``path``, emptied, mode 0600 (decrypted data goes there).

    Refuses a symlink and anything but a regular file: chmod on a device or a
    file a link points to would change something the user never named.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o600)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        # O_CREAT's mode does not apply to a file that already existed.
        os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


# --- comparing audio ---------------------------------------------------------


def energy_envelope(samples: npt.ArrayLike, rate: int, window_ms: int = 50) -> npt.NDArray[Any]:
    """RMS per ``window_ms`` window of the channel mix (a trailing part is dropped)."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim > 1:
        x = x.mean(axis=1)
    win = max(1, rate * window_ms // 1000)
    n = len(x) // win
    if n == 0:
        return np.zeros(0)
    frames = x[: n * win].reshape(n, win)
    return np.asarray(np.sqrt(np.mean(frames * frames, axis=1)))


def envelope_correlation(
    a: npt.ArrayLike, b: npt.ArrayLike, rate: int, window_ms: int = 50
) -> float:
    """How well ``b`` follows ``a``: Pearson correlation of their energy envelopes.

    The best value over lags up to one second either way, so latency and a
    clipped start do not count against it. 1.0 means the same loudness
    contour; about 0 means unrelated; 0.0 too when either input is flat.
    """
    ea = energy_envelope(a, rate, window_ms)
    eb = energy_envelope(b, rate, window_ms)
    max_lag = max(0, 1000 // window_ms)
    best = 0.0
    for lag in range(-max_lag, max_lag + 1):
        r = _pearson_at_lag(ea, eb, lag)
        if r is not None and r > best:
            best = r
    return best


def _pearson_at_lag(ea: npt.NDArray[Any], eb: npt.NDArray[Any], lag: int) -> float | None:
    # b[i + lag] lines up with a[i].
    if lag >= 0:
        x, y = ea, eb[lag:]
    else:
        x, y = ea[-lag:], eb
    n = min(len(x), len(y))
    # Fewer than a few windows overlapping says nothing about shape.
    if n < 3:
        return None
    x = x[:n] - x[:n].mean()
    y = y[:n] - y[:n].mean()
    denom = float(np.sqrt(np.dot(x, x) * np.dot(y, y)))
    if denom == 0.0:
        return None
    return float(np.dot(x, y)) / denom
