"""The media recorder: ExternalMedia RTP on one UDP socket into recordings.

Every ExternalMedia channel sends to the recorder's one address; streams are
told apart by the source (host, port) Asterisk announced for the channel
(``UNICASTRTP_LOCAL_ADDRESS``/``PORT``). Anything from another source is
dropped and counted: on a shared host, any local process can send UDP.

Scale decides the design (DESIGN.md: 1,000 calls are 50,000 packets/s and a
bare asyncio receiver already costs 5-20 µs per packet), so the per-packet
path is one dict lookup, one ``unpack_from``, the payload slice and the
writer call; no logging, no per-packet objects. Everything unusual (header
extensions, reordering, loss, bad packets) leaves the fast path.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, cast

from callrec.errors import MediaError, RtpError, SpoolError
from callrec.logutil import safe
from callrec.media.codecs import codec_of
from callrec.media.rtp import RTP_HEADER_LENGTH, ReorderBuffer, RtpPacket

logger = logging.getLogger(__name__)

# In-order payloads joined into one audio frame (5 x 20 ms); see _Coalescer.
COALESCE = 5
# How often held packets are checked for having waited too long.
POLL_INTERVAL = 0.05
# Receive buffer asked of the kernel (capped by net.core.rmem_max).
RCVBUF = 4 << 20

_FAST = struct.Struct("!BHL")  # marker/PT, sequence number, timestamp at offset 1
_monotonic = time.monotonic


class AudioWriter(Protocol):
    """What the recorder needs of a recording (callrec.recording.RecordingWriter)."""

    def write_audio(self, payload: bytes) -> Any: ...

    def write_gap(self, samples: int) -> Any: ...

    def write_pause(self, at: float) -> Any: ...

    def write_resume(self, at: float) -> Any: ...


@dataclass(slots=True)
class RtpStats:
    """Per stream. ``written``: packets passed on in order (to the writer,
    possibly joined into one frame); ``lost``/``gap_samples``: what became
    gaps; ``foreign``: packets from another host claiming this stream's
    port; ``bad``: unparseable or wrong payload type/size; ``paused``:
    released in order while paused, and discarded (not in ``written``)."""

    packets: int = 0
    bytes: int = 0
    written: int = 0
    lost: int = 0
    gap_samples: int = 0
    reordered: int = 0
    duplicates: int = 0
    late: int = 0
    resyncs: int = 0
    foreign: int = 0
    bad: int = 0
    paused: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _discard(_: object) -> None:
    """Sink for packets that arrive while the recording is paused."""


class RtpStream:
    """One call's RTP into one writer. Made by :meth:`MediaRecorder.open_stream`."""

    def __init__(
        self,
        recorder: MediaRecorder,
        writer: AudioWriter,
        codec: str,
        call_id: str,
        on_error: Callable[[RtpStream, Exception], None] | None = None,
        coalesce: int = COALESCE,
    ) -> None:
        try:
            spec = codec_of(codec).spec
        except MediaError:
            raise MediaError(f"codec {codec!r} cannot be recorded from RTP") from None
        self.call_id = call_id
        self.codec = str(codec)
        self.writer = writer
        self.source: tuple[str, int] | None = None
        self.error: Exception | None = None
        self.on_error = on_error
        self._recorder = recorder
        # A static payload type (RFC 3551) is checked; for a dynamic one
        # (slin16: 118 in trace 08) any type is accepted.
        pt = spec.rtp_payload_type
        # Precomputed so the hot path tests each with one operation:
        # ``m_pt & mask != pt`` (mask 0 accepts any type) and ``size & odd``.
        self._pt = pt or 0
        self._pt_mask = 0 if pt is None else 0x7F
        width = spec.sample_width
        self._odd = 1 if width == 2 else 0
        self._paused = False
        self._out = _Coalescer(writer, max(coalesce, 1))
        self._buffer = ReorderBuffer(self._out.add, self._out.gap, bytes_per_sample=width)
        self._packets = 0
        self._bytes = 0
        self._bad = 0
        self._foreign = 0
        self._paused_packets = 0

    # --- hot path ---------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """One UDP datagram from this stream's source.

        Reads no clock: only packets the reorder buffer may hold need their
        arrival time; a watchdog compares :attr:`packets` between checks."""
        size = len(data)
        self._packets += 1
        self._bytes += size
        if size <= RTP_HEADER_LENGTH or data[0] != 0x80 or size & self._odd:
            self._feed_unusual(data)
            return
        m_pt, seq, ts = _FAST.unpack_from(data, 1)
        if m_pt & self._pt_mask != self._pt:
            self._bad += 1
            return
        buf = self._buffer
        if seq == buf.next_seq and not buf.held:
            buf.release(seq, ts, data[RTP_HEADER_LENGTH:])
            return
        buf.push_unordered(seq, ts, data[RTP_HEADER_LENGTH:], _monotonic())
        if buf.held:
            self._recorder._holding.add(self)

    def _feed_unusual(self, data: bytes) -> None:
        """CSRCs, extensions, padding, or a packet to reject."""
        try:
            packet = RtpPacket.parse(data)
        except (RtpError, IndexError):
            self._bad += 1
            return
        odd = len(packet.payload) & self._odd
        if not packet.payload or odd or packet.payload_type & self._pt_mask != self._pt:
            self._bad += 1
            return
        self._buffer.push(packet.sequence_number, packet.timestamp, packet.payload, _monotonic())
        if self._buffer.pending:
            self._recorder._holding.add(self)

    # --- control ----------------------------------------------------------

    def expect_source(self, host: str, port: int) -> None:
        """Accept RTP from ``host:port`` only (the ExternalMedia channel's
        UNICASTRTP_LOCAL_ADDRESS/PORT)."""
        self._recorder._attach(self, (host, int(port)))

    def pause(self, at: float) -> None:
        """Stop recording: write a pause frame; later packets are discarded."""
        if self._paused or self.error is not None:
            return
        self.flush()
        self.writer.write_pause(at)
        self._paused = True
        # The buffer still orders what arrives (so resuming continues the
        # sequence), but what it releases is counted here, not written.
        self._buffer.audio = self._count_paused
        self._buffer.gap = _discard

    def resume(self, at: float) -> None:
        """Record again after :meth:`pause`: write a resume frame."""
        if not self._paused or self.error is not None:
            return
        self._buffer.flush()
        self._buffer.audio = self._out.add
        self._buffer.gap = self._out.gap
        self._paused = False
        self.writer.write_resume(at)

    def _count_paused(self, _: bytes) -> None:
        self._paused_packets += 1

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def packets(self) -> int:
        """Datagrams received so far (cheap: a watchdog compares it between checks)."""
        return self._packets

    @property
    def stats(self) -> RtpStats:
        b = self._buffer.stats
        return RtpStats(
            packets=self._packets,
            bytes=self._bytes,
            written=b.released - self._paused_packets,
            lost=b.lost,
            gap_samples=b.gap_samples,
            reordered=b.reordered,
            duplicates=b.duplicates,
            late=b.late,
            resyncs=b.resyncs,
            foreign=self._foreign,
            bad=self._bad,
            paused=self._paused_packets,
        )

    def _poll(self, now: float) -> None:
        self._buffer.poll(now)
        if not self._buffer.held:  # released by time: the stream went quiet
            self._out.flush()

    def flush(self) -> None:
        """Write the audio held for reordering or joining now (before a marker)."""
        self._buffer.flush()
        self._out.flush()

    def fail(self, exc: Exception) -> None:
        """The writer failed (disk full, closed): stop writing, tell the owner."""
        self.error = exc
        self._buffer.audio = _discard
        self._buffer.gap = _discard
        logger.error(
            "call %s: recording stopped, writer failed: %s",
            safe(self.call_id),
            safe(str(exc), 200),
        )
        if self.on_error is not None:
            self.on_error(self, exc)


class _Coalescer:
    """Joins up to ``limit`` in-order payloads into one audio frame.

    The writer's per-call work (checks, frame header, buffer appends) was
    the largest part of the recorder's per-packet cost: with 1,000 writers,
    about 1.1 µs per packet one frame per packet, 0.7 µs five per frame
    (bench/bench_recorder.py). The audio is the same bytes in the same
    order; only frame boundaries move. What waits here (at most ``limit``
    packets, 100 ms by default) is flushed before any gap, pause or close,
    so frames keep their order; a crash can lose it, as it can lose the
    writer's unsealed segment (which is larger).
    """

    __slots__ = ("_limit", "_parts", "_writer")

    def __init__(self, writer: AudioWriter, limit: int) -> None:
        self._writer = writer
        self._limit = limit
        self._parts: list[bytes] = []

    def add(self, payload: bytes) -> None:
        parts = self._parts
        parts.append(payload)
        if len(parts) >= self._limit:
            self.flush()

    def flush(self) -> None:
        parts = self._parts
        if parts:
            data = parts[0] if len(parts) == 1 else b"".join(parts)
            parts.clear()
            self._writer.write_audio(data)

    def gap(self, samples: int) -> None:
        self.flush()
        self._writer.write_gap(samples)


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, recorder: MediaRecorder) -> None:
        self._recorder = recorder
        self._streams = recorder._by_source
        self.closed = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        stream = self._streams.get(addr)
        if stream is None:
            self._recorder._foreign_packet(addr)
            return
        try:
            stream.feed(data)
        except Exception as exc:  # one call failing must not stop the others
            stream.fail(exc)

    def error_received(self, exc: Exception) -> None:
        logger.warning("media recorder socket error: %s", exc)


def _load_syncfs() -> Callable[[int], int] | None:
    """Linux syncfs(2) through ctypes (which releases the GIL), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return cast(Callable[[int], int], fn)


