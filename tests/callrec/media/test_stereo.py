"""Two RTP streams into one stereo recording: separation, loss on one side, alignment.

The packets go through the real parsing and reorder path of each side
(:class:`StereoLeg`) into a real sealed recording, read back with the
reader. Arrival time is the stream's injected clock, so an hour of RTP runs
in seconds; the recorder's UDP socket with two sources is tested too.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from callrec.crypto.keys import PrivateKey
from callrec.media.layout import Side
from callrec.media.recorder import MediaRecorder
from callrec.media.rtp import pack_rtp
from callrec.media.rtp_stream import RtpStream
from callrec.media.stereo import HOLD, StereoStream
from callrec.recording import AudioFrame, GapFrame, PauseFrame, RecordingReader, RecordingWriter

RATE = 8000
SPP = 160  # samples per 20 ms packet
BACKGROUND = 0xF0  # a quiet u-law code that is not the codec's silence (0xFF)
SILENCE = 0xFF
LEFT_MARK, RIGHT_MARK = 0x00, 0x80  # the loudest codes, one per side


@dataclass
class Clock:
    """The arrival clock the stream reads (seconds)."""

    t: float = 0.0

    def __call__(self) -> float:
        return self.t


class Rig:
    """A stereo stream into a real writer, fed packet by packet at chosen arrival times."""

    def __init__(self, tmp: Path, codec: str = "ulaw") -> None:
        self.key = PrivateKey.generate()
        self.writer = RecordingWriter.create(
            tmp, [self.key.public_key()], codec=codec, sample_rate=RATE, channels=2
        )
        self.clock = Clock()
        self.stream = StereoStream(
            self.writer, codec, RATE, "1795.31", hold=_ignore, attach=_ignore2, now=self.clock
        )

    def feed(self, side: Side, at: float, packet: bytes) -> None:
        self.clock.t = at
        self.stream.legs[side].feed(packet)

    def close(self) -> npt.NDArray[np.uint8]:
        """Seal; the recording's sample frames as (frames, 2) u-law codes, gaps as silence."""
        self.stream.flush()
        sealed = self.writer.close()
        parts = []
        with RecordingReader(sealed.path, [self.key]) as reader:
            for frame in reader.frames():
                if isinstance(frame, AudioFrame):
                    parts.append(np.frombuffer(frame.payload, dtype=np.uint8))
                elif isinstance(frame, GapFrame):
                    parts.append(np.full(2 * frame.samples, SILENCE, dtype=np.uint8))
            assert reader.verdict == "complete"
        return np.concatenate(parts).reshape(-1, 2)


def _ignore(_: RtpStream) -> None:
    """No recorder polls these streams: feeding is synchronous."""


def _ignore2(_: RtpStream, __: tuple[str, int]) -> None:
    """No socket routes to these streams."""


def rtp(seq: int, ts: int, payload: bytes, ssrc: int) -> bytes:
    return pack_rtp(0, False, seq, ts, ssrc, payload)


def voice(k: int, talking: bool) -> bytes:
    """Packet k of a side: a ramp of loud codes while talking, background otherwise."""
    return bytes((k + i) % 0x70 for i in range(SPP)) if talking else bytes([BACKGROUND]) * SPP


