"""Turn an admin's audio file into telephone-ready prompt audio.

Pipeline, in this order (each step has its constant below or, when the
CLI's help names it, in :mod:`callrec.prompts.defaults`):

1. read: anything ``soundfile`` reads (WAV, FLAC, OGG, ... any rate, any
   channel count) or a raw Asterisk file (``.ulaw``, ``.alaw``, ``.sln16``);
   files longer than the limit plus ``RAW_SLACK_S`` are refused unread;
2. mono mixdown (mean of the channels);
3. resample to 16 kHz with soxr (very high quality: a linear-phase low-pass
   at the new Nyquist frequency is the anti-alias filter);
4. trim leading and trailing silence: everything quieter than
   ``TRIM_THRESHOLD_DB`` below the peak, keeping ``TRIM_PAD_S`` and fading
   the cut edges over ``FADE_S``;
5. the 8 kHz version is the 16 kHz one resampled by soxr (low-pass at 4 kHz);
6. loudness: the gain that brings the 8 kHz version (what a G.711 caller
   hears) to the target, EBU R128 integrated loudness (pyloudnorm) or RMS,
   is applied to both rates;
7. a look-ahead peak limiter holds peaks at ``CEILING_DBFS``; when a peak
   would have passed 0 dBFS the result says so in its warnings;
8. conversion to 16-bit integers (round half to even, no dither, so the same
   input always gives the same bytes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyloudnorm
import soundfile as sf
import soxr

from callrec.audio import decode_payload, read_audio_blocks
from callrec.errors import AudioFileError
from callrec.prompts.defaults import (
    CEILING_DBFS,
    DEFAULT_MAX_SECONDS,
    DEFAULT_TARGET_LUFS,
    TRIM_THRESHOLD_DB,
)

FloatArray = npt.NDArray[np.float64]
Int16Array = npt.NDArray[np.int16]

RATE_WIDE = 16000
RATE_NARROW = 8000
RAW_SLACK_S = 30.0
SILENCE_FLOOR_DBFS = -60.0
TRIM_PAD_S = 0.05
FADE_S = 0.005
LIMITER_HALF_WINDOW_S = 0.005
# pyloudnorm measures in 400 ms gating blocks and needs at least one.
MIN_LUFS_SECONDS = 0.4


@dataclass(frozen=True)
class Target:
    """Loudness target: EBU R128 integrated loudness, or RMS when ``rms_dbfs`` is set."""

    lufs: float = DEFAULT_TARGET_LUFS
    rms_dbfs: float | None = None

    @property
    def unit(self) -> str:
        return "LUFS" if self.rms_dbfs is None else "dBFS RMS"

    @property
    def level(self) -> float:
        return self.lufs if self.rms_dbfs is None else self.rms_dbfs


@dataclass(frozen=True)
class PromptAudio:
    """Converted prompt: 8 kHz and 16 kHz samples plus what was done to them."""

    narrow: Int16Array
    wide: Int16Array
    source_rate: int
    source_channels: int
    trimmed_s: tuple[float, float]
    gain_db: float
    level: float
    unit: str
    peak_dbfs: float
    limited_db: float
    warnings: tuple[str, ...]

    @property
    def seconds(self) -> float:
        return len(self.narrow) / RATE_NARROW


def convert_file(
    path: str | Path, target: Target = Target(), max_seconds: float = DEFAULT_MAX_SECONDS
) -> PromptAudio:
    """Read ``path`` and run the whole pipeline; AudioFileError says what is wrong."""
    p = Path(path)
    mono, rate, channels = read_mono(p, max_seconds)
    return convert_samples(mono, rate, target, max_seconds, name=str(p), channels=channels)


def read_mono(path: Path, max_seconds: float) -> tuple[FloatArray, int, int]:
    """Samples mixed to mono as floats in [-1, 1], the file's rate and channel count."""
    _check_file(path)
    try:
        info, blocks = read_audio_blocks(path)
    except AudioFileError as exc:
        raise AudioFileError(str(path), f"unreadable: {exc.message}") from exc
    if info.frames == 0:
        raise AudioFileError(str(path), f"empty: the {info.kind} file holds no audio samples")
    seconds = info.frames / info.sample_rate
    if seconds > max_seconds + RAW_SLACK_S:
        raise AudioFileError(
            str(path),
            f"too long: {seconds:.1f} s; the limit is {max_seconds:g} s of audio "
            f"(--max-seconds) plus at most {RAW_SLACK_S:g} s of silence to trim",
        )
    try:
        parts = [decode_payload(info.codec, block, info.channels) for block in blocks]
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioFileError(str(path), f"unreadable: decoding failed ({exc})") from exc
    samples = np.concatenate(parts).astype(np.float64) / 32768.0
    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    return mono, info.sample_rate, info.channels


