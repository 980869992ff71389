"""RTP from the simulator's ExternalMedia channels, received on a real UDP socket.

Packet shapes follow traces 01 (ulaw), 08 (slin16, big-endian) and 05 (no
RTP while the ExternalMedia channel is alone in its bridge).
"""

from __future__ import annotations

import asyncio
import itertools
import struct
from collections.abc import AsyncIterator

import numpy as np
import pytest

from callrec.ari.sim import AriSimulator, CallerScenario, EndpointBehaviour
from callrec.media.g711 import ulaw_decode
from tests.callrec.ari.test_simulator import RawAri, of

Packet = tuple[bytes, tuple[str, int]]


class Receiver(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.packets: list[Packet] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.packets.append((data, addr))


@pytest.fixture
async def udp() -> AsyncIterator[tuple[Receiver, int]]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(Receiver, local_addr=("127.0.0.1", 0))
    yield proto, transport.get_extra_info("sockname")[1]
    transport.close()


def tone(freq: float = 400.0, seconds: float = 5.0, rate: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * 8000).astype(np.int16)


def header(packet: bytes) -> tuple[int, int, int, int, int, int]:
    b0, b1, seq, ts, ssrc = struct.unpack("!BBHII", packet[:12])
    return b0 >> 6, b1 >> 7, b1 & 0x7F, seq, ts, ssrc


async def bridged_media(
    sim: AriSimulator, ari: RawAri, port: int, fmt: str, caller: CallerScenario
) -> tuple[str, str, dict[str, str], str]:
    """Caller answered, ExternalMedia started and both in one mixing bridge."""
    cid = sim.place_call(caller)
    await ari.wait_event(of("StasisStart", cid))
    await ari.call("POST", f"/channels/{cid}/answer")
    _, br = await ari.call("POST", "/bridges", params={"type": "mixing"})
    _, em = await ari.call(
        "POST",
        "/channels/externalMedia",
        params={"app": "callrec", "external_host": f"127.0.0.1:{port}", "format": fmt},
    )
    await ari.wait_event(of("StasisStart", em["id"]))
    await ari.call(
        "POST", f"/bridges/{br['id']}/addChannel", params={"channel": f"{cid},{em['id']}"}
    )
    return cid, em["id"], em["channelvars"], br["id"]


@pytest.fixture
async def sim_ari() -> AsyncIterator[tuple[AriSimulator, RawAri]]:
    async with AriSimulator(seed=3) as sim, RawAri(sim) as ari:
        yield sim, ari


async def test_ulaw_stream_is_50_pps_of_172_bytes_from_the_announced_port(
    sim_ari: tuple[AriSimulator, RawAri], udp: tuple[Receiver, int]
) -> None:
    sim, ari = sim_ari
    rx, port = udp
    _, em, chanvars, _ = await bridged_media(sim, ari, port, "ulaw", CallerScenario(audio=tone()))
    await asyncio.sleep(1.0)
    got = list(rx.packets)
    assert 47 <= len(got) <= 53
    source = ("127.0.0.1", int(chanvars["UNICASTRTP_LOCAL_PORT"]))
    assert {addr for _, addr in got} == {source}
    assert chanvars["UNICASTRTP_LOCAL_ADDRESS"] == "127.0.0.1"
    heads = [header(p) for p, _ in got]
    assert {len(p) for p, _ in got} == {172}
    assert {(v, m, pt) for v, m, pt, *_ in heads} == {(2, 0, 0)}
    assert len({h[5] for h in heads}) == 1
    assert {(b[3] - a[3]) & 0xFFFF for a, b in itertools.pairwise(heads)} == {1}
    assert {(b[4] - a[4]) & 0xFFFFFFFF for a, b in itertools.pairwise(heads)} == {160}
    stats = sim.rtp_stats(em)
    assert stats.first_seq == heads[0][3]
    assert stats.ssrc == heads[0][5]
    assert [p[12:] for p, _ in got] == stats.payloads[: len(got)]
    # The payload is the caller's tone, not silence.
    pcm = ulaw_decode(b"".join(p[12:] for p, _ in got[5:]))
    assert 3000 < float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) < 8000


