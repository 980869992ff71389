"""Audio helpers: payload decoding, source reading, WAV/FLAC sinks, envelope match."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from callrec.audio import (
    AudioSink,
    PayloadStream,
    decode_payload,
    encode_payload,
    encode_pcm16le,
    envelope_correlation,
    load_mono,
    read_audio_blocks,
    silence,
    silence_payload,
)
from callrec.errors import AudioFileError, MediaError
from callrec.media.g711 import alaw_encode, ulaw_encode
from tests.callrec.cli_support import speech_like

# --- decode_payload / silence --------------------------------------------------


def test_decode_pcm16le_stereo_gives_frames_by_channels() -> None:
    samples = np.array([[1, -2], [300, -32768], [32767, 0]], dtype=np.int16)
    out = decode_payload("pcm16le", encode_pcm16le(samples), 2)
    assert out.dtype == np.int16
    assert out.shape == (3, 2)
    assert np.array_equal(out, samples)


def test_decode_slin16_is_big_endian() -> None:
    out = decode_payload("slin16", bytes.fromhex("0001ff00"), 1)
    assert out.tolist() == [1, -256]


def test_decode_g711_matches_the_encoder_within_quantisation() -> None:
    x = np.linspace(-30000, 30000, 801).astype(np.int16)
    for codec, enc in (("ulaw", ulaw_encode), ("alaw", alaw_encode)):
        out = decode_payload(codec, enc(x), 1)
        assert out.shape == x.shape
        err = np.abs(out.astype(int) - x.astype(int))
        # G.711 step is at most 1/16 of the magnitude (plus a small floor).
        assert np.all(err <= np.abs(x.astype(int)) // 16 + 16)


@pytest.mark.parametrize("codec", ["ulaw", "alaw", "slin16", "pcm16le"])
def test_encode_payload_is_what_decode_payload_reads(codec: str) -> None:
    samples = np.array([[0, -8], [1000, -1000], [32000, -32000]], dtype=np.int16)
    out = decode_payload(codec, encode_payload(codec, samples), 2)
    assert out.shape == (3, 2)
    # G.711 keeps about 4 bits of mantissa; 16-bit codecs are exact.
    tolerance = 0 if codec in ("slin16", "pcm16le") else 1024
    assert np.abs(out.astype(np.int32) - samples).max() <= tolerance


def test_encode_payload_rejects_an_unknown_codec() -> None:
    with pytest.raises(MediaError, match="unknown codec 'opus'"):
        encode_payload("opus", np.zeros(4, dtype=np.int16))


def test_load_mono_averages_channels_and_resamples(tmp_path: Path) -> None:
    t = np.arange(16000) / 16000
    left = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, left // 2], axis=1), 16000, subtype="PCM_16")
    mono = load_mono(path, 8000)
    assert mono.dtype == np.int16
    assert len(mono) == 8000
    assert abs(int(np.abs(mono).max()) - 6000) < 200


def test_load_mono_names_a_file_that_is_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("not audio")
    with pytest.raises(AudioFileError, match="not a readable audio file"):
        load_mono(path, 8000)


def test_decode_rejects_a_partial_sample_frame() -> None:
    with pytest.raises(MediaError, match="not a whole number of 2-channel sample frames"):
        decode_payload("pcm16le", b"\x00\x01\x02", 2)


def test_decode_rejects_an_unknown_codec() -> None:
    with pytest.raises(MediaError, match="unknown codec 'opus'"):
        decode_payload("opus", b"", 1)


def test_silence_has_the_requested_length_and_shape() -> None:
    assert silence("ulaw", 800, 1).shape == (800,)
    assert silence("pcm16le", 5, 2).shape == (5, 2)
    assert not silence("alaw", 10, 1).any()


@pytest.mark.parametrize("codec", ["ulaw", "alaw", "slin16", "pcm16le"])
def test_silence_payload_decodes_to_the_quietest_level(codec: str) -> None:
    out = decode_payload(codec, silence_payload(codec, 40, 1), 1)
    assert out.shape == (40,)
    # A-law has no code for 0; its quietest level is +-8.
    assert np.abs(out).max() <= 8


# --- read_audio_blocks ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rate", "channels"),
    [("mono.wav", 8000, 1), ("stereo.wav", 11025, 2), ("wide.flac", 16000, 1)],
)
def test_read_blocks_streams_exact_pcm(
    tmp_path: Path, name: str, rate: int, channels: int
) -> None:
    src = speech_like(rate, 1.3, channels)
    path = tmp_path / name
    sf.write(path, src, rate, subtype="PCM_16")
    info, blocks = read_audio_blocks(path, blocksize=1000)
    assert (info.codec, info.sample_rate, info.channels) == ("pcm16le", rate, channels)
    assert info.frames == len(src)
    chunks = list(blocks)
    assert max(len(c) for c in chunks) == 1000 * 2 * channels
    assert np.array_equal(decode_payload("pcm16le", b"".join(chunks), channels), src)


def test_read_blocks_passes_raw_g711_through_unchanged(tmp_path: Path) -> None:
    data = bytes(range(256)) * 40
    path = tmp_path / "call.ulaw"
    path.write_bytes(data)
    info, blocks = read_audio_blocks(path, blocksize=3000)
    assert (info.codec, info.sample_rate, info.frames, info.kind) == ("ulaw", 8000, 10240, "raw")
    assert b"".join(blocks) == data


def test_read_blocks_takes_sln16_as_16khz_little_endian(tmp_path: Path) -> None:
    src = speech_like(16000, 0.2)
    path = tmp_path / "call.sln16"
    path.write_bytes(src.astype("<i2").tobytes())
    info, blocks = read_audio_blocks(path)
    assert (info.codec, info.sample_rate) == ("pcm16le", 16000)
    assert np.array_equal(decode_payload(info.codec, b"".join(blocks), 1), src)


def test_read_blocks_rejects_an_odd_length_slin_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.sln"
    path.write_bytes(b"\x00\x01\x02")
    with pytest.raises(AudioFileError, match=r"bad\.sln: raw pcm16le file has an odd length"):
        read_audio_blocks(path)


def test_read_blocks_names_a_file_that_is_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("hello")
    with pytest.raises(AudioFileError, match=r"notes\.wav: not a readable audio file"):
        read_audio_blocks(path)


def test_read_blocks_names_a_missing_raw_file(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match=r"gone\.alaw: No such file"):
        read_audio_blocks(tmp_path / "gone.alaw")


# --- AudioSink ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["out.wav", "out.FLAC"])
def test_sink_writes_exact_16bit_audio_privately(tmp_path: Path, name: str) -> None:
    src = speech_like(11025, 0.7, 2)
    path = tmp_path / name
    with AudioSink(path, 11025, 2) as sink:
        for start in range(0, len(src), 999):
            sink.write(src[start : start + 999])
    assert sink.frames_written == len(src)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    back, rate = sf.read(path, dtype="int16")
    assert rate == 11025
    assert sf.info(path).subtype == "PCM_16"
    assert np.array_equal(back, src)


def test_sink_makes_an_existing_file_private(tmp_path: Path) -> None:
    path = tmp_path / "old.wav"
    path.write_bytes(b"old")
    path.chmod(0o644)
    with AudioSink(path, 8000, 1) as sink:
        sink.write(np.zeros(80, dtype=np.int16))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sf.info(path).frames == 80


@pytest.mark.parametrize("name", ["out.mp3", "out"])
def test_sink_refuses_other_extensions_naming_the_allowed_ones(tmp_path: Path, name: str) -> None:
    with pytest.raises(AudioFileError, match=r"use one of: \.flac, \.wav"):
        AudioSink(tmp_path / name, 8000, 1)
    assert not (tmp_path / name).exists()


# --- envelope_correlation ----------------------------------------------------


def test_envelope_of_a_delayed_g711_copy_follows_the_source() -> None:
    src = speech_like(8000, 4.0)
    # 300 ms of latency and a G.711 round trip, as a recording path adds.
    delayed = np.concatenate([np.zeros(2400, dtype=np.int16), src])
    copy = decode_payload("ulaw", ulaw_encode(delayed), 1)
    assert envelope_correlation(src, copy, 8000) > 0.95


def test_envelope_of_unrelated_audio_does_not_match() -> None:
    a = speech_like(8000, 4.0, seed=1)
    rng = np.random.default_rng(9)
    steps = np.repeat(rng.uniform(0.1, 1.0, 40), 800)
    b = (steps * rng.normal(0, 6000, 32000)).astype(np.int16)
    assert envelope_correlation(a, b, 8000) < 0.6


def test_envelope_of_silence_is_zero() -> None:
    a = speech_like(8000, 2.0)
    assert envelope_correlation(a, np.zeros(16000, dtype=np.int16), 8000) == 0.0


def test_payload_stream_carries_split_sample_frames_over() -> None:
    samples = np.arange(-50, 50, dtype=np.int16).reshape(-1, 2)
    data = encode_pcm16le(samples)
    stream = PayloadStream("pcm16le", 2)
    parts = [stream.feed(data[i : i + 7]) for i in range(0, len(data), 7)]
    assert stream.leftover == 0
    assert np.array_equal(np.concatenate(parts), samples)


def test_sink_refuses_to_follow_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.wav"
    target.write_bytes(b"keep me")
    target.chmod(0o644)
    link = tmp_path / "out.wav"
    link.symlink_to(target)
    with pytest.raises(AudioFileError, match=r"out\.wav: "):
        AudioSink(link, 8000, 1)
    assert target.read_bytes() == b"keep me"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_sink_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    fifo.chmod(0o644)
    with pytest.raises(AudioFileError, match=r"pipe\.wav: not a regular file"):
        AudioSink(fifo, 8000, 1)
    # Nothing the user did not name as an output file was touched.
    assert stat.S_IMODE(fifo.stat().st_mode) == 0o644
