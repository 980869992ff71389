"""One scenario script, two PBXs: the event sequences of the simulator and of Asterisk 22.

A scenario (:mod:`tests.callrec.ari.agreement_scenarios`) drives a PBX
through ARI REST only, with its own Stasis app (:data:`APP`) and events
websocket, so the simulator and the real PBX get identical requests. The
only things a :class:`Side` does differently are placing the caller (a sipp
UAC dialling :data:`EXTEN` on the real PBX, ``place_call`` on the simulator)
and ``core restart now``.

What a run yields is normalised (:func:`normalise`): per channel *role*
(caller, destination, snoop, externalmedia, bridge, ...) instead of id, the
event types in order with the fields an app acts on (channel state, args,
causes, digit, playback state and media, bridge membership), ChannelVarset
left out (no app reads them and their set follows RTCP). Scenarios add
notes: REST outcomes such as an app listing or a reconnect's shape.

``tests/fixtures/pbx-sequences/<scenario>.json`` holds what the real PBX did
(written by the real-PBX test under ``CALLREC_RECORD_SEQUENCES=1``), so the
plain test run compares the simulator against it without a PBX.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import numpy as np
import soundfile

from callrec.ari.causes import SoftHangup
from callrec.ari.sim import AriSimulator, CallerScenario, EndpointBehaviour

Json = dict[str, Any]

APP = "callrec-agree"
# tests/pbx/conf/extensions.conf: from-caller, exten "agree" -> Stasis(callrec-agree,agree)
EXTEN = "agree"
CALLER_NUMBER = "5550100"
CALLER_NAME = "callrec test"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "pbx-sequences"
RECORD_ENV = "CALLREC_RECORD_SEQUENCES"

# Sounds every side plays: written by write_sounds() into <sounds>/en/.
SHORT_SOUND, LONG_SOUND = "agree-short", "agree-long"

# Fields kept per event type, beside type, the channel's state and roles.
FIELDS: dict[str, tuple[str, ...]] = {
    "StasisStart": ("args",),
    "ChannelHangupRequest": ("cause", "soft", "tech_cause"),
    "ChannelDestroyed": ("cause", "cause_txt", "tech_cause"),
    "ChannelDtmfReceived": ("digit",),
}
# ChannelHangupRequest's soft-hangup flag of `core restart now` (trace 07).
SHUTDOWN = SoftHangup.SHUTDOWN.value
# Roles by channel name, for channels no scenario named (so extras show up too).
NAME_ROLES = (
    ("PJSIP/caller-", "caller"),
    ("Snoop/", "snoop"),
    ("UnicastRTP/", "externalmedia"),
)


@dataclass(frozen=True)
class Timing:
    """Seconds a scenario waits for; the real PBX needs room, the simulator less."""

    short: float  # the short sound's length
    long: float  # the long sound's length (outlasts every step that interrupts it)
    settle: float  # time for a few REST round trips and their events
    ring: float  # originate timeout of the unanswered destination


REAL = Timing(short=1.0, long=15.0, settle=1.5, ring=2.0)
FAST = Timing(short=0.2, long=4.0, settle=0.4, ring=1.0)


@dataclass(frozen=True)
class CallerPlan:
    """What the caller does, in seconds after it is answered (None: stays)."""

    hold: float | None
    digit_at: float | None = None
    digit: str = "2"


class Side(Protocol):
    """A PBX the scenarios drive: its ARI, its caller, its restart."""

    ari_url: str
    user: str
    password: str

    async def place_caller(self, plan: CallerPlan) -> None:
        """Start a caller dialling :data:`EXTEN` (returns before it is answered)."""

    async def restart(self) -> None:
        """``core restart now``; returns once ARI answers again."""

    async def finish(self) -> None:
        """The scenario is over: wait for callers to end, remove leftovers."""


def write_sounds(sounds: Path, timing: Timing) -> None:
    """The scenario sounds as 8 kHz WAVs in ``sounds/en`` (Asterisk and simulator alike)."""
    (sounds / "en").mkdir(parents=True, exist_ok=True)
    for name, seconds in ((SHORT_SOUND, timing.short), (LONG_SOUND, timing.long)):
        t = np.arange(round(seconds * 8000)) / 8000.0
        tone = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
        soundfile.write(str(sounds / "en" / f"{name}.wav"), tone, 8000, subtype="PCM_16")


class SimSide:
    """The simulator as a :class:`Side`: the destinations of tests/pbx/conf/pjsip.conf."""

    def __init__(self, sim: AriSimulator) -> None:
        self.sim = sim
        self.ari_url, self.user, self.password = sim.url, sim.user, sim.password
        sim.add_endpoint("PJSIP/agent", EndpointBehaviour(kind="answer", answer_after=0.05))
        sim.add_endpoint("PJSIP/busy", EndpointBehaviour(kind="busy", answer_after=0.05))
        sim.add_endpoint("PJSIP/away", EndpointBehaviour(kind="no-answer"))

    async def place_caller(self, plan: CallerPlan) -> None:
        dtmf = [] if plan.digit_at is None else [(plan.digit_at, plan.digit)]
        scenario = CallerScenario(
            exten=EXTEN,
            app=APP,
            caller_name=CALLER_NAME,
            caller_number=CALLER_NUMBER,
            hangup_after=plan.hold,
            dtmf=dtmf,
        )
        self.sim.place_call(scenario)

    async def restart(self) -> None:
        await self.sim.restart()

    async def finish(self) -> None:
        """Nothing to wait for: stopping the simulator ends what is left."""


@contextlib.asynccontextmanager
async def simulator(sounds: Path, timing: Timing) -> AsyncIterator[SimSide]:
    write_sounds(sounds, timing)
    async with AriSimulator(sounds_dir=sounds, seed=3) as sim:
        yield SimSide(sim)


@dataclass
class Reply:
    status: int
    body: Any


class EventSocket:
    """One events websocket; every event it receives goes to ``sink`` in arrival order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, sink: list[Json]) -> None:
        self.ws, self.sink = ws, sink
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.sink.append(json.loads(msg.data))
        self.close_code = self.ws.close_code
        self.closed.set()

    async def close(self) -> None:
        """A clean close (close frame), as a recorder that stops sends."""
        await self.ws.close()
        await self.closed.wait()

    async def drop(self) -> None:
        """The connection is cut under the websocket: no close frame either way."""
        sock = self.ws.get_extra_info("socket")
        sock.shutdown(socket.SHUT_RDWR)
        await self.closed.wait()