async def test_slin16_is_pt118_640_bytes_big_endian(
    sim_ari: tuple[AriSimulator, RawAri], udp: tuple[Receiver, int]
) -> None:
    sim, ari = sim_ari
    rx, port = udp
    await bridged_media(sim, ari, port, "slin16", CallerScenario(audio=tone(400.0)))
    await asyncio.sleep(0.5)
    got = list(rx.packets)
    heads = [header(p) for p, _ in got]
    assert {len(p) for p, _ in got} == {652}
    assert {h[2] for h in heads} == {118}
    assert {(b[4] - a[4]) & 0xFFFFFFFF for a, b in itertools.pairwise(heads)} == {320}
    payload = b"".join(p[12:] for p, _ in got[3:])
    for dtype, smooth in ((">i2", True), ("<i2", False)):
        pcm = np.frombuffer(payload, dtype=dtype).astype(np.float64)
        rms = float(np.sqrt(np.mean(pcm**2)))
        ratio = float(np.sqrt(np.mean(np.diff(pcm) ** 2))) / rms
        assert (ratio < 0.5) is smooth, (dtype, ratio)


async def test_alaw_uses_pt8(
    sim_ari: tuple[AriSimulator, RawAri], udp: tuple[Receiver, int]
) -> None:
    sim, ari = sim_ari
    rx, port = udp
    await bridged_media(sim, ari, port, "alaw", CallerScenario())
    await sim.wait_for(lambda: len(rx.packets) >= 3)
    assert {header(p)[2] for p, _ in rx.packets} == {8}


async def test_no_rtp_while_external_media_is_alone_and_stop_when_peer_leaves(
    sim_ari: tuple[AriSimulator, RawAri], udp: tuple[Receiver, int]
) -> None:
    sim, ari = sim_ari
    rx, port = udp
    cid = sim.place_call(CallerScenario(audio=tone()))
    await ari.wait_event(of("StasisStart", cid))
    await ari.call("POST", f"/channels/{cid}/answer")
    _, snoop = await ari.call(
        "POST", f"/channels/{cid}/snoop", params={"spy": "both", "app": "callrec"}
    )
    _, br = await ari.call("POST", "/bridges", params={"type": "mixing"})
    _, em = await ari.call(
        "POST",
        "/channels/externalMedia",
        params={"app": "callrec", "external_host": f"127.0.0.1:{port}", "format": "ulaw"},
    )
    await ari.wait_event(of("StasisStart", em["id"]))
    await ari.call("POST", f"/bridges/{br['id']}/addChannel", params={"channel": em["id"]})
    await asyncio.sleep(0.3)
    assert rx.packets == []
    await ari.call("POST", f"/bridges/{br['id']}/addChannel", params={"channel": snoop["id"]})
    await asyncio.sleep(0.3)
    assert len(rx.packets) >= 10
    pcm = ulaw_decode(b"".join(p[12:] for p, _ in rx.packets[2:]))
    assert np.abs(pcm.astype(np.int32)).max() > 4000  # the snoop carries the caller's voice
    sim.hangup_caller(cid)
    await ari.wait_event(of("StasisEnd", snoop["id"]))
    await asyncio.sleep(0.05)
    count = len(rx.packets)
    await asyncio.sleep(0.3)
    assert len(rx.packets) == count
    assert ari.types_for(snoop["id"]) == [
        "StasisStart",
        "ChannelEnteredBridge",
        "ChannelLeftBridge",
        "StasisEnd",
    ]
    assert ari.types_for(cid)[-2:] == ["ChannelHangupRequest", "StasisEnd"]
    assert (await ari.call("GET", f"/bridges/{br['id']}"))[1]["channels"] == [em["id"]]


