"""Deleting one recording so that a legal hold can never come too late (retention and erasure).

What was listed as deletable may be put on hold a moment later, from another
shell or by a DPO on another recorder sharing the catalogue. So the file is
only touched after a claim (:meth:`Catalog.claim_deletion`, see
:mod:`callrec.catalog.holding`): the hold re-checked under a lock and the row
made ``deleting`` in one transaction, after which a hold is refused. Then:

1. the access line (written by the caller, naming what it claimed);
2. the file, removed and the removal made durable;
3. the tombstone (who, when, which rule).

A file that cannot be removed gives its claim back (the recording is present
again, and can be held). A run that stops after the claim (a crash, the
catalogue gone) leaves the row ``deleting``; :func:`finish_interrupted`, at
the start of the next ``callrec retention run``, finishes it: an access line
when the file is still there, the file, the tombstone. ``callrec subject
erase --carry-out`` finishes its own the same way, since claiming a
``deleting`` row again succeeds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from callrec.catalog import Catalog, CatalogError, CatalogUnavailable, RecordingEntry
from callrec.dpo.access import AccessLog, Action, Actor
from callrec.dpo.subjects import file_of
from callrec.spool import os_reason

_ERASURE_RULE = "erasure order "


def erasure_rule(order_id: str) -> str:
    """The rule a tombstone names for an erasure: ``erasure order <id>``."""
    return _ERASURE_RULE + order_id


def order_of(rule: str) -> str | None:
    """The erasure order a tombstone's rule names (None: a retention rule)."""
    return rule.removeprefix(_ERASURE_RULE) if rule.startswith(_ERASURE_RULE) else None


@dataclass(frozen=True)
class Removal:
    """How deleting one claimed recording ended: ``done`` (the file is gone), and a note why."""

    done: bool
    why: str = ""


def claim(catalog: Catalog, recording_id: str, by: str, rule: str) -> RecordingEntry | None:
    """Claim a recording for deletion; its row as it now is (``deleting``, ``held``, ``deleted``).

    None when the catalogue does not know the recording (one only this
    recorder's audit log names): no hold can name it either.
    """
    try:
        return catalog.claim_deletion(recording_id, by, rule)
    except CatalogUnavailable:
        raise
    except CatalogError:
        if catalog.recording(recording_id) is None:
            return None
        raise


def remove(
    catalog: Catalog, recording_id: str, path: Path | None, by: str, rule: str, *, claimed: bool
) -> Removal:
    """Delete a claimed recording's file, then write its tombstone (``claimed``: it has a row)."""
    try:
        gone = delete_file(path)
    except OSError as exc:
        why = os_reason(exc)
        return Removal(False, why + (_give_back(catalog, recording_id) if claimed else ""))
    if claimed:
        try:
            catalog.mark_deleted(recording_id, by, rule)
        except CatalogError as exc:
            return Removal(
                False,
                f"file deleted, no tombstone yet ({exc.message}); the next run writes it",
            )
    return Removal(True, "" if gone else "the file was already gone")


def _give_back(catalog: Catalog, recording_id: str) -> str:
    try:
        catalog.give_back(recording_id)
    except CatalogError as exc:
        return f" (still claimed for deletion, {exc.message}: the next run tries again)"
    return ""


def finish_interrupted(
    catalog: Catalog, access: AccessLog, actor: Actor, recorder_id: str
) -> list[tuple[RecordingEntry, Removal]]:
    """Finish the deletions an earlier run on this recorder claimed and never completed.

    Each was decided (not held, expired or ordered erased) and may be gone
    already; a file still there gets an access line first, naming its rule
    and who claimed it.
    """
    by = f"{actor.user}@{actor.host}"
    done = []
    for rec in catalog.claimed(recorder_id):
        assert rec.deletion is not None  # a claim names who, when and the rule
        rule, path = rec.deletion.rule, file_of(rec.uri)
        if path is not None and path.exists():
            order = order_of(rule)
            action = Action.RETENTION_DELETE if order is None else Action.ERASURE_CARRIED_OUT
            extra = {} if order is None else {"order": order}
            claimed_by = {"by": rec.deletion.by, "at": rec.deletion.at.isoformat()}
            access.record(action, actor, [rec.recording_id], rule, claimed=claimed_by, **extra)
        done.append((rec, remove(catalog, rec.recording_id, path, by, rule, claimed=True)))
    return done


def delete_file(path: Path | None) -> bool:
    """Remove a recording's file and make the removal durable; False when it was not there.

    Raises OSError when it is there and cannot be removed.
    """
    if path is None:
        return False
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return True
