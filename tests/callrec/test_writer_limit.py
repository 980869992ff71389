"""The writer stops a recording at the length its reader accepts (7 days).

A recorder left running (a stuck channel) must never write a file its own
reader then refuses: the audio, gap or resume that would go past
MAX_RECORDING_SECONDS is refused with an error naming the limit, and what
was written before seals and reads back whole. Gaps and pauses reach a week
in a few frames, so these files stay small.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from callrec.crypto.frames import AudioFrame, GapFrame, MetadataFrame, PauseFrame, ResumeFrame
from callrec.crypto.keys import PrivateKey
from callrec.crypto.limits import MAX_RECORDING_SECONDS
from callrec.decode import decode_recording
from callrec.media.codecs import Codec
from callrec.pausing import PauseSource
from callrec.recording import Frame, RecordingReader, RecordingWriter, Verdict, verify
from callrec.recording.writer import RecordingLimitReached
from tests.callrec.test_tap import TapRig, _evidence, _until, taprig

__all__ = ["taprig"]  # the fixture, used by name

KEY = PrivateKey.generate()
RATE = 8000
WEEK = MAX_RECORDING_SECONDS * RATE  # samples of a 7-day recording at 8 kHz
LIMIT = "would make it longer than 7 days"
PAUSED_AT = 1_795_910_400.0


def _writer(
    folder: Path, codec: Codec = Codec.ULAW, rate: int = RATE, channels: int = 1
) -> RecordingWriter:
    return RecordingWriter.create(
        folder, [KEY.public_key()], codec=codec, sample_rate=rate, channels=channels
    )


def _read(path: Path, keys: list[PrivateKey] | None = None) -> tuple[list[Frame], RecordingReader]:
    with RecordingReader(path, keys or [KEY]) as reader:
        frames = list(reader.frames())
    return frames, reader


def test_audio_that_would_pass_the_limit_is_refused_and_the_rest_seals(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    first, last = bytes(range(160)), b"\x7f" * 80
    writer.write_metadata({"type": "consent-evidence"})
    writer.write_audio(first)
    writer.write_gap(WEEK - len(first) - len(last))
    writer.write_audio(last)  # exactly 7 days: still a recording its reader takes
    with pytest.raises(
        RecordingLimitReached, match=f"recording {writer.recording_id}: audio {LIMIT}"
    ):
        writer.write_audio(b"\xff")
    assert not writer.closed
    writer.write_metadata({"type": "summary", "reason": "limit"})
    info = writer.close()
    assert info.audio_seconds == MAX_RECORDING_SECONDS
    result = verify(info.path, [KEY])
    assert (result.verdict, result.error) == (Verdict.COMPLETE, None)
    assert result.audio_seconds == MAX_RECORDING_SECONDS
    frames, _ = _read(info.path)
    assert frames == [
        MetadataFrame({"type": "consent-evidence"}),
        AudioFrame(first),
        GapFrame(WEEK - len(first) - len(last)),
        AudioFrame(last),
        MetadataFrame({"type": "summary", "reason": "limit"}),
    ]


@pytest.mark.parametrize("gap", [WEEK, 2**64 - 1], ids=["a-week", "2**64-1"])
def test_a_gap_past_the_limit_is_refused_and_nothing_after_it_stands_too_early(
    tmp_path: Path, gap: int
) -> None:
    writer = _writer(tmp_path)
    writer.write_audio(b"\x10" * 160)
    with pytest.raises(RecordingLimitReached, match=f"a gap of {gap} samples {LIMIT}"):
        writer.write_gap(gap)
    # Audio that would fit is refused too: it would play where the gap belonged.
    for late in (lambda: writer.write_audio(b"\x20" * 160), lambda: writer.write_gap(1)):
        with pytest.raises(RecordingLimitReached, match=f"a gap of {gap} samples {LIMIT}"):
            late()
    path = writer.close().path
    frames, reader = _read(path)
    assert frames == [AudioFrame(b"\x10" * 160)]
    assert (reader.verdict, reader.audio_seconds) == (Verdict.COMPLETE, 160 / RATE)


def test_a_pause_is_counted_as_its_reader_renders_it(tmp_path: Path) -> None:
    """A resume a week after its pause is refused; the pause stays open and renders nothing."""
    writer = _writer(tmp_path)
    said = bytes(range(0, 256, 2)) * 125  # 2 s of audio
    writer.write_audio(said)
    writer.write_pause(PAUSED_AT, "control")
    with pytest.raises(RecordingLimitReached, match=f"a pause {LIMIT}"):
        writer.write_resume(PAUSED_AT + MAX_RECORDING_SECONDS - 1.0, "control")
    path = writer.close().path
    assert verify(path, [KEY]).verdict is Verdict.COMPLETE
    decoded = decode_recording(path, [KEY])
    assert len(decoded.samples) == len(said)  # the audio, and no week of silence
    frames, _ = _read(path)
    assert frames == [AudioFrame(said), PauseFrame(PAUSED_AT, "control")]


def test_a_pause_up_to_the_limit_is_kept(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    writer.write_audio(b"\x55" * (2 * RATE))
    writer.write_pause(PAUSED_AT, "agent-code")
    writer.write_resume(PAUSED_AT + MAX_RECORDING_SECONDS - 2.0, "agent-code")
    with pytest.raises(RecordingLimitReached, match=f"audio {LIMIT}"):
        writer.write_audio(b"\x55")
    path = writer.close().path
    frames, reader = _read(path)
    assert reader.verdict is Verdict.COMPLETE
    assert [type(f) for f in frames] == [AudioFrame, PauseFrame, ResumeFrame]


@pytest.mark.parametrize(
    ("codec", "rate", "channels"), [(Codec.PCM16, 16000, 2), (Codec.ALAW, 8000, 1)]
)
def test_the_limit_is_exact_to_one_sample(
    tmp_path: Path, codec: Codec, rate: int, channels: int
) -> None:
    writer = _writer(tmp_path, codec, rate, channels)
    one = b"\x01" * (codec.sample_width * channels)  # one sample on every channel
    writer.write_gap(MAX_RECORDING_SECONDS * rate - 1)
    writer.write_audio(one)
    with pytest.raises(RecordingLimitReached, match=f"audio {LIMIT}"):
        writer.write_audio(one)
    result = verify(writer.close().path, [KEY])
    assert (result.verdict, result.audio_seconds) == (Verdict.COMPLETE, MAX_RECORDING_SECONDS)


@pytest.mark.parametrize("taprig", ["after"], indirect=True)
async def test_a_live_recording_stops_at_the_limit_and_seals(taprig: TapRig) -> None:
    """A week-long pause, then the call's audio runs into the limit: the tap reports
    the writer's refusal (the owner ends the recording), and the stop seals a
    file that verifies, filled up to the limit."""
    caller = await taprig.caller()
    reasons: list[str] = []
    tap = taprig.tap(on_failure=reasons.append)
    await tap.start(caller, _evidence(caller), caller)
    assert tap.pause(PauseSource.CONTROL, at=PAUSED_AT)
    assert tap.resume(PauseSource.CONTROL, at=PAUSED_AT + MAX_RECORDING_SECONDS - 1.5)
    await _until(lambda: bool(reasons), within=6.0)
    assert len(reasons) == 1 and LIMIT in reasons[0], reasons
    assert f"recording {tap.recording_id}" in reasons[0]
    result = await tap.stop("recording-failed")
    assert result is not None and result.seal is not None
    frames, reader = _read(result.seal.path, taprig.keys)
    assert reader.verdict is Verdict.COMPLETE
    assert isinstance(frames[-1], MetadataFrame)
    assert frames[-1].record["reason"] == "recording-failed"
    # Audio up to the limit: the refused frame (at most 5 packets) did not fit.
    total = reader.audio_seconds + MAX_RECORDING_SECONDS - 1.5
    assert MAX_RECORDING_SECONDS - 0.1 <= total <= MAX_RECORDING_SECONDS
    assert result.seal.audio_seconds == pytest.approx(reader.audio_seconds)