class Session:
    """A scenario's ARI client: REST, its events websocket(s), roles and notes."""

    def __init__(self, side: Side, timing: Timing) -> None:
        self.side, self.timing = side, timing
        self.events: list[Json] = []
        self.roles: dict[str, str] = {}
        self.notes: Json = {}
        # Timings worth knowing but no contract (never compared).
        self.measured: dict[str, float] = {}
        self.socket: EventSocket | None = None
        self._taken: Counter[tuple[str, str]] = Counter()
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Session:
        auth = aiohttp.encode_basic_auth(self.side.user, self.side.password)
        self._http = aiohttp.ClientSession(headers={"Authorization": auth})
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.socket is not None and not self.socket.closed.is_set():
            await self.socket.close()
            # Asterisk destroys a closed app a moment later; a new websocket for it
            # within that moment joins the dying app, and the next Stasis() call
            # then fails with "Stasis app ... doesn't exist" (seen on the test PBX).
            await asyncio.sleep(0.3)
        if self._http is not None:
            await self._http.close()

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self._http is not None, "use the session in 'async with'"
        return self._http

    def events_url(self, app: str) -> str:
        key = f"{self.side.user}:{self.side.password}"
        return f"{self.side.ari_url}/ari/events?app={app}&api_key={key}"

    async def open_socket(self, app: str, sink: list[Json]) -> EventSocket:
        ws = await self.http.ws_connect(self.events_url(app), autoping=True)
        return EventSocket(ws, sink)

    async def connect(self) -> None:
        """(Re)connect the scenario's own events websocket."""
        self.socket = await self.open_socket(APP, self.events)

    async def rest(self, method: str, path: str, **query: str) -> Reply:
        url = f"{self.side.ari_url}/ari{path}"
        async with self.http.request(method, url, params=query) as resp:
            text = await resp.text()
            if resp.content_type == "application/json" and text:
                return Reply(resp.status, json.loads(text))
            return Reply(resp.status, text or None)

    async def ok(self, method: str, path: str, **query: str) -> Any:
        reply = await self.rest(method, path, **query)
        assert reply.status < 300, f"{method} {path}: {reply.status} {reply.body}"
        return reply.body

    def name(self, role: str, ident: str) -> str:
        self.roles[ident] = role
        return ident

    def id(self, role: str) -> str:
        return next(i for i, r in self.roles.items() if r == role)

    def role(self, ident: str, name: str = "") -> str:
        if ident in self.roles:
            return self.roles[ident]
        fallback = next((r for prefix, r in NAME_ROLES if name.startswith(prefix)), "other")
        return f"{fallback}?"  # a channel no step of the scenario asked for

    async def expect(self, role: str, kind: str, within: float = 30.0) -> Json:
        """The next event ``kind`` of ``role`` not yet taken (waits for it)."""
        wanted = self._taken[(role, kind)]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            found = [e for e in self.events if e["type"] == kind and self.role_of(e) == role]
            if len(found) > wanted:
                self._taken[(role, kind)] += 1
                return found[wanted]
            await asyncio.sleep(0.01)
        seen = normalise(self).get(role, [])
        raise AssertionError(f"no {kind} #{wanted + 1} for {role} within {within} s; got {seen}")

    def role_of(self, event: Json) -> str:
        """The role an event belongs to; the first SIP caller to show up is "caller"."""
        ident, name = key_of(event)
        first_caller = "caller" not in self.roles.values() and name.startswith("PJSIP/caller-")
        if ident not in self.roles and first_caller:
            self.roles[ident] = "caller"
        return self.role(ident, name)

    async def caller(self, plan: CallerPlan) -> str:
        """Place the caller and wait until it is in Stasis: its channel id."""
        await self.side.place_caller(plan)
        return str((await self.expect("caller", "StasisStart"))["channel"]["id"])

    def note(self, key: str, value: Any) -> None:
        self.notes[key] = value


