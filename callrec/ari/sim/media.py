"""Media of the ARI simulator: caller audio and the RTP an ExternalMedia channel sends.

Packets leave on an absolute 20 ms schedule (``loop.time()`` based, so no
drift), from one UDP socket per ExternalMedia channel whose address the
channel announces in ``UNICASTRTP_LOCAL_ADDRESS``/``PORT`` (traces 01, 05, 08).
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from callrec.ari.sim.model import AudioInput, Int16Array, RtpFaults, RtpSendStats
from callrec.audio import encode_payload, encode_pcm16le, load_mono, resample
from callrec.media.codecs import AUDIOSOCKET_FORMATS, MEDIA_FORMATS
from callrec.media.rtp import RTP_HEADER_LENGTH, pack_rtp

logger = logging.getLogger(__name__)

PTIME = 0.02
# Every rate a channel's audio is needed at: what ExternalMedia may ask for,
# over RTP or AudioSocket (payload types and rates from callrec.media.codecs).
SAMPLE_RATES = tuple(
    sorted({f.sample_rate for f in (*MEDIA_FORMATS.values(), *AUDIOSOCKET_FORMATS.values())})
)

# (start sample at `rate`, sample count, rate) -> int16 samples
AudioSource = Callable[[int, int, int], Int16Array]


def load_audio(audio: AudioInput, rate: int) -> dict[int, Int16Array]:
    """Audio as int16 mono at 8 and 16 kHz (resampled once, here)."""
    if audio is None:
        return {}
    if isinstance(audio, str | Path):
        return {target: load_mono(audio, target) for target in SAMPLE_RATES}
    samples = np.asarray(audio)
    if samples.ndim > 1:
        samples = samples[:, 0]
    if samples.dtype.kind == "f":
        samples = np.clip(samples * 32767.0, -32768, 32767)
    samples = samples.astype(np.int16)
    return {target: resample(samples, rate, target) for target in SAMPLE_RATES}


def slice_audio(audio: dict[int, Int16Array], start: int, count: int, rate: int) -> Int16Array:
    """``count`` samples from ``start`` (may be negative or past the end: silence)."""
    out = np.zeros(count, dtype=np.int16)
    src = audio.get(rate)
    if src is None:
        return out
    lo, hi = max(start, 0), min(start + count, src.size)
    if hi > lo:
        out[lo - start : hi - start] = src[lo:hi]
    return out


def mix(parts: list[Int16Array], count: int) -> Int16Array:
    if not parts:
        return np.zeros(count, dtype=np.int16)
    if len(parts) == 1:
        return parts[0]
    total = np.sum([p.astype(np.int32) for p in parts], axis=0)
    return np.clip(total, -32768, 32767).astype(np.int16)


def _pick(spec: frozenset[int] | float, index: int, rng: random.Random) -> bool:
    if isinstance(spec, frozenset):
        return index in spec
    return rng.random() < spec


class MediaSender(Protocol):
    """What the mixer drives: an RTP or an AudioSocket stream."""

    faults: RtpFaults
    stats: RtpSendStats

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def close(self) -> None: ...


class _Paced:
    """A 20 ms schedule on the loop's absolute clock (no drift), run while started."""

    rate: int
    spp: int
    _task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def _spawn(self) -> None:
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        base = round(start * self.rate)
        k = 0
        while self._can_send():
            delay = start + k * PTIME - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._tick(base + k * self.spp)
            k += 1

    def _can_send(self) -> bool:
        return True

    def _tick(self, sample_index: int) -> None:
        raise NotImplementedError