def _check_file(path: Path) -> None:
    if not path.exists():
        raise AudioFileError(str(path), "unreadable: no such file")
    if path.is_dir():
        raise AudioFileError(str(path), "unreadable: a folder, not an audio file")
    if path.stat().st_size == 0:
        raise AudioFileError(str(path), "empty: the file has 0 bytes")


def convert_samples(
    mono: FloatArray,
    rate: int,
    target: Target = Target(),
    max_seconds: float = DEFAULT_MAX_SECONDS,
    *,
    name: str = "<samples>",
    channels: int = 1,
) -> PromptAudio:
    """Run steps 3-8 on mono float samples at ``rate``."""
    _check_not_silent(mono, name, channels)
    wide = _resample(mono, rate, RATE_WIDE)
    wide, trimmed = _trim(wide, RATE_WIDE)
    seconds = len(wide) / RATE_WIDE
    if seconds > max_seconds:
        raise AudioFileError(
            name,
            f"too long: {seconds:.1f} s of audio after trimming silence; "
            f"the limit is {max_seconds:g} s (--max-seconds)",
        )
    gain_db = target.level - _measure(_resample(wide, RATE_WIDE, RATE_NARROW), target, name)
    wide, narrow, limited_db, loud_peak = _apply_gain(wide, gain_db)
    warnings = []
    if loud_peak > 0.0:
        warnings.append(
            f"peak would reach {loud_peak:+.1f} dBFS after normalisation (clipping); "
            f"a limiter held it at {CEILING_DBFS:.1f} dBFS, reducing up to {limited_db:.1f} dB"
        )
    narrow16, clipped = _to_int16(narrow)
    wide16, clipped_wide = _to_int16(wide)
    if clipped + clipped_wide:
        warnings.append(f"{clipped + clipped_wide} samples clipped at 0 dBFS")
    return PromptAudio(
        narrow=narrow16,
        wide=wide16,
        source_rate=rate,
        source_channels=channels,
        trimmed_s=trimmed,
        gain_db=gain_db,
        level=_measure(narrow16 / 32768.0, target, name),
        unit=target.unit,
        peak_dbfs=_dbfs(float(np.max(np.abs(narrow16))) / 32768.0),
        limited_db=limited_db,
        warnings=tuple(warnings),
    )


def _check_not_silent(mono: FloatArray, name: str, channels: int) -> None:
    peak = _dbfs(float(np.max(np.abs(mono))))
    if peak < SILENCE_FLOOR_DBFS:
        mixed = f" after mixing its {channels} channels to mono" if channels > 1 else ""
        raise AudioFileError(
            name,
            f"silent: peak level {peak:.1f} dBFS{mixed} is below the "
            f"{SILENCE_FLOOR_DBFS:g} dBFS floor; nothing to play",
        )


def _dbfs(amplitude: float) -> float:
    return 20.0 * math.log10(amplitude) if amplitude > 0 else -math.inf


def _resample(x: FloatArray, rate_in: int, rate_out: int) -> FloatArray:
    if rate_in == rate_out:
        return x
    out: FloatArray = soxr.resample(x, rate_in, rate_out, quality="VHQ")
    return out


