"""RTP parsing (exact errors at every truncation), unwrapping, reordering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callrec.errors import RtpError
from callrec.media.rtp import (
    ReorderBuffer,
    RtpPacket,
    SequenceUnwrapper,
    pack_rtp,
    seq_delta,
    ts_delta,
)

TRACES = Path(__file__).resolve().parents[2] / "fixtures" / "ari-traces"


def traced_packets(name: str) -> list[bytes]:
    out = []
    with open(TRACES / name, encoding="utf-8") as fh:
        for line in fh:
            item = json.loads(line)
            if item["kind"] == "rtp" and "hex" in item and "header" in item:
                out.append(bytes.fromhex(item["hex"]))
    return out


def test_parses_asterisk_ulaw_packet() -> None:
    data = traced_packets("01-consent-implied.jsonl")[0]
    packet = RtpPacket.parse(data)
    assert (packet.payload_type, packet.marker, packet.ssrc) == (0, False, 917993739)
    assert len(packet.payload) == 160
    assert packet.csrc == []
    assert packet.serialize() == data
    assert (
        pack_rtp(0, False, packet.sequence_number, packet.timestamp, 917993739, packet.payload)
        == data
    )


def test_pack_rtp_wraps_counters_and_sets_the_marker() -> None:
    packet = RtpPacket.parse(pack_rtp(8, True, 0x1_0002, 0x1_0000_0005, 7, b"ab"))
    assert (packet.payload_type, packet.marker, packet.sequence_number) == (8, True, 2)
    assert (packet.timestamp, packet.ssrc, packet.payload) == (5, 7, b"ab")


def test_parses_asterisk_slin16_packet() -> None:
    slin = [p for p in traced_packets("08-slin16-and-audiosocket.jsonl") if len(p) == 652]
    packet = RtpPacket.parse(slin[0])
    assert packet.payload_type == 118
    assert len(packet.payload) == 640


# version 2, padding, extension, 2 CSRCs; zeros everywhere a truncated copy
# could end, so each cut has exactly one defect.
FULL = (
    bytes.fromhex("b20000010000000200000003")
    + bytes.fromhex("0000000400000005")
    + bytes.fromhex("bede0002")
    + bytes(8)
    + bytes(10)
    + bytes.fromhex("00000004")
)


def expected_error(length: int) -> str:
    if length < 12:
        return "RTP packet length is less than 12 bytes"
    if length < 20:
        return "RTP packet has truncated CSRC"
    if length < 24:
        return "RTP packet has truncated extension profile / length"
    if length < 32:
        return "RTP packet has truncated extension value"
    return "RTP packet padding length is invalid"


def test_full_packet_parses() -> None:
    packet = RtpPacket.parse(FULL)
    assert packet.csrc == [4, 5]
    assert (packet.extension_profile, packet.extension) == (0xBEDE, bytes(8))
    assert (packet.padding_size, packet.payload) == (4, bytes(10))
    assert (packet.sequence_number, packet.timestamp, packet.ssrc) == (1, 2, 3)


@pytest.mark.parametrize("length", range(len(FULL)))
def test_every_truncation_has_its_exact_message(length: int) -> None:
    with pytest.raises(RtpError) as info:
        RtpPacket.parse(FULL[:length])
    assert str(info.value) == expected_error(length)


def test_bad_version_and_oversized_padding() -> None:
    with pytest.raises(RtpError) as info:
        RtpPacket.parse(b"\x40" + FULL[1:])
    assert str(info.value) == "RTP packet has invalid version"
    plain = bytes.fromhex("a0000001000000020000000301ff")  # padding 0xff > 2 bytes
    with pytest.raises(RtpError) as info:
        RtpPacket.parse(plain)
    assert str(info.value) == "RTP packet padding length is invalid"


def test_sequence_and_timestamp_wrap() -> None:
    assert seq_delta(0, 65535) == 1
    assert seq_delta(65535, 0) == -1
    assert seq_delta(5, 65530) == 11
    assert ts_delta(80, 0xFFFF_FFF0) == 96
    unwrap = SequenceUnwrapper()
    got = [unwrap.unwrap(s) for s in (65534, 65535, 0, 65535, 1, 2)]
    assert got == [65534, 65535, 65536, 65535, 65537, 65538]


class Sink:
    """Collects what the buffer releases, in order."""

    def __init__(self) -> None:
        self.out: list[tuple[str, int | bytes]] = []

    def audio(self, payload: bytes) -> None:
        self.out.append(("audio", payload))

    def gap(self, samples: int) -> None:
        self.out.append(("gap", samples))


def make(depth: int = 5, max_delay: float = 0.1, bps: int = 1) -> tuple[ReorderBuffer, Sink]:
    sink = Sink()
    return (
        ReorderBuffer(
            sink.audio, sink.gap, bytes_per_sample=bps, depth=depth, max_delay=max_delay
        ),
        sink,
    )


def pkt(i: int, start: int = 1000) -> tuple[int, int, bytes]:
    """Packet i of a 20 ms ulaw stream: seq, timestamp, 160-byte payload."""
    return (start + i) & 0xFFFF, (i * 160) & 0xFFFF_FFFF, bytes([i & 0xFF]) * 160


def feed(buf: ReorderBuffer, order: list[int], start: int = 1000) -> None:
    for n, i in enumerate(order):
        buf.push(*pkt(i, start), now=n * 0.02)


def audio_ids(sink: Sink) -> list[int | str]:
    return [p[0] if isinstance(p, bytes) else f"gap{p}" for _, p in sink.out]


def test_in_order_passes_straight_through() -> None:
    buf, sink = make()
    feed(buf, list(range(10)))
    assert audio_ids(sink) == list(range(10))
    assert buf.pending == 0
    assert buf.stats.released == 10


def test_reordered_and_duplicated_come_out_in_order() -> None:
    buf, sink = make()
    feed(buf, [0, 2, 1, 1, 3, 5, 4, 5, 6, 2])
    buf.flush()
    assert audio_ids(sink) == [0, 1, 2, 3, 4, 5, 6]
    assert (buf.stats.reordered, buf.stats.duplicates, buf.stats.lost) == (2, 3, 0)


def test_loss_becomes_a_gap_of_the_missing_samples() -> None:
    buf, sink = make(depth=3)
    feed(buf, [0, 1, 4, 5, 6, 7, 8])
    assert audio_ids(sink) == [0, 1, "gap320", 4, 5, 6, 7, 8]
    assert (buf.stats.lost, buf.stats.gap_samples) == (2, 320)


def test_late_packet_after_its_gap_is_dropped() -> None:
    buf, sink = make(depth=2)
    feed(buf, [0, 2, 3, 4, 1])
    assert audio_ids(sink) == [0, "gap160", 2, 3, 4]
    assert (buf.stats.late, buf.stats.duplicates) == (1, 0)


def test_held_packets_are_released_after_max_delay() -> None:
    buf, sink = make(depth=5, max_delay=0.1)
    buf.push(*pkt(0), now=0.0)
    buf.push(*pkt(2), now=0.02)
    buf.poll(0.05)
    assert audio_ids(sink) == [0]
    buf.poll(0.2)
    assert audio_ids(sink) == [0, "gap160", 2]


def test_wrap_at_65535_is_seamless() -> None:
    buf, sink = make()
    feed(buf, [0, 1, 3, 2, 4, 5], start=65533)
    assert audio_ids(sink) == [0, 1, 2, 3, 4, 5]
    assert buf.stats.lost == 0


def test_sequence_restart_resyncs_without_a_huge_gap() -> None:
    buf, sink = make()
    feed(buf, [0, 1])
    buf.push(30000, 5_000_000, b"\x07" * 160, now=1.0)
    buf.push(30001, 5_000_160, b"\x08" * 160, now=1.02)
    assert audio_ids(sink) == [0, 1, 7, 8]
    assert buf.stats.resyncs == 1


def test_slin16_gap_counts_samples_not_bytes() -> None:
    buf, sink = make(depth=1, bps=2)
    for n, i in enumerate([0, 2, 3]):
        buf.push(i, i * 320, bytes(640), now=n * 0.02)
    assert sink.out[1] == ("gap", 320)


@settings(max_examples=200, deadline=None)
@given(
    keep=st.lists(st.booleans(), min_size=1, max_size=60),
    swaps=st.lists(st.integers(0, 59), max_size=20),
    dupes=st.lists(st.integers(0, 59), max_size=10),
    start=st.integers(0, 65535),
)
def test_output_is_what_arrived_in_order_with_gaps_for_the_rest(
    keep: list[bool], swaps: list[int], dupes: list[int], start: int
) -> None:
    keep[0] = True
    sent = [i for i, k in enumerate(keep) if k]
    order = list(sent)
    moved: set[int] = set()
    for s in swaps:  # adjacent swaps, never the first (it starts the stream)
        j = s % len(order)
        if 0 < j < len(order) - 1 and not {j, j + 1} & moved:
            order[j], order[j + 1] = order[j + 1], order[j]
            moved |= {j, j + 1}
    for d in dupes:
        j = d % len(order)
        order.insert(j + 1, order[j])
    buf, sink = make(depth=5, max_delay=10.0)
    feed(buf, order, start)
    buf.flush()
    audio = [p[0] for kind, p in sink.out if kind == "audio" and isinstance(p, bytes)]
    gaps = sum(p for kind, p in sink.out if kind == "gap" and isinstance(p, int))
    assert audio == [i & 0xFF for i in sent]
    assert gaps == 160 * (sent[-1] + 1 - len(sent))
    assert buf.stats.lost == sent[-1] + 1 - len(sent)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=80))
def test_any_bytes_parse_or_raise_rtp_error(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except RtpError as exc:
        message = str(exc)
    else:
        assert len(packet.payload) + packet.padding_size <= len(data) - 12
        return
    known = {expected_error(n) for n in range(len(FULL))} | {"RTP packet has invalid version"}
    assert message in known


@settings(max_examples=200, deadline=None)
@given(
    pt=st.integers(0, 127),
    marker=st.booleans(),
    seq=st.integers(0, 0xFFFF),
    ts=st.integers(0, 0xFFFF_FFFF),
    ssrc=st.integers(0, 0xFFFF_FFFF),
    csrc=st.lists(st.integers(0, 0xFFFF_FFFF), max_size=15),
    ext=st.one_of(st.none(), st.binary(max_size=12).map(lambda b: b + bytes(-len(b) % 4))),
    payload=st.binary(max_size=200),
)
def test_serialize_then_parse_is_identity(
    pt: int,
    marker: bool,
    seq: int,
    ts: int,
    ssrc: int,
    csrc: list[int],
    ext: bytes | None,
    payload: bytes,
) -> None:
    packet = RtpPacket(
        payload_type=pt,
        marker=marker,
        sequence_number=seq,
        timestamp=ts,
        ssrc=ssrc,
        csrc=csrc,
        extension_profile=0xBEDE if ext is not None else 0,
        extension=ext or b"",
        payload=payload,
    )
    assert RtpPacket.parse(packet.serialize()) == packet
