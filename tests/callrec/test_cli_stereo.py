"""decrypt and inspect of stereo recordings: both channels, one side, the mix, the layout line.

The recordings are written as the recorder writes a stereo call: u-law,
2 channels, interleaved sample frames (left the caller, right the callee),
with a gap frame where both sides had nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf

from callrec.crypto.keys import PublicKey
from callrec.media.g711 import ulaw_decode, ulaw_encode
from callrec.recording import Codec, RecordingWriter
from tests.callrec.cli_support import KeyPair, make_keys, run, speech_like

RATE = 8000


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> KeyPair:
    return make_keys(capsys, tmp_path / "keys")


def _sides() -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16]]:
    """1 s: the caller talks in the first half, the callee in the second."""
    caller = speech_like(RATE, 1.0, seed=4).copy()
    callee = speech_like(RATE, 1.0, seed=5).copy()
    caller[RATE // 2 :] = 0
    callee[: RATE // 2] = 0
    # As G.711 would carry them (decrypt writes exactly the decoded samples).
    return ulaw_decode(ulaw_encode(caller)), ulaw_decode(ulaw_encode(callee))


def _stereo(tmp_path: Path, keys: KeyPair, name: str = "stereo") -> Path:
    caller, callee = _sides()
    writer = RecordingWriter.create(
        tmp_path, [PublicKey.load(keys.pub)], codec=Codec.ULAW, sample_rate=RATE, channels=2
    )
    writer.write_metadata({"type": "consent"})
    frames = np.stack([caller, callee], axis=1)
    writer.write_audio(ulaw_encode(frames.reshape(-1)))
    writer.write_gap(RATE // 10)
    writer.write_metadata({"type": "summary", "channels": "stereo"})
    return writer.close(final_path=tmp_path / f"{name}.crec").path


def _mono(tmp_path: Path, keys: KeyPair) -> Path:
    writer = RecordingWriter.create(
        tmp_path, [PublicKey.load(keys.pub)], codec=Codec.ULAW, sample_rate=RATE
    )
    writer.write_audio(ulaw_encode(speech_like(RATE, 0.5)))
    return writer.close(final_path=tmp_path / "mono.crec").path


def test_decrypt_writes_both_sides_as_a_two_channel_wav(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair
) -> None:
    recording = _stereo(tmp_path, keys)
    out = tmp_path / "out.wav"
    result = run(capsys, "decrypt", recording, "--key", keys.key, "-o", out)
    assert result.code == 0, result.err
    data, rate = sf.read(str(out), dtype="int16", always_2d=True)
    caller, callee = _sides()
    assert rate == RATE and data.shape == (RATE + RATE // 10, 2)
    assert (data[:RATE, 0] == caller).all() and (data[:RATE, 1] == callee).all()
    assert (data[RATE:] == 0).all()  # the gap: silence on both
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["layout"] == "stereo caller-left callee-right"
    assert record["written_channels"] == "all"


@pytest.mark.parametrize("channel", ["caller", "callee", "mix"])
def test_decrypt_channel_writes_one_side_or_the_mix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair, channel: str
) -> None:
    recording = _stereo(tmp_path, keys)
    out = tmp_path / f"{channel}.flac"
    result = run(capsys, "decrypt", recording, "--key", keys.key, "-o", out, "--channel", channel)
    assert result.code == 0, result.err
    data, _ = sf.read(str(out), dtype="int16", always_2d=True)
    assert data.shape == (RATE + RATE // 10, 1)
    caller, callee = _sides()
    wanted = {"caller": caller, "callee": callee, "mix": caller + callee}[channel]
    assert (data[:RATE, 0] == wanted).all()
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["written_channels"] == channel and record["channels"] == 2


def test_a_side_of_a_mono_recording_is_refused_by_name_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair
) -> None:
    mono = _mono(tmp_path, keys)
    out = tmp_path / "side.wav"
    result = run(capsys, "decrypt", mono, "--key", keys.key, "-o", out, "--channel", "caller")
    assert result.code == 1
    assert "--channel caller needs a stereo recording" in result.err
    assert "this one is mono-mixed" in result.err and str(mono) in result.err
    assert not out.exists() and not out.with_suffix(".json").exists()
    # The mix of a mono recording is the recording itself.
    assert run(capsys, "decrypt", mono, "--key", keys.key, "-o", out, "--channel", "mix").code == 0
    assert sf.info(str(out)).channels == 1


def test_inspect_shows_the_channel_layout_without_a_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair
) -> None:
    stereo, mono = _stereo(tmp_path, keys), _mono(tmp_path, keys)
    result = run(capsys, "inspect", stereo)
    assert result.code == 0
    assert "channels: 2" in result.out
    assert 'layout: "stereo caller-left callee-right"' in result.out
    info = json.loads(run(capsys, "inspect", mono, "--json").out)
    assert (info["channels"], info["layout"]) == (1, "mono-mixed")
