"""An in-process Asterisk 22 for tests and the demo: ARI REST, events websocket, RTP.

It behaves like the PBX recorded in ``tests/fixtures/ari-traces`` and
computes every answer from its state (channels, bridges, playbacks, snoops,
ExternalMedia), so requests with other ids or in another order get what
Asterisk would give. Layers: :mod:`.model` (state, JSON), :mod:`.media`
(audio, mixing, RTP/AudioSocket senders), :mod:`.engine` (transitions and
events), :mod:`.dial` (originate, dialplan, snoop, ExternalMedia),
:mod:`.rest` (REST resources; :mod:`.system` the Asterisk-wide ones: info,
ping, modules, applications, sounds), :mod:`.wire` (auth, JSON, errors),
:mod:`.websocket` (events); this module is the stable facade,
re-exported by :mod:`callrec.ari.sim`.

Usage::

    async with AriSimulator(sounds_dir=path) as sim:      # sim.url = "http://127.0.0.1:PORT"
        sim.add_endpoint("PJSIP/agent", EndpointBehaviour(kind="answer", answer_after=0.2))
        cid = sim.place_call(CallerScenario(exten="100", audio=wav, hangup_after=5.0,
                                            dtmf=[(1.0, "2")]))
        await sim.wait_for(lambda: sim.channel(cid) is None, timeout=10)
        stats = sim.rtp_stats(external_media_channel_id)

Facade API (stable):

- ``AriSimulator(*, user="callrec", password="callrec-secret", apps=None,
  sounds_dir=None, host="127.0.0.1", port=0, seed=0,
  external_media_start="after", external_media_delay=0.02, keep_payloads=True)``;
  ``apps`` are Stasis app names known before any websocket connects;
  ``external_media_start`` is ``"after"`` (StasisStart a little after the
  REST reply, the default: clients must wait for it), ``"before"`` or
  ``"random"`` (seeded).
- ``await start()`` / ``await stop()`` / ``async with``; ``url``, ``ari_url``, ``port``.
- ``unload_module(name)``: ``GET /asterisk/modules`` lists the trace PBX's
  callrec-related modules (``model.LOADED_MODULES``) but this one.
- Bridge playbacks (``POST /bridges/{id}/play``): an announcer the bridge
  never lists plays into it; its ExternalMedia members hear the sound.
- ``place_call(CallerScenario) -> channel id`` ("" when the From is invalid
  SIP and the call never appears, trace 09). Needs a websocket connected for
  ``scenario.app`` (see ``app_active(app)``), otherwise Stasis fails and the
  call ends silently.
- ``add_endpoint(endpoint, EndpointBehaviour)``; ``add_dialplan(context, exten, steps)``.
- ``hangup_caller(channel_id)`` (remote BYE now), ``send_dtmf(channel_id, digit)``.
- ``await restart(downtime=1.0, drop_after=1.1)`` (trace 07) and
  ``await drop_websockets()`` (abnormal close, calls and RTP carry on).
- ExternalMedia: ``format`` ulaw/alaw/slin16 over RTP (real UDP from the address
  in ``UNICASTRTP_LOCAL_*``, 50 packets/s, only while a peer in its bridge
  produces media), or ``encapsulation=audiosocket`` (slin/slin16 over TCP).
- ``channel(id)``, ``channels``, ``bridges``, ``bridge_of(channel_id)``,
  ``rtp_stats(channel_id) -> RtpSendStats`` (kept after hang-up; AudioSocket
  frames count as packets), ``rtp_faults(channel_id | "all", ...)``,
  ``events`` (every event emitted), ``request_log`` (method, path, query, status).
- ``await wait_for(predicate, timeout)``, ``await wait_idle(timeout)`` (no channels left).

Run ``python -m callrec.ari.sim --port 8088`` for manual testing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from callrec.ari.sim import rest
from callrec.ari.sim.dial import Dialer
from callrec.ari.sim.engine import SimEngine
from callrec.ari.sim.media import faults_from
from callrec.ari.sim.model import (
    CallerScenario,
    DialplanStep,
    EndpointBehaviour,
    RtpFaults,
    RtpSendStats,
    SimBridge,
    SimChannel,
)
from callrec.ari.sim.websocket import EventSockets
from callrec.ari.sim.wire import Gate, RequestLogEntry

# How long a booting Asterisk answers /ari with 404 before its 503s (real PBX).
BOOT_404_WINDOW = 0.13
# `core restart now`: from the Stasis hang-ups to the dropped connections
# (1.10 s on the test PBX, trace 07 and tests/realpbx/test_sim_agreement.py).
SHUTDOWN_TO_DROP = 1.1

__all__ = [
    "AriSimulator",
    "CallerScenario",
    "DialplanStep",
    "EndpointBehaviour",
    "RtpFaults",
    "RtpSendStats",
    "SimBridge",
    "SimChannel",
]

logger = logging.getLogger(__name__)


class AriSimulator:
    """A simulated Asterisk 22 ARI server on a real loopback port."""

    def __init__(
        self,
        *,
        user: str = "callrec",
        password: str = "callrec-secret",  # noqa: S107 - the trace PBX's test credentials
        apps: Iterable[str] | None = None,
        sounds_dir: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        external_media_start: str = "after",
        external_media_delay: float = 0.02,
        keep_payloads: bool = True,
        media_formats: Iterable[str] | None = None,
    ) -> None:
        self.gate = Gate(user, password)
        self.host, self.port = host, port
        self.engine = SimEngine(
            sounds_dir=sounds_dir,
            seed=seed,
            external_media_start=external_media_start,
            external_media_delay=external_media_delay,
            keep_payloads=keep_payloads,
        )
        if media_formats is not None:
            self.engine.media_formats = set(media_formats)
        self.dialer = Dialer(self.engine)
        self.sockets = EventSockets(self.engine)
        self._initial_apps = set(apps or ())
        self.engine.known_apps.update(self._initial_apps)
        self.engine.declared_apps = set(self._initial_apps)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    # --- life cycle ------------------------------------------------------

    @property
    def user(self) -> str:
        return self.gate.user

    @property
    def password(self) -> str:
        return self.gate.password

    @property
    def request_log(self) -> list[RequestLogEntry]:
        """Every request so far: method, path, query (``api_key`` masked), status."""
        return self.gate.request_log

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ari_url(self) -> str:
        return self.url + "/ari"

    async def start(self) -> None:
        app = rest.build_app(self.engine, self.dialer, self.gate, self.sockets)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await self._listen()
        self.port = int(self._runner.addresses[0][1])
        logger.info("ARI simulator listening on %s", self.url)

    async def _listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, self.host, self.port)
        await self._site.start()

    async def stop(self) -> None:
        self._abort_connections()  # first: the shutdown's events go nowhere
        self.engine.shutdown()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> AriSimulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def flush(self, limit: float = 0.5) -> None:
        """Wait until queued events are on the websockets (events before REST replies)."""
        await self.sockets.flush(limit)

    def _abort_connections(self) -> None:
        self.sockets.drop()
        if self._runner is not None and self._runner.server is not None:
            for handler in self._runner.server.connections:
                if handler.transport is not None:
                    handler.transport.abort()

    async def drop_websockets(self) -> None:
        """Websockets drop without a close frame; calls and RTP carry on."""
        self.sockets.drop()
        await asyncio.sleep(0)

    async def restart(self, downtime: float = 1.0, drop_after: float = SHUTDOWN_TO_DROP) -> None:
        """``core restart now`` (trace 07); returns once the new boot answers requests.

        Stasis channels get HangupRequest(4, soft) -> StasisEnd; ``drop_after`` s
        later (REST and new websockets are still answered meanwhile) every
        connection drops without a close frame; for ``downtime``/2 s
        connections are refused, then every request gets 404 (an HTML page:
        res_ari not loaded yet; about 130 ms on the real PBX) and then 503
        "Asterisk not booted" for the rest of ``downtime``/2 s; then a fresh
        boot (ids from .0, no replay).
        """
        self.engine.shutdown()
        await self.flush()
        await asyncio.sleep(drop_after)
        self._abort_connections()
        if self._site is not None:
            await self._site.stop()
        await asyncio.sleep(downtime / 2)
        loading = min(BOOT_404_WINDOW, downtime / 4)
        self.gate.loading = True
        await self._listen()
        await asyncio.sleep(loading)
        self.gate.loading = False
        self.gate.booting = True
        await asyncio.sleep(downtime / 2 - loading)
        self.engine.reset()  # the fresh boot: ids from .0, a new startup time
        self.engine.known_apps = set(self._initial_apps)
        self.gate.booting = False

    # --- scenario control ------------------------------------------------

    def place_call(self, scenario: CallerScenario) -> str:
        return self.engine.place_call(scenario)

    def app_active(self, app: str = "callrec") -> bool:
        """True while an events websocket for ``app`` is connected (calls can enter Stasis)."""
        return self.engine.app_active(app)

    def add_endpoint(self, endpoint: str, behaviour: EndpointBehaviour) -> None:
        self.engine.endpoints[endpoint] = behaviour

    def add_dialplan(self, context: str, exten: str, steps: list[DialplanStep]) -> None:
        self.engine.dialplans[(context, exten)] = list(steps)

    def hangup_caller(self, channel_id: str) -> None:
        """The far end of ``channel_id`` hangs up now (BYE)."""
        ch = self.engine.channels.get(channel_id)
        if ch is not None:
            self.engine.hangup_remote(ch)

    def fail_playback(self, channel_id: str) -> None:
        """The channel's playback ends ``failed`` and the channel stays: what a
        hang-up whose events come late looks like at first (order is no contract)."""
        ch = self.engine.channels.get(channel_id)
        if ch is not None:
            self.engine.player.fail(ch)

    def hold_requests(self, method: str, path: str) -> asyncio.Event:
        """Leave every ``method`` request for ``path`` (``/ari/...``) unanswered
        until the event returned is set; then each is carried out, even for a
        client that has gone meanwhile. :meth:`held_requests` counts them."""
        return self.gate.held.setdefault((method, path), asyncio.Event())

    def held_requests(self, method: str, path: str) -> int:
        """How many ``method`` requests for ``path`` came while held."""
        return self.gate.waiting.get((method, path), 0)

    def unload_module(self, name: str) -> None:
        """``module unload NAME``: ``GET /asterisk/modules`` no longer lists it."""
        self.engine.modules.pop(name, None)

    def send_dtmf(self, channel_id: str, digit: str, duration_ms: int = 280) -> None:
        ch = self.engine.channels.get(channel_id)
        if ch is not None:
            self.engine.chan_event(ch, "ChannelDtmfReceived", digit=digit, duration_ms=duration_ms)

    def rtp_faults(
        self,
        target: str,
        *,
        drop: Any = (),
        duplicate: Any = (),
        reorder: Any = (),
        foreign: Any = (),
        foreign_source: bool = False,
    ) -> None:
        """Inject faults into ExternalMedia streams (``target`` a channel id or "all").

        Each argument is an iterable of packet indexes or a float rate (drawn
        from the seeded generator, so runs repeat). ``reorder`` sends packet i
        after i+1; ``foreign`` sends an extra noise packet with packet i's
        header from another UDP port; ``foreign_source=True`` is ``foreign=0.05``.
        "all" also applies to ExternalMedia channels created later.
        """
        if foreign_source and not foreign:
            foreign = 0.05
        faults = faults_from(drop, duplicate, reorder, foreign)
        if target == "all":
            self.engine.default_faults = faults
            senders = list(self.engine.rtp.values())
        else:
            senders = [self.engine.rtp[target]]
        for sender in senders:
            sender.faults = faults

    # --- introspection ---------------------------------------------------

    def channel(self, channel_id: str) -> SimChannel | None:
        return self.engine.channels.get(channel_id)

    @property
    def channels(self) -> list[SimChannel]:
        return list(self.engine.channels.values())

    @property
    def bridges(self) -> list[SimBridge]:
        return list(self.engine.bridges.values())

    def bridge_of(self, channel_id: str) -> SimBridge | None:
        ch = self.engine.channels.get(channel_id)
        if ch is None or ch.bridge_id is None:
            return None
        return self.engine.bridges.get(ch.bridge_id)

    def rtp_stats(self, channel_id: str) -> RtpSendStats:
        return self.engine.rtp_stats[channel_id]

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.engine.events

    # The brief's stable API takes `timeout` arguments; predicates are arbitrary, so poll.
    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> None:
        """Poll ``predicate`` every 10 ms; TimeoutError after ``timeout`` s."""
        async with asyncio.timeout(timeout):
            while not predicate():  # noqa: ASYNC110
                await asyncio.sleep(0.01)

    async def wait_idle(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        await self.wait_for(lambda: not self.engine.channels, timeout)


async def _serve(args: argparse.Namespace) -> None:
    sim = AriSimulator(port=args.port, sounds_dir=args.sounds, apps=[args.app])
    sim.add_endpoint("PJSIP/agent", EndpointBehaviour(kind=args.agent))
    await sim.start()
    logger.info("ARI at %s (user %s)", sim.ari_url, sim.user)
    try:
        for n in range(args.calls):
            await sim.wait_for(lambda: sim.engine.app_active(args.app), timeout=3600)
            scenario = CallerScenario(
                exten=args.exten, app=args.app, audio=args.audio, hangup_after=args.hangup_after
            )
            logger.info("call %d: channel %s", n + 1, sim.place_call(scenario))
            await asyncio.sleep(args.interval)
        await asyncio.Event().wait()
    finally:
        await sim.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m callrec.ari.sim``: a simulator on a fixed port for manual tests."""
    parser = argparse.ArgumentParser(description="Run the callrec ARI simulator")
    parser.add_argument("--port", type=int, default=8088)
    parser.add_argument("--sounds", type=Path, default=None, help="sounds_dir/<lang>/NAME.wav")
    parser.add_argument("--app", default="callrec")
    parser.add_argument(
        "--calls", type=int, default=0, help="callers to place once the app connects"
    )
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between callers")
    parser.add_argument("--exten", default="100")
    parser.add_argument("--audio", type=Path, default=None, help="WAV the callers speak")
    parser.add_argument("--hangup-after", type=float, default=None)
    parser.add_argument(
        "--agent", default="answer", choices=["answer", "busy", "no-answer", "absent"]
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0
