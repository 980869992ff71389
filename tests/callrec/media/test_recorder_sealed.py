"""End to end: RTP over real UDP into sealed recordings, read back decrypted.

The recorder joins in-order payloads into larger audio frames, so runs of
audio frames are compared as one byte string between the other frames."""

from __future__ import annotations

import asyncio
import math
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callrec.crypto.keys import PrivateKey
from callrec.errors import WriterClosedError
from callrec.media.recorder import MediaRecorder
from callrec.media.rtp import pack_rtp
from callrec.media.rtp_stream import RtpStream
from callrec.recording import (
    AudioFrame,
    Frame,
    GapFrame,
    PauseFrame,
    RecordingReader,
    RecordingWriter,
    ResumeFrame,
    Verdict,
)


@pytest.fixture(scope="module")
def key() -> PrivateKey:
    return PrivateKey.generate()


@pytest.fixture
async def recorder() -> AsyncIterator[MediaRecorder]:
    rec = MediaRecorder("127.0.0.1", 0, sync_interval=0.02)
    await rec.start()
    yield rec
    await rec.stop()


class Source:
    """An ExternalMedia channel's RTP, from its own port."""

    def __init__(self, target: tuple[str, int], pt: int = 0, width: int = 160) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.target = target
        self.pt = pt
        self.width = width  # payload bytes per packet

    def payload(self, i: int) -> bytes:
        return bytes([(i * 7 + 3) & 0xFF]) * self.width

    def send(self, order: list[int], seq0: int = 65500) -> None:
        samples = self.width if self.pt in (0, 8) else self.width // 2
        for i in order:
            packet = pack_rtp(self.pt, False, seq0 + i, i * samples, 0xABCD, self.payload(i))
            self.sock.sendto(packet, self.target)


def new_writer(
    spool: Path, key: PrivateKey, codec: str = "ulaw", rate: int = 8000
) -> RecordingWriter:
    return RecordingWriter.create(
        spool, [key.public_key()], codec=codec, sample_rate=rate, fsync_interval=math.inf
    )


async def arrived(stream: RtpStream, packets: int) -> None:
    for _ in range(400):
        if stream.stats.packets >= packets:
            return
        await asyncio.sleep(0.005)


def read_back(path: Path, key: PrivateKey) -> tuple[list[Frame], RecordingReader]:
    with RecordingReader(path, [key]) as reader:
        frames = list(reader.frames())
    return merged(frames), reader


def merged(frames: list[Frame]) -> list[Frame]:
    """Consecutive audio frames as one: what the listener hears is the bytes."""
    out: list[Frame] = []
    for frame in frames:
        if isinstance(frame, AudioFrame) and out and isinstance(out[-1], AudioFrame):
            out[-1] = AudioFrame(out[-1].payload + frame.payload)
        else:
            out.append(frame)
    return out


async def test_lossy_reordered_call_reads_back_exactly(
    recorder: MediaRecorder, key: PrivateKey, tmp_path: Path
) -> None:
    writer = new_writer(tmp_path, key)
    stream = recorder.open_stream(writer, "ulaw", "1795915759.31")
    src = Source(recorder.address)
    stream.expect_source("127.0.0.1", src.port)
    # crosses the 65535 wrap; 40-41 lost, 50/51 swapped, 60 duplicated
    order = [i for i in range(100) if i not in (40, 41)]
    i50, i51 = order.index(50), order.index(51)
    order[i50], order[i51] = 51, 50
    order.insert(order.index(60), 60)
    src.send(order)
    await arrived(stream, len(order))
    stats = await recorder.close_stream(stream)
    info = writer.close()
    src.sock.close()

    frames, reader = read_back(info.path, key)
    assert frames == [
        AudioFrame(b"".join(src.payload(i) for i in range(40))),
        GapFrame(320),
        AudioFrame(b"".join(src.payload(i) for i in range(42, 100))),
    ]
    assert reader.verdict is Verdict.COMPLETE
    assert reader.audio_seconds == pytest.approx(2.0)
    assert (stats.lost, stats.reordered, stats.duplicates) == (2, 1, 1)
    assert info.audio_seconds == pytest.approx(2.0)


