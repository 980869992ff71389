"""RTP packets (RFC 3550), sequence unwrapping and a small reorder buffer.

Parsing follows aiortc's ``rtp.py``: each malformed packet raises
:class:`RtpError` with an exact message. The reorder buffer turns what the
network did (loss, reordering, duplication) into what a recording needs:
payloads in order, and gaps of a known number of samples where packets never
came. It is on the per-packet hot path, so the in-order case does one
comparison and a call.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from callrec.errors import RtpError

RTP_HEADER_LENGTH = 12
RTP_VERSION = 2
SEQ_MODULO = 1 << 16
TS_MODULO = 1 << 32
# RFC 3550 appendix A.1: a jump this large is a restart, not loss.
MAX_DROPOUT = 3000

_HEADER = struct.Struct("!BBHLL")


def pack_rtp(
    payload_type: int, marker: bool, seq: int, ts: int, ssrc: int, payload: bytes = b""
) -> bytes:
    """A plain RTP packet (version 2; no padding, CSRC or extension).

    ``seq`` and ``ts`` are taken modulo their field sizes, so a sender may count on.
    """
    first = (0x80 if marker else 0) | payload_type
    return _HEADER.pack(0x80, first, seq & 0xFFFF, ts & 0xFFFF_FFFF, ssrc) + payload


@dataclass(slots=True)
class RtpPacket:
    payload_type: int
    marker: bool
    sequence_number: int
    timestamp: int
    ssrc: int
    csrc: list[int] = field(default_factory=list)
    extension_profile: int = 0
    extension: bytes = b""
    padding_size: int = 0
    payload: bytes = b""

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one RTP packet; raise :class:`RtpError` naming the defect."""
        if len(data) < RTP_HEADER_LENGTH:
            raise RtpError(f"RTP packet length is less than {RTP_HEADER_LENGTH} bytes")
        v_p_x_cc, m_pt, seq, ts, ssrc = _HEADER.unpack_from(data)
        if v_p_x_cc >> 6 != RTP_VERSION:
            raise RtpError("RTP packet has invalid version")
        cc = v_p_x_cc & 0x0F
        pos = RTP_HEADER_LENGTH + 4 * cc
        if len(data) < pos:
            raise RtpError("RTP packet has truncated CSRC")
        packet = cls(
            payload_type=m_pt & 0x7F,
            marker=bool(m_pt >> 7),
            sequence_number=seq,
            timestamp=ts,
            ssrc=ssrc,
            csrc=list(struct.unpack_from(f"!{cc}L", data, RTP_HEADER_LENGTH)),
        )
        if v_p_x_cc & 0x10:
            pos = packet._parse_extension(data, pos)
        end = len(data)
        if v_p_x_cc & 0x20:
            padding = data[-1]
            if not padding or padding > len(data) - pos:
                raise RtpError("RTP packet padding length is invalid")
            packet.padding_size = padding
            end -= padding
        packet.payload = bytes(data[pos:end])
        return packet

    def _parse_extension(self, data: bytes, pos: int) -> int:
        if len(data) < pos + 4:
            raise RtpError("RTP packet has truncated extension profile / length")
        self.extension_profile, words = struct.unpack_from("!HH", data, pos)
        pos += 4
        if len(data) < pos + 4 * words:
            raise RtpError("RTP packet has truncated extension value")
        self.extension = bytes(data[pos : pos + 4 * words])
        return pos + 4 * words

    def serialize(self) -> bytes:
        """The packet as bytes (no padding is added)."""
        out = bytearray(
            pack_rtp(
                self.payload_type, self.marker, self.sequence_number, self.timestamp, self.ssrc
            )
        )
        extended = bool(self.extension or self.extension_profile)
        out[0] |= len(self.csrc) | (0x10 if extended else 0)
        for csrc in self.csrc:
            out += struct.pack("!L", csrc)
        if extended:
            out += struct.pack("!HH", self.extension_profile, len(self.extension) // 4)
            out += self.extension
        return bytes(out + self.payload)


def seq_delta(new: int, old: int) -> int:
    """Signed distance from 16-bit ``old`` to ``new`` across the wrap."""
    return (new - old + 0x8000) % SEQ_MODULO - 0x8000


def ts_delta(new: int, old: int) -> int:
    """Signed distance from 32-bit timestamp ``old`` to ``new``."""
    return (new - old + 0x8000_0000) % TS_MODULO - 0x8000_0000


class SequenceUnwrapper:
    """Turns 16-bit sequence numbers into a monotonic-ish extended counter."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: int | None = None

    def unwrap(self, seq: int) -> int:
        if self._last is None:
            self._last = seq
            return seq
        ext = self._last + seq_delta(seq, self._last & 0xFFFF)
        if ext > self._last:
            self._last = ext
        return ext


@dataclass(slots=True)
class ReorderStats:
    released: int = 0
    lost: int = 0
    reordered: int = 0
    duplicates: int = 0
    late: int = 0
    resyncs: int = 0
    gap_samples: int = 0


AudioSink = Callable[[bytes], object]
GapSink = Callable[[int], object]


class ReorderBuffer:
    """Releases payloads in sequence order, with gaps for lost packets.

    Holds at most ``depth`` out-of-order packets or ``max_delay`` seconds;
    then the missing ones are declared lost and a gap of the missing samples
    (from the RTP timestamps, which advance through loss) is released.
    Duplicates and packets that arrive after their gap was written are
    dropped and counted. ``bytes_per_sample`` turns a payload's length into
    its number of samples.
    """

    __slots__ = (
        "_bps",
        "_counts",
        "_depth",
        "_last_ts",
        "_lost",
        "_max_delay",
        "audio",
        "gap",
        "held",
        "next_seq",
        "released",
    )

    def __init__(
        self,
        audio: AudioSink,
        gap: GapSink,
        *,
        bytes_per_sample: int = 1,
        depth: int = 5,
        max_delay: float = 0.1,
    ) -> None:
        self.audio = audio
        self.gap = gap
        self._counts = ReorderStats()  # everything but ``released`` (hot, kept apart)
        self.released = 0
        self._depth = depth
        self._max_delay = max_delay
        self._bps = bytes_per_sample
        # Read-only outside: the recorder's fast path tests ``seq == next_seq
        # and not held`` itself and then calls release() directly.
        self.next_seq: int | None = None  # 16-bit sequence number expected next
        self._last_ts = 0  # RTP timestamp of the last released packet
        # seq distance from next_seq -> (seq, ts, payload, arrival)
        self.held: dict[int, tuple[int, int, bytes, float]] = {}
        self._lost: list[int] = []  # recently declared lost, to tell late from duplicate

    @property
    def pending(self) -> int:
        return len(self.held)

    def push(self, seq: int, ts: int, payload: bytes, now: float) -> None:
        """Take one packet that arrived at ``now`` (monotonic seconds)."""
        if seq == self.next_seq and not self.held:
            self.release(seq, ts, payload)
        else:
            self.push_unordered(seq, ts, payload, now)

    def release(self, seq: int, ts: int, payload: bytes) -> None:
        """Pass on the packet expected next (only when nothing is held)."""
        self.audio(payload)  # first: a sink that raises has not taken the packet
        self.next_seq = (seq + 1) & 0xFFFF
        self._last_ts = ts
        self.released += 1

    @property
    def stats(self) -> ReorderStats:
        return replace(self._counts, released=self.released)

    def push_unordered(self, seq: int, ts: int, payload: bytes, now: float) -> None:
        """:meth:`push` for a caller that already found the packet is not
        simply the next one (``seq != next_seq or held``): no second test."""
        if self.next_seq is None:
            self.release(seq, ts, payload)
            return
        dist = seq_delta(seq, self.next_seq)
        if dist < 0 or dist in self.held:
            self._drop_old(seq, dist)
            return
        if dist > MAX_DROPOUT:
            self._resync(seq, ts, payload)
            return
        if self.held and dist < max(self.held):
            self._counts.reordered += 1
        self.held[dist] = (seq, ts, payload, now)
        self._drain(now)

    def _drop_old(self, seq: int, dist: int) -> None:
        if dist < -MAX_DROPOUT:
            # Far behind: the sender restarted its sequence; start over.
            self.flush()
            self.next_seq = seq
            self._counts.resyncs += 1
            return
        if seq in self._lost:
            self._counts.late += 1
        else:
            self._counts.duplicates += 1

    def _drain(self, now: float) -> None:
        while self.held:
            if 0 in self.held:
                self._release_pending(0)
                continue
            first = min(self.held)
            oldest = min(p[3] for p in self.held.values())
            if len(self.held) <= self._depth and now - oldest < self._max_delay:
                return
            self._skip(first)

    def _release_pending(self, dist: int) -> None:
        seq, ts, payload, _ = self.held.pop(dist)
        self.release(seq, ts, payload)
        if self.held:
            self.held = {d - dist - 1: p for d, p in self.held.items()}

    def _skip(self, dist: int) -> None:
        """Declare the ``dist`` packets before the pending one at ``dist`` lost."""
        assert self.next_seq is not None
        self._lost = [(self.next_seq + i) & 0xFFFF for i in range(min(dist, 64))]
        self._counts.lost += dist
        # Packets of a stream share one duration: the held one's length
        # stands for the last released one's (saves a store per packet).
        _, ts, payload, _ = self.held[dist]
        per_packet = len(payload) // self._bps
        samples = ts_delta(ts, (self._last_ts + per_packet) & 0xFFFF_FFFF)
        if samples <= 0 or samples > dist * max(per_packet, 1) * 4:
            # Timestamps disagree with the sequence numbers: trust the count.
            samples = dist * per_packet
        if samples > 0:
            self._counts.gap_samples += samples
            self.gap(samples)
        self.held = {d - dist: p for d, p in self.held.items()}

    def _resync(self, seq: int, ts: int, payload: bytes) -> None:
        self.flush()
        self._counts.resyncs += 1
        self.release(seq, ts, payload)

    def poll(self, now: float) -> None:
        """Release what waited longer than ``max_delay`` (call on a timer)."""
        if self.held:
            self._drain(now)

    def flush(self) -> None:
        """Release everything held, declaring the holes lost."""
        while self.held:
            if 0 in self.held:
                self._release_pending(0)
            else:
                self._skip(min(self.held))
