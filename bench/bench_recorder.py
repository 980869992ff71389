"""Benchmark: N concurrent RTP streams over loopback into the media recorder.

A sender process (so its CPU is not counted) plays N ExternalMedia channels:
50 packets/s each, 172-byte PCMU packets, each stream from its own UDP port,
spread over the 20 ms packet interval as unsynchronised calls are. The
recorder writes real encrypted recordings into a temporary spool on disk.

Reported, each against a baseline measured in the same run:
- CPU per packet of the whole recorder path (socket -> demux -> reorder ->
  writer -> AES-GCM segments -> file) divided by that of a bare
  DatagramProtocol that only counts, on the same event loop, same N;
- per event loop: the largest N with under 0.1 % loss;
- memory per call (RSS growth / N);
- hang-up-to-sealed latency (close_stream + writer.close(), which includes
  the final fsync and the rename).

Usage: bench_recorder.py [--seconds 5] [--sizes 250,500,1000,1500] [--ratio-n 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing as mp
import os
import resource
import socket
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from callrec.crypto.keys import PrivateKey  # noqa: E402
from callrec.media.recorder import MediaRecorder  # noqa: E402
from callrec.media.rtp import RTP_HEADER_LENGTH, pack_rtp  # noqa: E402
from callrec.media.rtp_stream import RtpStream  # noqa: E402
from callrec.recording import RecordingWriter  # noqa: E402

PPS = 50
PAYLOAD = 160  # 20 ms of PCMU
SLOTS = 20  # sending slots per 20 ms: calls are not synchronised
LOSS_TARGET = 0.001


# --- sender process ---------------------------------------------------------


def sender_main(conn: Connection, target: tuple[str, int], n: int, seconds: float) -> None:
    """Open N sockets, report their ports, send on "go", report counts."""
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        socks.append(s)
    conn.send([s.getsockname()[1] for s in socks])
    conn.recv()
    sent = [0] * n
    dropped = 0
    payloads = [bytes([0xFF - (i % 64)]) * PAYLOAD for i in range(n)]
    period = 1.0 / PPS
    start = time.perf_counter()
    ticks = int(seconds * PPS)
    per_slot = [(k * n // SLOTS, (k + 1) * n // SLOTS) for k in range(SLOTS)]
    for tick in range(ticks):
        seq, ts = tick & 0xFFFF, (tick * PAYLOAD) & 0xFFFF_FFFF
        for k, (lo, hi) in enumerate(per_slot):
            due = start + tick * period + k * period / SLOTS
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            for i in range(lo, hi):
                try:
                    socks[i].sendto(pack_rtp(0, False, seq, ts, i, payloads[i]), target)
                    sent[i] += 1
                except BlockingIOError:
                    dropped += 1
    late = time.perf_counter() - start - seconds
    conn.send((sent, dropped, late))
    for s in socks:
        s.close()


# --- receivers ----------------------------------------------------------------


class BareReceiver(asyncio.DatagramProtocol):
    """The baseline: receive and count, nothing else."""

    def __init__(self) -> None:
        self.packets = 0

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.packets += 1


def cpu() -> tuple[float, float]:
    """(user, system) CPU seconds of this process, every thread included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Result:
    n: int
    sent: int
    received: int
    cpu_s: float
    sys_s: float
    late_s: float
    sender_drops: int
    mem_per_call: float = 0.0
    seal_ms: list[float] | None = None

    @property
    def loss(self) -> float:
        return 1 - self.received / self.sent if self.sent else 0.0

    @property
    def us_per_packet(self) -> float:
        return self.cpu_s / max(self.received, 1) * 1e6


class Sender:
    """Runs sender_main in a child process."""

    def __init__(self, target: tuple[str, int], n: int, seconds: float) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=sender_main, args=(child, target, n, seconds))
        self.proc.start()
        self.ports: list[int] = self.conn.recv()

    async def run(self) -> tuple[list[int], int, float]:
        self.conn.send("go")
        loop = asyncio.get_running_loop()
        result: tuple[list[int], int, float] = await loop.run_in_executor(None, self.conn.recv)
        await loop.run_in_executor(None, self.proc.join)
        return result


