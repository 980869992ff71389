"""Calls the simulator places itself: originate, dialplan, snoop, ExternalMedia.

Originate answers 200 (state Down) at once; the Dial events follow:
``""`` -> RINGING -> ANSWER with ChannelStateChange Ringing/Up and StasisStart
last, or a busy/no-answer failure the caller channel never hears about
(traces 01, 03, 04a and the README's 04b description). ExternalMedia's
StasisStart follows its reply by default (trace README: clients must wait).
"""

from __future__ import annotations

import asyncio
import random
import uuid

from callrec.ari.causes import HangupCause
from callrec.ari.events import UNICASTRTP_LOCAL_ADDRESS, UNICASTRTP_LOCAL_PORT
from callrec.ari.sim import media
from callrec.ari.sim.engine import SimEngine
from callrec.ari.sim.model import (
    EndpointBehaviour,
    Json,
    SimChannel,
    asterisk_time,
    parse_caller_id,
)
from callrec.media.codecs import AUDIOSOCKET_FORMATS

# SIP responses of an unreachable destination (tech_cause; traces 04a, 04b).
SIP_BUSY_HERE = 486
SIP_UNAVAILABLE = 480


class AllocationFailed(Exception):
    """Originate to an endpoint that cannot be reached (500 {"error":"Allocation failed"})."""


