"""The media recorder over real UDP on 127.0.0.1, into a writer that keeps
what it was given (the end-to-end tests with the sealed writer are in
test_recorder_sealed.py).

The recorder joins up to five in-order payloads into one audio frame, so
the checks cut the audio back into packet-sized pieces."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest

from callrec.errors import MediaError, SpoolError
from callrec.media.recorder import MediaRecorder
from callrec.media.rtp import RtpPacket
from callrec.media.rtp_stream import RtpStats, RtpStream


@dataclass
class ListWriter:
    """Records every frame the recorder writes, in order."""

    frames: list[tuple[str, object]] = field(default_factory=list)
    fail: bool = False
    packet_size: int = 160

    def write_audio(self, payload: bytes) -> None:
        if self.fail:
            raise SpoolError("/spool", "No space left on device")
        size = self.packet_size
        for i in range(0, len(payload), size):
            self.frames.append(("audio", payload[i : i + size]))

    def write_gap(self, samples: int) -> None:
        self.frames.append(("gap", samples))

    def write_pause(self, at: float, source: str | None = None) -> None:
        self.frames.append(("pause", at))

    def write_resume(self, at: float, source: str | None = None) -> None:
        self.frames.append(("resume", at))

    def audio(self) -> list[bytes]:
        return [p for kind, p in self.frames if kind == "audio" and isinstance(p, bytes)]


class Sender:
    """Plays Asterisk: sends RTP from its own UDP port."""

    def __init__(self, target: tuple[str, int], pt: int = 0, seq0: int = 1000) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.target = target
        self.pt = pt
        self.seq0 = seq0
        self.size = 160

    def packet(self, i: int, payload: bytes | None = None) -> bytes:
        body = payload if payload is not None else bytes([i & 0xFF]) * self.size
        return RtpPacket(
            payload_type=self.pt,
            marker=False,
            sequence_number=(self.seq0 + i) & 0xFFFF,
            timestamp=(4000 + i * (self.size if self.pt in (0, 8) else self.size // 2))
            & 0xFFFF_FFFF,
            ssrc=0x1234,
            payload=body,
        ).serialize()

    def send(self, order: list[int]) -> None:
        for i in order:
            self.sock.sendto(self.packet(i), self.target)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
async def recorder() -> AsyncIterator[MediaRecorder]:
    rec = MediaRecorder("127.0.0.1", 0)
    await rec.start()
    yield rec
    await rec.stop()


@pytest.fixture
def senders() -> Iterator[list[Sender]]:
    made: list[Sender] = []
    yield made
    for s in made:
        s.close()


async def arrived(stream: RtpStream, packets: int) -> RtpStats:
    """Wait until ``packets`` datagrams reached the stream (loopback is fast)."""
    for _ in range(400):
        if stream.stats.packets >= packets:
            break
        await asyncio.sleep(0.005)
    return stream.stats


def ids(writer: ListWriter) -> list[object]:
    out: list[object] = []
    for kind, p in writer.frames:
        out.append(p[0] if kind == "audio" and isinstance(p, bytes) else (kind, p))
    return out


async def open_with_sender(
    recorder: MediaRecorder, senders: list[Sender], codec: str = "ulaw", **kw: int
) -> tuple[RtpStream, ListWriter, Sender]:
    writer = ListWriter()
    stream = recorder.open_stream(writer, codec, "1795915759.31")
    sender = Sender(recorder.address, **kw)
    senders.append(sender)
    stream.expect_source("127.0.0.1", sender.port)
    return stream, writer, sender


async def test_payloads_arrive_in_order(recorder: MediaRecorder, senders: list[Sender]) -> None:
    stream, writer, sender = await open_with_sender(recorder, senders)
    sender.send(list(range(50)))
    await arrived(stream, 50)
    stats = await recorder.close_stream(stream)
    assert writer.audio() == [sender.packet(i)[12:] for i in range(50)]
    assert (stats.packets, stats.written, stats.lost, stats.bytes) == (50, 50, 0, 50 * 172)


async def test_loss_writes_a_gap_of_the_missing_samples(
    recorder: MediaRecorder, senders: list[Sender]
) -> None:
    stream, writer, sender = await open_with_sender(recorder, senders)
    order = [0, 1, 2, 5, 6, 7, 8, 9, 10, 11]
    sender.send(order)
    await arrived(stream, len(order))
    stats = await recorder.close_stream(stream)
    assert ids(writer) == [0, 1, 2, ("gap", 320), 5, 6, 7, 8, 9, 10, 11]
    assert (stats.lost, stats.gap_samples) == (2, 320)


async def test_reordered_and_duplicated_packets(
    recorder: MediaRecorder, senders: list[Sender]
) -> None:
    stream, writer, sender = await open_with_sender(recorder, senders)
    order = [0, 2, 1, 3, 3, 4, 6, 5, 7, 1]
    sender.send(order)
    await arrived(stream, len(order))
    stats = await recorder.close_stream(stream)
    assert ids(writer) == list(range(8))
    assert (stats.reordered, stats.duplicates, stats.lost) == (2, 2, 0)


async def test_sequence_wraps_at_65535(recorder: MediaRecorder, senders: list[Sender]) -> None:
    stream, writer, sender = await open_with_sender(recorder, senders, seq0=65530)
    sender.send(list(range(12)))
    await arrived(stream, 12)
    stats = await recorder.close_stream(stream)
    assert ids(writer) == list(range(12))
    assert stats.lost == 0


async def test_foreign_sources_are_dropped_and_counted(
    recorder: MediaRecorder, senders: list[Sender]
) -> None:
    stream, writer, sender = await open_with_sender(recorder, senders)
    intruder = Sender(recorder.address)
    senders.append(intruder)
    intruder.send([0, 1, 2])
    sender.send([0, 1])
    await arrived(stream, 2)
    for _ in range(100):
        if recorder.foreign >= 3:
            break
        await asyncio.sleep(0.005)
    stats = await recorder.close_stream(stream)
    assert ids(writer) == [0, 1]
    assert recorder.foreign == 3
    assert stats.packets == 2


async def test_other_host_claiming_the_stream_port_is_counted_on_the_stream(
    recorder: MediaRecorder, senders: list[Sender]
) -> None:
    stream, writer, sender = await open_with_sender(recorder, senders)
    stream.expect_source("127.0.0.2", sender.port)  # Asterisk said 127.0.0.2
    sender.send([0, 1, 2])  # but 127.0.0.1 sends from that port
    for _ in range(100):
        if recorder.foreign >= 3:
            break
        await asyncio.sleep(0.005)
    stats = await recorder.close_stream(stream)
    assert writer.frames == []
    assert (stats.foreign, stats.packets) == (3, 0)


async def test_wrong_payload_type_and_garbage_are_bad(
    recorder: MediaRecorder, senders: list[Sender]
) -> None:
    stream, writer, sender = await open_with_sender(recorder, senders)
    alaw = Sender(recorder.address, pt=8)
    alaw.sock.close()
    alaw.sock = sender.sock  # same source, wrong payload type
    sender.sock.sendto(alaw.packet(0), recorder.address)
    sender.sock.sendto(b"\x80\x00", recorder.address)
    sender.sock.sendto(b"", recorder.address)
    sender.sock.sendto(b"\x40" + bytes(171), recorder.address)
    sender.send([0])
    await arrived(stream, 5)
    stats = await recorder.close_stream(stream)
    assert ids(writer) == [0]
    assert (stats.bad, stats.packets) == (4, 5)


async def test_pause_and_resume_write_frames_and_discard_between(
    recorder: MediaRecorder, senders: list[Sender]
) -> None:
    stream, writer, sender = await open_with_sender(recorder, senders)
    sender.send([0, 1])
    await arrived(stream, 2)
    stream.pause(1_795_910_401.5)
    sender.send([2, 3, 4])
    await arrived(stream, 5)
    stream.resume(1_795_910_402.0)
    sender.send([5, 6])
    await arrived(stream, 7)
    stats = await recorder.close_stream(stream)
    assert ids(writer) == [0, 1, ("pause", 1_795_910_401.5), ("resume", 1_795_910_402.0), 5, 6]
    assert (stats.paused, stats.lost) == (3, 0)
    assert stream.paused is False
    # Discarded while paused: not counted as written.
    assert len(writer.audio()) == 4
    assert (stats.packets, stats.written, stats.paused) == (7, 4, 3)


async def test_two_streams_are_demultiplexed(
    recorder: MediaRecorder, senders: list[Sender]
) -> None:
    one, w1, s1 = await open_with_sender(recorder, senders)
    two, w2, s2 = await open_with_sender(recorder, senders, seq0=7)
    for i in range(20):
        s1.send([i])
        s2.sock.sendto(s2.packet(i, bytes([200 + (i % 50)]) * 160), recorder.address)
    await arrived(one, 20)
    await arrived(two, 20)
    assert recorder.streams == 2
    await recorder.close_stream(one)
    await recorder.close_stream(two)
    assert w1.audio() == [bytes([i]) * 160 for i in range(20)]
    assert w2.audio() == [bytes([200 + (i % 50)]) * 160 for i in range(20)]
    assert recorder.streams == 0


async def test_slin16_accepts_dynamic_type_and_rejects_odd_payloads(
    recorder: MediaRecorder, senders: list[Sender]
) -> None:
    stream, writer, sender = await open_with_sender(recorder, senders, "slin16", pt=118)
    sender.size = writer.packet_size = 640
    sender.send([0, 1])
    sender.sock.sendto(sender.packet(2, bytes(639)), recorder.address)
    sender.send([3])
    await arrived(stream, 4)
    stats = await recorder.close_stream(stream)
    assert [len(p) for p in writer.audio()] == [640, 640, 640]
    assert writer.frames[2] == ("gap", 320)
    assert stats.bad == 1


async def test_held_packets_leave_after_the_delay_without_more_traffic(
    recorder: MediaRecorder, senders: list[Sender]
) -> None:
    stream, writer, sender = await open_with_sender(recorder, senders)
    sender.send([0, 2])
    await arrived(stream, 2)
    for _ in range(100):
        if len(writer.frames) == 3:
            break
        await asyncio.sleep(0.01)
    assert ids(writer) == [0, ("gap", 160), 2]


async def test_held_packets_are_flushed_on_close(
    recorder: MediaRecorder, senders: list[Sender]
) -> None:
    stream, writer, sender = await open_with_sender(recorder, senders)
    sender.send([0, 3, 2])
    await arrived(stream, 3)
    stats = await recorder.close_stream(stream)
    assert ids(writer) == [0, ("gap", 160), 2, 3]
    assert stats.lost == 1
    sender.send([4])  # after close: not this stream's any more
    for _ in range(100):
        if recorder.foreign:
            break
        await asyncio.sleep(0.005)
    assert recorder.foreign == 1


async def test_writer_failure_stops_only_that_stream(
    recorder: MediaRecorder, senders: list[Sender]
) -> None:
    failed: list[Exception] = []
    bad_writer = ListWriter(fail=True)
    bad = recorder.open_stream(bad_writer, "ulaw", "c-bad", on_error=lambda s, e: failed.append(e))
    bad_sender = Sender(recorder.address)
    senders.append(bad_sender)
    bad.expect_source("127.0.0.1", bad_sender.port)
    good, good_writer, good_sender = await open_with_sender(recorder, senders)
    bad_sender.send(list(range(5)))
    good_sender.send(list(range(5)))
    await arrived(bad, 5)
    await arrived(good, 5)
    await recorder.close_stream(bad)
    await recorder.close_stream(good)
    assert bad_writer.audio() == []
    assert [type(e) for e in failed] == [SpoolError]
    assert isinstance(bad.error, SpoolError)
    assert len(good_writer.audio()) == 5


async def test_packet_counter_tells_a_watchdog_whether_media_moved(
    recorder: MediaRecorder, senders: list[Sender]
) -> None:
    stream, _, sender = await open_with_sender(recorder, senders)
    assert stream.packets == 0
    sender.send([0])
    await arrived(stream, 1)
    seen = stream.packets
    await asyncio.sleep(0.05)  # nothing sent: the count stands still
    assert stream.packets == seen == 1
    sender.send([1, 2])
    await arrived(stream, 3)
    assert stream.packets == 3
    await recorder.close_stream(stream)


def test_unknown_codec_is_refused() -> None:
    with pytest.raises(MediaError, match="codec 'opus' cannot be recorded"):
        MediaRecorder().open_stream(ListWriter(), "opus", "c1")


def test_address_before_start_is_an_error() -> None:
    with pytest.raises(MediaError, match="not started"):
        _ = MediaRecorder().address


async def test_port_in_use_is_a_media_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        rec = MediaRecorder("127.0.0.1", port)
        with pytest.raises(MediaError, match=f"cannot listen on 127.0.0.1:{port}"):
            await rec.start()
