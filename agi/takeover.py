"""Dialplan calls a crashed (or stopped) ``callrec serve`` was recording over FastAGI.

The call itself never depended on the recorder: it goes on in the admin's
dialplan (``Dial()``, a queue) while the snoop and ExternalMedia the killed
recorder created send RTP to a port nobody reads. Each such recording left
its live record (``frontend: agi``, :mod:`agi.recording`). On its first
connection the restarted recorder surveys Asterisk once and the Stasis app
hands these records here (:class:`~callrec.takeover.TakesOver`):

- the caller's channel is still up: the dead tap (snoop, ExternalMedia, its
  bridge; both legs of a stereo one) is removed and a new tap records the rest
  of the call in a **continuation** whose first metadata record is the
  consent evidence of the record plus ``continues`` (the call, the recording
  before it, its path, its part number), in the layout the call started
  with. A paused recording stays paused (``continues.paused``) until the
  dialplan's ``/resume``, which finds it by the channel or its linkedid as
  before. A ``call-recovered`` line says so; the continuation's own
  ``stage: recording`` line follows when it is sealed (at the hang-up);
- the channel is gone (or Asterisk restarted): ``call-lost-by-crash``; the
  crashed recording was adopted at start-up, TRUNCATED.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from agi.gate import ConsentLedger, ConsentRecord
from agi.recording import AgiRecordings, CoreServices
from callrec.ari.events import Channel
from callrec.audit import audit_record
from callrec.consent import records as records_audio
from callrec.errors import RecordingUnavailable
from callrec.evidence import Evidence
from callrec.live import Frontend, LiveCall, restore_consent
from callrec.logutil import CallLogAdapter, safe
from callrec.takeover import Recovery, Survey, continues_of, lose, remove

logger = logging.getLogger(__name__)


class AgiTakeOver:
    """Takes over the FastAGI recordings of a predecessor, one task per start-up."""

    def __init__(self, recordings: AgiRecordings, ledger: ConsentLedger) -> None:
        self._recordings = recordings
        self._ledger = ledger
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, core: CoreServices, survey: Survey, found: Sequence[LiveCall]) -> None:
        """Begin at once; the Stasis app's calls do not wait for these."""
        mine = [r for r in found if r.frontend is Frontend.AGI]
        if not mine:
            return
        task = asyncio.create_task(self._run(core, survey, mine), name="agi-take-over")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Stop taking over (SIGTERM): a call whose take-over was still being set
        up keeps its record, and the next start takes it over."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, core: CoreServices, survey: Survey, found: Sequence[LiveCall]) -> None:
        active = self._recordings.active
        live = [r for r in found if survey.still_there(r) and r.call not in active]
        lost = [r for r in found if not survey.still_there(r)]
        if live or lost:
            logger.warning(
                "found %d dialplan recording(s) of a previous recorder still up, %d gone",
                len(live),
                len(lost),
            )
        # One call's failure must not cost the others their continuation or lost line.
        jobs = [self._resume(core, r, survey) for r in live]
        for record in lost:
            self._recordings.waiting.claim(record.call)
        jobs += [lose(core, r, survey, call_id=r.call_id, stage="recording") for r in lost]
        for failed in await asyncio.gather(*jobs, return_exceptions=True):
            if isinstance(failed, Exception):
                logger.error(
                    "taking over a dialplan recording of a previous recorder failed",
                    exc_info=failed,
                )

    async def _resume(self, core: CoreServices, record: LiveCall, survey: Survey) -> None:
        """Record the rest of a call whose channel is still up, in a continuation."""
        log = CallLogAdapter(logger, record.call)
        old_tap = record.tap.ids() if record.tap is not None else ()
        removed = await remove(core.client, old_tap, survey)
        evidence = _evidence(core, record, survey.channels[record.call])
        continues = continues_of(record, core.spool)
        said = None if continues is None else continues.to_json()
        recording_id, outcome = None, Recovery.CONTINUED_UNRECORDED
        # From here to its recording's start nothing awaits: a /pause finds one or the other.
        latest = self._recordings.waiting.claim(record.call)
        if latest is not None:
            record = record.changed(pause=latest.pause)  # asked while it waited
        if record.decision is not None and records_audio(record.decision):
            call_id = record.call_id or record.call
            consent = ConsentRecord(call_id, record.call, record.decision, evidence)
            self._ledger.add(consent)  # a later /record finds this recording
            resumed = record.changed(tap=None, recording=None, continues=continues)
            try:
                active = await self._recordings.continue_recording(core, consent, log, resumed)
            except RecordingUnavailable as exc:  # its failure line is written
                log.error("the rest of the call goes unrecorded: %s", safe(str(exc), 200))
            else:
                recording_id, outcome = active.tap.recording_id, Recovery.RECORDING_CONTINUED
                said = active.audit_extra.get("continues", said)  # with the pause it starts in
                active.audit_extra["recovery"] = str(outcome)
        log.warning("dialplan recording of a previous recorder taken over: %s", outcome)
        line = audit_record(
            "call-recovered",
            evidence=evidence,
            recording_id=recording_id,
            channel=record.call,
            call_id=record.call_id,
            stage="recording",
            recovery=str(outcome),
            found=str(record.state),
            continues=said,
            removed=removed,
        )
        core.append_audit(line, dict(evidence.personal))


def _evidence(core: CoreServices, record: LiveCall, channel: Channel) -> Evidence:
    """The record's consent evidence, with the caller's number and name read from
    the live channel (a record holds no personal field in clear)."""
    evidence = Evidence.for_call(
        uniqueid=record.call,
        linkedid=record.linkedid or record.call,
        caller_number=channel.caller.number,
        caller_name=channel.caller.name,
        dialled=record.dialled,
        language="",
        pseudonym_key=core.pseudonym_key,
        frontend=str(Frontend.AGI),
    )
    restore_consent(evidence, record)
    evidence.channels["caller"] = record.call
    return evidence
