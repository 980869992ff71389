"""Recording from the dialplan: /record, /stop, /pause, /resume over the core's tap.

``/record`` starts a :class:`~callrec.tap.RecordingTap` on the AGI channel
(snoop spy=both into the callrec app, bridged with ExternalMedia, RTP into
the media recorder, sealed writer; for a number recorded in stereo two
snoops, spy in and spy out, into a 2-channel file), but only for a channel
whose consent this server decided and that allows recording: the
:class:`~agi.gate.ConsentLedger` is keyed by the channel's uniqueid, so a
``CALLREC_CONSENT`` set by hand in the dialplan counts for nothing. The AGI
session then ends and the call goes on in the admin's dialplan while the
tap records.

When the call hangs up, the snoop leaves Stasis with a StasisEnd and no
ChannelDestroyed (trace 05); RTP stops with it and the tap's bridge stays
behind, so on that StasisEnd the tap is stopped, which removes the
ExternalMedia channel and the bridge and seals the file. One audit line per
recording is written at sealing time.

``/stop``, ``/pause`` and ``/resume`` find the recording by the channel's
uniqueid or, when run on another leg of the call (an agent's feature code),
by its linkedid.

Each recording keeps a live record (:mod:`callrec.live`, ``frontend: agi``)
from before its tap is requested until it is sealed: a ``callrec serve``
killed mid-call leaves it, and the next one takes the call over
(:mod:`agi.takeover`). SIGTERM keeps it too, naming the sealed recording, so
a restart records the rest of the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from agi.gate import CONNECT_VARIABLE, ERROR_VARIABLE, ConsentLedger, ConsentRecord, valid_uniqueid
from agi.protocol import AgiCommands, AgiEnvironment
from agi.waiting import WaitingCalls
from callrec.ari.events import Event
from callrec.ari.router import EventRouter
from callrec.audit import audit_record
from callrec.clock import Clock
from callrec.consent import records
from callrec.errors import AriError, AriUnavailable, CallrecError, RecordingUnavailable
from callrec.failure_policy import BEST_EFFORT, FailurePolicy, is_strict
from callrec.live import Frontend, LiveCall, LiveState, consent_of
from callrec.live_journal import LiveJournal
from callrec.logutil import CallLogAdapter, safe
from callrec.media.layout import ChannelMode
from callrec.pausing import PauseSource
from callrec.takeover import Services
from callrec.tap import (
    RECORDING_FAILED,
    LogLike,
    RecordingTap,
    TapResult,
    ends_recording,
)
from callrec.tap_watchdog import is_media_loss

logger = logging.getLogger(__name__)

RECORDING_VARIABLE = "CALLREC_RECORDING"
# How often to look for snoops that vanished while the events websocket was down.
SWEEP_INTERVAL = 5.0
PAUSED_VARIABLE = "CALLREC_PAUSED"


class CoreServices(Services, Protocol):
    """What the recording path needs from the running app (its CallContext fits):
    what taking a crashed predecessor's calls over needs (client, spool, live
    records, audit), and more."""

    @property
    def router(self) -> EventRouter: ...

    @property
    def pseudonym_key(self) -> bytes: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def app(self) -> str: ...

    @property
    def pbx_boot(self) -> str | None: ...

    def new_tap(
        self, log: LogLike, on_failure: Callable[[str], None], *, layout: ChannelMode | None = None
    ) -> RecordingTap: ...


CoreProvider = Callable[[], CoreServices | None]


@dataclass
class ActiveRecording:
    consent: ConsentRecord
    tap: RecordingTap
    log: CallLogAdapter
    journal: LiveJournal
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    watcher: asyncio.Task[None] | None = None
    result: TapResult | None = None
    reason: str = ""
    failure: str = ""  # why the recording failed mid-call, for its audit line
    policy: FailurePolicy = BEST_EFFORT  # recording.on_failure when it started
    # A continuation's: the audit lines' ``continues`` and ``recovery``.
    audit_extra: dict[str, Any] = field(default_factory=dict)

    @property
    def uniqueid(self) -> str:
        return self.consent.uniqueid

    def set_paused(self, pause: bool, source: PauseSource) -> bool:
        """Pause or resume for ``source`` (the dialplan's /pause and /resume, the
        control socket), through the tap's pause control; False when nothing
        changed: paused (or recording) already, or the recording has ended."""
        changed = (self.tap.pause if pause else self.tap.resume)(source)
        what = ("paused" if pause else "resumed") if changed else "unchanged"
        self.log.info("recording %s: %s (%s)", self.tap.recording_id, what, source)
        return changed

    def end(self, reason: str) -> None:
        """Ask for the end; the first reason given wins."""
        if not self.ended.is_set():
            self.reason = reason
            self.ended.set()


class AgiRecordings:
    """The recordings this FastAGI server started, by channel uniqueid."""

    def __init__(
        self,
        core: CoreProvider,
        ledger: ConsentLedger,
        *,
        on_failure: FailurePolicy = BEST_EFFORT,
        sweep_interval: float = SWEEP_INTERVAL,
    ) -> None:
        self._core = core
        self._ledger = ledger
        self.on_failure = on_failure  # for recordings started from now on (a reload sets it)
        self._active: dict[str, ActiveRecording] = {}
        self._closing = False
        self._sweep_interval = sweep_interval
        self._sweeper: asyncio.Task[None] | None = None
        # A predecessor's dialplan recordings until each is taken over (agi.takeover).
        self.waiting = WaitingCalls()

    @property
    def active(self) -> dict[str, ActiveRecording]:
        return dict(self._active)

    # --- AGI scripts --------------------------------------------------------

    async def record(self, agi: AgiCommands, env: AgiEnvironment) -> bool:
        """``/record``: refuse without this server's consent, else start the tap.

        True when this recording has (or will have, at sealing) its audit line.
        """
        uniqueid = env.uniqueid
        log = CallLogAdapter(logger, uniqueid or "-")
        consent = self._ledger.get(uniqueid) if valid_uniqueid(uniqueid) else None
        if consent is None or not records(consent.decision):
            why = "no decision of this server" if consent is None else str(consent.decision)
            log.warning("recording refused: %s", why)
            await agi.set_variable_quietly(ERROR_VARIABLE, "no-consent")
            return False
        current = self._active.get(uniqueid)
        if current is not None:
            # /record twice (or after record_after_consent) is the same recording.
            await agi.set_variable_quietly(RECORDING_VARIABLE, current.tap.recording_id or "")
            return True
        core = self._core()
        if core is None or self._closing:
            log.error("recording unavailable: the ARI side is not running")
            await self._unavailable(agi)
            return False
        try:
            active = await self._start(core, consent, log)
        except RecordingUnavailable as exc:
            log.error("recording unavailable: %s", safe(str(exc), 200))
            await self._unavailable(agi)
            return True  # the failure line is written
        await agi.set_variable_quietly(RECORDING_VARIABLE, active.tap.recording_id or "")
        return True

    async def continue_recording(
        self, core: CoreServices, consent: ConsentRecord, log: CallLogAdapter, record: LiveCall
    ) -> ActiveRecording:
        """Record the rest of a call a crashed predecessor was recording
        (:mod:`agi.takeover`): a continuation of ``record``'s recording.
        :class:`RecordingUnavailable` when it cannot start (audited)."""
        if self._closing:
            raise RecordingUnavailable("callrec serve is stopping")
        return await self._start(core, consent, log, record)

    async def _unavailable(self, agi: AgiCommands) -> None:
        """recording.on_failure: strict refuses the call, best-effort lets it go on."""
        await agi.set_variable_quietly(ERROR_VARIABLE, "recording-unavailable")
        await agi.set_variable_quietly(
            CONNECT_VARIABLE, "no" if is_strict(self.on_failure) else "yes"
        )

    async def stop(self, agi: AgiCommands, env: AgiEnvironment) -> None:
        """``/stop``: seal this call's recording now; the call goes on."""
        active = await self._find(agi, env)
        if active is None:
            return
        active.end("stopped")
        if active.watcher is not None:
            await asyncio.shield(active.watcher)
        await agi.set_variable_quietly(RECORDING_VARIABLE, "")

    async def pause(self, agi: AgiCommands, env: AgiEnvironment) -> None:
        """``/pause``: keep the stream, write a pause frame, discard audio until resume."""
        await self._pause_or_resume(agi, env, "pause")

    async def resume(self, agi: AgiCommands, env: AgiEnvironment) -> None:
        """``/resume``: write a resume frame and record again."""
        await self._pause_or_resume(agi, env, "resume")

    async def _pause_or_resume(self, agi: AgiCommands, env: AgiEnvironment, action: str) -> None:
        active, linkedid = await self._lookup(agi, env)
        now = None
        if active is None and (waiting := self.waiting.find(env.uniqueid, linkedid)) is not None:
            core = self._core()  # not taken over yet: its continuation starts so
            if core is not None:
                now = self.waiting.set_paused(
                    waiting.call, action == "pause", core.clock, core.live
                )
            if now is None:  # taken over meanwhile (or no services): the recording itself
                active = self._active.get(waiting.call)
        if active is not None:
            active.set_paused(action == "pause", PauseSource.AGI)
            now = active.tap.paused
        if now is None:
            await self._not_recording(agi, env)
            return
        await agi.set_variable_quietly(PAUSED_VARIABLE, "yes" if now else "no")

    # --- life cycle ---------------------------------------------------------

    async def close_all(self, reason: str = "shutdown") -> None:
        """Seal every open recording (SIGTERM); the calls themselves carry on."""
        self._closing = True
        watchers = []
        for active in list(self._active.values()):
            active.end(reason)
            if active.watcher is not None:
                watchers.append(active.watcher)
        await asyncio.gather(*watchers, return_exceptions=True)
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)

    # --- internals ----------------------------------------------------------

    async def _start(
        self,
        core: CoreServices,
        consent: ConsentRecord,
        log: CallLogAdapter,
        resumed: LiveCall | None = None,
    ) -> ActiveRecording:
        """Start the tap (a continuation of ``resumed``, a crashed predecessor's
        record) with its live record written before anything is requested."""
        layout = None if resumed is None else resumed.layout
        tap = core.new_tap(
            log, lambda reason: self._tap_failed(consent.uniqueid, reason), layout=layout
        )
        record = resumed or _new_record(core, consent, self.on_failure)
        journal = LiveJournal(core.live, core.clock, record, log)
        active = ActiveRecording(
            consent, tap, log, journal, policy=record.on_failure or BEST_EFFORT
        )

        def on_snoop_event(event: Event) -> None:
            if event.type in ("StasisEnd", "ChannelDestroyed"):
                active.end("hangup")

        # Before start: the snoop's StasisEnd may come while the tap is still
        # setting up (a call hung up at once).
        core.router.subscribe(tap.snoop_id, on_snoop_event)
        self._active[consent.uniqueid] = active
        journal.follow_pauses(tap.pauses)  # a pause outlives a crash
        try:
            await journal.save(tap=tap.ids)
            continues = journal.continues
            recording_id = await tap.start(
                consent.uniqueid, consent.evidence, consent.call_id, continues=continues
            )
            await journal.recording_started(recording_id, tap.started_at or 0.0, layout=tap.mode)
        except CallrecError as exc:
            reason = safe(str(exc), 200)
            await self._abandon(core, active, on_snoop_event, RECORDING_FAILED, reason)
            if isinstance(exc, RecordingUnavailable):
                raise
            raise RecordingUnavailable(reason) from exc
        except asyncio.CancelledError:
            # Shutdown while setting up: nothing may stay behind on the PBX.
            await self._abandon(core, active, on_snoop_event, "shutdown", "shutdown")
            raise
        if continues is not None:
            active.audit_extra["continues"] = continues
        active.watcher = asyncio.create_task(self._watch(core, active, on_snoop_event))
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep(core))
        return active

    def _tap_failed(self, uniqueid: str, reason: str) -> None:
        """The recording failed mid-call; the call itself goes on in the dialplan.

        :func:`~callrec.tap.ends_recording` decides whether the recording
        ends; a recording kept through a media loss gets its own failure line
        now, as the loss is not in the line written at sealing.
        """
        active = self._active.get(uniqueid)
        if active is None:
            return
        active.log.error("%s", safe(reason, 200))
        if ends_recording(reason, active.policy):
            active.failure = active.failure or reason
            active.end(RECORDING_FAILED)
            return
        core = self._core()
        if core is not None and is_media_loss(reason):
            _audit(core, active.consent, None, "failure", reason, active.audit_extra)

    async def _abandon(
        self,
        core: CoreServices,
        active: ActiveRecording,
        handler: Callable[[Event], None],
        end: str,
        reason: str,
    ) -> None:
        """A start that failed: as the Stasis app does, remove whatever the tap
        created and seal a writer already opened (evidence only, no audio)."""
        self._active.pop(active.uniqueid, None)
        core.router.unsubscribe(active.tap.snoop_id, handler)
        result = None
        with contextlib.suppress(CallrecError):
            result = await active.tap.abandon(reason, end)
        if end != "shutdown":
            await active.journal.close(keep=False, result=result)
        # else the call goes on in the dialplan: its record stays as it was saved
        # (the tap's ids, what it continues) and the next start records the rest,
        # removing whatever of this tap Asterisk still creates.
        _audit(core, active.consent, result, "failure", reason, active.audit_extra)

    async def _sweep(self, core: CoreServices) -> None:
        """Seal recordings whose snoop vanished without a StasisEnd reaching us.

        Events are not replayed after a websocket drop (trace 07), so a call
        that hung up meanwhile would otherwise stay open for ever. One GET
        /channels per interval covers every recording.
        """
        while self._active:
            await core.clock.sleep(self._sweep_interval)
            try:
                live = {channel.id for channel in await core.client.list_channels()}
            except (AriError, AriUnavailable):
                continue
            for active in list(self._active.values()):
                if active.watcher is not None and active.tap.snoop_id not in live:
                    active.log.warning("snoop gone without a StasisEnd: sealing")
                    active.end("hangup")

    async def _watch(
        self, core: CoreServices, active: ActiveRecording, handler: Callable[[Event], None]
    ) -> None:
        """Wait for the end (hang-up, /stop or shutdown), then seal and audit."""
        await active.ended.wait()
        reason = active.reason
        core.router.unsubscribe(active.tap.snoop_id, handler)
        try:
            active.result = await active.tap.stop(reason, {"frontend": "agi"})
        except CallrecError as exc:
            active.log.error("recording could not be sealed: %s", safe(str(exc), 200))
        finally:
            self._active.pop(active.uniqueid, None)
        # Stopping the recorder leaves the call talking: the next start records the rest.
        await active.journal.close(keep=reason == "shutdown", result=active.result)
        self._audit_sealed(core, active, reason)

    async def _find(self, agi: AgiCommands, env: AgiEnvironment) -> ActiveRecording | None:
        """The recording of this channel, or of the call it is linked to."""
        active, _ = await self._lookup(agi, env)
        if active is None:
            await self._not_recording(agi, env)
        return active

    async def _lookup(
        self, agi: AgiCommands, env: AgiEnvironment
    ) -> tuple[ActiveRecording | None, str | None]:
        """The recording of this channel or its call, and the linkedid when it was asked."""
        active = self._active.get(env.uniqueid)
        if active is not None or self.waiting.find(env.uniqueid) is not None:
            return active, None
        linkedid = await agi.get_variable_quietly("CHANNEL(linkedid)")
        active = next(
            (a for a in self._active.values() if a.consent.evidence.linkedid == linkedid), None
        )
        return active, linkedid

    async def _not_recording(self, agi: AgiCommands, env: AgiEnvironment) -> None:
        log = CallLogAdapter(logger, env.uniqueid or "-")
        log.info("%s: no recording for this call", safe(env.network_script))
        await agi.set_variable_quietly(ERROR_VARIABLE, "not-recording")

    def _audit_sealed(self, core: CoreServices, active: ActiveRecording, reason: str) -> None:
        event = "call" if active.result is not None and reason != RECORDING_FAILED else "failure"
        why = active.failure if reason == RECORDING_FAILED and active.failure else reason
        _audit(core, active.consent, active.result, event, why, active.audit_extra)