@dataclass
class Measured:
    sent: int
    drops: int
    late: float
    cpu: float
    sys: float
    received: int


async def measure(sender: Sender, received: Callable[[], int]) -> Measured:
    await asyncio.sleep(0.2)
    (u0, s0), r0 = cpu(), received()
    sent, drops, late = await sender.run()
    await asyncio.sleep(0.1)  # the last packets in the socket buffer
    u1, s1 = cpu()
    return Measured(sum(sent), drops, late, u1 - u0 + s1 - s0, s1 - s0, received() - r0)


async def run_bare(n: int, seconds: float) -> Result:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # as the recorder does
    sock.bind(("127.0.0.1", 0))
    transport, proto = await loop.create_datagram_endpoint(BareReceiver, sock=sock)
    sender = Sender(transport.get_extra_info("sockname"), n, seconds)
    m = await measure(sender, lambda: proto.packets)
    transport.close()
    return Result(n, m.sent, m.received, m.cpu, m.sys, m.late, m.drops)


async def run_recorder(
    n: int, seconds: float, spool: Path, key: PrivateKey, durable: bool = True
) -> Result:
    recorder = MediaRecorder("127.0.0.1", 0, sync_interval=SYNC[0] if durable else None)
    await recorder.start()
    sender = Sender(recorder.address, n, seconds)
    rss0 = rss()
    streams: list[tuple[RtpStream, RecordingWriter]] = []
    for i, port in enumerate(sender.ports):
        writer = RecordingWriter.create(
            spool,
            [key.public_key()],
            codec="ulaw",
            sample_rate=8000,
            fsync_interval=FSYNC[0] if durable else math.inf,
        )
        writer.write_metadata({"bench": True, "stream": i})
        stream = recorder.open_stream(writer, "ulaw", f"bench.{i}")
        stream.expect_source("127.0.0.1", port)
        streams.append((stream, writer))

    def received() -> int:
        return sum(s.stats.packets for s, _ in streams)

    m = await measure(sender, received)
    mem = (rss() - rss0) / n
    seal_ms = []
    for stream, writer in streams:
        t0 = time.perf_counter()
        await recorder.close_stream(stream)
        writer.close()
        seal_ms.append((time.perf_counter() - t0) * 1000)
    await recorder.stop()
    clear(spool)
    return Result(n, m.sent, m.received, m.cpu, m.sys, m.late, m.drops, mem, seal_ms)


def clear(spool: Path) -> None:
    for path in spool.glob("*.crec"):
        path.unlink()


