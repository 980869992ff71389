"""Pause and resume frames name who asked; a pause renders as silence of its true length."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from callrec.crypto import frames
from callrec.crypto.frames import FrameParser, PauseFrame, Pauses, ResumeFrame
from callrec.crypto.keys import PrivateKey
from callrec.decode import decode_recording
from callrec.errors import FormatError
from callrec.media.g711 import ulaw_decode, ulaw_encode
from callrec.recording import RecordingReader, RecordingTooLong, RecordingWriter, verify
from tests.callrec.crafted import audio, forge

KEY = PrivateKey.generate()
RATE = 8000


@pytest.mark.parametrize(
    ("frame", "encoded"),
    [
        # The time as before, then the source's ASCII bytes: "agent-code".
        (
            PauseFrame(1795910400.5, "agent-code"),
            "0300000012" + "41dac2dac0200000" + b"agent-code".hex(),
        ),
        (
            ResumeFrame(1795910401.0, "auto-resume"),
            "0400000013" + "41dac2dac0400000" + b"auto-resume".hex(),
        ),
        # Files written before pauses named their source: 8 bytes, source None.
        (PauseFrame(1795910400.5), "030000000841dac2dac0200000"),
    ],
)
def test_pause_frames_carry_their_source(frame: PauseFrame | ResumeFrame, encoded: str) -> None:
    assert frames.encode(frame) == bytes.fromhex(encoded)
    assert list(FrameParser().feed(bytes.fromhex(encoded), 0)) == [frame]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("0300000007" + "00" * 7, "frame type 3 has 7 bytes, expected 8 to 40"),
        ("0400000029" + "00" * 41, "frame type 4 has 41 bytes, expected 8 to 40"),
        # An escape sequence where the source stands never reaches a terminal.
        ("030000000c" + "00" * 8 + "1b5b326a", "pause source is not a word of a-z, 0-9 and -"),
        ("040000000a" + "00" * 8 + b"-x".hex(), "resume source is not a word of a-z, 0-9 and -"),
    ],
)
def test_bad_sources_are_refused_naming_the_segment(data: str, message: str) -> None:
    with pytest.raises(FormatError) as info:
        list(FrameParser().feed(bytes.fromhex(data), 4))
    assert (info.value.segment, info.value.message) == (4, message)


@pytest.mark.parametrize("source", ["Agent", "agent code", "a" * 33, "", "ägent"])
def test_the_writer_refuses_a_source_a_reader_would_refuse(source: str) -> None:
    with pytest.raises(ValueError, match=r"pause source .* is not a word of a-z, 0-9 and -"):
        frames.encode_pause(1795910400.0, source)


def test_pauses_pair_as_a_renderer_does() -> None:
    pauses = Pauses(RATE)
    assert pauses.silence(ResumeFrame(10.0)) == 0  # a resume without a pause
    assert pauses.silence(PauseFrame(10.0)) == 0
    assert pauses.silence(PauseFrame(11.0)) == 0  # a second pause keeps the first start
    assert pauses.silence(ResumeFrame(12.5)) == 2.5 * RATE
    assert pauses.silence(ResumeFrame(20.0)) == 0
    assert pauses.silence(PauseFrame(30.0)) == 0
    assert pauses.silence(ResumeFrame(29.0)) == 0  # a clock stepped back: no negative silence


def _recording(tmp_path: Path, steps: list[tuple[str, object]]) -> Path:
    writer = RecordingWriter.create(tmp_path, [KEY.public_key()], codec="ulaw", sample_rate=RATE)
    for kind, value in steps:
        if kind == "audio":
            assert isinstance(value, bytes)
            for i in range(0, len(value), 160):
                writer.write_audio(value[i : i + 160])
        elif kind == "pause":
            assert isinstance(value, tuple)
            writer.write_pause(*value)
        else:
            assert isinstance(value, tuple)
            writer.write_resume(*value)
    return writer.close().path


def test_speech_after_a_pause_stands_where_it_was_said(tmp_path: Path) -> None:
    before = ulaw_encode(np.full(RATE, 3000, dtype=np.int16))
    after = ulaw_encode(np.full(RATE // 2, -3000, dtype=np.int16))
    path = _recording(
        tmp_path,
        [
            ("audio", before),
            ("pause", (1795910401.0, "control")),
            ("resume", (1795910404.25, "agent-code")),
            ("audio", after),
        ],
    )
    decoded = decode_recording(path, [KEY])
    samples = decoded.samples
    assert len(samples) == RATE + round(3.25 * RATE) + RATE // 2
    assert np.array_equal(samples[:RATE], ulaw_decode(before))
    assert not samples[RATE : RATE + round(3.25 * RATE)].any()
    assert np.array_equal(samples[-(RATE // 2) :], ulaw_decode(after))
    assert [(e["event"], e["source"], e.get("paused")) for e in decoded.events] == [
        ("pause", "control", None),
        ("resume", "agent-code", 3.25),
    ]
    # The recovered audio is what was recorded; the pause is not audio.
    assert verify(path, [KEY]).audio_seconds == pytest.approx(1.5)


def test_a_pause_longer_than_a_week_renders_nothing(tmp_path: Path) -> None:
    """A file made with a public key only cannot make decrypt write years of silence."""
    plaintext = (
        audio()
        + frames.encode_pause(1_000_000.0, "control")
        + frames.encode_resume(1_000_000.0 + 8 * 86_400, "control")
        + audio()
    )
    path = forge(tmp_path / "long-pause.crec", KEY.public_key(), plaintext)
    with pytest.raises(RecordingTooLong, match="a pause makes the recording longer than 7 days"):
        decode_recording(path, [KEY])
    with RecordingReader(path, [KEY]) as reader:
        released = list(reader.frames())
    assert not any(isinstance(f, ResumeFrame) for f in released)
    assert isinstance(reader.error, RecordingTooLong)
