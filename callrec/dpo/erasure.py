"""Erasing a caller (GDPR Art. 17): their recordings, and their personal fields in the audit log.

An erasure is an order in the catalogue (:meth:`Catalog.add_erasure_order`)
that every recorder carries out on its own spool and audit log and then
confirms; ``callrec recordings show`` names the recorders that have not yet.
With one recorder the order is carried out at once; with several, each runs
``callrec subject erase --carry-out`` (the daily retention service does).

Carrying out an order on this recorder:

1. find the caller's recordings here (catalogue and audit log, by pseudonym);
2. claim each in the catalogue (:mod:`.deleting`): one held by then is kept,
   and none claimed can be held any more;
3. one access line (``erasure-carried-out``) naming those about to go;
4. delete each file, then make its catalogue row a tombstone
   (rule ``erasure order <id>``);
5. remove the caller's personal fields from the audit log (:mod:`.scrub`);
6. remove the pseudonym from the catalogue's calls, and confirm the order.

A recording on legal hold is kept (Art. 17(3)(e): needed for a legal
claim), even when the hold came while the order was being carried out: the
rest is deleted, but the order stays pending on this recorder, with the
audit log and the catalogue still naming the caller, until the hold is
released and the order carried out again. A recording that could not be
claimed or deleted is reported and keeps the order pending likewise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callrec.catalog import Catalog, CatalogError, ErasureOrder, RecordingState
from callrec.dpo.access import AccessLog, AccessLogError, Action, Actor
from callrec.dpo.deleting import claim, erasure_rule, remove
from callrec.dpo.scrub import scrub_audit_log, scrub_rotated_logs
from callrec.dpo.subjects import FoundRecording, find_calls


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
        going = self._claim([r for r in mine if not r.held], order, done)
        if going:
            self._access_line(going, order)
        rule = erasure_rule(order.order_id)
        for found, catalogued in going:
            rid = found.recording_id
            removal = remove(self.catalog, rid, found.path, self.by, rule, claimed=catalogued)
            if removal.done:
                done.deleted.append(rid)
            else:
                done.failed.append((rid, removal.why))
        if done.complete:
            pseudonym = order.caller_pseudonym
            oid, key = order.order_id, self.access.signer  # each erased line attested with them
            done.lines_erased = scrub_audit_log(self.audit_log, pseudonym, order=oid, signer=key)
            done.lines_erased += scrub_rotated_logs(
                self.audit_log, pseudonym, order=oid, signer=key
            )
            self.catalog.forget_caller(order.caller_pseudonym, self.recorder_id)
            done.order = self.catalog.confirm_erasure(order, self.recorder_id)
            done.confirmed = True
        return done

    def _claim(
        self, candidates: Iterable[FoundRecording], order: ErasureOrder, done: CarriedOut
    ) -> list[tuple[FoundRecording, bool]]:
        """Claim each for deletion: (recording, whether the catalogue knows it) for those to go.

        One held since it was found is kept; one the catalogue cannot claim is a failure.
        """
        going = []
        for found in candidates:
            rid = found.recording_id
            try:
                now = claim(self.catalog, rid, self.by, erasure_rule(order.order_id))
            except CatalogError as exc:
                done.failed.append((rid, exc.message))
                continue
            if now is not None and now.state is RecordingState.HELD:
                done.held.append(rid)
            elif now is None or now.state is RecordingState.DELETING:
                going.append((found, now is not None))
        return going

    def _access_line(self, going: list[tuple[FoundRecording, bool]], order: ErasureOrder) -> None:
        """The access line, or no deletion at all: the claims are given back."""
        ids = [found.recording_id for found, _ in going]
        try:
            self.access.record(
                Action.ERASURE_CARRIED_OUT, self.actor, ids, order.reason, order=order.order_id
            )
        except AccessLogError:
            for found, catalogued in going:
                if catalogued:
                    self.catalog.give_back(found.recording_id)
            raise

    def _recordings(
        self, pseudonym: str, audit: Iterable[Mapping[str, Any]]
    ) -> list[FoundRecording]:
        """The caller's recordings on this recorder (another recorder's files are its own job)."""
        calls = find_calls(self.catalog, audit, pseudonym, self.recorder_id)
        return [
            r
            for call in calls
            for r in call.recordings
            if r.recorder_id in (None, self.recorder_id)
        ]
