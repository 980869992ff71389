"""The ARI simulator's state machine: channels, bridges, playbacks and their events.

Every method computes its outcome from the current state (never from a
recorded trace) and emits events in the order Asterisk 22 does (see
``tests/fixtures/ari-traces/README.md``). Methods are synchronous where
Asterisk answers synchronously, so a REST handler that calls them and then
flushes the event queues delivers the events before its reply, as the
traces show for answer and DELETE.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Protocol

from callrec.ari.sim import media
from callrec.ari.sim.dial import Dialer
from callrec.ari.sim.model import (
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
    callerid_name,
    callerid_number,
    make_event,
    media_duration,
)

logger = logging.getLogger(__name__)

_QOS = ("RTPAUDIOQOS", "RTPAUDIOQOSJITTER", "RTPAUDIOQOSLOSS", "RTPAUDIOQOSRTT", "RTPAUDIOQOSMES")


class EventSink(Protocol):
    def put(self, event: Json) -> None: ...


class SimEngine:
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
        # ExternalMedia formats this PBX can produce (one built without a codec
        # answers 500, as Asterisk does for format=nosuchcodec in trace 06).
        self.media_formats: set[str] = set(media.FORMATS)
        self.events: list[Json] = []
        self.rtp_stats: dict[str, RtpSendStats] = {}
        self.default_faults = RtpFaults()
        self.dialer = Dialer(self)
        self.mixer = media.Mixer(self)
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
        self._names = {"pjsip": 0, "local": 0, "snoop": 0}
        self._callid = 16834

    # --- plumbing --------------------------------------------------------

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

    def new_id(self) -> str:
        self._ids += 1
        return f"{int(time.time())}.{self._ids - 1}"

    def name_counter(self, kind: str) -> int:
        self._names[kind] += 1
        return self._names[kind] - 1

    def new_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def spawn(self, ch: SimChannel, coro: Coroutine[Any, Any, None]) -> None:
        ch.tasks.append(asyncio.get_running_loop().create_task(coro))

    def app_active(self, app: str) -> bool:
        return bool(self.sinks.get(app))

    # --- callers ---------------------------------------------------------

    def place_call(self, sc: CallerScenario) -> str:
        number = callerid_number(sc.caller_number)
        if number is None:
            logger.warning("simulated caller dropped: From user part is not valid SIP")
            return ""
        self._callid += 1
        ch = SimChannel(
            id=self.new_id(),
            name=f"PJSIP/{sc.endpoint}-{self.name_counter('pjsip'):08x}",
            kind="caller",
            state="Ring",
            protocol_id=f"1-{self._callid}@127.0.0.1",
            caller_name=callerid_name(sc.caller_name),
            caller_number=number,
            creationtime=asterisk_time(),
            language=sc.language,
        )
        args = [sc.exten] if sc.app_args is None else list(sc.app_args)
        ch.set_dialplan(sc.context, sc.exten, 2, "Stasis", ",".join([sc.app, *args]))
        ch.audio = media.load_audio(sc.audio, sc.audio_rate)
        self.channels[ch.id] = ch
        self.scenarios[ch.id] = sc
        if not self.app_active(sc.app):
            # Stasis() of an unregistered app fails; the dialplan then hangs up.
            logger.warning("channel %s: Stasis app %s not registered", ch.id, sc.app)
            self.dispose(ch)
            return ch.id
        ch.app, ch.in_stasis = sc.app, True
        self.chan_event(ch, "StasisStart", args=args)
        if sc.abandon_after is not None:
            self.spawn(ch, self._abandon(ch, sc.abandon_after))
        return ch.id

    async def _abandon(self, ch: SimChannel, delay: float) -> None:
        await asyncio.sleep(delay)
        if ch.state != "Up":
            self.hangup_remote(ch)

    async def _caller_script(self, ch: SimChannel, sc: CallerScenario) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        steps: list[tuple[float, str]] = sorted(sc.dtmf)
        if sc.hangup_after is not None:
            steps.append((sc.hangup_after, ""))
            steps.sort(key=lambda s: (s[0], s[1] == ""))
        for at, digit in steps:
            await asyncio.sleep(max(0.0, t0 + at - loop.time()))
            if digit:
                self.chan_event(ch, "ChannelDtmfReceived", digit=digit, duration_ms=280)
            else:
                self.hangup_remote(ch)
                return

    # --- channel operations ----------------------------------------------

    def answer(self, ch: SimChannel) -> None:
        if ch.state == "Up":
            return
        self.set_up(ch)
        sc = self.scenarios.get(ch.id)
        if sc is not None:
            self.spawn(ch, self._caller_script(ch, sc))

    def set_up(self, ch: SimChannel) -> None:
        ch.state = "Up"
        ch.media_start = asyncio.get_running_loop().time()
        self.chan_event(ch, "ChannelStateChange")
        self.update_media()

    async def wait_control(self, ch: SimChannel) -> None:
        """Commands queue behind a playback on the channel (trace README, "Playback")."""
        while ch.alive and not ch.control_idle.is_set():
            await ch.control_idle.wait()

    def hangup_ari(self, ch: SimChannel) -> None:
        """``DELETE /channels/{id}``: soft hang-up flag 32, whatever reason was given."""
        if ch.kind in ("pjsip", "local") and ch.state != "Up":
            self.end_unanswered(ch, {"cause": 32, "soft": True}, "CANCEL", 16, "Normal Clearing")
            return
        self.teardown(ch, {"cause": 32, "soft": True}, qos=True)

    def end_unanswered(
        self,
        ch: SimChannel,
        request: Json,
        dial_status: str,
        cause: int,
        text: str,
        tech_cause: int | None = None,
    ) -> None:
        """An outbound leg ends before answering: hang-up request, Dial result, destroyed."""
        ch.alive = False
        self.chan_event(ch, "ChannelHangupRequest", pre=request)
        self.dial(ch, dial_status)
        self.destroyed(ch, cause, text, tech_cause)
        self.dispose(ch)

    def hangup_remote(self, ch: SimChannel) -> None:
        """The far end sent BYE: no cause in ChannelHangupRequest."""
        self.teardown(ch, {}, qos=True)

    def teardown(self, ch: SimChannel, request: Json | None, *, qos: bool) -> None:
        if not ch.alive:
            return
        ch.alive = False
        if qos and ch.kind in ("caller", "pjsip") and ch.state == "Up":
            self._qos_report(ch)
        if request is not None:
            self.chan_event(ch, "ChannelHangupRequest", pre=request)
        self._fail_playbacks(ch)
        if ch.bridge_id is not None:
            self._leave(self.bridges[ch.bridge_id], ch)
        for snoop in [c for c in self.channels.values() if c.snoop_target == ch.id]:
            self._end_snoop(snoop)
        self._stasis_end(ch)
        if request is not None and request.get("cause") != 4:
            self.destroyed(ch, 16, "Normal Clearing")
        self.dispose(ch)

    def _qos_report(self, ch: SimChannel) -> None:
        """RTP statistics at hang-up; a two-party peer gets the *BRIDGED copies (trace 01)."""
        br = self.bridges.get(ch.bridge_id or "")
        peers = [c for c in br.channels if c != ch.id] if br is not None else []
        peer = self.channels.get(peers[0]) if len(peers) == 1 else None
        for var in _QOS:
            self.varset(ch, var, "ssrc=0;themssrc=0;lp=0;rxjitter=0.000000;rxcount=0")
            if peer is not None:
                self.varset(peer, var + "BRIDGED", "ssrc=0;themssrc=0;lp=0")

    def _stasis_end(self, ch: SimChannel) -> None:
        if ch.in_stasis:
            ch.in_stasis = False
            self.chan_event(ch, "StasisEnd")
            if ch.sends_destroyed:
                self.varset(ch, "STASISSTATUS", "SUCCESS")

    def destroyed(self, ch: SimChannel, cause: int, text: str, tech: int | None = None) -> None:
        if not ch.sends_destroyed:
            return
        ch.set_dialplan(*ch.saved_dialplan)
        fields: Json = {"cause": cause, "cause_txt": text}
        if tech is not None:
            fields["tech_cause"] = tech
        self.chan_event(ch, "ChannelDestroyed", **fields)

    def _end_snoop(self, snoop: SimChannel) -> None:
        """The snooped channel is gone: the Snoop leaves its bridge and Stasis, nothing else."""
        if not snoop.alive:
            return
        snoop.alive = False
        if snoop.bridge_id is not None:
            self._leave(self.bridges[snoop.bridge_id], snoop)
        self._stasis_end(snoop)
        self.dispose(snoop)

    def dispose(self, ch: SimChannel) -> None:
        ch.alive = False
        current = asyncio.current_task()
        for task in [*ch.tasks, ch.playback_task]:
            if task is not None and task is not current:
                task.cancel()
        sender = self.rtp.pop(ch.id, None)
        if sender is not None:
            sender.close()
        self.channels.pop(ch.id, None)
        ch.control_idle.set()

    def continue_in_dialplan(self, ch: SimChannel) -> None:
        """``POST /continue``: the channel leaves Stasis and runs on (here: to its hang-up)."""
        if ch.bridge_id is not None:
            self._leave(self.bridges[ch.bridge_id], ch)
        self._stasis_end(ch)
        ch.alive = False
        self.dispose(ch)

    def set_variable(self, ch: SimChannel, name: str, value: str) -> None:
        ch.variables[name] = value
        self.varset(ch, name, value)

    def get_variable(self, ch: SimChannel, name: str) -> str | None:
        special = {
            "CALLERID(name)": ch.caller_name,
            "CALLERID(num)": ch.caller_number,
            "CALLERID(number)": ch.caller_number,
            "CALLERID(all)": f'"{ch.caller_name}" <{ch.caller_number}>',
            "CONNECTEDLINE(name)": ch.connected_name,
            "CONNECTEDLINE(num)": ch.connected_number,
            "CHANNEL(language)": ch.language,
            "CHANNEL(name)": ch.name,
            "UNIQUEID": ch.id,
        }
        if name in special:
            return special[name]
        return ch.variables.get(name)

    # --- playbacks -------------------------------------------------------

    def play(self, ch: SimChannel, media: list[str], playback_id: str | None, lang: str) -> Json:
        pb = SimPlayback(playback_id or self.new_uuid(), media, ch.id, lang or ch.language)
        self.playbacks.setdefault(pb.id, pb)
        reply = pb.to_json()
        ch.playbacks.append(pb)
        ch.control_idle.clear()
        if ch.playback_task is None or ch.playback_task.done():
            ch.playback_task = asyncio.get_running_loop().create_task(self._run_playbacks(ch))
        return reply

    async def _run_playbacks(self, ch: SimChannel) -> None:
        while ch.alive and ch.playbacks:
            pb = ch.playbacks.popleft()
            if pb.over:
                continue
            ch.current_playback = pb
            await self._play_one(ch, pb)
            ch.current_playback = None
        ch.control_idle.set()

    async def _play_one(self, ch: SimChannel, pb: SimPlayback) -> None:
        self.playbacks[pb.id] = pb
        for i, uri in enumerate(pb.media):
            pb.index, pb.state = i, "playing"
            self._pb_event(ch, "PlaybackStarted", pb)
            length = media_duration(self.sounds_dir, uri, pb.language)
            last = i == len(pb.media) - 1
            if length == "never":
                # Unknown scheme: Started, never Finished, gone at once (trace 06).
                pb.over = True
                self._unregister(pb)
                return
            if isinstance(length, float):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(pb.stop.wait(), length)
                if pb.over:
                    return
            if last:
                self._finish(ch, pb, "done" if isinstance(length, float) else "failed")
                return
            pb.state = "continuing"
            self._pb_event(ch, "PlaybackContinuing", pb)

    def _pb_event(self, ch: SimChannel, kind: str, pb: SimPlayback) -> None:
        if ch.app is not None:
            self.emit(ch.app, make_event(kind, ch.app, playback=pb.to_json()))

    def _finish(self, ch: SimChannel, pb: SimPlayback, state: str) -> None:
        pb.over, pb.state = True, state
        self._pb_event(ch, "PlaybackFinished", pb)
        self._unregister(pb)

    def _unregister(self, pb: SimPlayback) -> None:
        if self.playbacks.get(pb.id) is pb:
            del self.playbacks[pb.id]

    def stop_playback(self, pb: SimPlayback) -> None:
        """``DELETE /playbacks/{id}``: PlaybackFinished ``done`` before the 204 (trace 03)."""
        ch = self.channels.get(pb.channel_id)
        if ch is None or ch.current_playback is not pb:
            pb.over = True
            self._unregister(pb)
            return
        self._finish(ch, pb, "done")
        pb.stop.set()

    def _fail_playbacks(self, ch: SimChannel) -> None:
        pb = ch.current_playback
        if pb is not None and not pb.over:
            self._finish(ch, pb, "failed")
        for queued in ch.playbacks:
            queued.over = True
            self._unregister(queued)
        ch.playbacks.clear()

    # --- bridges ---------------------------------------------------------

    def create_bridge(self, app: str | None, types: str, name: str, bridge_id: str) -> SimBridge:
        existing = self.bridges.get(bridge_id)
        if existing is not None:
            return existing
        holding = "holding" in types.split(",")
        br = SimBridge(
            id=bridge_id or self.new_uuid(),
            name=name,
            bridge_type="holding" if holding else "mixing",
            creationtime=asterisk_time(),
            app=app,
            technology="holding_bridge" if holding else "simple_bridge",
        )
        self.bridges[br.id] = br
        return br

    def _bridge_event(self, br: SimBridge, ch: SimChannel, kind: str) -> None:
        for app in {a for a in (ch.app, br.app) if a is not None}:
            self.emit(app, make_event(kind, app, bridge=br.to_json(), channel=ch.to_json()))

    def add_to_bridge(self, br: SimBridge, ch: SimChannel) -> None:
        if ch.bridge_id is not None and ch.bridge_id in self.bridges:
            self._leave(self.bridges[ch.bridge_id], ch)
        br.channels.append(ch.id)
        ch.bridge_id = br.id
        if br.app is None:
            br.app = ch.app  # the app is subscribed to the bridge from its first member on
        self._bridge_event(br, ch, "ChannelEnteredBridge")
        self._after_membership(br)
        if br.bridge_type == "mixing" and len(br.channels) >= 3:
            br.technology = "softmix"

    def remove_from_bridge(self, br: SimBridge, ch: SimChannel) -> None:
        self._leave(br, ch)

    def _leave(self, br: SimBridge, ch: SimChannel) -> None:
        br.channels.remove(ch.id)
        ch.bridge_id = None
        self._bridge_var(ch, "BRIDGEPEER", "")
        self._bridge_var(ch, "BRIDGEPVTCALLID", "")
        self._bridge_event(br, ch, "ChannelLeftBridge")
        self._after_membership(br)
        if br.bridge_type == "mixing" and len(br.channels) <= 2:
            br.technology = "simple_bridge"

    def _after_membership(self, br: SimBridge) -> None:
        members = [self.channels[c] for c in br.channels if c in self.channels]
        for m in members:
            # A member left alone keeps its stale values until it leaves (traces 01, 03).
            others = [o for o in members if o is not m]
            if others:
                self._bridge_var(m, "BRIDGEPEER", ",".join(o.name for o in others))
                call_id = others[0].protocol_id if len(others) == 1 else ""
                self._bridge_var(m, "BRIDGEPVTCALLID", call_id)
        if len(members) == 2:
            for m, other in ((members[0], members[1]), (members[1], members[0])):
                new = (other.caller_name, other.caller_number)
                if (m.connected_name, m.connected_number) != new:
                    m.connected_name, m.connected_number = new
                    self.chan_event(m, "ChannelConnectedLine")
        self.update_media()

    def _bridge_var(self, ch: SimChannel, name: str, value: str) -> None:
        # BRIDGEPEER / BRIDGEPVTCALLID (the single peer's SIP Call-ID) are set on change.
        if ch.variables.get(name, "") != value:
            ch.variables[name] = value
            self.varset(ch, name, value)

    def destroy_bridge(self, br: SimBridge) -> None:
        for cid in list(br.channels):
            ch = self.channels.get(cid)
            if ch is not None:
                self._leave(br, ch)
        self.bridges.pop(br.id, None)
        if br.app is not None:
            self.emit(br.app, make_event("BridgeDestroyed", br.app, bridge=br.to_json()))

    def update_media(self) -> None:
        self.mixer.update()

    def enter_stasis(self, ch: SimChannel, app: str, args: list[str]) -> None:
        ch.set_dialplan(ch.context, ch.exten, ch.priority, "Stasis", ",".join([app, *args]))
        ch.app, ch.in_stasis = app, True
        self.varset(ch, "STASISSTATUS", "")
        self.chan_event(ch, "StasisStart", args=args)
        self.update_media()

    # --- restart ---------------------------------------------------------

    def shutdown(self) -> None:
        """``core restart now``: every Stasis channel gets HangupRequest(4, soft) -> StasisEnd.

        Every channel is disposed (which closes its RTP sender); the fresh
        boot (:meth:`reset`) is the restarting caller's, once it is up again.
        """
        for ch in list(self.channels.values()):
            if ch.alive and ch.in_stasis and ch.kind != "snoop":
                self.teardown(ch, {"cause": 4, "soft": True}, qos=False)
        for ch in list(self.channels.values()):
            ch.app = None
            self.dispose(ch)