class Dialer:
    """Creates channels on the simulator's own initiative; state lives in the engine.

    The engine never calls back here: the REST layer asks the dialer, the
    dialer drives the engine.
    """

    def __init__(self, eng: SimEngine) -> None:
        self.eng = eng

    def originate(
        self,
        endpoint: str,
        *,
        app: str,
        app_args: list[str],
        context: str,
        exten: str,
        priority: int,
        caller_id: str,
        timeout: float,
        originator: str,
        channel_id: str,
    ) -> Json:
        """``POST /channels``: the reply (state Down) now, the call itself in a task."""
        behaviour, ch = self._allocate(endpoint, context, exten, channel_id)
        name, number = parse_caller_id(caller_id) if caller_id else ("", "")
        ch.caller_name, ch.caller_number = name, number
        peer = self.eng.channels.get(originator)
        # With an originator the new leg's connected line is that caller (trace 04a).
        ch.connected_name, ch.connected_number = (
            (peer.caller_name, peer.caller_number) if peer is not None else (name, number)
        )
        ch.app, ch.sends_destroyed = app or None, bool(app)
        ch.audio = media.load_audio(behaviour.audio, behaviour.audio_rate)
        self.eng.channels[ch.id] = ch
        reply = ch.to_json()
        # Without an app the call runs this dialplan extension once answered (trace 05).
        dp_context = context or (ch.context if ch.kind == "local" else "default")
        dp_exten = exten or ch.exten
        run = self._outbound(ch, behaviour, timeout, app_args, dp_context, dp_exten, priority)
        self.eng.spawn(ch, run)
        return reply

    def _allocate(
        self, endpoint: str, context: str, exten: str, channel_id: str
    ) -> tuple[EndpointBehaviour, SimChannel]:
        tech, _, resource = endpoint.partition("/")
        target = resource.split("/", 1)[0]
        lexten, _, lcontext = target.partition("@")
        behaviour = self.eng.endpoints.get(endpoint)
        if behaviour is None and tech == "Local" and (lcontext, lexten) in self.eng.dialplans:
            behaviour = EndpointBehaviour("answer", answer_after=0.0)
        if behaviour is None or behaviour.kind == "absent" or tech not in ("PJSIP", "Local"):
            raise AllocationFailed(endpoint)
        if tech == "Local":
            ch = SimChannel(
                id=channel_id or self.eng.new_id(),
                name=f"Local/{target}-{self.eng.name_counter('local'):08x};1",
                kind="local",
                state="Down",
                dialstring=target,
            )
            self.eng.new_id()  # the ;2 half takes the next id
            ch.set_dialplan(context or lcontext, exten or lexten, 1, "AppDial2", "(Outgoing Line)")
        else:
            ch = SimChannel(
                id=channel_id or self.eng.new_id(),
                name=f"PJSIP/{resource}-{self.eng.name_counter('pjsip'):08x}",
                kind="pjsip",
                state="Down",
                protocol_id=self.eng.new_uuid(),
                dialstring=resource,
            )
            ctx = behaviour.context or f"from-{resource}"
            ch.set_dialplan(ctx, "s", 1, "AppDial2", "(Outgoing Line)")
        ch.creationtime = asterisk_time()
        ch.saved_dialplan = (ch.context, ch.exten, 1, "AppDial2", "(Outgoing Line)")
        return behaviour, ch

    async def _outbound(
        self,
        ch: SimChannel,
        bh: EndpointBehaviour,
        ring_limit: float,
        app_args: list[str],
        context: str,
        exten: str,
        priority: int,
    ) -> None:
        await asyncio.sleep(0.002)  # the 200 (state Down) goes out first (trace 01)
        self.eng.dial(ch, "")
        if bh.kind == "busy":
            await asyncio.sleep(bh.answer_after)
            busy = HangupCause.USER_BUSY
            request = {"cause": busy.value, "tech_cause": SIP_BUSY_HERE}
            self.eng.end_unanswered(ch, request, "BUSY", busy, "User busy", SIP_BUSY_HERE)
            return
        if bh.kind == "no-answer" or bh.answer_after >= ring_limit:
            await asyncio.sleep(ring_limit)
            ch.alive = False
            no_answer = HangupCause.NO_ANSWER
            self.eng.destroyed(ch, no_answer, "User alerting, no answer", SIP_UNAVAILABLE)
            self.eng.dispose(ch)
            return
        ch.state = "Ringing"
        self.eng.chan_event(ch, "ChannelStateChange")
        self.eng.dial(ch, "RINGING")
        await asyncio.sleep(bh.answer_after)
        self.eng.set_up(ch)
        self.eng.dial(ch, "ANSWER")
        if bh.hangup_after is not None:
            self.eng.spawn(ch, self._hangup_later(ch, bh.hangup_after))
        if ch.app is not None:
            self.eng.enter_stasis(ch, ch.app, app_args)
        else:
            await self._run_dialplan(ch, context, exten, priority)

    async def _hangup_later(self, ch: SimChannel, delay: float) -> None:
        await asyncio.sleep(delay)
        self.eng.hangup_remote(ch)

    async def _run_dialplan(self, ch: SimChannel, context: str, exten: str, prio: int) -> None:
        steps = self.eng.dialplans.get((context, exten), [])
        for priority in range(max(prio, 1), len(steps) + 1):
            step = steps[priority - 1]
            ch.set_dialplan(context, exten, priority, step.app_name, step.app_data)
            if step.app_name == "Answer" and ch.state != "Up":
                self.eng.set_up(ch)
            elif step.app_name in ("Playback", "Wait"):
                await asyncio.sleep(step.duration)
            elif step.app_name == "Echo":
                await asyncio.Event().wait()
            elif step.app_name == "Stasis":
                app, *args = step.app_data.split(",")
                self.eng.enter_stasis(ch, app, args)
                return
            elif step.app_name == "Hangup":
                break
        # Falling off the end or Hangup(): the channel is gone; its app (if any) is told.
        self.eng.teardown(ch, None, qos=False)

    # --- snoop and external media ----------------------------------------

    def snoop(
        self, target: SimChannel, app: str, args: list[str], spy: str, snoop_id: str
    ) -> Json:
        ch = SimChannel(
            id=snoop_id or self.eng.new_id(),
            name=f"Snoop/{target.id}-{self.eng.name_counter('snoop') + 1:08x}",
            kind="snoop",
            state="Up",
            app_name="",
            app_data="",
            creationtime=asterisk_time(),
            language=target.language,
        )
        ch.snoop_target, ch.snoop_spy = target.id, spy
        ch.media_start = asyncio.get_running_loop().time()
        self.eng.channels[ch.id] = ch
        reply = ch.to_json()
        ch.set_dialplan("default", "s", 1, "Stasis", ",".join([app, *args]))
        ch.app, ch.in_stasis = app, True
        asyncio.get_running_loop().call_soon(self._snoop_start, ch, args)
        return reply

    def _snoop_start(self, ch: SimChannel, args: list[str]) -> None:
        if ch.alive:
            self.eng.chan_event(ch, "StasisStart", args=args)

    def external_media(self, app: str, host: str, port: int, fmt: str, channel_id: str) -> Json:
        """An RTP ExternalMedia channel (UnicastRTP) sending from its own UDP socket."""
        cid = channel_id or self.eng.new_id()
        sender = media.RtpSender(
            cid,
            fmt,
            (host, port),
            lambda start, n, rate: self.eng.mixer.ext_hears(cid, start, n, rate),
            rng=random.Random(self.eng.rng.getrandbits(64)),
            keep_payloads=self.eng.keep_payloads,
        )
        sender.faults = self.eng.default_faults
        local_host, local_port = sender.local_address
        ptr = 0x7F0000000000 | self.eng.rng.getrandbits(36) << 4
        ch = self._external_channel(
            cid, "unicast", f"UnicastRTP/{host}:{port}-0x{ptr:012x}", f"{host}:{port}/c({fmt})"
        )
        ch.channelvars = {
            UNICASTRTP_LOCAL_PORT: str(local_port),
            UNICASTRTP_LOCAL_ADDRESS: local_host,
        }
        return self._start_external(ch, app, sender, [])

    def audio_socket(
        self, app: str, host: str, port: int, fmt: str, channel_id: str, stream: uuid.UUID
    ) -> Json:
        """An AudioSocket ExternalMedia channel (trace 08): TCP to host:port."""
        cid = channel_id or self.eng.new_id()
        sender = media.AudioSocketSender(
            cid,
            (host, port),
            stream.bytes,
            lambda start, n, rate: self.eng.mixer.ext_hears(cid, start, n, rate),
            rate=AUDIOSOCKET_FORMATS[fmt].sample_rate,
            keep_payloads=self.eng.keep_payloads,
        )
        service = f"{host}:{port}"
        ch = self._external_channel(
            cid, "audiosocket", f"AudioSocket/{service}-{stream}", f"{service}/{stream}"
        )
        ch.channelvars = {"AUDIOSOCKET_SERVICE": service, "AUDIOSOCKET_UUID": str(stream)}
        return self._start_external(ch, app, sender, [str(stream)])

    def _external_channel(self, cid: str, kind: str, name: str, dialstring: str) -> SimChannel:
        ch = SimChannel(
            id=cid,
            name=name,
            kind=kind,  # type: ignore[arg-type]
            state="Down",
            creationtime=asterisk_time(),
            dialstring=dialstring,
        )
        ch.saved_dialplan = ("default", "s", 1, "AppDial2", "(Outgoing Line)")
        return ch

    def _start_external(
        self, ch: SimChannel, app: str, sender: media.MediaSender, args: list[str]
    ) -> Json:
        ch.app, ch.sends_destroyed = app, True
        self.eng.channels[ch.id] = ch
        self.eng.rtp[ch.id] = sender
        self.eng.rtp_stats[ch.id] = sender.stats
        reply = ch.to_json(with_vars=True)
        mode = self.eng.external_media_start
        if mode == "random":
            mode = self.eng.rng.choice(("before", "after"))
        if mode == "before":
            self._external_media_up(ch, args)
        else:
            self.eng.spawn(ch, self._external_media_later(ch, args))
        return reply

    async def _external_media_later(self, ch: SimChannel, args: list[str]) -> None:
        await asyncio.sleep(self.eng.external_media_delay)
        self._external_media_up(ch, args)

    def _external_media_up(self, ch: SimChannel, args: list[str]) -> None:
        self.eng.dial(ch, "")
        self.eng.set_up(ch)
        self.eng.dial(ch, "ANSWER")
        self.eng.enter_stasis(ch, ch.app or "", args)
