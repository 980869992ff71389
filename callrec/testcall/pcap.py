"""Build the pcap files sipp plays as a caller's RTP (``play_pcap_audio``).

sipp replays the UDP payloads of a pcap to the negotiated media address at
the pcap's packet times, so the file carries complete RTP packets inside
Ethernet/IPv4/UDP frames. Audio is G.711 in 20 ms packets; RFC 4733 (2833)
telephone events for a digit can be placed at any time in the same stream.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from callrec.audio import encode_payload
from callrec.media.codecs import MEDIA_FORMATS
from callrec.media.rtp import pack_rtp

PCAP_MAGIC = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1
PT_EVENT = 101
SAMPLES_PER_PACKET = 160  # 20 ms at 8 kHz
_DTMF_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}
_SRC = (bytes([127, 0, 0, 1]), 4000)
_DST = (bytes([127, 0, 0, 1]), 6000)


@dataclass(frozen=True)
class DtmfEvent:
    """A digit pressed ``at`` seconds into the stream, held ``duration`` s."""

    digit: str
    at: float
    duration: float = 0.25


@dataclass(frozen=True)
class TimedPacket:
    """One RTP packet of the stream and when (seconds) sipp sends it."""

    at: float
    payload_type: int
    seq: int
    timestamp: int
    marker: bool
    payload: bytes

    def rtp(self, ssrc: int) -> bytes:
        return pack_rtp(
            self.payload_type, self.marker, self.seq, self.timestamp, ssrc, self.payload
        )


def _udp_frame(payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", _SRC[1], _DST[1], 8 + len(payload), 0) + payload
    total = 20 + len(udp)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, 17, 0, _SRC[0], _DST[0])
    ip = ip[:10] + struct.pack("!H", _ip_checksum(ip)) + ip[12:]
    eth = b"\x00\x00\x00\x00\x00\x02" + b"\x00\x00\x00\x00\x00\x01" + b"\x08\x00"
    return eth + ip + udp


def _ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def audio_packets(ulaw_or_alaw: bytes, payload_type: int) -> Iterator[TimedPacket]:
    for i in range(0, len(ulaw_or_alaw), SAMPLES_PER_PACKET):
        chunk = ulaw_or_alaw[i : i + SAMPLES_PER_PACKET]
        if len(chunk) < SAMPLES_PER_PACKET:
            break
        n = i // SAMPLES_PER_PACKET
        yield TimedPacket(n * 0.02, payload_type, 0, i, n == 0, chunk)


def dtmf_packets(event: DtmfEvent) -> Iterator[TimedPacket]:
    """RFC 4733 packets for one digit: updates every 20 ms, three end packets."""
    code = _DTMF_CODES[event.digit]
    ts = round(event.at * 8000)
    steps = max(1, round(event.duration / 0.02))
    for k in range(1, steps + 1):
        end = k == steps
        body = struct.pack("!BBH", code, (0x80 if end else 0) | 10, k * SAMPLES_PER_PACKET)
        for _ in range(3 if end else 1):
            yield TimedPacket(event.at + k * 0.02, PT_EVENT, 0, ts, k == 1, body)


def build_stream(
    samples_8k: npt.NDArray[np.int16], *, alaw: bool = False, dtmf: Sequence[DtmfEvent] = ()
) -> list[TimedPacket]:
    """Audio (8 kHz int16) plus digits as one time-ordered RTP stream."""
    fmt = MEDIA_FORMATS["alaw" if alaw else "ulaw"]
    encoded = encode_payload(fmt.codec, samples_8k)
    packets = list(audio_packets(encoded, fmt.payload_type))
    for event in dtmf:
        packets.extend(dtmf_packets(event))
    packets.sort(key=lambda p: p.at)
    return [
        TimedPacket(p.at, p.payload_type, seq, p.timestamp, p.marker, p.payload)
        for seq, p in enumerate(packets, start=1)
    ]


def write_pcap(path: Path, packets: Sequence[TimedPacket], ssrc: int = 0x43524543) -> None:
    """Write ``packets`` as an Ethernet pcap sipp can play."""
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", PCAP_MAGIC, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET))
        for p in packets:
            frame = _udp_frame(p.rtp(ssrc))
            sec, usec = divmod(round(p.at * 1_000_000), 1_000_000)
            f.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)))
            f.write(frame)


def read_pcap_rtp(path: Path) -> list[tuple[float, bytes]]:
    """The (time, RTP bytes) of every UDP packet in an Ethernet pcap."""
    data = path.read_bytes()
    magic = struct.unpack_from("<I", data, 0)[0]
    if magic != PCAP_MAGIC:
        raise ValueError(f"{path}: not a little-endian microsecond pcap")
    out = []
    pos = 24
    while pos + 16 <= len(data):
        sec, usec, incl, _ = struct.unpack_from("<IIII", data, pos)
        frame = data[pos + 16 : pos + 16 + incl]
        out.append((sec + usec / 1e6, frame[14 + 20 + 8 :]))
        pos += 16 + incl
    return out
