from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from callrec.media import g711
from callrec.testcall import pcap


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(round(seconds * 8000)) / 8000
    return (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)


def test_audio_becomes_20ms_pcmu_packets_sipp_can_replay(tmp_path: Path) -> None:
    audio = _tone(1.0)
    path = tmp_path / "a.pcap"
    pcap.write_pcap(path, pcap.build_stream(audio))
    packets = pcap.read_pcap_rtp(path)
    assert len(packets) == 50
    times = [t for t, _ in packets]
    assert np.allclose(np.diff(times), 0.02)
    payload = b""
    for n, (_, rtp) in enumerate(packets):
        v, pt, seq, ts, _ssrc = struct.unpack_from("!BBHII", rtp)
        assert (v, pt & 0x7F, seq, ts) == (0x80, 0, n + 1, n * 160)
        assert len(rtp) == 172
        payload += rtp[12:]
    assert payload == g711.ulaw_encode(audio)


def test_digit_is_an_rfc4733_event_at_its_time(tmp_path: Path) -> None:
    path = tmp_path / "d.pcap"
    stream = pcap.build_stream(_tone(2.0), dtmf=[pcap.DtmfEvent("2", 0.5, 0.2)])
    pcap.write_pcap(path, stream)
    events = [(t, rtp) for t, rtp in pcap.read_pcap_rtp(path) if rtp[1] & 0x7F == 101]
    assert events, "no telephone-event packets"
    first_t, first = events[0]
    assert 0.5 <= first_t <= 0.55
    assert first[1] & 0x80, "the first event packet carries the marker bit"
    code, flags, duration = struct.unpack_from("!BBH", events[-1][1], 12)
    assert (code, bool(flags & 0x80), duration) == (2, True, 1600)
    # The end packet is sent three times, as RFC 4733 asks.
    assert sum(1 for _, rtp in events if rtp[13] & 0x80) == 3
    seqs = [struct.unpack_from("!H", rtp, 2)[0] for _, rtp in pcap.read_pcap_rtp(path)]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
