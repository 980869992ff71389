"""A call's crash-safe record (:mod:`callrec.live`), kept up to date by its session.

The session writes the record at each state change, naming every PBX object
before it is requested (ids are chosen by callrec), so whatever moment a
``kill -9`` hits, the record names all the call had: the destination leg,
its bridge, the recording tap. A restarted recorder reads it
(:mod:`ari_app.recovery`). Writes run in a thread, keeping two fsyncs off the
event loop that carries the RTP, one at a time and always of the newest state;
a record that cannot be written costs the call its crash recovery (logged),
never the call itself.

A pause is kept too (:meth:`CallJournal.follow_pauses`): who asked, when, when
auto-resume ends it. A pause takes effect at once and its record follows
within milliseconds (the write is not awaited, the RTP must stop now), so
only a crash inside that moment finds the call unpaused.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ari_app.context import CallContext
from callrec.consent import Decision
from callrec.evidence import Evidence
from callrec.live import Continues, LiveCall, LivePart, LiveRecordError, LiveState, consent_of
from callrec.logutil import safe
from callrec.pausing import OpenPause, PauseControl
from callrec.tap import LogLike, TapResult

logger = logging.getLogger(__name__)


class CallJournal:
    """The live record of one call: :meth:`save` each change, :meth:`close` at its end."""

    def __init__(self, ctx: CallContext, call: LiveCall, log: LogLike = logger) -> None:
        self._ctx = ctx
        self.call = call
        self._log = log
        self._lock = asyncio.Lock()  # one write at a time: an older one never lands last
        self._closed = False
        self._pending: set[asyncio.Future[None]] = set()

    @classmethod
    def new(
        cls, ctx: CallContext, evidence: Evidence, dialled: str, started: float, log: LogLike
    ) -> CallJournal:
        """The record of a call that just entered Stasis (nothing written yet)."""
        call = LiveCall(
            call=evidence.uniqueid,
            app=ctx.app,
            state=LiveState.DISCLOSING,
            started=started,
            pseudonym=evidence.caller_pseudonym,
            dialled=dialled,
            pbx_boot=ctx.pbx_boot,
        )
        return cls(ctx, call, log)

    @property
    def continues(self) -> dict[str, Any] | None:
        """What the recording about to start continues (None for a call's first one);
        ``paused``: the pause it starts in, carried over from the one before."""
        if self.call.continues is None:
            return None
        out = self.call.continues.to_json()
        if self.call.pause is not None:
            out["paused"] = self.call.pause.to_json()
        return out

    def follow_pauses(self, pauses: PauseControl) -> None:
        """Keep the pauses of the recording about to start in the record.

        A pause the record already holds (the recording before this one
        ended paused: a crash, a stop) goes on in this one from its first
        instant, before any audio can reach it.
        """
        if self.call.pause is not None:
            pauses.carry_over(self.call.pause)
        pauses.watch(self._pause_changed)

    def _pause_changed(self, pause: OpenPause | None) -> None:
        self.call = self.call.changed(pause=pause, updated=self._ctx.clock.wall())
        task = asyncio.ensure_future(self._write())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def save(self, **changes: Any) -> None:
        """Record ``changes`` (fields of :class:`~callrec.live.LiveCall`) durably."""
        self.call = self.call.changed(updated=self._ctx.clock.wall(), **changes)
        await self._write()

    async def disclosing(self, playback: str, evidence: Evidence) -> None:
        """The disclosure is about to play (its evidence so far: answer, prompt)."""
        await self.save(playback=playback, consent=consent_of(evidence))

    async def decided(self, decision: Decision, evidence: Evidence) -> None:
        await self.save(decision=decision, consent=consent_of(evidence))

    async def recording_started(self, recording_id: str, started: float) -> None:
        previous = self.call.continues
        part = 1 if previous is None else previous.part + 1
        await self.save(recording=LivePart(recording_id, part, started))

    async def close(self, *, keep: bool, result: TapResult | None) -> None:
        """The call ended: forget it, or (``keep``: the recorder stops, the call
        goes on) note the sealed recording for the next start to continue."""
        store = self._ctx.live
        if store is None:
            return
        if not keep:
            async with self._lock:  # a pause's write still queued must not bring it back
                self._closed = True
                try:
                    await asyncio.to_thread(store.remove, self.call.call)
                except LiveRecordError as exc:
                    self._log.error("%s", safe(str(exc), 300))
            return
        recording = self.call.recording
        if recording is not None and result is not None and result.seal is not None:
            sealed = str(result.seal.path)
            continues = Continues(self.call.call, recording.id, sealed, recording.part)
            await self.save(tap=None, recording=None, continues=continues)
        else:
            await self.save(tap=None)
        self._closed = True

    async def _write(self) -> None:
        store = self._ctx.live
        if store is None:
            return
        async with self._lock:
            if self._closed:
                return
            try:
                await asyncio.to_thread(store.save, self.call)  # the newest state
            except LiveRecordError as exc:
                # The call goes on; only a crash now would find nothing to recover.
                self._log.error("crash recovery off for this call: %s", safe(str(exc), 300))