def loud(column: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    return column < 0x70


def test_left_is_what_the_caller_says_and_right_what_the_caller_hears(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    # 4 s: the caller talks for 2 s, then the agent; the agent's stream starts 13 ms later.
    for k in range(200):
        at = 0.02 * (k + 1)
        rig.feed(Side.CALLER, at, rtp(k, 1000 + k * SPP, voice(k, k < 100), 0xA))
        rig.feed(Side.CALLEE, at + 0.013, rtp(7 + k, 90000 + k * SPP, voice(k, k >= 100), 0xB))
    frames = rig.close()
    left, right = loud(frames[:, 0]), loud(frames[:, 1])
    assert abs(len(frames) - 200 * SPP) <= SPP
    # Each side is loud in its own half only, and the two halves meet where they were sent.
    assert left[: 100 * SPP].all() and not left[101 * SPP :].any()
    assert not right[: 100 * SPP].any() and right[101 * SPP + SPP : 199 * SPP].all()
    switch_left = int(np.argmin(left))
    switch_right = int(np.argmax(right))
    assert abs(switch_right - switch_left) <= SPP


def test_loss_on_one_side_is_silence_there_and_the_other_side_keeps_its_audio(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    lost = set(range(60, 85))  # half a second of the agent's packets
    for k in range(200):
        at = 0.02 * (k + 1)
        rig.feed(Side.CALLER, at, rtp(k, k * SPP, voice(k, True), 0xA))
        if k not in lost:
            rig.feed(Side.CALLEE, at + 0.004, rtp(k, 5 + k * SPP, voice(k, True), 0xB))
    frames = rig.close()
    left, right = frames[:, 0], frames[:, 1]
    assert loud(left[: 200 * SPP]).all(), "the caller's side has no hole"
    # The callee's stream starts 4 ms later: silence before its first packet,
    # then silence exactly as long as what it lost.
    assert (right[:32] == SILENCE).all()
    silent = SPP + np.flatnonzero(right[SPP:] == SILENCE)
    assert len(silent) == len(lost) * SPP
    assert abs(int(silent[0]) - 60 * SPP) <= SPP
    assert loud(right[SPP : 60 * SPP]).all() and loud(right[86 * SPP : 199 * SPP]).all()
    stats = rig.stream.stats
    assert (stats.packets, stats.lost) == (400 - len(lost), len(lost))


def test_a_side_that_sends_nothing_for_a_while_is_padded_and_placed_by_its_timestamps(
    tmp_path: Path,
) -> None:
    # Asterisk sends nothing for a side without audio, then stamps the next
    # frame with the time that passed: the later audio lands where it was said.
    rig = Rig(tmp_path)
    for k in range(300):
        at = 0.02 * (k + 1)
        rig.feed(Side.CALLER, at, rtp(k, k * SPP, voice(k, False), 0xA))
        if k < 20 or k >= 250:
            seq = k if k < 20 else k - 230
            rig.feed(Side.CALLEE, at, rtp(seq, 777 + k * SPP, voice(k, True), 0xB))
    frames = rig.close()
    right = frames[:, 1]
    assert (right[20 * SPP + SPP : 250 * SPP - SPP] == SILENCE).all()
    assert loud(right[250 * SPP + SPP : 299 * SPP]).all()
    assert (frames[:, 0] == BACKGROUND).sum() >= 299 * SPP


def test_an_hour_with_jitter_loss_and_a_slow_clock_on_one_side_stays_within_a_packet(
    tmp_path: Path,
) -> None:
    """Both sides carry a mark every 10 s of real time; the agent's side loses
    1 % of its packets and 2 s at once, arrives up to 15 ms late, and its
    source clock runs 40 ppm slow. Every mark of one side stays within one
    packet (20 ms) of the same moment's mark on the other."""
    rig = Rig(tmp_path)
    rng = random.Random(14)
    seconds, ppm = 3600, 40e-6
    packets = seconds * 50
    burst = set(range(packets // 2, packets // 2 + 100))
    events: list[tuple[float, int, Side, bytes]] = []
    last = {Side.CALLER: 0.0, Side.CALLEE: 0.0}
    for k in range(packets):
        for side in Side:
            # The callee's source sends packet k at its own clock's 20 ms.
            sent = 0.02 * (k + 1) * (1 + ppm if side is Side.CALLEE else 1)
            if side is Side.CALLEE and (k in burst or rng.random() < 0.01):
                continue
            arrival = max(last[side], sent + rng.uniform(0, 0.015))
            last[side] = arrival
            events.append((arrival, k, side, _marked(k, side, ppm, seconds)))
    events.sort(key=lambda e: e[0])
    for arrival, k, side, payload in events:
        rig.feed(side, arrival, rtp(k, 4000 * side + k * SPP, payload, 0xA + side))
    frames = rig.close()
    # As long as the side that ended last (the slow clock's: 144 ms more).
    assert abs(len(frames) - packets * SPP * (1 + ppm)) <= 2 * SPP
    left = np.flatnonzero(frames[:, 0] == LEFT_MARK)
    right = np.flatnonzero(frames[:, 1] == RIGHT_MARK)
    assert len(left) == seconds // 10
    assert len(right) >= 0.95 * len(left)
    nearest = left[np.abs(left[:, None] - right[None, :]).argmin(axis=0)]
    assert np.abs(nearest - right).max() <= SPP
    # The 2 s lost on one side are silence there alone (the slow side's
    # packets stand 72 ms later by half an hour).
    hole = frames[(packets // 2 + 8) * SPP : (packets // 2 + 92) * SPP]
    assert (hole[:, 1] == SILENCE).all() and (hole[:, 0] != SILENCE).all()


_QUIET = bytes([BACKGROUND]) * SPP


def _marked(k: int, side: Side, ppm: float, seconds: int) -> bytes:
    """Packet k of a side, with a mark on the sample of each 10th second of
    real time (before the last: the slow side's stream runs past it)."""
    scale = 1 + ppm if side is Side.CALLEE else 1
    start = 0.02 * k * scale  # real time of the packet's first sample
    mark = -(-start // 10) * 10
    offset = round((mark - start) / scale * RATE)
    if offset >= SPP or mark >= seconds:
        return _QUIET
    payload = bytearray(_QUIET)
    payload[offset] = LEFT_MARK if side is Side.CALLER else RIGHT_MARK
    return bytes(payload)


def test_a_pause_stops_both_sides_and_the_resume_realigns_them(tmp_path: Path) -> None:
    rig = Rig(tmp_path)

    def play(first: int, last: int) -> None:
        for k in range(first, last):
            at = 0.02 * (k + 1)
            rig.feed(Side.CALLER, at, rtp(k, k * SPP, voice(k, True), 0xA))
            rig.feed(Side.CALLEE, at + 0.007, rtp(k, 3 + k * SPP, voice(k, True), 0xB))

    play(0, 100)
    rig.stream.pause(1000.0, "agi")
    play(100, 200)  # not recorded
    rig.stream.resume(1002.0, "agi")
    play(200, 300)
    rig.stream.flush()
    sealed = rig.writer.close()
    kinds = []
    with RecordingReader(sealed.path, [rig.key]) as reader:
        frames = list(reader.frames())
    for frame in frames:
        kinds.append(type(frame).__name__)
    pause = kinds.index("PauseFrame")
    audio = [f for f in frames if isinstance(f, AudioFrame)]
    before = sum(len(f.payload) for f in frames[:pause] if isinstance(f, AudioFrame)) // 2
    after = sum(len(f.payload) for f in audio) // 2 - before
    assert abs(before - 100 * SPP) <= SPP and abs(after - 100 * SPP) <= SPP
    assert [f.source for f in frames if isinstance(f, PauseFrame)] == ["agi"]
    assert rig.stream.stats.paused == 200


def test_slin16_sides_are_interleaved_sample_by_sample(tmp_path: Path) -> None:
    key = PrivateKey.generate()
    writer = RecordingWriter.create(
        tmp_path, [key.public_key()], codec="slin16", sample_rate=16000, channels=2
    )
    clock = Clock()
    stream = StereoStream(writer, "slin16", 16000, "c", hold=_ignore, attach=_ignore2, now=clock)
    left = np.arange(320, dtype=">i2")
    right = (-np.arange(320)).astype(">i2")
    for k in range(50):
        clock.t = 0.02 * (k + 1)
        stream.legs[Side.CALLER].feed(pack_rtp(118, False, k, k * 320, 1, left.tobytes()))
        stream.legs[Side.CALLEE].feed(pack_rtp(118, False, k, k * 320, 2, right.tobytes()))
    stream.flush()
    sealed = writer.close()
    with RecordingReader(sealed.path, [key]) as reader:
        data = b"".join(f.payload for f in reader.frames() if isinstance(f, AudioFrame))
    samples = np.frombuffer(data, dtype=">i2").reshape(-1, 2)
    assert len(samples) == 50 * 320
    assert (samples[:, 0] == -samples[:, 1]).all()
    assert (samples[:320, 0] == left).all()


def test_one_side_waits_for_the_other_no_longer_than_hold(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    sent = 0
    for k in range(100):
        rig.feed(Side.CALLER, 0.02 * (k + 1), rtp(k, k * SPP, voice(k, True), 0xA))
        sent += SPP
    # Nothing from the callee: the caller's audio is written with silence
    # beside it once it is HOLD ahead, not kept in memory for ever.
    assert rig.stream.aligner.written >= sent - HOLD * RATE - SPP
    frames = rig.close()
    assert (frames[:, 1] == SILENCE).all() and loud(frames[:, 0]).all()


# --- through the recorder's socket ------------------------------------------------------


@pytest.fixture
def udp() -> Iterator[list[socket.socket]]:
    made: list[socket.socket] = []
    yield made
    for s in made:
        s.close()


async def test_the_recorder_routes_each_side_by_its_source(
    tmp_path: Path, udp: list[socket.socket]
) -> None:
    recorder = MediaRecorder(sync_interval=None)
    await recorder.start()
    key = PrivateKey.generate()
    writer = RecordingWriter.create(
        tmp_path, [key.public_key()], codec="ulaw", sample_rate=RATE, channels=2
    )
    stream = recorder.open_stereo(writer, "ulaw", RATE, "c")
    for side in Side:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        udp.append(sock)
        stream.expect_source(side, "127.0.0.1", sock.getsockname()[1])
    for k in range(25):
        udp[0].sendto(rtp(k, k * SPP, bytes([0x10]) * SPP, 1), recorder.address)
        udp[1].sendto(rtp(k, k * SPP, bytes([0x90]) * SPP, 2), recorder.address)
        await asyncio.sleep(0.02)
    for _ in range(100):
        if stream.packets >= 50:
            break
        await asyncio.sleep(0.01)
    stats = await recorder.close_stream(stream)
    await recorder.stop()
    sealed = writer.close()
    with RecordingReader(sealed.path, [key]) as reader:
        data = b"".join(f.payload for f in reader.frames() if isinstance(f, AudioFrame))
    frames = np.frombuffer(data, dtype=np.uint8).reshape(-1, 2)
    assert stats.packets == 50 and stats.foreign == 0
    assert set(frames[:, 0]) <= {0x10, SILENCE} and set(frames[:, 1]) <= {0x90, SILENCE}
    assert (frames[:, 0] == 0x10).sum() == 25 * SPP and (frames[:, 1] == 0x90).sum() == 25 * SPP
