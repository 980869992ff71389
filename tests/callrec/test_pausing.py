"""A recording's pauses through a real RTP stream: the hold of a feature code,
who asked, and what the summary and the audit line say of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from callrec.clock import ManualClock
from callrec.crypto.keys import PrivateKey
from callrec.media.rtp import RtpPacket
from callrec.media.rtp_stream import RtpStream
from callrec.pausing import MAX_HOLD_BYTES, PauseControl, PauseSource, PauseTotals
from callrec.recording import RecordingWriter

T0 = 1_795_910_400.0


@dataclass
class Frames:
    """The writer side: every frame in order, pauses with their source."""

    frames: list[tuple[str, object]] = field(default_factory=list)

    def write_audio(self, payload: bytes) -> None:
        self.frames.extend(("audio", payload[i]) for i in range(0, len(payload), 160))

    def write_gap(self, samples: int) -> None:
        self.frames.append(("gap", samples))

    def write_pause(self, at: float, source: str | None = None) -> None:
        self.frames.append(("pause", (at - T0, source)))

    def write_resume(self, at: float, source: str | None = None) -> None:
        self.frames.append(("resume", (at - T0, source)))


class Call:
    """One recording: packet i carries byte i (so the frames say which packets made it)."""

    def __init__(self) -> None:
        self.clock = ManualClock(T0)
        self.writer = Frames()
        self.control = PauseControl(self.clock)
        self.stream = RtpStream(
            self.control.gate(self.writer),
            "ulaw",
            "call-1",
            hold=lambda _: None,
            attach=lambda _stream, _source: None,
            coalesce=1,
        )
        self.control.attach(self.stream)
        self.sent = 0

    def talk(self, packets: int) -> None:
        for _ in range(packets):
            i = self.sent
            self.sent += 1
            payload = bytes([i & 0xFF]) * 160
            packet = RtpPacket(0, False, 100 + i, 160 * i, 0x1234, payload=payload)
            self.stream.feed(packet.serialize())
            self.clock.advance(0.02)

    def heard(self) -> list[object]:
        return [value if kind == "audio" else (kind, value) for kind, value in self.writer.frames]


def test_a_completed_code_pauses_from_its_first_digit_and_drops_what_was_held() -> None:
    call = Call()
    call.talk(3)
    assert call.control.hold()  # "*" ended at 0.06 s
    call.talk(2)  # said between "*" and "1"
    assert call.control.pause(PauseSource.AGENT_CODE)  # "1" ended at 0.10 s
    call.talk(2)  # said while paused
    assert call.control.resume(PauseSource.CONTROL)
    call.talk(1)
    assert call.heard() == [
        0,
        1,
        2,
        ("pause", (pytest.approx(0.06), "agent-code")),
        ("resume", (pytest.approx(0.14), "control")),
        7,
    ]
    until = T0 + 1.0
    assert call.control.records(until) == [
        {
            "start": pytest.approx(T0 + 0.06),
            "end": pytest.approx(T0 + 0.14),
            "seconds": pytest.approx(0.08),
            "source": "agent-code",
            "resumed_by": "control",
        }
    ]
    totals = call.control.totals(until)
    assert totals.count == 1
    assert totals.seconds == pytest.approx(0.08, abs=1e-6)


def test_a_code_not_completed_leaves_the_audio_as_it_was() -> None:
    call = Call()
    call.talk(2)
    assert call.control.hold()
    assert not call.control.hold()  # one hold at a time
    call.talk(3)
    call.control.release()
    call.talk(1)
    assert call.heard() == [0, 1, 2, 3, 4, 5]
    assert call.control.pauses == []


def test_a_hold_open_when_the_recording_ends_is_released() -> None:
    call = Call()
    call.control.hold()
    call.talk(2)
    call.control.close()
    assert call.heard() == [0, 1]
    assert not call.control.pause(PauseSource.CONTROL)  # closed: nothing changes any more
    assert not call.control.hold()


def test_a_hold_never_grows_past_its_bound() -> None:
    call = Call()
    call.control.hold()
    packets = MAX_HOLD_BYTES // 160 + 1
    call.talk(packets)
    assert not call.control.holding
    assert call.heard() == [i & 0xFF for i in range(packets)]


def test_pausing_twice_or_resuming_a_running_recording_changes_nothing() -> None:
    call = Call()
    assert not call.control.resume(PauseSource.CONTROL)
    assert call.control.pause(PauseSource.CONTROL)
    call.clock.advance(2.0)
    assert not call.control.pause(PauseSource.AGENT_CODE)
    assert not call.control.hold()  # no hold while paused
    assert call.heard() == [("pause", (0.0, "control"))]
    # Ended while paused: the pause lasts until the end.
    assert call.control.records(T0 + 5.0)[0]["seconds"] == 5.0
    assert call.control.totals(T0 + 5.0) == PauseTotals(1, 5.0)


def _starting() -> tuple[ManualClock, Frames, PauseControl, RtpStream]:
    """A recording whose RTP side is not attached yet (its snoop being set up)."""
    clock, writer = ManualClock(T0), Frames()
    control = PauseControl(clock)
    stream = RtpStream(
        control.gate(writer), "ulaw", "call-1",
        hold=lambda _: None, attach=lambda _stream, _source: None, coalesce=1,
    )  # fmt: skip
    return clock, writer, control, stream


def test_a_pause_asked_while_the_recording_starts_begins_before_any_audio() -> None:
    """The agent's /pause during a start (or a crash take-over) is kept, not refused:
    refused, the card number read out next would be in the recording."""
    clock, writer, control, stream = _starting()
    told: list[object] = []
    control.watch(told.append)
    assert not control.hold()  # nothing to hold back yet
    assert control.pause(PauseSource.AGI)
    assert control.paused and not control.pause(PauseSource.CONTROL)  # paused already
    assert told and told[-1] is not None  # the live record hears of it at once
    clock.advance(0.5)
    control.attach(stream)
    for i in range(3):  # said while paused
        stream.feed(RtpPacket(0, False, 100 + i, 160 * i, 0x1234, payload=bytes(160)).serialize())
    assert writer.frames == [("pause", (0.5, "agi"))]  # from the first instant, no audio
    assert control.resume(PauseSource.AGI)
    assert [kind for kind, _ in writer.frames] == ["pause", "resume"]


def test_a_pause_resumed_before_the_recording_started_never_begins() -> None:
    _, writer, control, stream = _starting()
    assert control.pause(PauseSource.CONTROL)
    assert control.resume(PauseSource.AGI)
    assert not control.paused and not control.resume(PauseSource.AGI)
    control.attach(stream)
    assert writer.frames == [] and control.pauses == []


def test_the_gate_names_the_recordings_file_for_the_syncer(tmp_path: Path) -> None:
    """The recorder fsyncs a recording by its writer's path; the gate stands in for it."""
    key = PrivateKey.generate().public_key()
    writer = RecordingWriter.create(tmp_path, [key], codec="ulaw", sample_rate=8000)
    gate = PauseControl(ManualClock(T0)).gate(writer)
    assert gate.path == writer.path
    assert PauseControl(ManualClock(T0)).gate(Frames()).path is None
    writer.abort()
