"""Dialplan recordings a predecessor left, from this recorder's start until each is taken over.

A restarted ``callrec serve`` knows the dialplan calls its predecessor was
recording (their live records, :mod:`callrec.live`) before it can take them
over: that waits for ARI, one snapshot of Asterisk and the dead tap's removal
(:mod:`agi.takeover`). An agent's dialplan that runs ``/pause`` in that moment
must not be told ``not-recording`` and then be recorded reading out a card
number: the pause is kept in the call's record (and on disk, should this
recorder die too), and the continuation starts paused, as it does after a
crash of a paused recording. ``/resume`` takes it back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from callrec.clock import Clock
from callrec.live import Frontend, LiveCall, LiveRecordError, LiveStore
from callrec.logutil import CallLogAdapter, safe
from callrec.pausing import OpenPause, PauseSource

logger = logging.getLogger(__name__)


class WaitingCalls:
    """The records of dialplan recordings not yet taken over, by channel."""

    def __init__(self) -> None:
        self._records: dict[str, LiveCall] = {}

    def add(self, records: Iterable[LiveCall], skip: Iterable[str] = ()) -> None:
        """Expect ``records`` (a FastAGI recording each, not one in ``skip``) to be taken over."""
        busy = set(skip)
        for record in records:
            if record.frontend is Frontend.AGI and record.call not in busy:
                self._records.setdefault(record.call, record)

    def find(self, uniqueid: str, linkedid: str | None = None) -> LiveCall | None:
        """The record of this channel, or of the call it is linked to."""
        record = self._records.get(uniqueid)
        if record is None and linkedid:
            record = next((r for r in self._records.values() if r.linkedid == linkedid), None)
        return record

    def claim(self, call: str) -> LiveCall | None:
        """The newest record of ``call`` (with the pause asked meanwhile), no longer waiting."""
        return self._records.pop(call, None)

    def set_paused(
        self, call: str, paused: bool, clock: Clock, store: LiveStore | None
    ) -> bool | None:
        """Pause (or resume) the continuation ``call`` will start with; None when it
        is no longer waiting (taken over meanwhile: ask the recording itself)."""
        record = self._records.get(call)
        if record is None:
            return None
        if (record.pause is not None) == paused:
            return paused
        pause = OpenPause(clock.wall(), PauseSource.AGI) if paused else None
        record = record.changed(pause=pause, updated=clock.wall())
        self._records[call] = record
        log = CallLogAdapter(logger, call)
        log.info(
            "%s before the take-over: the continuation starts so",
            "paused" if paused else "resumed",
        )
        if store is not None:
            try:
                # On the event loop: a rare moment, and no take-over may read an older one.
                store.save(record)
            except LiveRecordError as exc:
                log.error(
                    "the pause is not kept should this recorder die: %s", safe(str(exc), 300)
                )
        return paused