def key_of(event: Json) -> tuple[str, str]:
    """Whose sequence an event belongs to: (id, channel name or "")."""
    chan = event.get("channel") or event.get("peer")
    if chan is not None:
        return str(chan["id"]), str(chan.get("name", ""))
    if "playback" in event:
        target = str(event["playback"]["target_uri"])
        return target.partition(":")[2], ""
    if "bridge" in event:
        return str(event["bridge"]["id"]), ""
    return "", ""


def normalise(session: Session) -> dict[str, list[Json]]:
    """Per role, the events in arrival order with the fields an app acts on."""
    out: dict[str, list[Json]] = {}
    shutting_down: set[str] = set()
    for event in session.events:
        if event["type"] == "ChannelVarset":
            continue
        role = session.role_of(event)
        if event["type"] == "ChannelHangupRequest" and event.get("cause") == SHUTDOWN:
            shutting_down.add(role)
        if event["type"] == "Dial":
            # Dial events have a topic of their own: the test PBX sends them before
            # or after the channel's state changes (both seen), in their own order.
            out.setdefault(f"{role} dial", []).append({"dialstatus": event["dialstatus"]})
            continue
        fields = _fields(session, event)
        if role in shutting_down and event["type"] == "ChannelLeftBridge":
            # A shutdown hangs up every channel at once: who leaves a bridge
            # first, and so who is still in it, varies (both seen on the test PBX).
            del fields["members"]
        out.setdefault(role, []).append(fields)
    return out


