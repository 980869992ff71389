"""A Stasis call's crash-safe record (:mod:`callrec.live`), kept up to date by its session.

The session writes the record at each state change (the disclosure starts,
consent is decided, the destination is called, the call is bridged, a
recording starts): :class:`callrec.live_journal.LiveJournal` does the
writing, in a thread, one at a time, pauses included; this adds what only a
Stasis call has. A restarted recorder reads it (:mod:`ari_app.recovery`).
"""

from __future__ import annotations

from ari_app.context import CallContext
from callrec.consent import Decision
from callrec.evidence import Evidence
from callrec.live import LiveCall, LiveState, consent_of
from callrec.live_journal import LiveJournal
from callrec.tap import LogLike


class CallJournal(LiveJournal):
    """The live record of one call in the Stasis app."""

    def __init__(self, ctx: CallContext, call: LiveCall, log: LogLike) -> None:
        super().__init__(ctx.live, ctx.clock, call, log)

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

    async def disclosing(self, playback: str, evidence: Evidence) -> None:
        """The disclosure is about to play (its evidence so far: answer, prompt)."""
        await self.save(playback=playback, consent=consent_of(evidence))

    async def decided(self, decision: Decision, evidence: Evidence) -> None:
        await self.save(decision=decision, consent=consent_of(evidence))