class RtpSender(_Paced):
    """Sends one ExternalMedia stream while :meth:`start`-ed; keeps its seq/ts across pauses."""

    def __init__(
        self,
        channel_id: str,
        fmt: str,
        remote: tuple[str, int],
        source: AudioSource,
        *,
        rng: random.Random,
        keep_payloads: bool = True,
    ) -> None:
        self.fmt = fmt
        spec = MEDIA_FORMATS[fmt]
        self.payload_type, self.rate = spec.payload_type, spec.sample_rate
        self.spp = int(self.rate * PTIME)
        self.remote = remote
        self._source = source
        self._rng = rng
        self._keep = keep_payloads
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.setblocking(False)
        self._foreign: socket.socket | None = None
        self._seq = rng.randrange(0, 0x10000)
        self._first_sample: int | None = None
        self._held: bytes | None = None
        self.faults = RtpFaults()
        self.stats = RtpSendStats(channel_id, rng.getrandbits(32), self.payload_type)

    @property
    def local_address(self) -> tuple[str, int]:
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._spawn()

    def stop(self) -> None:
        self._cancel()
        self._flush_held()

    def close(self) -> None:
        self.stop()
        self._sock.close()
        if self._foreign is not None:
            self._foreign.close()

    def _tick(self, sample_index: int) -> None:
        if self._first_sample is None:
            self._first_sample = sample_index
            self.stats.first_seq = self._seq
        ts = (self.spp + sample_index - self._first_sample) & 0xFFFFFFFF
        # slin16 over RTP is network byte order (trace 08), as encode_payload makes it.
        payload = encode_payload(self.fmt, self._source(sample_index, self.spp, self.rate))
        packet = pack_rtp(self.payload_type, False, self._seq, ts, self.stats.ssrc, payload)
        index = self.stats.packets_generated
        self.stats.packets_generated += 1
        self._seq = (self._seq + 1) & 0xFFFF
        if self._keep:
            self.stats.payloads.append(payload)
        self._deliver(index, packet)

    def _deliver(self, index: int, packet: bytes) -> None:
        f, rng = self.faults, self._rng
        if _pick(f.foreign, index, rng):
            self._send_foreign(packet)
        if _pick(f.drop, index, rng):
            self.stats.dropped.append(index)
            self._flush_held()
            return
        self.stats.packets_sent += 1
        self.stats.payload_bytes_sent += len(packet) - RTP_HEADER_LENGTH
        if self._held is None and _pick(f.reorder, index, rng):
            self.stats.reordered.append(index)
            self._held = packet
            return
        self._send(packet)
        if _pick(f.duplicate, index, rng):
            self.stats.duplicated.append(index)
            self._send(packet)
        self._flush_held()

    def _flush_held(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._send(held)

    def _send(self, packet: bytes) -> None:
        try:
            self._sock.sendto(packet, self.remote)
            self.stats.datagrams_sent += 1
        except OSError as exc:  # a full buffer or an ICMP error: lost, as on a real network
            logger.debug("RTP to %s:%s not sent: %s", self.remote[0], self.remote[1], exc)

    def _send_foreign(self, packet: bytes) -> None:
        if self._foreign is None:
            self._foreign = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._foreign.bind(("127.0.0.1", 0))
            self._foreign.setblocking(False)
        noise = self._rng.randbytes(len(packet) - RTP_HEADER_LENGTH)
        try:
            self._foreign.sendto(packet[:RTP_HEADER_LENGTH] + noise, self.remote)
            self.stats.foreign_sent += 1
        except OSError as exc:
            logger.debug("foreign RTP not sent: %s", exc)


class AudioSocketSender(_Paced):
    """An AudioSocket ExternalMedia stream (trace 08): TCP, a 0x01 UUID frame, 0x10 slin frames.

    Samples are little-endian; frames are 20 ms (the softmix size). Hang-up is a
    plain TCP close, no 0x00 frame. ``stats`` counts frames as packets.
    """

    def __init__(
        self,
        channel_id: str,
        remote: tuple[str, int],
        stream_uuid: bytes,
        source: AudioSource,
        *,
        rate: int = 8000,
        keep_payloads: bool = True,
    ) -> None:
        self.rate, self.spp = rate, int(rate * PTIME)
        self._source, self._keep = source, keep_payloads
        self.faults = RtpFaults()
        self.stats = RtpSendStats(channel_id, 0, -1)
        self._writer: asyncio.StreamWriter | None = None
        self._want = False
        loop = asyncio.get_running_loop()
        self._connecting = loop.create_task(self._connect(remote, stream_uuid))

    async def _connect(self, remote: tuple[str, int], stream_uuid: bytes) -> None:
        try:
            _reader, self._writer = await asyncio.open_connection(*remote)
        except OSError as exc:
            logger.warning("AudioSocket %s:%s unreachable: %s", remote[0], remote[1], exc)
            return
        self._writer.write(b"\x01" + struct.pack("!H", len(stream_uuid)) + stream_uuid)
        if self._want:
            self.start()

    def start(self) -> None:
        self._want = True
        if self._writer is not None:
            self._spawn()

    def stop(self) -> None:
        self._want = False
        self._cancel()

    def close(self) -> None:
        self.stop()
        self._connecting.cancel()
        if self._writer is not None:
            self._writer.close()

    def _can_send(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    def _tick(self, sample_index: int) -> None:
        assert self._writer is not None
        pcm = encode_pcm16le(self._source(sample_index, self.spp, self.rate))
        self._writer.write(b"\x10" + struct.pack("!H", len(pcm)) + pcm)
        self.stats.packets_generated += 1
        self.stats.packets_sent += 1
        self.stats.payload_bytes_sent += len(pcm)
        if self._keep:
            self.stats.payloads.append(pcm)


def faults_from(
    drop: Any = (), duplicate: Any = (), reorder: Any = (), foreign: Any = ()
) -> RtpFaults:
    """RtpFaults from sets/iterables of indexes or float rates."""

    def norm(v: Any) -> frozenset[int] | float:
        return float(v) if isinstance(v, float) else frozenset(int(i) for i in v)

    return RtpFaults(norm(drop), norm(duplicate), norm(reorder), norm(foreign))
