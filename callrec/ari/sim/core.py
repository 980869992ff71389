"""One simulated Asterisk boot: its state and how its events leave it.

Everything the transitions (:mod:`.engine`), the playback queue
(:mod:`.playback`) and the media mix (:mod:`.mixer`) share lives here: the
channels, bridges and playbacks of the current boot, the id counters, and
the event sinks of the connected Stasis apps. No transition happens here.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Protocol

from callrec.ari.sim import media
from callrec.ari.sim.model import (
    LOADED_MODULES,
    CallerScenario,
    DialplanStep,
    EndpointBehaviour,
    Json,
    RtpFaults,
    RtpSendStats,
    SimBridge,
    SimChannel,
    SimPlayback,
    asterisk_time,
    builtin_dialplans,
    make_event,
)
from callrec.media.codecs import MEDIA_FORMATS


class EventSink(Protocol):
    """Where one Stasis app's events go (an events websocket)."""

    def put(self, event: Json) -> None: ...


class SimCore:
    """State of one simulated Asterisk boot; :meth:`reset` is a restart."""

    def __init__(
        self,
        *,
        sounds_dir: Path | None,
        seed: int,
        external_media_start: str,
        external_media_delay: float,
        keep_payloads: bool,
    ) -> None:
        self.rng = random.Random(seed)
        self.sounds_dir = sounds_dir
        self.external_media_start = external_media_start
        self.external_media_delay = external_media_delay
        self.keep_payloads = keep_payloads
        self.endpoints: dict[str, EndpointBehaviour] = {}
        self.dialplans: dict[tuple[str, str], list[DialplanStep]] = builtin_dialplans()
        self.sinks: dict[str, set[EventSink]] = {}
        self.known_apps: set[str] = set()
        # Apps the simulator was started with: listed even before a websocket holds them.
        self.declared_apps: set[str] = set()
        # ExternalMedia formats this PBX can produce (one built without a codec
        # answers 500, as Asterisk does for format=nosuchcodec in trace 06).
        self.media_formats: set[str] = set(MEDIA_FORMATS)
        # Loaded modules (GET /asterisk/modules): name -> (description, support level).
        self.modules: dict[str, tuple[str, str]] = dict(LOADED_MODULES)
        self.events: list[Json] = []
        self.rtp_stats: dict[str, RtpSendStats] = {}
        self.default_faults = RtpFaults()
        self.reset()

    def reset(self) -> None:
        """A fresh boot: no channels, id counters from 0, a new startup time."""
        self.channels: dict[str, SimChannel] = {}
        self.bridges: dict[str, SimBridge] = {}
        self.playbacks: dict[str, SimPlayback] = {}
        self.rtp: dict[str, media.MediaSender] = {}
        self.scenarios: dict[str, CallerScenario] = {}
        self.startup_time = asterisk_time()
        self._ids = 0
        self._names = {"pjsip": 0, "local": 0, "snoop": 0, "announcer": 0}
        self._callid = 16834
        # Stasis apps Asterisk lists (GET /applications): see cleanup_apps().
        self.registered: set[str] = set()

    # --- events ----------------------------------------------------------

    def emit(self, app: str | None, event: Json) -> None:
        if app is None:
            return
        self.events.append(event)
        for sink in list(self.sinks.get(app, ())):
            sink.put(event)

    def chan_event(self, ch: SimChannel, kind: str, pre: Json | None = None, **kw: Any) -> None:
        if ch.app is not None:
            self.emit(ch.app, make_event(kind, ch.app, pre=pre, **kw, channel=ch.to_json()))

    def varset(self, ch: SimChannel, variable: str, value: str) -> None:
        self.chan_event(ch, "ChannelVarset", pre={"variable": variable, "value": value})

    def dial(self, ch: SimChannel, status: str) -> None:
        if ch.app is not None:
            event = make_event(
                "Dial",
                ch.app,
                dialstatus=status,
                forward="",
                dialstring=ch.dialstring,
                peer=ch.to_json(),
            )
            self.emit(ch.app, event)

    def app_active(self, app: str) -> bool:
        return bool(self.sinks.get(app))

    # --- Stasis apps -----------------------------------------------------

    def app_opened(self, app: str) -> None:
        """A websocket holds ``app``: it is registered (listed) and active."""
        self.registered.add(app)
        self.known_apps.add(app)

    def app_closed(self, app: str) -> None:
        """A websocket of ``app`` went; with its last one gone Asterisk cleans up."""
        if not self.app_active(app):
            self.cleanup_apps()

    def app_holds(self, app: str) -> bool:
        """``app`` is subscribed to a channel (in Stasis, or made by ARI) or a bridge."""
        held = (c for c in self.channels.values() if c.app == app and c.alive)
        return any(c.in_stasis or c.sends_destroyed for c in held) or any(
            b.app == app for b in self.bridges.values()
        )

    def cleanup_apps(self) -> None:
        """res_stasis's cleanup: every inactive app that holds nothing is removed.

        Asterisk runs it when an app's websocket closes and when a channel
        leaves Stasis, not when a bridge is destroyed: an app whose last
        bridge went after its websocket stays listed, empty, until the next
        cleanup (test PBX, tests/fixtures/pbx-sequences/app-listing*.json).
        """
        for app in list(self.registered):
            if not self.app_active(app) and not self.app_holds(app):
                self.registered.discard(app)

    def playback_owner(self, pb: SimPlayback) -> SimChannel | None:
        """The channel playing ``pb``: a channel, or the announcer of a bridge."""
        ch = self.channels.get(pb.channel_id)
        if ch is not None:
            return ch
        announcers = (b.announcer for b in self.bridges.values() if b.announcer is not None)
        return next((a for a in announcers if a.id == pb.channel_id), None)

    def update_media(self) -> None:
        """Re-decide which media streams run (the engine's mixer does; nothing here)."""

    # --- ids and tasks ---------------------------------------------------

    def new_id(self) -> str:
        self._ids += 1
        return f"{int(time.time())}.{self._ids - 1}"

    def name_counter(self, kind: str) -> int:
        self._names[kind] += 1
        return self._names[kind] - 1

    def next_sip_call_id(self) -> int:
        self._callid += 1
        return self._callid

    def new_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def spawn(self, ch: SimChannel, coro: Coroutine[Any, Any, None]) -> None:
        ch.tasks.append(asyncio.get_running_loop().create_task(coro))
