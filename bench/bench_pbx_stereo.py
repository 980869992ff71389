"""Benchmark: what each recording mode costs the real Asterisk, per call-second.

Run it with the test PBX up (it reads the CALLREC_TEST_* variables
tests/pbx/run exports), as root (sipp plays the callers' RTP from a pcap):

    tests/pbx/run .venv/bin/python bench/bench_pbx_stereo.py [--calls 20] [--seconds 15]

This script is the Stasis app "callrec" itself, so no ``callrec serve`` may
run. Each caller (sipp, one process placing every call, G.711 from a pcap)
is answered and bridged with the agent (a sipp UAS echoing its RTP, as the
real-PBX tests use); then, by mode:

- ``unrecorded``: nothing more (the baseline);
- ``mixed``: one snoop of the caller, spy both, with ExternalMedia in a bridge
  of its own (what ``channels = "mixed"`` does);
- ``stereo``: two snoops of the caller, spy in and spy out, each with its
  ExternalMedia in its own bridge (what ``channels = "stereo"`` does);
- ``legs``: the alternative, one snoop per leg: the caller spy in, the agent
  spy in (what the other party says, but not the prompts the caller hears).

The taps use callrec's own :class:`callrec.tap_media.SnoopLeg`; their RTP
goes to a UDP socket here that only counts. With every call up, Asterisk's
CPU (utime + stime of its process, every thread, from /proc/PID/stat) is
read over ``--seconds``; the modes take turns for ``--rounds`` rounds so the
machine's other load drifts into all of them alike. Reported: CPU per
call-second of each mode, and above the unrecorded baseline (the median of
the rounds), the ratio to mixed, and the RTP packets per second each stream
sent (a snoop with nothing to hear sends nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from callrec.ari.client import AriClient  # noqa: E402
from callrec.ari.events import Connected, Event, StasisStart  # noqa: E402
from callrec.ari.router import EventRouter  # noqa: E402
from callrec.media.signals import speech_like  # noqa: E402
from callrec.tap import new_id  # noqa: E402
from callrec.tap_media import SnoopLeg  # noqa: E402
from callrec.testcall import pcap  # noqa: E402
from callrec.testcall.sipp import find_sipp, free_port, render  # noqa: E402

APP = "callrec"
EXTEN = "100"
AGENT_APP_ARG = "bench-agent"
SNOOP_APP_ARG = "bench-snoop"
AGENT_PORT = 5070
MODES = ("unrecorded", "mixed", "stereo", "legs")
# Channels each call has in Asterisk once set up, by mode.
CHANNELS = {"unrecorded": 2, "mixed": 4, "stereo": 6, "legs": 6}
TICKS = os.sysconf("SC_CLK_TCK")


# --- Asterisk's CPU ---------------------------------------------------------------


def asterisk_pid(rundir: str) -> int:
    """The PBX's process: ``asterisk -C RUNDIR/...`` (tests/pbx/run started it)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"asterisk") and rundir.encode() in b" ".join(argv):
            return int(entry.name)
    raise SystemExit(f"no asterisk process running from {rundir}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


# --- the RTP sink -------------------------------------------------------------------


class Sink(asyncio.DatagramProtocol):
    """Counts the ExternalMedia packets by source port."""

    def __init__(self) -> None:
        self.by_port: Counter[int] = Counter()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.by_port[addr[1]] += 1


# --- the Stasis app -----------------------------------------------------------------


@dataclass
class Driver:
    """Answers callers, bridges each with the agent, taps it the way ``mode`` says."""

    client: AriClient
    router: EventRouter
    external_host: str
    mode: str = "unrecorded"
    calls: int = 0
    ready: int = 0
    failures: list[str] = field(default_factory=list)
    sources: dict[int, str] = field(default_factory=dict)  # RTP source port -> spy
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def on_event(self, event: Event) -> None:
        self.router.dispatch(event)
        if isinstance(event, StasisStart) and event.args[:1] == (EXTEN,):
            self.calls += 1
            task = asyncio.create_task(self._call(event.channel.id))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _call(self, caller: str) -> None:
        try:
            await self._connect(caller)
            self.ready += 1
        except Exception as exc:  # counted, shown at the end
            self.failures.append(f"{type(exc).__name__}: {exc}")

    async def _connect(self, caller: str) -> None:
        client, router = self.client, self.router
        await client.answer(caller)
        agent = new_id("agent")
        router.expect(agent)
        await client.request(
            "POST",
            "/channels",
            {"endpoint": "PJSIP/agent", "app": APP, "appArgs": AGENT_APP_ARG, "channelId": agent},
        )
        await router.wait_for(agent, "StasisStart", 10)
        bridge = new_id("call")
        await client.create_bridge("mixing", bridge_id=bridge)
        await client.add_channels(bridge, [caller, agent])
        taps = {
            "unrecorded": [],
            "mixed": [(caller, "both")],
            "stereo": [(caller, "in"), (caller, "out")],
            "legs": [(caller, "in"), (agent, "in")],
        }[self.mode]
        for channel, spy in taps:
            leg = SnoopLeg(new_id("snoop"), new_id("media"), new_id("tap"))
            await leg.connect(
                client,
                router,
                channel,
                spy=spy,
                app=APP,
                app_args=SNOOP_APP_ARG,
                media_format="ulaw",
                external_host=self.external_host,
                stasis_timeout=10,
                on_source=functools.partial(self._source, spy),
            )

    def _source(self, spy: str, _host: str, port: int) -> None:
        self.sources[port] = spy


async def pump(client: AriClient, driver: Driver, connected: asyncio.Event) -> None:
    async for item in client.events():
        if isinstance(item, Connected):
            connected.set()
        elif isinstance(item, Event):
            driver.on_event(item)


async def clean(client: AriClient) -> None:
    """Hang up every channel and remove every bridge (between modes)."""
    for channel in await client.list_channels():
        with contextlib.suppress(Exception):
            await client.hangup(channel.id)
    for bridge in await client.request("GET", "/bridges") or []:
        with contextlib.suppress(Exception):
            await client.destroy_bridge(bridge["id"])


# --- sipp ---------------------------------------------------------------------------


def start_agent(work: Path) -> subprocess.Popen[bytes]:
    argv = [find_sipp(), "-sn", "uas", "-rtp_echo", "-i", "127.0.0.1", "-p", str(AGENT_PORT)]
    argv += ["-mp", str(free_port("127.0.0.1", step=4)), "-nostdin"]
    proc = subprocess.Popen(argv, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return proc


def start_callers(work: Path, target: str, calls: int, hold: float) -> subprocess.Popen[bytes]:
    """One sipp placing ``calls`` calls at once, each playing speech for ``hold`` s."""
    voice = work / "caller.pcap"
    pcap.write_pcap(voice, pcap.build_stream(speech_like(hold, seed=5)))
    scenario = work / "callers.xml"
    fields = {
        "from": '"bench" <sip:99000000@[local_ip]:[local_port]>',
        "pcap": str(voice),
        "hold_ms": str(round(hold * 1000)),
        "name": "bench",
    }
    scenario.write_text(render(fields))
    argv = [find_sipp(), target, "-sf", str(scenario), "-s", EXTEN]
    argv += ["-i", "127.0.0.1", "-p", str(free_port("127.0.0.1"))]
    argv += ["-mp", str(free_port("127.0.0.1", step=4)), "-nostdin"]
    argv += ["-m", str(calls), "-l", str(calls), "-r", "10"]
    return subprocess.Popen(argv, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# --- one measurement ----------------------------------------------------------------


@dataclass
class Sample:
    mode: str
    calls: int
    cpu: float  # Asterisk CPU seconds over the window
    seconds: float
    pps: dict[str, float]  # packets per second per stream, by spy direction

    @property
    def ms_per_call_second(self) -> float:
        return 1000 * self.cpu / (self.calls * self.seconds)


async def measure(
    mode: str, args: argparse.Namespace, driver: Driver, sink: Sink, pid: int, work: Path
) -> Sample:
    driver.mode, driver.calls, driver.ready = mode, 0, 0
    driver.sources.clear()
    hold = args.seconds + 30
    callers = start_callers(work, os.environ["CALLREC_TEST_SIP_TARGET"], args.calls, hold)
    try:
        deadline = time.monotonic() + 60
        while driver.ready < args.calls:
            if time.monotonic() > deadline or driver.failures:
                raise SystemExit(f"{mode}: {driver.ready}/{args.calls} up; {driver.failures[:3]}")
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)  # every stream flowing
        channels = len(await driver.client.list_channels())
        if channels != args.calls * CHANNELS[mode]:
            raise SystemExit(f"{mode}: {channels} channels, expected {CHANNELS[mode]} per call")
        sink.by_port.clear()
        t0, c0 = time.monotonic(), cpu_seconds(pid)
        await asyncio.sleep(args.seconds)
        c1, t1 = cpu_seconds(pid), time.monotonic()
        counts = dict(sink.by_port)
    finally:
        await clean(driver.client)
        callers.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            callers.wait(10)
        await asyncio.sleep(3.0)
    per_spy: dict[str, list[float]] = {}
    for port, spy in driver.sources.items():
        per_spy.setdefault(spy, []).append(counts.get(port, 0) / (t1 - t0))
    pps = {spy: statistics.mean(v) for spy, v in per_spy.items()}
    return Sample(mode, args.calls, c1 - c0, t1 - t0, pps)


async def idle_cpu(pid: int, seconds: float) -> float:
    c0, t0 = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    return (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


async def run(args: argparse.Namespace) -> int:
    env = os.environ
    pid = asterisk_pid(env["CALLREC_TEST_PBX_RUNDIR"])
    loop = asyncio.get_running_loop()
    transport, sink = await loop.create_datagram_endpoint(Sink, local_addr=("127.0.0.1", 0))
    host, port = transport.get_extra_info("sockname")[:2]
    url, user = env["CALLREC_TEST_ARI_URL"], env.get("CALLREC_TEST_ARI_USER", "callrec")
    client = AriClient(url, user, env.get("CALLREC_TEST_ARI_PASSWORD", "callrec-test"), APP)
    driver = Driver(client, EventRouter(), f"{host}:{port}")
    connected = asyncio.Event()
    pumping = asyncio.create_task(pump(client, driver, connected))
    await asyncio.wait_for(connected.wait(), 10)
    samples: list[Sample] = []
    with tempfile.TemporaryDirectory(prefix="callrec-bench-pbx-") as tmp:
        work = Path(tmp)
        agent = start_agent(work)
        try:
            idle = await idle_cpu(pid, 5)
            print(
                f"bench_pbx_stereo: {args.calls} concurrent calls, {args.seconds:.0f} s windows, "
                f"{args.rounds} rounds, {os.cpu_count()} CPUs; Asterisk idle "
                f"{100 * idle:.1f} % of a core",
                flush=True,
            )
            for round_no in range(args.rounds):
                for mode in args.modes:
                    sample = await measure(mode, args, driver, sink, pid, work)
                    samples.append(sample)
                    print(
                        f"  round {round_no + 1} {mode:10s} "
                        f"{100 * sample.cpu / sample.seconds:5.1f} % of a core, "
                        f"{sample.ms_per_call_second:6.2f} ms CPU per call-second; RTP "
                        + ", ".join(f"spy {s}: {v:.1f}/s" for s, v in sorted(sample.pps.items())),
                        flush=True,
                    )
        finally:
            agent.kill()
            agent.wait()
            pumping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pumping
            await client.close()
            transport.close()
    report(samples, args.modes)
    return 0


def report(samples: list[Sample], modes: list[str]) -> None:
    median = {
        m: statistics.median(s.ms_per_call_second for s in samples if s.mode == m) for m in modes
    }
    base = median.get("unrecorded", 0.0)
    mixed_extra = median.get("mixed", 0.0) - base
    print("\nAsterisk CPU per call-second (median of the rounds):")
    for mode in modes:
        extra = median[mode] - base
        ratio = (
            f", {extra / mixed_extra:.2f} x mixed" if mixed_extra > 0 and mode != "mixed" else ""
        )
        above = "" if mode == "unrecorded" else f", +{extra:.2f} ms above unrecorded{ratio}"
        print(f"  {mode:10s} {median[mode]:6.2f} ms{above}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args()
    args.modes = args.modes.split(",")
    for name in ("CALLREC_TEST_ARI_URL", "CALLREC_TEST_SIP_TARGET", "CALLREC_TEST_PBX_RUNDIR"):
        if not os.environ.get(name):
            # bench/run_all.py runs every benchmark; this one needs the test PBX.
            print(f"bench_pbx_stereo: skipped, {name} is not set (run it under tests/pbx/run)")
            return 0
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
