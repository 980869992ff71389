"""Legal holds: a recording on hold is never deleted, by retention or by erasure, until released.

Each hold and release writes its access line first (``hold``, ``release``,
with the reason), then changes the catalogue; a hold on a call id holds
every recording of that call. A recording a retention run or an erasure has
already claimed for deletion cannot be held any more: the catalogue refuses
it (:mod:`callrec.catalog.holding`), and is asked before the access line so
a refusal usually leaves none.
"""

from __future__ import annotations

from callrec.catalog import CatalogError, Entry, RecordingState
from callrec.catalog.holding import too_late_to_hold
from callrec.dpo.access import Action
from callrec.dpo.desk import Desk


def hold(desk: Desk, id: str, reason: str) -> list[str]:
    """Put ``id`` (a recording or a call) on hold; returns the recording ids now held."""
    entry = _entry(desk, id)
    ids = [r.recording_id for r in entry.recordings if r.state is not RecordingState.DELETED]
    if not ids:
        raise CatalogError(f"{id}: no recording left to hold (deleted, or none was made)")
    for rec in entry.recordings:
        if rec.state is RecordingState.DELETING:
            raise CatalogError(too_late_to_hold(rec))
    desk.access.record(Action.HOLD, desk.actor, ids, reason)
    return desk.catalog.set_hold(id, reason, desk.by)


def release(desk: Desk, id: str, reason: str | None = None) -> list[str]:
    """Lift the hold of ``id``; returns the recording ids released (none: none was held)."""
    entry = _entry(desk, id)
    held = [r.recording_id for r in entry.recordings if r.state is RecordingState.HELD]
    if not held:
        return []
    desk.access.record(Action.RELEASE, desk.actor, held, reason)
    return desk.catalog.release(id, desk.by)


def _entry(desk: Desk, id: str) -> Entry:
    entry = desk.catalog.get(id)
    if entry is None:
        raise CatalogError(f"{id}: no such call or recording in the catalogue")
    # A recording id names that recording alone, not the other parts of its call.
    single = tuple(r for r in entry.recordings if r.recording_id == id)
    return Entry(entry.call, single) if single else entry
