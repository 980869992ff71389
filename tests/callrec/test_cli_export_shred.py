"""``export-tink`` interop with Google's Tink, and ``seal --shred`` safety."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tink
from tink import cleartext_keyset_handle, streaming_aead

from callrec.crypto.frames import encode
from callrec.crypto.keys import PrivateKey, PublicKey
from callrec.media.g711 import alaw_encode
from callrec.recording import Codec, RecordingReader, RecordingWriter
from tests.callrec.cli_support import KeyPair, make_keys, run, speech_like


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> KeyPair:
    return make_keys(capsys, tmp_path / "keys")


def test_tink_decrypts_the_exported_stream_to_the_identical_plaintext(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair
) -> None:
    writer = RecordingWriter.create(
        tmp_path, [PublicKey.load(keys.pub)], codec=Codec.ALAW, sample_rate=8000
    )
    writer.write_metadata({"type": "consent", "decision": "implied"})
    audio = alaw_encode(speech_like(8000, 3.0))
    for i in range(0, len(audio), 160):
        writer.write_audio(audio[i : i + 160])
    writer.write_gap(480)
    crec = writer.close(final_path=tmp_path / "call.crec").path

    out = tmp_path / "tink"
    result = run(capsys, "export-tink", crec, "--key", keys.key, "--out", out)
    assert result.code == 0, result.err
    for name in ("keyset.json", "stream.bin", "associated_data.bin"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600
    stream = (out / "stream.bin").read_bytes()
    whole = crec.read_bytes()
    assert whole.endswith(stream)
    assert len(stream) > len(audio)

    streaming_aead.register()
    handle = cleartext_keyset_handle.read(tink.JsonKeysetReader((out / "keyset.json").read_text()))
    primitive = handle.primitive(streaming_aead.StreamingAead)
    ad = (out / "associated_data.bin").read_bytes()
    with primitive.new_decrypting_stream(io.BytesIO(stream), ad) as f:
        plaintext = f.read()

    with RecordingReader(crec, [PrivateKey.load(keys.key)]) as reader:
        expected = b"".join(encode(frame) for frame in reader.frames())
    assert plaintext == expected
    assert audio[:160] in plaintext


def _wav(tmp_path: Path) -> tuple[Path, bytes]:
    src = tmp_path / "mixmonitor.wav"
    sf.write(src, speech_like(8000, 1.0, 2), 8000, subtype="PCM_16")
    return src, src.read_bytes()


def test_shred_removes_the_original_only_after_the_sealed_copy_decrypts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair
) -> None:
    src, original = _wav(tmp_path)
    result = run(
        capsys,
        "seal",
        src,
        "--to",
        keys.pub,
        "--shred",
        "--verify-key",
        keys.key,
        "--out",
        tmp_path / "sealed",
    )
    assert result.code == 0, result.err
    assert "verified" in result.out
    assert f"removed {src}" in result.out
    assert not src.exists()
    out = tmp_path / "back.wav"
    assert (
        run(
            capsys,
            "decrypt",
            tmp_path / "sealed" / "mixmonitor.crec",
            "--key",
            keys.key,
            "-o",
            out,
        ).code
        == 0
    )
    assert np.array_equal(
        sf.read(out, dtype="int16")[0], sf.read(io.BytesIO(original), dtype="int16")[0]
    )


def test_shred_keeps_the_original_when_verification_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair
) -> None:
    src, original = _wav(tmp_path)
    # A key that is not among the recipients cannot verify the copy.
    stranger = make_keys(capsys, tmp_path / "keys", "stranger")
    result = run(capsys, "seal", src, "--to", keys.pub, "--shred", "--verify-key", stranger.key)
    assert result.code == 4
    assert "verification failed, original kept" in result.err
    assert src.read_bytes() == original


def test_shred_without_a_verify_key_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair
) -> None:
    src, original = _wav(tmp_path)
    result = run(capsys, "seal", src, "--to", keys.pub, "--shred")
    assert result.code == 2
    assert "--shred needs --verify-key" in result.err
    assert src.read_bytes() == original
    assert not src.with_suffix(".crec").exists()


def test_seal_refuses_to_overwrite_an_existing_sealed_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair
) -> None:
    src, _ = _wav(tmp_path)
    assert run(capsys, "seal", src, "--to", keys.pub).code == 0
    before = src.with_suffix(".crec").read_bytes()
    result = run(capsys, "seal", src, "--to", keys.pub)
    assert result.code == 1
    assert "refusing to overwrite" in result.err
    assert src.with_suffix(".crec").read_bytes() == before
    assert not list(tmp_path.glob("*.part"))