async def test_pause_resume_and_slin16(
    recorder: MediaRecorder, key: PrivateKey, tmp_path: Path
) -> None:
    writer = new_writer(tmp_path, key, "slin16", 16000)
    stream = recorder.open_stream(writer, "slin16", "c-slin")
    src = Source(recorder.address, pt=118, width=640)
    stream.expect_source("127.0.0.1", src.port)
    src.send([0, 1, 2])
    await arrived(stream, 3)
    stream.pause(1_795_910_500.25)
    src.send([3, 4])
    await arrived(stream, 5)
    stream.resume(1_795_910_500.75)
    src.send([5, 6])
    await arrived(stream, 7)
    await recorder.close_stream(stream)
    info = writer.close()
    src.sock.close()

    frames, reader = read_back(info.path, key)
    assert frames == [
        AudioFrame(src.payload(0) + src.payload(1) + src.payload(2)),
        PauseFrame(1_795_910_500.25),
        ResumeFrame(1_795_910_500.75),
        AudioFrame(src.payload(5) + src.payload(6)),
    ]
    assert reader.verdict is Verdict.COMPLETE


async def test_concurrent_calls_each_get_their_own_audio(
    recorder: MediaRecorder, key: PrivateKey, tmp_path: Path
) -> None:
    calls = []
    for n in range(3):
        writer = new_writer(tmp_path, key)
        stream = recorder.open_stream(writer, "ulaw", f"call-{n}")
        src = Source(recorder.address)
        src.width = 160 + n  # each call its own payload size
        stream.expect_source("127.0.0.1", src.port)
        calls.append((writer, stream, src))
    for i in range(60):
        for _, _, src in calls:
            src.send([i])
        if i % 10 == 0:
            await asyncio.sleep(0.01)  # let the syncer run while calls are open
    for writer, stream, src in calls:
        await arrived(stream, 60)
        await recorder.close_stream(stream)
        info = writer.close()
        src.sock.close()
        frames, reader = read_back(info.path, key)
        assert frames == [AudioFrame(b"".join(src.payload(i) for i in range(60)))]
        assert reader.verdict is Verdict.COMPLETE


async def test_writer_closed_under_the_stream_stops_only_that_call(
    recorder: MediaRecorder, key: PrivateKey, tmp_path: Path
) -> None:
    errors: list[Exception] = []
    early = new_writer(tmp_path, key)
    stream = recorder.open_stream(early, "ulaw", "c-early", on_error=lambda s, e: errors.append(e))
    src = Source(recorder.address)
    stream.expect_source("127.0.0.1", src.port)
    src.send(list(range(10)))
    await arrived(stream, 10)
    early.close()  # e.g. sealed on hang-up before the stream was detached
    src.send(list(range(10, 20)))
    await arrived(stream, 20)
    await recorder.close_stream(stream)
    src.sock.close()
    assert [type(e) for e in errors] == [WriterClosedError]
    assert isinstance(stream.error, WriterClosedError)
    frames, reader = read_back(early.path, key)
    assert frames == [AudioFrame(b"".join(src.payload(i) for i in range(10)))]
    assert reader.verdict is Verdict.COMPLETE


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_stop_with_open_streams_leaks_no_descriptors(
    key: PrivateKey, tmp_path: Path
) -> None:
    before = open_fds()
    rec = MediaRecorder("127.0.0.1", 0, sync_interval=0.01)
    await rec.start()
    writers = [new_writer(tmp_path, key) for _ in range(5)]
    for n, w in enumerate(writers):
        rec.open_stream(w, "ulaw", f"c{n}")
    await asyncio.sleep(0.05)
    await rec.stop()
    for w in writers:
        w.close()
    assert open_fds() == before
    assert [w.path.suffix for w in writers] == [".crec"] * 5
