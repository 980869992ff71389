"""Erasing a caller (GDPR Art. 17): their recordings, and their personal fields in the audit log.

An erasure is an order in the catalogue (:meth:`Catalog.add_erasure_order`)
that every recorder carries out on its own spool and audit log and then
confirms; ``callrec recordings show`` names the recorders that have not yet.
With one recorder the order is carried out at once; with several, each runs
``callrec subject erase --carry-out`` (the daily retention service does).

Carrying out an order on this recorder:

1. find the caller's recordings here (catalogue and audit log, by pseudonym);
2. one access line (``erasure-carried-out``) naming those about to go;
3. delete each file, then make its catalogue row a tombstone
   (rule ``erasure order <id>``);
4. remove the caller's personal fields from the audit log (:mod:`.scrub`);
5. remove the pseudonym from the catalogue's calls, and confirm the order.

A recording on legal hold is kept (Art. 17(3)(e): needed for a legal
claim): the rest is deleted, but the order stays pending on this recorder,
with the audit log and the catalogue still naming the caller, until the
hold is released and the order carried out again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callrec.catalog import Catalog, CatalogError, ErasureOrder
from callrec.dpo.access import AccessLog, Action, Actor
from callrec.dpo.retention import delete_file
from callrec.dpo.scrub import scrub_audit_log, scrub_rotated_logs
from callrec.dpo.subjects import FoundRecording, find_calls
from callrec.spool import os_reason


@dataclass
class CarriedOut:
    """What carrying out one order did on this recorder."""

    order: ErasureOrder
    deleted: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (recording id, why)
    lines_erased: int = 0
    confirmed: bool = False

    @property
    def complete(self) -> bool:
        return not self.held and not self.failed


@dataclass(frozen=True)
class Eraser:
    """Carries out erasure orders on this recorder (``recorder_id``, its audit log)."""

    catalog: Catalog
    access: AccessLog
    actor: Actor
    recorder_id: str
    audit_log: Path

    @property
    def by(self) -> str:
        return f"{self.actor.user}@{self.actor.host}"

    def order(self, pseudonym: str, reason: str) -> ErasureOrder:
        """Enter an order for every recorder, after an access line naming what it reaches."""
        known = find_calls(self.catalog, (), pseudonym)
        ids = [r.recording_id for call in known for r in call.recordings if not r.deleted]
        order = self.catalog.add_erasure_order(pseudonym, reason, self.by)
        self.access.record(Action.SUBJECT_ERASE, self.actor, ids, reason, order=order.order_id)
        return order

    def carry_out(self, order: ErasureOrder, audit: Iterable[Mapping[str, Any]]) -> CarriedOut:
        """Do ``order`` here; ``audit`` is this recorder's audit log, read."""
        done = CarriedOut(order)
        mine = [r for r in self._recordings(order.caller_pseudonym, audit) if not r.deleted]
        done.held = [r.recording_id for r in mine if r.held]
        going = [r for r in mine if not r.held]
        if going:
            ids = [r.recording_id for r in going]
            self.access.record(
                Action.ERASURE_CARRIED_OUT, self.actor, ids, order.reason, order=order.order_id
            )
        for found in going:
            self._delete(found, order, done)
        if done.complete:
            pseudonym = order.caller_pseudonym
            done.lines_erased = scrub_audit_log(self.audit_log, pseudonym)
            done.lines_erased += scrub_rotated_logs(self.audit_log, pseudonym)
            self.catalog.forget_caller(order.caller_pseudonym, self.recorder_id)
            done.order = self.catalog.confirm_erasure(order, self.recorder_id)
            done.confirmed = True
        return done

    def _recordings(
        self, pseudonym: str, audit: Iterable[Mapping[str, Any]]
    ) -> list[FoundRecording]:
        """The caller's recordings on this recorder (another recorder's files are its own job)."""
        calls = find_calls(self.catalog, audit, pseudonym)
        return [
            r
            for call in calls
            for r in call.recordings
            if r.recorder_id in (None, self.recorder_id)
        ]

    def _delete(self, found: FoundRecording, order: ErasureOrder, done: CarriedOut) -> None:
        rid = found.recording_id
        try:
            delete_file(found.path)
        except OSError as exc:
            done.failed.append((rid, os_reason(exc)))
            return
        try:
            self.catalog.mark_deleted(rid, self.by, f"erasure order {order.order_id}")
        except CatalogError:
            if self.catalog.recording(rid) is not None:
                raise  # known and still refused: not a row the catalogue lacks
        done.deleted.append(rid)
