"""A call's crash-safe record (:mod:`callrec.live`), kept up to date by its session.

The session writes the record at each state change, naming every PBX object
before it is requested (ids are chosen by callrec), so whatever moment a
``kill -9`` hits, the record names all the call had: the destination leg,
its bridge, the recording tap. A restarted recorder reads it
(:mod:`ari_app.recovery`). Writes run in a thread, keeping two fsyncs off the
event loop that carries the RTP; a record that cannot be written costs the
call its crash recovery (logged), never the call itself.
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
from callrec.tap import LogLike, TapResult

logger = logging.getLogger(__name__)


class CallJournal:
    """The live record of one call: :meth:`save` each change, :meth:`close` at its end."""

    def __init__(self, ctx: CallContext, call: LiveCall, log: LogLike = logger) -> None:
        self._ctx = ctx
        self.call = call
        self._log = log

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
        """What the recording about to start continues (None for a call's first one)."""
        return None if self.call.continues is None else self.call.continues.to_json()

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

    async def _write(self) -> None:
        store = self._ctx.live
        if store is None:
            return
        try:
            await asyncio.to_thread(store.save, self.call)
        except LiveRecordError as exc:
            # The call goes on; only a crash now would find nothing to recover.
            self._log.error("crash recovery off for this call: %s", safe(str(exc), 300))