def _trim(x: FloatArray, rate: int) -> tuple[FloatArray, tuple[float, float]]:
    threshold = float(np.max(np.abs(x))) * 10.0 ** (TRIM_THRESHOLD_DB / 20.0)
    loud = np.flatnonzero(np.abs(x) >= threshold)
    pad = int(TRIM_PAD_S * rate)
    start = max(int(loud[0]) - pad, 0)
    end = min(int(loud[-1]) + 1 + pad, len(x))
    y = x[start:end].copy()
    fade = min(int(FADE_S * rate), len(y) // 2)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, math.pi, fade, endpoint=False))
    if start > 0:
        y[:fade] *= ramp
    if end < len(x):
        y[len(y) - fade :] *= ramp[::-1]
    if len(y) % 2:
        # An even 16 kHz length makes the 8 kHz version exactly half as long.
        y = np.append(y, 0.0)
    return y, (start / rate, (len(x) - end) / rate)


def _measure(x: FloatArray, target: Target, name: str) -> float:
    if target.rms_dbfs is not None:
        return _dbfs(math.sqrt(float(np.mean(np.square(x)))))
    seconds = len(x) / RATE_NARROW
    if seconds <= MIN_LUFS_SECONDS:
        raise AudioFileError(
            name,
            f"too short: {seconds:.2f} s after trimming silence; EBU R128 loudness needs "
            f"more than {MIN_LUFS_SECONDS:g} s (use an RMS target for shorter sounds)",
        )
    loudness = float(pyloudnorm.Meter(RATE_NARROW).integrated_loudness(x))
    if not math.isfinite(loudness):
        raise AudioFileError(
            name, "silent: below the -70 LUFS gate of EBU R128 loudness; nothing to play"
        )
    return loudness


def _apply_gain(wide: FloatArray, gain_db: float) -> tuple[FloatArray, FloatArray, float, float]:
    """Gain, then limiting, at 16 kHz; 8 kHz derived (and re-limited) from that."""
    wide = wide * 10.0 ** (gain_db / 20.0)
    loud_peak = _dbfs(float(np.max(np.abs(wide))))
    wide, reduction = _limit(wide, RATE_WIDE)
    narrow, reduction_narrow = _limit(_resample(wide, RATE_WIDE, RATE_NARROW), RATE_NARROW)
    narrow_peak = _dbfs(float(np.max(np.abs(narrow))))
    return wide, narrow, max(reduction, reduction_narrow), max(loud_peak, narrow_peak)


def _limit(x: FloatArray, rate: int) -> tuple[FloatArray, float]:
    """Look-ahead limiter: minimum of the needed gain over a window, then smoothed.

    A box average over windows of minima never exceeds the gain a sample
    needs, so no peak passes the ceiling and the gain has no steps.
    """
    ceiling = 10.0 ** (CEILING_DBFS / 20.0)
    need = np.minimum(1.0, ceiling / np.maximum(np.abs(x), 1e-12))
    if float(need.min()) >= 1.0:
        return x, 0.0
    half = max(1, int(LIMITER_HALF_WINDOW_S * rate))
    gain = _window_mean(_window_min(need, half), half)
    return x * gain, -_dbfs(float(gain.min()))


def _window_min(a: FloatArray, half: int) -> FloatArray:
    """Minimum over ``a[i-half : i+half+1]`` (van Herk / Gil-Werman, O(n))."""
    k = 2 * half + 1
    n = len(a)
    tail = half + (-(n + 2 * half)) % k
    blocks = np.concatenate([np.ones(half), a, np.ones(tail)]).reshape(-1, k)
    prefix = np.minimum.accumulate(blocks, axis=1).ravel()
    suffix = np.minimum.accumulate(blocks[:, ::-1], axis=1)[:, ::-1].ravel()
    out: FloatArray = np.minimum(suffix[:n], prefix[k - 1 : k - 1 + n])
    return out


def _window_mean(a: FloatArray, half: int) -> FloatArray:
    k = 2 * half + 1
    # Edge padding keeps the limiter's guarantee at both ends of the prompt.
    sums = np.concatenate([[0.0], np.cumsum(np.pad(a, half, mode="edge"))])
    out: FloatArray = (sums[k:] - sums[:-k]) / k
    return out


def _to_int16(x: FloatArray) -> tuple[Int16Array, int]:
    scaled: Any = np.rint(x * 32768.0)
    clipped = int(np.count_nonzero((scaled > 32767) | (scaled < -32768)))
    out: Int16Array = np.clip(scaled, -32768, 32767).astype(np.int16)
    return out, clipped
