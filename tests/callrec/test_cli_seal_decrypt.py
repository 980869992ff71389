"""``callrec seal`` then ``callrec decrypt``: the admin gets the original samples back."""

from __future__ import annotations

import hashlib
import json
import stat
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from callrec.audio import Int16Array
from callrec.crypto.keys import PublicKey
from callrec.media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from callrec.recording import Codec, RecordingWriter
from tests.callrec.cli_support import KeyPair, make_keys, run, speech_like


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> KeyPair:
    return make_keys(capsys, tmp_path / "keys")


@pytest.mark.parametrize(
    ("name", "rate", "channels"),
    [("mono.wav", 8000, 1), ("stereo.wav", 11025, 2), ("wide.flac", 16000, 1)],
)
def test_seal_then_decrypt_gives_back_the_exact_samples(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    keys: KeyPair,
    name: str,
    rate: int,
    channels: int,
) -> None:
    src = tmp_path / name
    samples = speech_like(rate, 1.7, channels)
    sf.write(src, samples, rate, subtype="PCM_16")

    sealed = run(capsys, "seal", src, "--to", keys.pub)
    assert sealed.code == 0, sealed.err
    crec = src.with_suffix(".crec")
    assert stat.S_IMODE(crec.stat().st_mode) == 0o600
    assert samples.tobytes()[:64] not in crec.read_bytes()

    out = tmp_path / "plain" / "back.wav"
    out.parent.mkdir()
    result = run(capsys, "decrypt", crec, "--key", keys.key, "-o", out)
    assert result.code == 0, result.err
    back, back_rate = sf.read(out, dtype="int16")
    assert back_rate == rate
    assert np.array_equal(back, samples)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600

    meta = json.loads(out.with_suffix(".json").read_text())
    assert stat.S_IMODE(out.with_suffix(".json").stat().st_mode) == 0o600
    assert meta["verdict"] == "complete"
    assert meta["error"] is None
    first = meta["metadata"][0]
    assert first["type"] == "sealed-from-file"
    assert first["source"] == name
    assert first["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()


def test_decrypt_writes_flac_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair
) -> None:
    samples = speech_like(8000, 0.8)
    sf.write(tmp_path / "call.wav", samples, 8000, subtype="PCM_16")
    assert run(capsys, "seal", tmp_path / "call.wav", "--to", keys.pub).code == 0
    out = tmp_path / "call-copy.flac"
    assert run(capsys, "decrypt", tmp_path / "call.crec", "--key", keys.key, "-o", out).code == 0
    assert sf.info(out).format == "FLAC"
    assert np.array_equal(sf.read(out, dtype="int16")[0], samples)


@pytest.mark.parametrize(
    ("suffix", "encode", "decode"),
    [(".ulaw", ulaw_encode, ulaw_decode), (".alaw", alaw_encode, alaw_decode)],
)
def test_raw_g711_comes_back_within_quantisation(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    keys: KeyPair,
    suffix: str,
    encode: Callable[[Int16Array], bytes],
    decode: Callable[[bytes], Int16Array],
) -> None:
    samples = speech_like(8000, 1.2)
    raw = encode(samples)
    src = tmp_path / f"call{suffix}"
    src.write_bytes(raw)
    assert run(capsys, "seal", src, "--to", keys.pub, "--out", tmp_path / "sealed").code == 0
    crec = tmp_path / "sealed" / "call.crec"
    assert run(capsys, "inspect", crec, "--json").out.count(f'"codec": "{suffix[1:]}"') == 1
    result = run(capsys, "decrypt", crec, "--key", keys.key)
    assert result.code == 0, result.err
    back, rate = sf.read(tmp_path / "sealed" / "call.wav", dtype="int16")
    assert rate == 8000
    # Exactly the decoded G.711 bytes, and so within G.711 quantisation of the source.
    assert np.array_equal(back, decode(raw))
    err = np.abs(back.astype(int) - samples.astype(int))
    assert np.all(err <= np.abs(samples.astype(int)) // 16 + 16)


def test_sln16_is_taken_as_16khz_and_comes_back_exactly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair
) -> None:
    samples = speech_like(16000, 0.6)
    src = tmp_path / "call.sln16"
    src.write_bytes(samples.astype("<i2").tobytes())
    assert run(capsys, "seal", src, "--to", keys.pub).code == 0
    assert run(capsys, "decrypt", tmp_path / "call.crec", "--key", keys.key).code == 0
    back, rate = sf.read(tmp_path / "call.wav", dtype="int16")
    assert rate == 16000
    assert np.array_equal(back, samples)


