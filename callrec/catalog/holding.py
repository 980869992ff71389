"""Holds and deletions in the catalogue: the one place that decides whether a recording may go.

A legal hold must win over any deletion that has not yet touched the file,
whichever process (another shell, another recorder sharing a PostgreSQL
catalogue) places it. So a deleter first *claims* a recording: in one
transaction the row is read under a lock (``SELECT ... FOR UPDATE`` on
PostgreSQL; SQLite's writer holds its one write lock from ``BEGIN
IMMEDIATE``), and only a row not on hold becomes ``deleting``. A hold reads
its rows under the same lock and refuses a ``deleting`` one. Whichever
transaction comes second sees what the first did: a held recording is never
claimed, a claimed one is never held.

Then the deleter deletes the file, and the tombstone (:func:`tombstone`)
ends the claim. A file that could not be deleted gives its claim back
(:func:`give_back`). A run that stops in between (a crash, the catalogue
gone) leaves the row ``deleting``: a claim again on it succeeds, so the next
run on that recorder finishes the deletion (``callrec.dpo.deleting``). A
claim is never rolled back by a later run: the first one may still be at
work, and its file would then go after all while the row said it could be
held.

Every function runs in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from callrec.catalog.db import Cursor
from callrec.catalog.files import uri_path
from callrec.catalog.model import CatalogError, RecordingEntry, RecordingState
from callrec.catalog.rows import RECORDING_COLUMNS, recording_entry, select

# States a claim turns into DELETING: the file is (or should be) in the spool.
_CLAIMABLE = (RecordingState.PRESENT, RecordingState.MISSING)


def fetch(cur: Cursor, recording_id: str) -> RecordingEntry:
    """One recording's row, locked until the transaction ends; unknown: CatalogError."""
    rows = cur.run(
        select(RECORDING_COLUMNS, "recordings", "recording_id = ?") + cur.row_lock,
        (recording_id,),
    )
    if not rows:
        raise CatalogError(f"no recording {recording_id} in the catalogue")
    return recording_entry(rows[0])


def of_call(cur: Cursor, key: tuple[str, str]) -> list[RecordingEntry]:
    """Every recording of a (recorder, call), locked, in one order (no deadlock between two)."""
    where = "recorder_id = ? AND call_id = ? ORDER BY recording_id"
    rows = cur.run(select(RECORDING_COLUMNS, "recordings", where) + cur.row_lock, key)
    return [recording_entry(row) for row in rows]


def hold(
    cur: Cursor, targets: Sequence[RecordingEntry], reason: str, by: str, at: str
) -> list[str]:
    """Put ``targets`` (read by :func:`fetch` or :func:`of_call`) on hold; all or none."""
    for rec in targets:
        if rec.state is RecordingState.DELETED:
            raise CatalogError(f"recording {rec.recording_id} was deleted: nothing left to hold")
        if rec.state is RecordingState.DELETING:
            raise CatalogError(too_late_to_hold(rec))
    for rec in targets:
        cur.run(
            "UPDATE recordings SET state = ?, hold_reason = ?, held_by = ?, held_at = ? "
            "WHERE recording_id = ?",
            (str(RecordingState.HELD), reason, by, at, rec.recording_id),
        )
    return [r.recording_id for r in targets]


def too_late_to_hold(rec: RecordingEntry) -> str:
    """Why a recording claimed for deletion cannot be held: which rule, who, since when."""
    said = f"recording {rec.recording_id} is being deleted"
    if rec.deletion is not None:
        d = rec.deletion
        said += f" (under {d.rule}, by {d.by} since {d.at:%Y-%m-%d %H:%M:%S} UTC)"
    return f"{said}: too late for a hold"


def release(cur: Cursor, targets: Sequence[RecordingEntry]) -> list[str]:
    """Lift the hold of those ``targets`` that are held; returns their ids."""
    released = []
    for rec in targets:
        if rec.state is not RecordingState.HELD:
            continue
        cur.run(
            "UPDATE recordings SET state = ?, hold_reason = NULL, held_by = NULL, "
            "held_at = NULL WHERE recording_id = ?",
            (str(_as_found(rec)), rec.recording_id),
        )
        released.append(rec.recording_id)
    return released


def claim(cur: Cursor, recording_id: str, by: str, rule: str, at: str) -> RecordingEntry:
    """Claim a recording for deletion; returns its row as it now is.

    ``DELETING``: the caller may delete the file (a row already ``deleting``
    too: finishing a claim is harmless); ``HELD``: keep it; ``DELETED``:
    already a tombstone.
    """
    rec = fetch(cur, recording_id)
    if rec.state not in _CLAIMABLE:
        return rec
    cur.run(
        "UPDATE recordings SET state = ?, deleted_by = ?, deleted_at = ?, deleted_rule = ? "
        "WHERE recording_id = ?",
        (str(RecordingState.DELETING), by, at, rule, recording_id),
    )
    return fetch(cur, recording_id)


def give_back(cur: Cursor, recording_id: str) -> RecordingEntry:
    """End a claim whose file could not be deleted: PRESENT or MISSING as found again."""
    rec = fetch(cur, recording_id)
    if rec.state is RecordingState.DELETING:
        cur.run(
            "UPDATE recordings SET state = ?, deleted_by = NULL, deleted_at = NULL, "
            "deleted_rule = NULL WHERE recording_id = ?",
            (str(_as_found(rec)), recording_id),
        )
    return fetch(cur, recording_id)


def tombstone(cur: Cursor, recording_id: str, by: str, rule: str, at: str) -> RecordingEntry:
    """Make a row a tombstone once its file is gone; a held one is refused, a tombstone stays."""
    rec = fetch(cur, recording_id)
    if rec.state is RecordingState.DELETED:
        return rec
    if rec.state is RecordingState.HELD:
        assert rec.hold is not None
        raise CatalogError(
            f"recording {recording_id} is on hold ({rec.hold.reason}, by "
            f"{rec.hold.by}): release it first"
        )
    cur.run(
        "UPDATE recordings SET state = ?, deleted_by = ?, deleted_at = ?, "
        "deleted_rule = ? WHERE recording_id = ?",
        (str(RecordingState.DELETED), by, at, rule, recording_id),
    )
    return fetch(cur, recording_id)


def claimed(cur: Cursor, recorder_id: str) -> list[RecordingEntry]:
    """The recorder's recordings left ``deleting``, oldest claim first."""
    rows = cur.run(
        select(RECORDING_COLUMNS, "recordings",
               "recorder_id = ? AND state = ? ORDER BY deleted_at, recording_id"),
        (recorder_id, str(RecordingState.DELETING)),
    )  # fmt: skip
    return [recording_entry(row) for row in rows]


def _as_found(rec: RecordingEntry) -> RecordingState:
    return RecordingState.PRESENT if uri_path(rec.uri).is_file() else RecordingState.MISSING
