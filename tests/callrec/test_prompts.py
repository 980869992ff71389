"""Prompt conversion and the sounds tree, with audio made here by numpy."""

from __future__ import annotations

import hashlib
import math
import os
import re
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyloudnorm
import pytest
import soundfile as sf

from callrec.config import Config, PromptsConfig
from callrec.errors import AudioFileError
from callrec.evidence import prompt_sha256
from callrec.media.g711 import alaw_decode, ulaw_decode
from callrec.prompts.convert import PromptAudio, Target, convert_file
from callrec.prompts.names import FORMATS, PromptError, check_name, sound_path
from callrec.prompts.store import install, list_prompts

Floats = npt.NDArray[np.float64]


def tone(freq: float, seconds: float, rate: int, amp: float = 0.3) -> Floats:
    t = np.arange(int(seconds * rate)) / rate
    out: Floats = amp * np.sin(2 * np.pi * freq * t)
    return out


def speechlike(seconds: float, rate: int, amp: float = 0.1, seed: int = 1) -> Floats:
    """Noise shaped by a 4 Hz syllable rhythm: gated loudness behaves as for speech."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None)
    out: Floats = amp * rng.standard_normal(len(t)) * envelope
    return out


def write(path: Path, samples: Floats, rate: int, **kw: str) -> Path:
    sf.write(str(path), samples, rate, **kw)
    return path


def peak_hz(samples: npt.ArrayLike, rate: int) -> float:
    x = np.asarray(samples, dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum)) * rate / len(x)


def level_at(samples: npt.ArrayLike, rate: int, freq: float) -> float:
    """Spectrum magnitude (dB) at ``freq`` relative to the strongest bin."""
    x = np.asarray(samples, dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = round(freq * len(x) / rate)
    near = spectrum[k - 3 : k + 4].max()
    return 20 * math.log10(near / spectrum.max())


def installed(tmp_path: Path, source: Path, **kw: float) -> tuple[PromptAudio, dict[str, Path]]:
    audio = convert_file(source, **kw)  # type: ignore[arg-type]
    done = install(audio, tmp_path / "sounds", "en", "test")
    return audio, done.paths


def test_every_format_has_its_rate_and_the_same_length(tmp_path: Path) -> None:
    stereo = np.stack([tone(1000, 2.0, 44100), tone(1000, 2.0, 44100)], axis=1)
    audio, paths = installed(tmp_path, write(tmp_path / "in.wav", stereo, 44100))
    info = sf.info(str(paths["wav"]))
    assert (info.samplerate, info.channels, info.subtype, info.format) == (
        8000,
        1,
        "PCM_16",
        "WAV",
    )
    frames = info.frames
    assert frames == len(audio.narrow)
    assert paths["sln16"].stat().st_size == frames * 2 * 2  # twice the rate, 2 bytes
    assert paths["ulaw"].stat().st_size == frames
    assert paths["alaw"].stat().st_size == frames
    assert abs(frames / 8000 - 2.0) < 0.01


def test_round_trip_through_soundfile_is_exact(tmp_path: Path) -> None:
    audio, paths = installed(tmp_path, write(tmp_path / "in.flac", speechlike(2, 48000), 48000))
    wav, rate = sf.read(str(paths["wav"]), dtype="int16")
    assert rate == 8000
    assert np.array_equal(wav, audio.narrow)
    wide, _ = sf.read(
        str(paths["sln16"]),
        dtype="int16",
        format="RAW",
        samplerate=16000,
        channels=1,
        subtype="PCM_16",
        endian="LITTLE",
    )
    assert np.array_equal(wide, audio.wide)
    # G.711 keeps each sample within its quantisation step (< 1/16 of the value).
    for decode, ext in ((ulaw_decode, "ulaw"), (alaw_decode, "alaw")):
        decoded = decode(paths[ext].read_bytes()).astype(np.int32)
        error = np.abs(decoded - wav.astype(np.int32))
        assert np.all(error <= np.abs(wav.astype(np.int32)) // 16 + 64), ext


def test_a_1khz_tone_stays_at_1khz_in_both_rates(tmp_path: Path) -> None:
    left = tone(1000, 2.0, 44100, 0.4)
    stereo = np.stack([left, 0.5 * left], axis=1)
    _, paths = installed(tmp_path, write(tmp_path / "in.wav", stereo, 44100))
    wav, rate = sf.read(str(paths["wav"]))
    assert abs(peak_hz(wav, rate) - 1000) < 5
    wide = np.frombuffer(paths["sln16"].read_bytes(), dtype="<i2")
    assert abs(peak_hz(wide, 16000) - 1000) < 5


def test_anti_alias_filter_removes_6khz_at_8khz_but_keeps_it_at_16khz(tmp_path: Path) -> None:
    mixed = tone(1000, 2.0, 44100, 0.3) + tone(6000, 2.0, 44100, 0.3)
    _, paths = installed(tmp_path, write(tmp_path / "in.wav", mixed, 44100))
    wav, _ = sf.read(str(paths["wav"]))
    # Without a low-pass, 6 kHz sampled at 8 kHz would fold down to 2 kHz.
    assert level_at(wav, 8000, 2000) < -60
    assert level_at(wav, 8000, 1000) == 0
    wide = np.frombuffer(paths["sln16"].read_bytes(), dtype="<i2")
    assert level_at(wide, 16000, 6000) > -3


@pytest.mark.parametrize("lufs", [-20.0, -26.0, -16.0])
def test_loudness_lands_within_1db_of_the_lufs_target(tmp_path: Path, lufs: float) -> None:
    source = write(tmp_path / "in.wav", speechlike(5, 22050, amp=0.02), 22050)
    audio, paths = installed(tmp_path, source, target=Target(lufs=lufs))  # type: ignore[arg-type]
    wav, rate = sf.read(str(paths["wav"]))
    assert abs(pyloudnorm.Meter(rate).integrated_loudness(wav) - lufs) < 1.0
    assert audio.unit == "LUFS"
    assert abs(audio.level - lufs) < 1.0


def test_rms_target(tmp_path: Path) -> None:
    source = write(tmp_path / "in.wav", tone(440, 2, 16000, 0.01), 16000)
    audio = convert_file(source, Target(rms_dbfs=-18.0))
    rms = math.sqrt(float(np.mean(np.square(audio.narrow / 32768.0))))
    assert abs(20 * math.log10(rms) + 18.0) < 1.0
    assert audio.unit == "dBFS RMS"


def test_leading_and_trailing_silence_is_trimmed(tmp_path: Path) -> None:
    rate = 22050
    rng = np.random.default_rng(3)
    hiss = 10 ** (-80 / 20) * rng.standard_normal(int(1.5 * rate))  # below the threshold
    body = tone(700, 1.0, rate, 0.5)
    source = write(tmp_path / "in.wav", np.concatenate([hiss, body, hiss, hiss]), rate)
    audio = convert_file(source)
    assert 1.0 <= audio.seconds <= 1.12  # the tone plus 50 ms kept at each end
    lead, tail = audio.trimmed_s
    assert abs(lead - 1.45) < 0.01
    assert abs(tail - 2.95) < 0.01


def test_a_peak_that_would_clip_is_limited_and_reported(tmp_path: Path) -> None:
    # A sine at -2 dBFS RMS peaks at +1 dBFS.
    source = write(tmp_path / "in.wav", tone(500, 2, 8000, 0.1), 8000)
    audio = convert_file(source, Target(rms_dbfs=-2.0))
    assert audio.warnings
    assert "would reach +1.0 dBFS" in audio.warnings[0]
    assert "limiter held it at -1.0 dBFS" in audio.warnings[0]
    assert audio.peak_dbfs <= -0.9
    assert audio.limited_db > 1.5


def test_no_warning_when_nothing_clips(tmp_path: Path) -> None:
    audio = convert_file(write(tmp_path / "in.wav", speechlike(3, 16000), 16000))
    assert audio.warnings == ()
    assert audio.peak_dbfs < 0


def test_ogg_input(tmp_path: Path) -> None:
    source = write(tmp_path / "in.ogg", tone(1000, 2, 44100), 44100, format="OGG")
    audio = convert_file(source)
    assert abs(peak_hz(audio.narrow, 8000) - 1000) < 5


def test_same_input_gives_the_same_bytes(tmp_path: Path) -> None:
    source = write(tmp_path / "in.wav", speechlike(2, 44100), 44100)
    first = install(convert_file(source), tmp_path / "a", "en", "x").sha256
    second = install(convert_file(source), tmp_path / "b", "en", "x").sha256
    assert first == second
    wav = sound_path(tmp_path / "a", "en", "callrec/x")
    assert hashlib.sha256(wav.read_bytes()).hexdigest() == first


def test_install_writes_readable_files_and_no_leftovers(tmp_path: Path) -> None:
    source = write(tmp_path / "in.wav", speechlike(2, 8000), 8000)
    done = install(convert_file(source), tmp_path / "s", "de", "hello")
    folder = tmp_path / "s" / "de" / "callrec"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"hello.{e}" for e in FORMATS)
    assert all(os.stat(p).st_mode & 0o777 == 0o644 for p in done.paths.values())
    assert done.uri == "sound:callrec/hello"


# --- rejected inputs -----------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError) as err:
        convert_file(tmp_path / "nope.wav")
    assert err.value.message == "unreadable: no such file"


def test_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("these are not samples\n" * 20)
    with pytest.raises(AudioFileError) as err:
        convert_file(path)
    assert err.value.message.startswith("unreadable: not a readable audio file (")
    assert err.value.path == str(path)


def test_zero_bytes(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioFileError, match="empty: the file has 0 bytes"):
        convert_file(path)


def test_wav_without_samples(tmp_path: Path) -> None:
    path = write(tmp_path / "none.wav", np.zeros(0), 8000)
    with pytest.raises(AudioFileError) as err:
        convert_file(path)
    assert err.value.message == "empty: the WAV file holds no audio samples"


def test_silent(tmp_path: Path) -> None:
    path = write(tmp_path / "quiet.wav", np.zeros(8000), 8000)
    with pytest.raises(AudioFileError) as err:
        convert_file(path)
    assert err.value.message == (
        "silent: peak level -inf dBFS is below the -60 dBFS floor; nothing to play"
    )


def test_stereo_that_cancels_in_the_mixdown_is_silent(tmp_path: Path) -> None:
    left = tone(1000, 1, 8000)
    path = write(tmp_path / "phase.wav", np.stack([left, -left], axis=1), 8000)
    with pytest.raises(AudioFileError, match="after mixing its 2 channels to mono"):
        convert_file(path)


def test_too_long_after_trimming(tmp_path: Path) -> None:
    path = write(tmp_path / "long.wav", speechlike(3, 8000), 8000)
    with pytest.raises(AudioFileError) as err:
        convert_file(path, max_seconds=2)
    assert err.value.message.startswith("too long: 2.9")
    assert err.value.message.endswith(
        "s of audio after trimming silence; the limit is 2 s (--max-seconds)"
    )


def test_far_too_long_is_refused_unread(tmp_path: Path) -> None:
    path = write(tmp_path / "hour.wav", np.zeros(8000 * 40), 8000)
    with pytest.raises(AudioFileError) as err:
        convert_file(path, max_seconds=5)
    assert err.value.message == (
        "too long: 40.0 s; the limit is 5 s of audio (--max-seconds) "
        "plus at most 30 s of silence to trim"
    )


def test_too_short_for_lufs_but_fine_with_rms(tmp_path: Path) -> None:
    path = write(tmp_path / "beep.wav", tone(1000, 0.2, 8000), 8000)
    with pytest.raises(AudioFileError, match=r"too short: 0\.2"):
        convert_file(path)
    assert convert_file(path, Target(rms_dbfs=-20)).seconds < 0.4


@pytest.mark.parametrize("name", ["../x", "a/b", "..", "", "x y", "x.wav", "a" * 65])
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(PromptError, match="bad prompt name"):
        check_name(name)


def test_install_refuses_an_unsafe_name(tmp_path: Path) -> None:
    audio = convert_file(write(tmp_path / "in.wav", speechlike(1, 8000), 8000))
    with pytest.raises(PromptError, match=re.escape("bad prompt name '../../etc'")):
        install(audio, tmp_path, "en", "../../etc")
    with pytest.raises(PromptError, match="bad language"):
        install(audio, tmp_path, "../en", "ok")


def test_list_shows_duration_formats_and_hash(tmp_path: Path) -> None:
    sounds = tmp_path / "sounds"
    audio = convert_file(write(tmp_path / "in.wav", speechlike(2, 8000), 8000))
    en = install(audio, sounds, "en", "a")
    install(audio, sounds, "de", "a")
    install(audio, sounds, "de", "b").paths["alaw"].unlink()
    entries = list_prompts(sounds)
    assert [(e.lang, e.sound, e.formats) for e in entries] == [
        ("de", "callrec/a", ("wav", "sln16", "ulaw", "alaw")),
        ("de", "callrec/b", ("wav", "sln16", "ulaw")),
        ("en", "callrec/a", ("wav", "sln16", "ulaw", "alaw")),
    ]
    assert entries[2].sha256 == en.sha256
    assert entries[2].seconds == pytest.approx(audio.seconds)


def test_the_consent_evidence_hashes_the_file_install_reports(tmp_path: Path) -> None:
    sounds = tmp_path / "sounds"
    audio = convert_file(write(tmp_path / "in.wav", speechlike(2, 8000), 8000))
    done = install(audio, sounds, "de", "disclosure")
    config = Config(prompts=PromptsConfig(sounds_dir=sounds, languages=("en", "de")))
    played = config.prompt_for("100", "de", "disclosure")
    assert played.media == done.uri
    assert prompt_sha256(played.path_wav) == done.sha256