def _fields(session: Session, event: Json) -> Json:
    kind = str(event["type"])
    out: Json = {"type": kind}
    chan = event.get("channel") or event.get("peer")
    if chan is not None:
        out["state"] = chan["state"]
    for name in FIELDS.get(kind, ()):
        if name in event:
            out[name] = event[name]
    if kind == "StasisStart":
        out["caller"] = event["channel"]["caller"]["number"]
    if "playback" in event:
        out["media"] = event["playback"]["media_uri"]
        out["state"] = event["playback"]["state"]
    if "bridge" in event and kind != "BridgeDestroyed":
        bridge = event["bridge"]
        out["bridge"] = session.role(str(bridge["id"]))
        out["members"] = sorted(session.role(str(c)) for c in bridge["channels"])
    return out


Scenario = Callable[[Session], Any]


async def record(scenario: Scenario, side: Side, timing: Timing) -> Json:
    """Run ``scenario`` against ``side``: its normalised events and notes."""
    async with Session(side, timing) as session:
        await session.connect()
        try:
            await scenario(session)
            await asyncio.sleep(0.3)  # trailing events
        finally:
            await side.finish()
        return {"events": normalise(session), "notes": session.notes, "measured": session.measured}


@dataclass
class RtpTap:
    """A UDP port an ExternalMedia channel sends to; what arrives, summarised."""

    packets: list[bytes] = field(default_factory=list)
    transport: asyncio.DatagramTransport | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def host_port(self) -> str:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return f"{host}:{port}"

    async def open(self) -> RtpTap:
        loop = asyncio.get_running_loop()
        tap = self

        class _Proto(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
                tap.packets.append(data)
                tap.arrived.set()

        self.transport, _ = await loop.create_datagram_endpoint(
            _Proto, local_addr=("127.0.0.1", 0)
        )
        return self

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def wait(self, count: int, within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while len(self.packets) < count:
                self.arrived.clear()
                await self.arrived.wait()

    def summary(self) -> Json:
        """Payload type, payload size and timestamp step (most common of each)."""
        heads = [p for p in self.packets if len(p) >= 12]
        types = Counter(p[1] & 0x7F for p in heads)
        sizes = Counter(len(p) - 12 for p in heads)
        stamps = [int.from_bytes(p[4:8], "big") for p in heads]
        steps = Counter((b - a) % 2**32 for a, b in itertools.pairwise(stamps))
        return {
            "payload_type": types.most_common(1)[0][0] if types else None,
            "payload_bytes": sizes.most_common(1)[0][0] if sizes else None,
            "ts_step": steps.most_common(1)[0][0] if steps else None,
        }


# --- fixtures -----------------------------------------------------------------


def fixture_path(name: str) -> Path:
    return FIXTURES / f"{name}.json"


def load_fixture(name: str) -> Json:
    data: Json = json.loads(fixture_path(name).read_text(encoding="utf-8"))
    return {"events": data["events"], "notes": data["notes"]}


def save_fixture(name: str, recorded: Json, source: str) -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    # Roles in name order: a re-recording changes the file only where Asterisk changed.
    events = dict(sorted(recorded["events"].items()))
    data = {"recorded_from": source, "events": events, "notes": recorded["notes"]}
    text = json.dumps(data, indent=1, ensure_ascii=False, sort_keys=False) + "\n"
    fixture_path(name).write_text(text, encoding="utf-8")


def differences(want: Json, got: Json, want_label: str, got_label: str) -> list[str]:
    """Readable lines for each role or note where ``got`` differs from ``want``."""
    lines = []
    for section in ("events", "notes"):
        a, b = want.get(section, {}), got.get(section, {})
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                lines.append(f"{section}[{key}]:")
                lines.append(f"  {want_label}: {json.dumps(a.get(key), ensure_ascii=False)}")
                lines.append(f"  {got_label}: {json.dumps(b.get(key), ensure_ascii=False)}")
    return lines
