"""One call through the Stasis app: disclosure, consent, connect, record.

A :class:`CallSession` is a small state machine. Events of its channels
arrive through the router into ``on_<EventType>`` methods, which only update
state (and feed the consent gate); the call flow in :meth:`CallSession.run`
awaits those states. Every way a call can end while the flow waits (caller or
destination hangs up, the app shuts down, the PBX restarted) arrives in the
flow as one :class:`~callrec.errors.CallHangup` (:mod:`ari_app.ending`),
handled in one place: :meth:`CallSession.run` (asyncari ``state.py``). The
destination's own channel is followed by :mod:`ari_app.destination`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Mapping
from typing import Any

from ari_app.announce import HANGUP_SETTLE, announce
from ari_app.context import CallContext
from ari_app.destination import UNROUTED, DestinationLeg, DestinationResult
from ari_app.ending import CallEnding, CallOutcome, End, hangup_reason
from ari_app.journal import CallJournal
from ari_app.pausing import CallPauses, join_call
from ari_app.states import Admission, State
from callrec.ari.events import (
    Channel,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    Event,
    PlaybackFinished,
    PlaybackStarted,
    StasisEnd,
    StasisStart,
)
from callrec.config import PromptKind
from callrec.consent import ConsentGate, Decision, DisclosureFailed, Interruption, records
from callrec.errors import (
    AriError,
    AriNotFound,
    AriUnavailable,
    CallHangup,
    RecordingUnavailable,
)
from callrec.evidence import PLAYBACK_FAILED, PROMPT_UNHASHED, Evidence, dialled_number
from callrec.failure_policy import is_strict
from callrec.live import LiveState
from callrec.logutil import CallLogAdapter, mask_number, safe
from callrec.prompts.names import PromptRef
from callrec.tap import RecordingTap, TapResult, ends_recording, new_id

logger = logging.getLogger(__name__)

# Waiting longer than this for a stopped playback to report its end would
# only delay the call: Asterisk answers a DELETE /playbacks in milliseconds.
PLAYBACK_STOP_TIMEOUT = 2.0


class CallSession:
    """One caller's channel in the Stasis app, from StasisStart to the audit line."""

    def __init__(self, ctx: CallContext, start: StasisStart) -> None:
        self.ctx = ctx
        self.channel = start.channel
        self.id = start.channel.id
        # The Stasis() argument, else the extension; a hostile one is no number.
        self.number = dialled_number(*start.args[:1], start.channel.dialplan.exten)
        self.log = CallLogAdapter(logger, self.id)
        self.state = State.NEW
        self.gate = ConsentGate(ctx.config.consent, ctx.clock)
        self.disclosure = ctx.config.prompt_for(self.number, self.channel.language, "disclosure")
        self.evidence = Evidence.for_disclosure(
            self.gate,
            self.disclosure,
            uniqueid=self.id,
            linkedid=str(start.channel.raw.get("linkedid", self.id)),
            caller_number=start.channel.caller.number,
            caller_name=start.channel.caller.name,
            dialled=self.number,
            pseudonym_key=ctx.pseudonym_key,
            frontend="ari",
        )
        self.ending = CallEnding(self.id)
        self.started = ctx.clock.wall()
        self.journal = CallJournal.new(ctx, self.evidence, self.number, self.started, self.log)
        # More keys for the audit line (a resumed call names what it continues).
        self.audit_extra: dict[str, Any] = {}
        self.failure: str | None = None
        self.destination: DestinationResult | None = None
        self.leg: DestinationLeg | None = None
        self.bridge_id: str | None = None
        self.tap: RecordingTap | None = None
        self.tap_result: TapResult | None = None
        self.pauses: CallPauses | None = None  # while recording
        self.bridged_at: float | None = None
        self._playback_id: str | None = None
        self._playback_done = asyncio.Event()
        self._playback_state: str | None = None  # the last PlaybackFinished's
        self._background: set[asyncio.Future[None]] = set()
        self._caller_alive = True
        ctx.router.subscribe(self.id, self.on_event)

    # --- events -------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        handler = getattr(self, f"on_{event.type}", None)
        if handler is not None:
            handler(event)

    def on_PlaybackStarted(self, event: PlaybackStarted) -> None:
        if event.playback.id == self._playback_id and self.state is State.DISCLOSING:
            self.gate.prompt_started()

    def on_PlaybackFinished(self, event: PlaybackFinished) -> None:
        if event.playback.id != self._playback_id:
            return
        self._playback_state = event.playback.state
        if self.state is State.DISCLOSING:
            if event.playback.state != "failed":
                self.gate.prompt_finished()
            elif self._caller_alive:
                self._in_background(self._judge_failed_disclosure())
        self._playback_done.set()

    async def _judge_failed_disclosure(self) -> None:
        """A hang-up ends a playback as failed too (trace 02), with or without its events."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ending.wait(), HANGUP_SETTLE)
        try:
            if self._caller_alive:
                await self.ctx.client.get_channel(self.id)
        except AriNotFound:
            self.channel_gone()  # gone with no hang-up event seen
        except (AriError, AriUnavailable) as exc:
            self.log.warning("channel state unknown: %s", safe(str(exc), 200))
        # The gate ignores it once a hang-up has marked the prompt interrupted.
        self.gate.prompt_failed(PLAYBACK_FAILED)

    def _in_background(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(job)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def on_ChannelDtmfReceived(self, event: ChannelDtmfReceived) -> None:
        if self.state is not State.DISCLOSING or self._decided():
            return
        self.gate.digit(event.digit)
        if self._decided() and not self._playback_done.is_set():
            # A decision made by a digit ends the disclosure: the caller should
            # not sit through the rest of it (trace 03).
            self._in_background(self._stop_playback())

    def _decided(self) -> bool:
        return self.gate.decided is not None

    def on_ChannelHangupRequest(self, event: ChannelHangupRequest) -> None:
        self._caller_gone(hangup_reason(event, End.CALLER_HANGUP), event.cause)

    def on_StasisEnd(self, event: StasisEnd) -> None:
        self._caller_gone(End.CALLER_HANGUP, None)

    def on_destination_event(self, event: Event) -> None:
        """Events of the destination leg; the call ends when an answered leg hangs up.
        Its digits are the agent's feature codes (the caller's never pause)."""
        if isinstance(event, ChannelDtmfReceived) and self.pauses is not None:
            self.pauses.on_agent_digit(event.digit)
        if self.leg is not None and self.leg.on_event(event):
            cause = event.cause if isinstance(event, ChannelHangupRequest) else None
            self.end(hangup_reason(event, End.DESTINATION_HANGUP), cause)

    def _caller_gone(self, reason: End, cause: int | None) -> None:
        if not self._caller_alive:
            return
        self._caller_alive = False
        self.gate.hangup()
        self.end(reason, cause)

    def end(self, reason: End, cause: int | None = None) -> None:
        """End the call from outside the flow; the first reason wins."""
        self.ending.end(reason, cause)

    def channel_gone(self) -> None:
        """The caller's channel vanished while the app was not listening (reconnect)."""
        self._caller_gone(End.CHANNEL_GONE, None)

    async def resync(self, channels: Mapping[str, Channel]) -> None:
        """After a reconnect: learn from the live channels what the missed events said.

        Asterisk replays nothing (trace 07). A destination that is up has
        answered. A disclosure whose playback is gone has ended; its grace
        period starts now, which only ever gives the caller more time to
        decline.
        """
        live_leg = channels.get(self.agent_id or "")
        if self.leg is not None and live_leg is not None and live_leg.state == "Up":
            self.leg.seen_up()
        playback = self._playback_id
        if self.state is not State.DISCLOSING or self._playback_done.is_set() or not playback:
            return
        try:
            await self.ctx.client.get_playback(playback)
        except AriNotFound:
            self.log.info("the disclosure ended while the events websocket was down")
            self.gate.prompt_finished()
            self._playback_done.set()
        except (AriError, AriUnavailable) as exc:
            self.log.warning("disclosure state unknown: %s", safe(str(exc), 200))

    @property
    def agent_id(self) -> str | None:
        """The destination leg's channel id, once it is called."""
        return None if self.leg is None else self.leg.id

    def agent_gone(self) -> None:
        """The destination's channel vanished while the app was not listening."""
        if self.leg is not None and self.leg.vanished():
            self.end(End.DESTINATION_HANGUP)

    def _recording_broke(self, reason: str) -> None:
        """The recording failed mid-call (writer failed, media stream lost): strict ends
        the call; best-effort talks on, and a failed writer's recording is sealed now."""
        self.failure = reason
        policy = self.ctx.config.recording.on_failure
        self.log.error("recording failed mid-call (%s): %s", policy, safe(reason, 200))
        if is_strict(policy):
            self.end(End.RECORDING_UNAVAILABLE)
        elif ends_recording(reason, policy) and self.tap is not None:
            self.tap.end_now()

    # --- the flow -------------------------------------------------------------

    async def run(self) -> None:
        """The whole call; never raises (one audit line whatever happened)."""
        # No caller name: carriers often fill it with the full number.
        self.log.info(
            "call from %s to %s", mask_number(self.channel.caller.number), safe(self.number)
        )
        try:
            await self._flow()
        except CallHangup as exc:
            self.log.info("call ended while %s: %s", self.state, self.ending.reason)
            if self.ending.cause is None:
                self.ending.cause = exc.cause
        except (AriError, AriUnavailable) as exc:
            self.log.warning("ARI failed while %s: %s", self.state, safe(str(exc), 200))
            self.end(End.ERROR)
            self.failure = self.failure or str(exc)
        except Exception:
            self.log.exception("call flow failed while %s", self.state)
            self.end(End.ERROR)
        finally:
            await self._teardown()
            self._audit()

    async def _flow(self) -> None:
        await self.ending.until(self.ctx.client.answer(self.id))
        self.gate.answered()
        decision = await self._disclose()
        self.evidence.decision = decision
        self.log.info("consent decision: %s", decision)
        if decision is Decision.DECLINED_HANGUP:
            self.ending.conclude(End.DECLINED)
            return
        if decision is not None:
            await self.journal.decided(decision, self.evidence)
        if not self._playback_done.is_set():
            await self.ending.until(self._wait_playback_end())
        admission = await self._admit(decision)
        if admission is Admission.REFUSED or not await self._connect():
            return
        if admission is Admission.RECORDED:
            await self._start_recording()
        await self.ending.until(self.ending.wait())

    async def _admit(self, decision: Decision | None) -> Admission:
        """After the decision (None: the disclosure could not be played)."""
        if decision is not None and not self.gate.policy.connects(decision):
            self.ending.conclude(End.DECLINED)
            return Admission.REFUSED
        if decision is not None and not records(decision):
            return Admission.UNRECORDED
        # Without a disclosure nobody consented; either way the policy decides.
        if decision is not None and self._recording_possible():
            return Admission.RECORDED
        if await self._recording_failed(self.failure, connected=False):
            return Admission.UNRECORDED
        return Admission.REFUSED

    async def _disclose(self) -> Decision | None:
        """The consent decision; None when the disclosure could not be played."""
        prompt = self.disclosure
        self.state = State.DISCLOSING
        if self.evidence.prompt_sha256 is None:
            # A prompt that cannot be proven is not played: nobody consented.
            self.log.error("disclosure missing: %s cannot be read", safe(str(prompt.path_wav)))
            self.gate.prompt_failed(PROMPT_UNHASHED)
            self._playback_done.set()  # nothing plays: nothing to wait for
        else:
            await self._play_disclosure(prompt)
        try:
            return await self.ending.until(self.gate.decision())
        except CallHangup:
            # A hang-up during the disclosure or the grace is the caller's
            # answer, not an interruption of the flow.
            if self.gate.decided is Decision.DECLINED_HANGUP:
                return Decision.DECLINED_HANGUP
            self.gate.prompt_interrupted(Interruption.CALL_ENDED)  # `end` says why
            raise
        except DisclosureFailed as exc:
            self.failure = str(exc)
            return None

    async def _play_disclosure(self, prompt: PromptRef) -> None:
        self._playback_id = new_id("playback")
        await self.journal.disclosing(self._playback_id, self.evidence)
        try:
            await self.ending.until(
                self.ctx.client.play(
                    self.id, prompt.media, playback_id=self._playback_id, lang=prompt.language
                )
            )
        except AriError as exc:
            self.gate.prompt_failed(str(exc))

    def _recording_possible(self) -> bool:
        try:
            self.ctx.check_recording()
        except RecordingUnavailable as exc:
            self.failure = str(exc)
            return False
        return True

    async def _recording_failed(self, reason: str | None, *, connected: bool) -> bool:
        """Apply the failure policy; True when the call goes on unrecorded."""
        reason = reason or "recording unavailable"
        self.failure = reason
        policy = self.ctx.config.recording.on_failure
        self.log.error("recording unavailable (%s): %s", policy, safe(reason, 200))
        if not is_strict(policy):
            return True
        if connected and self.leg is not None:
            # Our own hang-up of the destination must not read as the
            # destination ending the call: the caller still hears why.
            self.ending.conclude(End.RECORDING_UNAVAILABLE)
            self.leg.drop()
            with contextlib.suppress(AriError, AriUnavailable):
                await self.ctx.client.hangup(self.leg.id)
        self.ending.conclude(End.RECORDING_UNAVAILABLE)
        await self._announce("recording_unavailable")
        return False

    async def _connect(self) -> bool:
        dest = self.ctx.config.destination_for(self.number)
        if dest is None:
            self.log.warning("no destination configured for %s", safe(self.number))
            return await self._unavailable(UNROUTED)
        self.state = State.CONNECTING
        leg = self.leg = DestinationLeg(new_id("dest"))
        self.evidence.channels["destination"] = leg.id
        self.ctx.router.subscribe(leg.id, self.on_destination_event)
        bridge_id = new_id("call")
        await self.journal.save(state=LiveState.CONNECTING, destination=leg.id, bridge=bridge_id)
        dialled = leg.dial(self.ctx.client, dest, app=self.ctx.app, originator=self.id)
        self.destination = await self.ending.until(dialled)
        if not self.destination.answered:
            return await self._unavailable(self.destination)
        self.bridge_id = bridge_id
        await self.ending.until(self.ctx.client.create_bridge("mixing", bridge_id=self.bridge_id))
        pause = self.ctx.config.recording.pause
        await self.ending.until(join_call(self.ctx.client, bridge_id, self.id, leg.id, pause))
        self.state = State.BRIDGED
        self.bridged_at = self.ctx.clock.wall()
        await self.journal.save(state=LiveState.BRIDGED, bridged_at=self.bridged_at)
        self.log.info("connected to %s", safe(dest.endpoint))
        return True

    async def _unavailable(self, result: DestinationResult) -> bool:
        self.log.info("destination unavailable (%s): %s", result.outcome, safe(result.detail))
        self.ending.conclude(End.DESTINATION_UNAVAILABLE)
        self.destination = result
        await self._announce("not_available")
        return False

    async def _announce(self, kind: PromptKind) -> None:
        """Play a prompt to the caller and let it finish (a failure goes in the audit line)."""
        prompt = self.ctx.config.prompt_for(self.number, self.channel.language, kind)
        self._playback_id, self._playback_state = new_id("playback"), None
        self._playback_done.clear()
        if not self._caller_alive:
            return
        failure = await announce(
            self.ctx.client, self.ending, self.id, prompt, self._playback_id,
            lambda: self._playback_state, self._playback_done,
        )  # fmt: skip
        if failure is not None:
            self.log.warning("could not play the %s prompt: %s", kind, safe(failure, 200))
            self.audit_extra["announcement_failure"] = {"prompt": kind, "reason": failure}

    async def _start_recording(self) -> None:
        try:
            tap = self.tap = self.ctx.new_tap(self.log, self._recording_broke)
            self.journal.follow_pauses(tap.pauses)  # a pause outlives a crash
            await self.journal.save(tap=tap.ids)
            started = tap.start(self.id, self.evidence, self.id, continues=self.journal.continues)
            recording_id = await self.ending.until(started)
            await self.journal.recording_started(recording_id, tap.started_at or 0.0)
            self.pauses = CallPauses.of_call(
                self.ctx, tap, self.log, agent_id=self.agent_id, language=self.channel.language
            )
        except RecordingUnavailable as exc:
            if self.tap is not None:
                self.tap_result = await self.tap.abandon(str(exc))
                self.tap = None
            if not await self._recording_failed(str(exc), connected=True):
                raise CallHangup(self.id) from exc

    # --- waiting --------------------------------------------------------------

    async def _wait_playback_end(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._playback_done.wait(), PLAYBACK_STOP_TIMEOUT)

    async def _stop_playback(self) -> None:
        if self._playback_id is None:
            return
        with contextlib.suppress(AriError, AriUnavailable):
            await self.ctx.client.stop_playback(self._playback_id)

    # --- the end --------------------------------------------------------------

    async def _teardown(self) -> None:
        """Hang up the other side, remove the tap, seal the recording."""
        self.state = State.ENDING
        reason = self.ending.reason or End.CALLER_HANGUP
        leave_calls = reason in (End.SHUTDOWN, End.PBX_RESTART)
        client = self.ctx.client
        if reason in (End.SHUTDOWN, End.HANDED_BACK) and self.bridge_id is None:
            await self._hand_back_to_dialplan()
        elif not leave_calls:
            legs = (
                (self.agent_id, self.leg is not None and self.leg.alive),
                (self.id, self._caller_alive),
            )
            for channel_id, alive in legs:
                if channel_id is not None and alive:
                    with contextlib.suppress(AriError, AriUnavailable):
                        await client.hangup(channel_id)
        if self.pauses is not None:
            await self.pauses.close()
        if self.tap is not None:
            summary = {"end": str(reason), "call_seconds": self.ctx.clock.wall() - self.started}
            self.tap_result = await self.tap.stop(
                str(reason), summary, pbx_alive=reason is not End.PBX_RESTART
            )
        if self.bridge_id is not None and not leave_calls:
            with contextlib.suppress(AriError, AriUnavailable):
                await client.destroy_bridge(self.bridge_id)
        # Stopping the recorder leaves a bridged call talking: the next start records the rest.
        keep = reason is End.SHUTDOWN and self.bridge_id is not None and self._caller_alive
        await self.journal.close(keep=keep, result=self.tap_result)
        self.ctx.router.unsubscribe(self.id, self.on_event)
        if self.agent_id is not None:
            self.ctx.router.unsubscribe(self.agent_id, self.on_destination_event)
        self.state = State.ENDED

    async def _hand_back_to_dialplan(self) -> None:
        """Shut down before the call was connected: nothing would serve the caller,
        so it goes on in the admin's dialplan (the line after ``Stasis()``)
        instead of waiting in silence; a destination still ringing is dropped."""
        client = self.ctx.client
        if self.leg is not None and self.leg.alive:
            with contextlib.suppress(AriError, AriUnavailable):
                await client.hangup(self.leg.id)
        if not self._caller_alive:
            return
        # A playing disclosure would hold the continue back until it ends.
        await self._stop_playback()
        with contextlib.suppress(AriError, AriUnavailable):
            await client.continue_in_dialplan(self.id)
            self.log.info(
                "%s before the call was connected: back to the dialplan", self.ending.reason
            )

    def _audit(self) -> None:
        outcome = CallOutcome(
            self.id,
            self.evidence,
            self.started,
            self.ending.reason or End.CALLER_HANGUP,
            bridged_at=self.bridged_at,
            failure=self.failure,
            tap_result=self.tap_result,
            destination=None if self.destination is None else self.destination.detail,
            extra=self.audit_extra,
        )
        record = outcome.audit_record(self.ctx.clock.wall())
        self.ctx.append_audit(record, dict(self.evidence.personal))
