"""A call a crashed (or stopped) predecessor left in Stasis, taken over where it was.

:mod:`ari_app.recovery` makes one :class:`ResumedSession` per live record
(:mod:`callrec.live`) whose caller is still in Asterisk. It is a
:class:`~ari_app.session.CallSession` that skips the disclosure (its consent
evidence is the record's) and starts from what the record and the PBX say:

- bridged, destination still there: the old tap (snoop, ExternalMedia still
  sending RTP to a dead port, its bridge) is removed and, when the decision
  allows recording, a continuation recording starts at once; its first
  metadata frame names the call and the recording it continues. A call
  whose recording was paused (the record's ``pause``) stays paused: the
  continuation starts paused before any audio reaches it (its ``continues``
  names the pause: when and by whom it was asked for, its auto-resume
  deadline) and is resumed as before the crash (:mod:`ari_app.pausing`).
  The call is then followed to its end like any other.
- bridged, destination gone: the call ends as a destination hang-up.
- not connected yet (disclosure, destination ringing): the destination is
  dropped and the caller goes back to the dialplan, or, under a strict
  failure policy, hears ``recording_unavailable`` and is hung up.

Each gets a ``call-recovered`` audit line saying what happened, and its
usual ``call`` line at the end.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable

from ari_app.context import CallContext
from ari_app.destination import ANSWERED, DestinationLeg
from ari_app.ending import End
from ari_app.journal import CallJournal
from ari_app.session import CallSession
from ari_app.states import State
from callrec.ari.events import Channel, StasisStart
from callrec.audit import audit_record
from callrec.consent import records
from callrec.errors import AriError, AriUnavailable, CallHangup
from callrec.failure_policy import is_strict
from callrec.live import Continues, LiveCall, LiveState, restore_consent
from callrec.takeover import Recovery, Survey

# Why a strict policy ends a call found before it was connected.
NOT_CONNECTED = "recorder restarted before the call was connected"


def as_start(app: str, channel: Channel, dialled: str) -> StasisStart:
    """The StasisStart the predecessor once saw, as far as a session needs it."""
    return StasisStart("StasisStart", "", app, channel.raw, channel, (dialled,))


class ResumedSession(CallSession):
    """One call of a predecessor: the record says how far it had come."""

    def __init__(
        self, ctx: CallContext, record: LiveCall, found: Survey, continues: Continues | None
    ) -> None:
        super().__init__(ctx, as_start(ctx.app, found.channels[record.call], record.dialled))
        self.record = record
        self.found = found
        self.started = record.started
        # The evidence of the decision is the record's: the disclosure is over.
        restore_consent(self.evidence, record)
        if record.destination is not None:
            self.evidence.channels["destination"] = record.destination
        self.journal = CallJournal(ctx, record.changed(continues=continues), self.log)
        self.removed: list[str] = []
        self.audit_extra = {"continues": self.journal.continues}

    def _caller_gone(self, reason: End, cause: int | None) -> None:
        # The gate of this session never heard the disclosure: the hang-up goes
        # into the restored timeline directly (a caller handed back leaves
        # Stasis without hanging up).
        if self._caller_alive and self.ending.reason is not End.HANDED_BACK:
            self.evidence.timeline.hangup_at = self.ctx.clock.wall()
        super()._caller_gone(reason, cause)

    async def _flow(self) -> None:
        await self._remove_old_tap()
        bridge = self.found.bridges.get(self.record.bridge or "")
        if self.record.state is LiveState.BRIDGED and bridge and self.id in bridge.channels:
            await self._resume_bridged()
        else:
            await self._resume_unconnected()

    async def _remove_old_tap(self) -> None:
        """The predecessor's snoop, ExternalMedia (RTP to a dead port) and tap bridge."""
        tap = self.record.tap
        if tap is None:
            return
        client = self.ctx.client
        for media_or_snoop in (tap.media, tap.snoop):
            if media_or_snoop in self.found.channels:
                await self._quietly(client.hangup(media_or_snoop), media_or_snoop)
        if tap.bridge in self.found.bridges:
            await self._quietly(client.destroy_bridge(tap.bridge), tap.bridge)

    async def _quietly(self, step: Awaitable[None], name: str) -> None:
        """One clean-up request; ``name`` counts as removed when Asterisk agreed."""
        with contextlib.suppress(AriError, AriUnavailable):
            await step
            self.removed.append(name)

    async def _resume_bridged(self) -> None:
        record = self.record
        self.state = State.BRIDGED
        self.bridge_id, self.bridged_at = record.bridge, record.bridged_at
        self.destination = ANSWERED
        leg = self.leg = DestinationLeg(record.destination or "")
        self.ctx.router.subscribe(leg.id, self.on_destination_event)
        leg.seen_up()
        await self.journal.save(tap=None, recording=None)
        if leg.id not in self.found.channels:
            self.log.info("the destination hung up while no recorder was running")
            self.agent_gone()
            self._recovered(Recovery.ENDED)
            return
        if record.decision is not None and records(record.decision):
            await self._record_again()
        else:
            self._recovered(Recovery.CONTINUED_UNRECORDED)
        await self.ending.until(self.ending.wait())

    async def _record_again(self) -> None:
        try:
            if self._recording_possible():
                await self._start_recording()
            elif not await self._recording_failed(self.failure, connected=True):
                raise CallHangup(self.id)  # strict: announced, the teardown hangs up
        except CallHangup:
            self._recovered(Recovery.ENDED)
            raise
        recording = self.tap is not None and self.tap.recording
        self._recovered(
            Recovery.RECORDING_CONTINUED if recording else Recovery.CONTINUED_UNRECORDED
        )

    async def _resume_unconnected(self) -> None:
        """Nobody is connected to the caller: drop the rest, hand the caller back."""
        client, record = self.ctx.client, self.record
        # A disclosure still playing would hold a continue (or an announcement) back.
        self._playback_id = record.playback
        await self._stop_playback()
        if record.destination in self.found.channels:
            await self._quietly(client.hangup(record.destination), record.destination)
        if record.bridge in self.found.bridges:
            await self._quietly(client.destroy_bridge(record.bridge), record.bridge)
        if is_strict(self.ctx.config.recording.on_failure):
            self._recovered(Recovery.ENDED)
            await self._recording_failed(NOT_CONNECTED, connected=False)
        else:
            self._recovered(Recovery.HANDED_BACK)
            self.ending.conclude(End.HANDED_BACK)

    def _recovered(self, outcome: Recovery) -> None:
        """The ``call-recovered`` audit line: what was found, done and removed."""
        self.audit_extra["recovery"] = str(outcome)
        self.log.warning("call of a previous recorder taken over: %s", outcome)
        line = audit_record(
            "call-recovered",
            evidence=self.evidence,
            recording_id=None if self.tap is None else self.tap.recording_id,
            channel=self.id,
            recovery=str(outcome),
            found=str(self.record.state),
            continues=self.journal.continues,
            removed=list(self.removed),
        )
        self.ctx.append_audit(line, dict(self.evidence.personal))
