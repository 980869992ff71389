"""The ARI simulator's state machine: channels, bridges and their events.

Every method computes its outcome from the current state (never from a
recorded trace) and emits events in the order Asterisk 22 does (see
``tests/fixtures/ari-traces/README.md``). Methods are synchronous where
Asterisk answers synchronously, so a REST handler that calls them and then
flushes the event queues delivers the events before its reply, as the
traces show for answer and DELETE. The boot's state and event plumbing are
in :mod:`.core`, playbacks in :mod:`.playback`, the media mix in :mod:`.mixer`.
"""

from __future__ import annotations

import asyncio
import logging
from functools import cached_property

from callrec.ari.causes import HangupCause, SoftHangup
from callrec.ari.sim import media
from callrec.ari.sim.core import SimCore
from callrec.ari.sim.mixer import Mixer
from callrec.ari.sim.model import (
    CallerScenario,
    Json,
    SimBridge,
    SimChannel,
    asterisk_time,
    callerid_name,
    callerid_number,
    make_event,
)
from callrec.ari.sim.playback import Playbacks

logger = logging.getLogger(__name__)

# ChannelHangupRequest of DELETE /channels/{id} and of a PBX shutdown (traces 01, 07).
_ARI_HANGUP: Json = {"cause": SoftHangup.EXPLICIT.value, "soft": True}
_SHUTDOWN: Json = {"cause": SoftHangup.SHUTDOWN.value, "soft": True}
_QOS = ("RTPAUDIOQOS", "RTPAUDIOQOSJITTER", "RTPAUDIOQOSLOSS", "RTPAUDIOQOSRTT", "RTPAUDIOQOSMES")


class SimEngine(SimCore):
    """The transitions of one simulated Asterisk: calls, hang-ups, bridges, restart."""

    # The core cannot build these (they import it): each is made on first use.
    @cached_property
    def mixer(self) -> Mixer:
        return Mixer(self)

    @cached_property
    def player(self) -> Playbacks:
        return Playbacks(self)

    # --- callers ---------------------------------------------------------

    def place_call(self, sc: CallerScenario) -> str:
        number = callerid_number(sc.caller_number)
        if number is None:
            logger.warning("simulated caller dropped: From user part is not valid SIP")
            return ""
        ch = SimChannel(
            id=self.new_id(),
            name=f"PJSIP/{sc.endpoint}-{self.name_counter('pjsip'):08x}",
            kind="caller",
            state="Ring",
            protocol_id=f"1-{self.next_sip_call_id()}@127.0.0.1",
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
            # The Dial result says NOANSWER, not CANCEL (test PBX, pbx-sequences).
            cleared = HangupCause.NORMAL_CLEARING
            self.end_unanswered(ch, _ARI_HANGUP, "NOANSWER", cleared, "Normal Clearing")
            return
        self.teardown(ch, _ARI_HANGUP, qos=True)

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
        self.player.fail_all(ch)
        if ch.bridge_id is not None:
            self._leave(self.bridges[ch.bridge_id], ch)
        for snoop in [c for c in self.channels.values() if c.snoop_target == ch.id]:
            self._end_snoop(snoop)
        self._stasis_end(ch)
        if request is not None:
            self.destroyed(ch, HangupCause.NORMAL_CLEARING, "Normal Clearing")
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
            self.cleanup_apps()

    def destroyed(self, ch: SimChannel, cause: int, text: str, tech: int | None = None) -> None:
        if not ch.sends_destroyed:
            return
        ch.set_dialplan(*ch.saved_dialplan)
        fields: Json = {"cause": int(cause), "cause_txt": text}
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
        if not br.channels:
            # The last member left: the announcer goes too. Its playback ends
            # (GET: 404) unheard: no app is subscribed to the bridge any more.
            self._dismiss_announcer(br)
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

    def bridge_play(
        self, br: SimBridge, media: list[str], playback_id: str | None, lang: str
    ) -> Json:
        """``POST /bridges/{id}/play``: the bridge's announcer joins (once) and plays.

        The announcer is no member: the bridge lists only its channels, and
        the members learn of it from BRIDGEPEER (``Announcer/ARI-<n>;2``).
        """
        if br.announcer is None:
            number = self.name_counter("announcer")
            br.announcer = SimChannel(
                id=self.new_id(),
                name=f"Announcer/ARI-{number:08x};2",
                kind="announcer",
                state="Down",
                creationtime=asterisk_time(),
            )
            br.announcer.app = br.app
            members = [self.channels[c] for c in br.channels if c in self.channels]
            for m in members:
                others = [o.name for o in members if o is not m]
                self._bridge_var(m, "BRIDGEPEER", ",".join([*others, br.announcer.name]))
        return self.player.play(br.announcer, media, playback_id, lang, f"bridge:{br.id}")

    def _dismiss_announcer(self, br: SimBridge) -> None:
        """The announcer leaves; its playback ends without an event (real PBX)."""
        announcer, br.announcer = br.announcer, None
        if announcer is None:
            return
        self.player.end_all(announcer, None)
        announcer.alive = False
        self.update_media()

    def destroy_bridge(self, br: SimBridge) -> None:
        # Deleted with members in it: their app hears of no playback ending.
        self._dismiss_announcer(br)
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
        """``core restart now``: every Stasis channel, Snoops too, gets HangupRequest(4,
        soft) -> (ChannelLeftBridge) -> StasisEnd, and ChannelDestroyed (16) if ARI made it.

        Newest first, so a Snoop is hung up itself before its target goes.
        Which of a bridge's members leaves first varies on the test PBX (both
        orders seen), so no client may depend on it. Every channel is disposed
        (which closes its RTP sender); the fresh boot (:meth:`reset`) is the
        restarting caller's, once it is up again.
        """
        for ch in reversed(list(self.channels.values())):
            if ch.alive and ch.in_stasis:
                self.teardown(ch, _SHUTDOWN, qos=False)
        for ch in list(self.channels.values()):
            ch.app = None
            self.dispose(ch)