def test_decrypt_beside_the_input_never_replaces_the_original_recording(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair
) -> None:
    src = tmp_path / "call.wav"
    sf.write(src, speech_like(8000, 0.3), 8000, subtype="PCM_16")
    before = src.read_bytes()
    assert run(capsys, "seal", src, "--to", keys.pub).code == 0
    result = run(capsys, "decrypt", tmp_path / "call.crec", "--key", keys.key)
    assert result.code == 1
    assert f"refusing to overwrite {src} (use --force)" in result.err
    assert src.read_bytes() == before
    assert run(capsys, "decrypt", tmp_path / "call.crec", "--key", keys.key, "--force").code == 0


def test_seal_refuses_a_file_that_is_not_audio(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair
) -> None:
    src = tmp_path / "notes.wav"
    src.write_text("not audio")
    result = run(capsys, "seal", src, "--to", keys.pub)
    assert result.code == 1
    assert "notes.wav: not a readable audio file" in result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys", "notes.wav"]


def test_gaps_and_pauses_come_back_as_silence_of_their_true_length_and_are_noted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair
) -> None:
    samples = speech_like(8000, 1.0)
    head, tail = ulaw_encode(samples[:3000]), ulaw_encode(samples[3000:])
    writer = RecordingWriter.create(
        tmp_path, [PublicKey.load(keys.pub)], codec=Codec.ULAW, sample_rate=8000
    )
    writer.write_metadata({"type": "consent", "decision": "implied"})
    for i in range(0, len(head), 160):
        writer.write_audio(head[i : i + 160])
    writer.write_gap(1234)
    writer.write_pause(1000.5, "agent-code")
    writer.write_resume(1003.0)  # as files without a source have it
    writer.write_audio(tail)
    info = writer.close(final_path=tmp_path / "gappy.crec")

    out = tmp_path / "gappy.wav"
    assert run(capsys, "decrypt", info.path, "--key", keys.key).code == 0
    back = sf.read(out, dtype="int16")[0]
    paused = round(2.5 * 8000)  # the tail was said 2.5 s after the pause began
    assert len(back) == 8000 + 1234 + paused
    assert np.array_equal(back[:3000], ulaw_decode(head))
    assert not back[3000 : 3000 + 1234 + paused].any()
    assert np.array_equal(back[3000 + 1234 + paused :], ulaw_decode(tail))
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["metadata"] == [{"type": "consent", "decision": "implied"}]
    at_pause = (3000 + 1234) / 8000
    assert meta["events"] == [
        {"event": "gap", "at_seconds": 0.375, "seconds": 1234 / 8000},
        {"event": "pause", "at": 1000.5, "at_seconds": at_pause, "source": "agent-code"},
        {
            "event": "resume",
            "at": 1003.0,
            "at_seconds": at_pause + 2.5,
            "source": None,
            "paused": 2.5,
        },
    ]


def test_ogg_is_sealed_as_its_decoded_16bit_samples_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair
) -> None:
    src = tmp_path / "old.ogg"
    sf.write(src, speech_like(16000, 1.0), 16000, format="OGG", subtype="VORBIS")
    result = run(capsys, "seal", src, "--to", keys.pub)
    assert result.code == 0
    assert "VORBIS samples are stored as 16-bit PCM" in result.err
    assert run(capsys, "decrypt", tmp_path / "old.crec", "--key", keys.key).code == 0
    back = sf.read(tmp_path / "old.wav", dtype="int16")[0]
    assert np.array_equal(back, sf.read(src, dtype="int16")[0])


def test_every_recipient_can_decrypt_and_o_may_name_a_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair
) -> None:
    archive = make_keys(capsys, tmp_path / "keys", "archive")
    samples = speech_like(8000, 0.5)
    sf.write(tmp_path / "call.wav", samples, 8000, subtype="PCM_16")
    sealed = run(capsys, "seal", tmp_path / "call.wav", "--to", keys.pub, "--to", archive.pub)
    assert sealed.code == 0
    for i, pair in enumerate((keys, archive)):
        folder = tmp_path / f"out{i}"
        folder.mkdir()
        assert (
            run(capsys, "decrypt", tmp_path / "call.crec", "--key", pair.key, "-o", folder).code
            == 0
        )
        assert np.array_equal(sf.read(folder / "call.wav", dtype="int16")[0], samples)


def test_slin16_from_asterisk_is_read_big_endian(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair
) -> None:
    samples = speech_like(16000, 0.5)
    writer = RecordingWriter.create(
        tmp_path, [PublicKey.load(keys.pub)], codec=Codec.SLIN16, sample_rate=16000
    )
    wire = samples.astype(">i2").tobytes()
    for i in range(0, len(wire), 640):
        writer.write_audio(wire[i : i + 640])
    crec = writer.close(final_path=tmp_path / "rtp.crec").path
    assert run(capsys, "decrypt", crec, "--key", keys.key).code == 0
    back, rate = sf.read(tmp_path / "rtp.wav", dtype="int16")
    assert rate == 16000
    assert np.array_equal(back, samples)
