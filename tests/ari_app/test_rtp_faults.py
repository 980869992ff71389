"""RTP end to end: faults (lost, reordered, duplicated, foreign) and concurrent streams.

The simulator keeps every payload it generated, so the recording can be
compared byte for byte: what arrived is in order and once, what was lost is
a gap of exactly its length, and the foreign packets (random noise from
another port) are nowhere in it.
"""

from __future__ import annotations

from pathlib import Path

from callrec.ari.sim import CallerScenario
from callrec.recording import AudioFrame, GapFrame, RecordingReader, verify
from tests.ari_app.conftest import DISCLOSURE, GRACE, Rig

SAMPLES_PER_PACKET = 160


def _stream(path: Path, rig: Rig) -> list[bytes | int]:
    """Runs of audio bytes and gap lengths (samples) in recording order.

    Consecutive audio frames are joined: the recorder may put several
    payloads in one frame, which must not matter.
    """
    out: list[bytes | int] = []
    with RecordingReader(path, rig.keys) as reader:
        for frame in reader.frames():
            if isinstance(frame, AudioFrame):
                _append(out, frame.payload)
            elif isinstance(frame, GapFrame):
                out.append(frame.samples)
    return out


def _append(out: list[bytes | int], item: bytes | int) -> None:
    if isinstance(item, bytes) and out and isinstance(out[-1], bytes):
        out[-1] += item
    else:
        out.append(item)


async def test_lost_reordered_duplicated_and_foreign_packets(running: Rig) -> None:
    rig = running
    rig.sim.rtp_faults("all", drop={40, 41}, duplicate={60}, reorder={70}, foreign={20, 80, 90})
    caller = rig.sim.place_call(
        CallerScenario(exten="100", audio=rig.voice_path, hangup_after=DISCLOSURE + GRACE + 3.0)
    )
    line = await rig.wait_audit(caller)
    path = Path(line["path"])
    result = verify(path, rig.keys)
    assert str(result.verdict) == "complete"

    sent = rig.sim.rtp_stats(line["evidence"]["channels"]["external_media"])
    assert sent.dropped == [40, 41] and sent.duplicated == [60] and sent.foreign_sent == 3
    # Loss is filled with a gap, so the length is what was generated.
    assert abs(result.audio_seconds - sent.packets_generated * 0.02) <= 0.02

    expected: list[bytes | int] = []
    for index, payload in enumerate(sent.payloads):
        if index == 40:
            _append(expected, 2 * SAMPLES_PER_PACKET)
        elif index != 41:
            _append(expected, payload)
    assert _stream(path, rig) == expected

    packets = line["packets"]
    assert packets["lost"] == 2
    assert packets["duplicated"] == 1
    assert packets["reordered"] == 1
    assert packets["received"] == sent.datagrams_sent
    assert line["durations"]["gaps"] == 0.04
    assert rig.app is not None and rig.app.ctx is not None
    assert rig.app.ctx.recorder.foreign == 3


async def test_concurrent_calls_each_get_exactly_their_own_audio(running: Rig) -> None:
    # Trace 10: five callers at once, events interleaved; one recorder socket.
    rig = running
    callers = [
        rig.sim.place_call(
            CallerScenario(
                exten="100", audio=rig.voice_path, hangup_after=DISCLOSURE + GRACE + 1.0 + i * 0.2
            )
        )
        for i in range(5)
    ]
    lines = [await rig.wait_audit(c) for c in callers]
    assert len({line["recording_id"] for line in lines}) == 5
    for line in lines:
        sent = rig.sim.rtp_stats(line["evidence"]["channels"]["external_media"])
        assert _stream(Path(line["path"]), rig) == [b"".join(sent.payloads)]