def _new_record(core: CoreServices, consent: ConsentRecord, on_failure: FailurePolicy) -> LiveCall:
    """The live record of a recording about to start (nothing written yet)."""
    evidence = consent.evidence
    return LiveCall(
        call=consent.uniqueid,
        app=core.app,
        state=LiveState.RECORDING,
        started=core.clock.wall(),
        pseudonym=evidence.caller_pseudonym,
        dialled=evidence.dialled,
        pbx_boot=core.pbx_boot,
        decision=consent.decision,
        consent=consent_of(evidence),
        frontend=Frontend.AGI,
        call_id=consent.call_id,
        linkedid=evidence.linkedid,
        on_failure=on_failure,
    )


def _audit(
    core: CoreServices,
    consent: ConsentRecord,
    result: TapResult | None,
    event: str,
    reason: str,
    extra: dict[str, Any] | None = None,
) -> None:
    """One audit line for a recording: sealed, stopped, or failed (with what was sealed)."""
    evidence = consent.evidence
    fields: dict[str, Any] = {"call_id": consent.call_id, "stage": "recording", **(extra or {})}
    if result is not None:
        fields.update(result.audit_fields(evidence))
        event, outcome = result.audit_outcome(event, reason)
        reason = outcome or reason
    record = audit_record(event, evidence=evidence, reason=reason, **fields)
    core.append_audit(record, dict(evidence.personal))