def heap_per_call(spool: Path, key: PrivateKey, n: int = 200) -> float:
    """Python heap of one call's recording path (stream + writer) after 1 s.

    Marginal: the heap growth from call n/2 to call 3n/2, so one-time
    caches and allocator warm-up are not counted.
    """
    recorder = MediaRecorder(sync_interval=None)
    calls = []
    marks: dict[int, int] = {}
    tracemalloc.start()
    for i in range(n // 2 + n + 1):
        if i in (n // 2, n // 2 + n):
            marks[i] = tracemalloc.get_traced_memory()[0]
        writer = RecordingWriter.create(
            spool, [key.public_key()], codec="ulaw", sample_rate=8000, fsync_interval=math.inf
        )
        stream = recorder.open_stream(writer, "ulaw", f"heap.{i}")
        for seq in range(PPS):
            stream.feed(pack_rtp(0, False, seq, seq * PAYLOAD, i, bytes(PAYLOAD)))
        calls.append((stream, writer))
    tracemalloc.stop()
    for _, writer in calls:
        writer.close()
    clear(spool)
    return (marks[n // 2 + n] - marks[n // 2]) / n


# --- report -------------------------------------------------------------------


def fmt(r: Result, label: str) -> str:
    return (
        f"  {label:9s} N={r.n:5d}  sent={r.sent:7d}  loss={100 * r.loss:6.3f} %  "
        f"cpu={r.us_per_packet:5.2f} µs/packet  busy={r.cpu_s / SECONDS[0]:5.1%} of a core"
        + (f"  sender late {r.late_s:.2f} s" if r.late_s > 0.05 else "")
    )


SECONDS = [5.0]
FSYNC = [math.inf]  # the recorder's thread syncs every SYNC seconds instead
SYNC: list[float | None] = [1.0]


async def session(
    args: argparse.Namespace, spool: Path, key: PrivateKey, loop_name: str
) -> dict[str, Any]:
    seconds = SECONDS[0]
    print(f"\n== event loop: {loop_name}", flush=True)
    # Alternate baseline and recorder runs: the machine's other load drifts.
    bares, fulls = [], []
    for _ in range(args.rounds):
        bares.append(await run_bare(args.ratio_n, seconds))
        print(fmt(bares[-1], "bare"), flush=True)
        fulls.append(await run_recorder(args.ratio_n, seconds, spool, key))
        print(fmt(fulls[-1], "recorder"), flush=True)
    lean = await run_recorder(args.ratio_n, seconds, spool, key, durable=False)
    print(fmt(lean, "no-fsync"), flush=True)
    base = statistics.median(b.us_per_packet for b in bares)
    ratio = statistics.median(f.us_per_packet for f in fulls) / base
    each = [f.us_per_packet / b.us_per_packet for f, b in zip(fulls, bares, strict=True)]
    print(
        f"  CPU per packet, recorder / bare receiver: {ratio:.2f} (median of {args.rounds} "
        f"rounds; per round {min(each):.2f}-{max(each):.2f}; target <= 2); without the "
        f"per-second syncfs: {lean.us_per_packet / base:.2f}"
    )
    full = fulls[0]
    results = {full.n: full}
    for n in args.sizes:
        if n not in results:
            results[n] = await run_recorder(n, seconds, spool, key)
            print(fmt(results[n], "recorder"), flush=True)
    ok = [n for n, r in results.items() if r.loss < LOSS_TARGET]
    best = max(ok) if ok else 0
    print(f"  largest N with loss < {100 * LOSS_TARGET:.1f} %: {best}  (target >= 1000)")
    print(
        f"  memory per call: RSS growth {full.mem_per_call / 1024:.1f} KiB "
        f"(first recorder run, N={full.n}); Python heap "
        f"{heap_per_call(spool, key) / 1024:.1f} KiB (tracemalloc, 1 s into each call)"
    )
    seals = sorted(ms for r in results.values() for ms in r.seal_ms or [])
    p = seals[int(0.99 * (len(seals) - 1))]
    print(
        f"  hang-up to sealed: median {statistics.median(seals):.2f} ms, p99 {p:.2f} ms, "
        f"max {seals[-1]:.2f} ms over {len(seals)} recordings"
    )
    return {"ratio": ratio, "best": best}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--sizes", default="250,500,1000,1500")
    parser.add_argument("--ratio-n", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loops", default="uvloop,asyncio")
    parser.add_argument(
        "--inline-fsync",
        action="store_true",
        help="writers fsync every 1 s on the event loop (instead of the recorder's thread)",
    )
    args = parser.parse_args()
    args.sizes = [int(x) for x in args.sizes.split(",")]
    SECONDS[0] = args.seconds
    if args.inline_fsync:
        FSYNC[0] = 1.0
        SYNC[0] = None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 3 * max([*args.sizes, args.ratio_n]) + 100
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    key = PrivateKey.generate()
    print(
        f"bench_recorder: {PPS} packets/s per stream, {RTP_HEADER_LENGTH + PAYLOAD}-byte PCMU, "
        f"{args.seconds:.0f} s per run, {os.cpu_count()} CPUs, sender in its own process"
    )
    with tempfile.TemporaryDirectory(prefix="callrec-bench-spool-") as tmp:
        spool = Path(tmp)
        how = "inline in each writer" if args.inline_fsync else "by the recorder's thread"
        print(f"spool on disk: {spool}; fsync every 1 s {how}")
        for name in args.loops.split(","):
            if name == "uvloop":
                import uvloop

                runner: Callable[[Coroutine[Any, Any, dict[str, Any]]], dict[str, Any]] = (
                    uvloop.run
                )
            else:
                runner = asyncio.run
            runner(session(args, spool, key, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
