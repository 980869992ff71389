"""Benchmark: the recorder's CPU for stereo calls against mixed ones, in the same run.

A sender process (bench_recorder's: its CPU is not counted) plays N calls'
ExternalMedia RTP over loopback: one stream per mixed call, two per stereo
call (what the caller says, what the caller hears), 50 packets/s each,
172-byte PCMU. The recorder writes real encrypted recordings into a
temporary spool: mixed through :meth:`MediaRecorder.open_stream`, stereo
through :meth:`MediaRecorder.open_stereo` (two reorder buffers, the aligner,
interleaved 2-channel frames). Mixed and stereo runs alternate, so the
machine's other load drifts into both alike.

Reported: CPU per packet of each (and over a bare receiver that only counts,
the bench_recorder baseline), the stereo/mixed ratio per packet and per
call-second (a stereo call has twice the packets), loss.

Usage: bench_stereo.py [--calls 500] [--seconds 5] [--rounds 3] [--loop uvloop|asyncio]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import resource
import statistics
import sys
import tempfile
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_recorder import SYNC, Sender, clear, measure, run_bare  # noqa: E402

from callrec.crypto.keys import PrivateKey  # noqa: E402
from callrec.media.layout import Side  # noqa: E402
from callrec.media.recorder import MediaRecorder  # noqa: E402
from callrec.media.rtp_stream import RtpStream  # noqa: E402
from callrec.media.stereo import StereoStream  # noqa: E402
from callrec.recording import RecordingWriter  # noqa: E402

RATE = 8000


@dataclass
class Run:
    mode: str
    calls: int
    packets: int
    sent: int
    cpu: float
    seconds: float

    @property
    def us_per_packet(self) -> float:
        return self.cpu / max(self.packets, 1) * 1e6

    @property
    def us_per_call_second(self) -> float:
        return self.cpu / (self.calls * self.seconds) * 1e6

    @property
    def loss(self) -> float:
        return 1 - self.packets / self.sent if self.sent else 0.0


async def run_mode(mode: str, calls: int, seconds: float, spool: Path, key: PrivateKey) -> Run:
    stereo = mode == "stereo"
    recorder = MediaRecorder("127.0.0.1", 0, sync_interval=SYNC[0])
    await recorder.start()
    sender = Sender(recorder.address, calls * (2 if stereo else 1), seconds)
    streams: list[tuple[RtpStream | StereoStream, RecordingWriter]] = []
    ports = iter(sender.ports)
    for i in range(calls):
        writer = RecordingWriter.create(
            spool,
            [key.public_key()],
            codec="ulaw",
            sample_rate=RATE,
            channels=2 if stereo else 1,
            fsync_interval=math.inf,
        )
        writer.write_metadata({"bench": True, "call": i})
        if stereo:
            both = recorder.open_stereo(writer, "ulaw", RATE, f"bench.{i}")
            for side in Side:
                both.expect_source(side, "127.0.0.1", next(ports))
            streams.append((both, writer))
        else:
            one = recorder.open_stream(writer, "ulaw", f"bench.{i}")
            one.expect_source("127.0.0.1", next(ports))
            streams.append((one, writer))

    def received() -> int:
        return sum(s.packets for s, _ in streams)

    m = await measure(sender, received)
    for stream, writer in streams:
        await recorder.close_stream(stream)
        writer.close()
    await recorder.stop()
    clear(spool)
    return Run(mode, calls, m.received, m.sent, m.cpu, seconds)


def line(r: Run) -> str:
    return (
        f"  {r.mode:7s} calls={r.calls:5d} packets={r.packets:7d} loss={100 * r.loss:6.3f} %  "
        f"{r.us_per_packet:5.2f} µs/packet  {r.us_per_call_second:6.1f} µs per call-second  "
        f"busy {r.cpu / r.seconds:5.1%} of a core"
    )


async def session(args: argparse.Namespace, spool: Path, key: PrivateKey) -> dict[str, float]:
    runs: dict[str, list[Run]] = {"mixed": [], "stereo": []}
    bare = []
    for _ in range(args.rounds):
        bare.append(await run_bare(args.calls, args.seconds))
        for mode in ("mixed", "stereo"):
            runs[mode].append(await run_mode(mode, args.calls, args.seconds, spool, key))
            print(line(runs[mode][-1]), flush=True)
    base = statistics.median(b.us_per_packet for b in bare)
    per_packet = {m: statistics.median(r.us_per_packet for r in rs) for m, rs in runs.items()}
    per_call = {m: statistics.median(r.us_per_call_second for r in rs) for m, rs in runs.items()}
    print(
        f"  bare receiver {base:.2f} µs/packet; recorder over bare: mixed "
        f"{per_packet['mixed'] / base:.2f}, stereo {per_packet['stereo'] / base:.2f}"
    )
    ratio_packet = per_packet["stereo"] / per_packet["mixed"]
    ratio_call = per_call["stereo"] / per_call["mixed"]
    print(
        f"  stereo / mixed (median of {args.rounds} rounds): {ratio_packet:.2f} per packet, "
        f"{ratio_call:.2f} per call-second"
    )
    return {"per_packet": ratio_packet, "per_call": ratio_call}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loop", default="uvloop", choices=("uvloop", "asyncio"))
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 4 * args.calls + 100
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    key = PrivateKey.generate()
    print(
        f"bench_stereo: {args.calls} calls, {args.seconds:.0f} s per run, event loop "
        f"{args.loop}, sender in its own process"
    )
    runner: Callable[[Coroutine[Any, Any, dict[str, float]]], dict[str, float]] = asyncio.run
    if args.loop == "uvloop":
        import uvloop

        runner = uvloop.run
    with tempfile.TemporaryDirectory(prefix="callrec-bench-stereo-") as tmp:
        runner(session(args, Path(tmp), key))
    return 0


if __name__ == "__main__":
    sys.exit(main())
