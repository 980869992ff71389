"""A call's crash-safe record (:mod:`callrec.live`), kept up to date by its owner.

Both front ends keep one per recorded call: the Stasis app's session
(``ari_app/journal.py``) and the FastAGI recordings (``agi/recording.py``).
The owner writes the record at each change, naming every PBX object before
it is requested (ids are chosen by callrec), so whatever moment a ``kill -9``
hits, the record names all the call had. A restarted recorder reads it
(``ari_app/recovery.py``, ``agi/takeover.py``). Writes run in a thread,
keeping two fsyncs off the event loop that carries the RTP, one at a time and
always of the newest state; a record that cannot be written costs the call
its crash recovery (logged), never the call itself.

A pause is kept too (:meth:`LiveJournal.follow_pauses`): who asked, when, when
auto-resume ends it. A pause takes effect at once and its record follows
within milliseconds (the write is not awaited, the RTP must stop now), so
only a crash inside that moment finds the call unpaused.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from callrec.clock import Clock
from callrec.live import Continues, LiveCall, LivePart, LiveRecordError, LiveStore
from callrec.logutil import safe
from callrec.pausing import OpenPause, PauseControl
from callrec.tap import LogLike, TapResult

logger = logging.getLogger(__name__)


class LiveJournal:
    """The live record of one call: :meth:`save` each change, :meth:`close` at its end.

    ``store`` None: the spool cannot hold records, nothing is written.
    """

    def __init__(
        self, store: LiveStore | None, clock: Clock, call: LiveCall, log: LogLike = logger
    ) -> None:
        self._store = store
        self._clock = clock
        self.call = call
        self._log = log
        self._lock = asyncio.Lock()  # one write at a time: an older one never lands last
        self._closed = False
        self._pending: set[asyncio.Future[None]] = set()

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
        self.call = self.call.changed(pause=pause, updated=self._clock.wall())
        task = asyncio.ensure_future(self._write())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def save(self, **changes: Any) -> None:
        """Record ``changes`` (fields of :class:`~callrec.live.LiveCall`) durably."""
        self.call = self.call.changed(updated=self._clock.wall(), **changes)
        await self._write()

    async def recording_started(self, recording_id: str, started: float, **changes: Any) -> None:
        """A recording started (its part number follows the one it continues)."""
        previous = self.call.continues
        part = 1 if previous is None else previous.part + 1
        await self.save(recording=LivePart(recording_id, part, started), **changes)

    async def close(self, *, keep: bool, result: TapResult | None) -> None:
        """The call ended: forget it, or (``keep``: the recorder stops, the call
        goes on) note the sealed recording for the next start to continue."""
        store = self._store
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
        store = self._store
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