async def test_fault_injection_is_deterministic_and_counted(
    sim_ari: tuple[AriSimulator, RawAri], udp: tuple[Receiver, int]
) -> None:
    sim, ari = sim_ari
    rx, port = udp
    sim.rtp_faults("all", drop={3, 4}, duplicate={6}, reorder={8}, foreign={10})
    _, em, chanvars, _ = await bridged_media(sim, ari, port, "ulaw", CallerScenario())
    await sim.wait_for(lambda: sim.rtp_stats(em).packets_generated >= 15)
    await asyncio.sleep(0.01)
    own = ("127.0.0.1", int(chanvars["UNICASTRTP_LOCAL_PORT"]))
    first = sim.rtp_stats(em).first_seq
    assert first is not None
    seqs = [(header(p)[3] - first) & 0xFFFF for p, addr in rx.packets if addr == own][:14]
    assert seqs == [0, 1, 2, 5, 6, 6, 7, 9, 8, 10, 11, 12, 13, 14]
    foreign = [p for p, addr in rx.packets if addr != own]
    assert len(foreign) == 1
    assert (header(foreign[0])[3] - first) & 0xFFFF == 10
    stats = sim.rtp_stats(em)
    assert (stats.dropped, stats.duplicated, stats.reordered, stats.foreign_sent) == (
        [3, 4],
        [6],
        [8],
        1,
    )


async def test_websocket_drop_leaves_calls_and_rtp_running(
    sim_ari: tuple[AriSimulator, RawAri], udp: tuple[Receiver, int]
) -> None:
    sim, ari = sim_ari
    rx, port = udp
    cid, em, _, br = await bridged_media(sim, ari, port, "ulaw", CallerScenario())
    await sim.drop_websockets()
    await asyncio.wait_for(ari.closed.wait(), 2)
    assert ari.close_code == 1006
    before = len(rx.packets)
    await asyncio.sleep(0.2)
    assert len(rx.packets) >= before + 8
    async with RawAri(sim) as again:
        status, chans = await again.call("GET", "/channels")
        assert status == 200
        assert {c["id"] for c in chans} == {cid, em}
        assert (await again.call("GET", f"/bridges/{br}"))[1]["channels"] == [cid, em]
        sim.hangup_caller(cid)
        await again.wait_event(of("StasisEnd", cid))


def band_energy(pcm: np.ndarray, freq: float, rate: int = 8000) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    freqs = np.fft.rfftfreq(pcm.size, 1 / rate)
    return float(spectrum[np.abs(freqs - freq) < 20].sum() / spectrum.sum())


@pytest.mark.parametrize(("spy", "agent_heard"), [("both", True), ("in", False)])
async def test_snoop_carries_what_the_caller_says_and_hears(
    udp: tuple[Receiver, int], spy: str, agent_heard: bool
) -> None:
    rx, port = udp
    async with AriSimulator(seed=5) as sim, RawAri(sim) as ari:
        sim.add_endpoint("PJSIP/agent", EndpointBehaviour(answer_after=0.01, audio=tone(1000.0)))
        cid = sim.place_call(CallerScenario(audio=tone(400.0)))
        await ari.wait_event(of("StasisStart", cid))
        await ari.call("POST", f"/channels/{cid}/answer")
        _, agent = await ari.call(
            "POST", "/channels", params={"endpoint": "PJSIP/agent", "app": "callrec"}
        )
        await ari.wait_event(of("StasisStart", agent["id"]))
        _, call = await ari.call("POST", "/bridges", params={"type": "mixing"})
        members = f"{cid},{agent['id']}"
        await ari.call("POST", f"/bridges/{call['id']}/addChannel", params={"channel": members})
        _, snoop = await ari.call(
            "POST", f"/channels/{cid}/snoop", params={"spy": spy, "app": "callrec"}
        )
        _, rec = await ari.call("POST", "/bridges", params={"type": "mixing"})
        _, em = await ari.call(
            "POST",
            "/channels/externalMedia",
            params={"app": "callrec", "external_host": f"127.0.0.1:{port}", "format": "ulaw"},
        )
        await ari.wait_event(of("StasisStart", em["id"]))
        both = f"{snoop['id']},{em['id']}"
        await ari.call("POST", f"/bridges/{rec['id']}/addChannel", params={"channel": both})
        await sim.wait_for(lambda: len(rx.packets) >= 25)
        assert (await ari.call("GET", f"/bridges/{call['id']}"))[1][
            "technology"
        ] == "simple_bridge"
    pcm = ulaw_decode(b"".join(p[12:] for p, _ in rx.packets[:25]))
    assert band_energy(pcm, 400.0) > 0.2
    assert (band_energy(pcm, 1000.0) > 0.2) is agent_heard