_SYNCFS = _load_syncfs()


class _Syncer:
    """Makes the open recordings durable from a thread, every ``interval`` s.

    Measured here (bench/bench_recorder.py, ext4): with each writer fsyncing
    inline, 500 calls lost 10 % of their packets while the event loop waited
    for the disk; and 1,000 per-file fsyncs take about 1 s of wall time and
    90 ms of CPU, against 25-50 ms and 5-18 ms for one syncfs(2) of the
    spool's file system. So: one syncfs per file system per interval, and
    per-file fsync only where syncfs is missing or reports an error (to find
    the recording it concerns). Each recording is reached through its own
    read-only descriptor of the ``.part`` file, so a writer closing its own
    descriptor races with nothing.
    """

    def __init__(self, interval: float, report: Callable[[RtpStream, OSError], None]) -> None:
        self._interval = interval
        self._report = report
        self._fds: dict[RtpStream, tuple[int, int]] = {}  # stream -> (fd, st_dev)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="callrec-fsync", daemon=True)
        self._thread.start()

    def add(self, stream: RtpStream, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        entry = (fd, os.fstat(fd).st_dev)
        with self._lock:
            old = self._fds.pop(stream, None)
            self._fds[stream] = entry
        if old is not None:
            os.close(old[0])

    def remove(self, stream: RtpStream) -> None:
        with self._lock:
            entry = self._fds.pop(stream, None)
        if entry is not None:
            os.close(entry[0])

    def sync_all(self) -> None:
        with self._lock:
            items = list(self._fds.items())
        by_dev: dict[int, list[tuple[RtpStream, int]]] = {}
        for stream, (fd, dev) in items:
            by_dev.setdefault(dev, []).append((stream, fd))
        for group in by_dev.values():
            if _SYNCFS is None or _SYNCFS(group[0][1]) != 0:
                self._fsync_each(group)

    def _fsync_each(self, group: list[tuple[RtpStream, int]]) -> None:
        for stream, fd in group:
            try:
                os.fsync(fd)
            except OSError as exc:
                with self._lock:
                    current = self._fds.get(stream, (-1, 0))[0] == fd
                if current:  # else the stream was closed meanwhile: not an error
                    self._report(stream, exc)

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            self.sync_all()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()
        with self._lock:
            fds, self._fds = [fd for fd, _ in self._fds.values()], {}
        for fd in fds:
            os.close(fd)


class MediaRecorder:
    """One UDP socket receiving every recorded call's RTP.

    With ``sync_interval`` set, the recorder fsyncs each stream's recording
    (the writer's ``path``) from a thread; create those writers with
    ``fsync_interval=math.inf`` so they never fsync on the event loop.
    ``coalesce`` in-order packets make one audio frame (1: one per packet).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        rcvbuf: int = RCVBUF,
        sync_interval: float | None = 1.0,
        coalesce: int = COALESCE,
    ) -> None:
        self._host = host
        self._coalesce = coalesce
        self._port = port
        self._rcvbuf = rcvbuf
        self._sync_interval = sync_interval
        self._syncer: _Syncer | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._receiver: _Receiver | None = None
        self._by_source: dict[tuple[str, int], RtpStream] = {}
        self._by_port: dict[int, RtpStream] = {}
        self._holding: set[RtpStream] = set()
        self._poller: asyncio.Task[None] | None = None
        self.foreign = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            # Calls are not synchronised, but a busy moment can queue hundreds
            # of packets; the default 208 KiB buffer holds only a few hundred.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._rcvbuf)
            sock.bind((self._host, self._port))
            transport, self._receiver = await loop.create_datagram_endpoint(
                lambda: _Receiver(self), sock=sock
            )
        except OSError as exc:
            sock.close()
            raise MediaError(
                f"media recorder cannot listen on {self._host}:{self._port}: {exc}"
            ) from exc
        self._transport = transport
        self._poller = asyncio.create_task(self._poll_loop())
        if self._sync_interval is not None:
            self._syncer = _Syncer(self._sync_interval, self._sync_failed(loop))
        logger.info("media recorder listening on %s:%d", *self.address)

    @property
    def address(self) -> tuple[str, int]:
        """Where ExternalMedia must send: its ``external_host``."""
        if self._transport is None:
            raise MediaError("media recorder is not started")
        host, port = self._transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    @property
    def sync_interval(self) -> float | None:
        """Seconds between the recorder's syncs of its recordings (None: the
        writers sync themselves); when set, give writers ``fsync_interval=math.inf``."""
        return self._sync_interval

    @property
    def external_host(self) -> str:
        host, port = self.address
        return f"{host}:{port}"

    def open_stream(
        self,
        writer: AudioWriter,
        codec: str,
        call_id: str,
        *,
        on_error: Callable[[RtpStream, Exception], None] | None = None,
    ) -> RtpStream:
        """A stream writing into ``writer``; give it its source with
        :meth:`RtpStream.expect_source` once Asterisk announced it."""
        stream = RtpStream(self, writer, codec, call_id, on_error, self._coalesce)
        path = getattr(writer, "path", None)
        if self._syncer is not None and isinstance(path, Path):
            try:
                self._syncer.add(stream, path)
            except OSError as exc:
                raise MediaError(
                    f"call {call_id}: recording {path} cannot be synced: {exc}"
                ) from exc
        return stream

    async def close_stream(self, stream: RtpStream) -> RtpStats:
        """Flush held packets into the writer and detach; the caller closes
        the writer."""
        self._detach(stream)
        self._holding.discard(stream)
        if self._syncer is not None:
            self._syncer.remove(stream)
        if stream.error is None:
            try:
                stream.flush()
            except Exception as exc:  # reported through the stream
                stream.fail(exc)
        return stream.stats

    @property
    def streams(self) -> int:
        return len(self._by_source)

    async def stop(self) -> None:
        if self._syncer is not None:
            await asyncio.to_thread(self._syncer.stop)
            self._syncer = None
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        if self._transport is not None and self._receiver is not None:
            self._transport.close()
            await self._receiver.closed  # the socket is closed once this is done
            self._transport = None

    # --- internals ----------------------------------------------------------

    @staticmethod
    def _sync_failed(loop: asyncio.AbstractEventLoop) -> Callable[[RtpStream, OSError], None]:
        def report(stream: RtpStream, exc: OSError) -> None:
            error = SpoolError(str(getattr(stream.writer, "path", "?")), f"fsync failed: {exc}")
            loop.call_soon_threadsafe(stream.fail, error)

        return report

    def _attach(self, stream: RtpStream, source: tuple[str, int]) -> None:
        self._detach(stream)
        stream.source = source
        self._by_source[source] = stream
        self._by_port[source[1]] = stream

    def _detach(self, stream: RtpStream) -> None:
        if stream.source is not None and self._by_source.get(stream.source) is stream:
            del self._by_source[stream.source]
            if self._by_port.get(stream.source[1]) is stream:
                del self._by_port[stream.source[1]]

    def _foreign_packet(self, addr: tuple[Any, int]) -> None:
        self.foreign += 1
        claimed = self._by_port.get(addr[1])
        if claimed is not None:
            claimed._foreign += 1

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            if self._holding:
                self._poll_held(_monotonic())

    def _poll_held(self, now: float) -> None:
        for stream in list(self._holding):
            try:
                stream._poll(now)
            except Exception as exc:  # reported through the stream
                stream.fail(exc)
            if not stream._buffer.pending:
                self._holding.discard(stream)
