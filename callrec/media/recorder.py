"""The media recorder: ExternalMedia RTP on one UDP socket into recordings.

Every ExternalMedia channel sends to the recorder's one address; streams are
told apart by the source (host, port) Asterisk announced for the channel
(``UNICASTRTP_LOCAL_ADDRESS``/``PORT``). Anything from another source is
dropped and counted: on a shared host, any local process can send UDP.

Scale decides the design (docs/DESIGN.md: 1,000 calls are 50,000 packets/s
and a bare asyncio receiver already costs 5-20 µs per packet), so the
per-packet path is one dict lookup here and :meth:`RtpStream.feed` there
(:mod:`callrec.media.rtp_stream`); durability comes from a thread
(:mod:`callrec.media.syncer`), never an fsync on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from callrec.errors import MediaError, SpoolError
from callrec.media.rtp_stream import COALESCE, AudioWriter, RtpStats, RtpStream
from callrec.media.stereo import StereoStream
from callrec.media.syncer import FileSyncer

logger = logging.getLogger(__name__)

# How often held packets are checked for having waited too long.
POLL_INTERVAL = 0.05
# Receive buffer asked of the kernel (capped by net.core.rmem_max).
RCVBUF = 4 << 20

_monotonic = time.monotonic

Source = tuple[str, int]


class _Receiver(asyncio.DatagramProtocol):
    """Routes each datagram to the stream of its source; ``foreign`` gets the rest."""

    def __init__(
        self, streams: dict[Source, RtpStream], foreign: Callable[[tuple[Any, int]], None]
    ) -> None:
        self._streams = streams
        self._foreign = foreign
        self.closed = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        stream = self._streams.get(addr)
        if stream is None:
            self._foreign(addr)
            return
        try:
            stream.feed(data)
        except Exception as exc:  # one call failing must not stop the others
            stream.fail(exc)

    def error_received(self, exc: Exception) -> None:
        logger.warning("media recorder socket error: %s", exc)


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
        self._syncer: FileSyncer[RtpStream] | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._receiver: _Receiver | None = None
        self._by_source: dict[Source, RtpStream] = {}
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
                lambda: _Receiver(self._by_source, self._foreign_packet), sock=sock
            )
        except OSError as exc:
            sock.close()
            raise MediaError(
                f"media recorder cannot listen on {self._host}:{self._port}: {exc}"
            ) from exc
        self._transport = transport
        self._poller = asyncio.create_task(self._poll_loop())
        if self._sync_interval is not None:
            self._syncer = FileSyncer(self._sync_interval, self._sync_failed(loop))
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
    def syncer(self) -> FileSyncer[RtpStream] | None:
        """The thread syncing the recordings while started (None: writers sync themselves)."""
        return self._syncer

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
        stream = RtpStream(
            writer,
            codec,
            call_id,
            hold=self._holding.add,
            attach=self._attach,
            on_error=on_error,
            coalesce=self._coalesce,
        )
        self._sync(stream, writer, call_id)
        return stream

    def open_stereo(
        self,
        writer: AudioWriter,
        codec: str,
        rate: int,
        call_id: str,
        *,
        on_error: Callable[[StereoStream, Exception], None] | None = None,
    ) -> StereoStream:
        """Two streams (what the caller says, what the caller hears) into one
        2-channel ``writer``; give each side its source with
        :meth:`StereoStream.expect_source`."""
        stream = StereoStream(
            writer,
            codec,
            rate,
            call_id,
            hold=self._holding.add,
            attach=self._attach,
            on_error=on_error,
            coalesce=self._coalesce,
        )
        # One writer, synced once; a failed sync fails the first side, and so both.
        self._sync(stream.legs[0], writer, call_id)
        return stream

    def _sync(self, stream: RtpStream, writer: AudioWriter, call_id: str) -> None:
        path = getattr(writer, "path", None)
        if self._syncer is not None and isinstance(path, Path):
            try:
                self._syncer.add(stream, path)
            except OSError as exc:
                raise MediaError(
                    f"call {call_id}: recording {path} cannot be synced: {exc}"
                ) from exc

    async def close_stream(self, stream: RtpStream | StereoStream) -> RtpStats:
        """Flush held packets into the writer and detach; the caller closes
        the writer."""
        legs = stream.legs if isinstance(stream, StereoStream) else (stream,)
        for leg in legs:
            self._detach(leg)
            self._holding.discard(leg)
        if self._syncer is not None:
            self._syncer.remove(legs[0])
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

    def _attach(self, stream: RtpStream, source: Source) -> None:
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
            claimed.count_foreign()

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            if self._holding:
                self._poll_held(_monotonic())

    def _poll_held(self, now: float) -> None:
        for stream in list(self._holding):
            try:
                held = stream.poll(now)
            except Exception as exc:  # reported through the stream
                stream.fail(exc)
                continue  # polled again: its failed sinks drain the rest
            if not held:
                self._holding.discard(stream)