async def test_audiosocket_sends_uuid_then_little_endian_slin_and_closes_on_hangup(
    sim_ari: tuple[AriSimulator, RawAri],
) -> None:
    sim, ari = sim_ari
    received = bytearray()
    eof = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(4096):
            received.extend(chunk)
        eof.set()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stream = "eb4b1923-8b7d-4f47-b58b-c3f0336f5dda"
    try:
        cid = sim.place_call(CallerScenario(audio=tone(400.0)))
        await ari.wait_event(of("StasisStart", cid))
        await ari.call("POST", f"/channels/{cid}/answer")
        status, chan = await ari.call(
            "POST",
            "/channels/externalMedia",
            params={
                "app": "callrec",
                "external_host": f"127.0.0.1:{port}",
                "format": "slin",
                "encapsulation": "audiosocket",
                "transport": "tcp",
                "data": stream,
            },
        )
        assert status == 200
        assert chan["name"] == f"AudioSocket/127.0.0.1:{port}-{stream}"
        start = await ari.wait_event(of("StasisStart", chan["id"]))
        assert start["args"] == [stream]
        _, br = await ari.call("POST", "/bridges", params={"type": "mixing"})
        both = f"{cid},{chan['id']}"
        await ari.call("POST", f"/bridges/{br['id']}/addChannel", params={"channel": both})
        await sim.wait_for(lambda: len(received) > 19 + 10 * 323)
        await ari.call("DELETE", f"/channels/{chan['id']}")
        await asyncio.wait_for(eof.wait(), 2)
    finally:
        server.close()
    data = bytes(received)
    assert data[:3] == b"\x01\x00\x10"
    assert data[3:19] == bytes.fromhex(stream.replace("-", ""))
    frames, pos = [], 19
    while pos < len(data):
        kind, length = data[pos], struct.unpack("!H", data[pos + 1 : pos + 3])[0]
        frames.append((kind, data[pos + 3 : pos + 3 + length]))
        pos += 3 + length
    assert {(kind, len(pcm)) for kind, pcm in frames} == {(0x10, 320)}
    pcm = np.frombuffer(b"".join(p for _, p in frames[2:]), dtype="<i2").astype(np.float64)
    ratio = float(np.sqrt(np.mean(np.diff(pcm) ** 2)) / np.sqrt(np.mean(pcm**2)))
    assert ratio < 0.5  # the caller's tone, read little-endian


async def dropped_of_first_30(port: int) -> list[int]:
    async with AriSimulator(seed=11) as sim, RawAri(sim) as ari:
        sim.rtp_faults("all", drop=0.2, foreign_source=True)
        _, em, _, _ = await bridged_media(sim, ari, port, "ulaw", CallerScenario(audio=tone()))
        await sim.wait_for(lambda: sim.rtp_stats(em).packets_generated >= 30)
        return [i for i in sim.rtp_stats(em).dropped if i < 30]


async def test_fault_rates_repeat_with_the_seed(udp: tuple[Receiver, int]) -> None:
    _, port = udp
    first, second = await dropped_of_first_30(port), await dropped_of_first_30(port)
    assert first == second
    assert 0 < len(first) < 30
