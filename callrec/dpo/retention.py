"""Storage limitation (GDPR Art. 5(1)(e)): delete each recording once its retention has passed.

A recording of a call to number N is kept ``[retention.numbers."N"] days``,
else ``[retention] days``, counted from when it ended (its call's end, for a
recording whose own end is unknown). ``callrec retention run`` deletes what
has expired on this recorder's spool, oldest first: for each one an access
line (``retention-delete``, the rule as its reason), then the file, then the
catalogue row becomes a tombstone (who, when, which rule). A recording on
legal hold is never deleted; it is listed as kept, with its hold's reason.

``as_of`` lets an admin preview a date; ``dry_run`` decides without
touching anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

from callrec.catalog import Catalog, CatalogError, Entry, RecordingEntry, RecordingState
from callrec.config_model import RetentionConfig, RetentionRule
from callrec.dpo.access import AccessLog, Action, Actor
from callrec.dpo.subjects import file_of
from callrec.spool import os_reason


class Outcome(StrEnum):
    """What a run did with one expired recording."""

    DELETED = "deleted"
    WOULD_DELETE = "would delete"  # --dry-run
    KEPT_ON_HOLD = "kept: on hold"
    FAILED = "failed"


@dataclass(frozen=True)
class Expired:
    """A recording past its retention: which rule, since when."""

    recording: RecordingEntry
    rule: RetentionRule
    ended: datetime

    @property
    def expired_at(self) -> datetime:
        return self.ended + timedelta(days=self.rule.days)


@dataclass(frozen=True)
class Step:
    """One line of what a run did."""

    expired: Expired
    outcome: Outcome
    why: str = ""

    def describe(self) -> str:
        """``<id> deleted (retention.days = 90; ended 2026-...)``, one line for the terminal."""
        e = self.expired
        said = f"{e.recording.recording_id} {self.outcome} ({e.rule}; ended {e.ended:%Y-%m-%d})"
        return f"{said}: {self.why}" if self.why else said


def parse_as_of(text: str) -> datetime:
    """``2027-03-01`` (midnight UTC) or an ISO 8601 time; ValueError naming the format."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date: give YYYY-MM-DD or an ISO 8601 time") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def expired(
    entries: Iterable[Entry], retention: RetentionConfig, as_of: datetime, recorder_id: str
) -> list[Expired]:
    """This recorder's recordings whose retention has passed at ``as_of``, oldest first.

    Tombstones are done; recordings with no time at all cannot be judged and stay.
    """
    found = []
    for entry in entries:
        dialled = "" if entry.call is None else entry.call.dialled
        call_end = None if entry.call is None else entry.call.ended
        for recording in entry.recordings:
            if recording.recorder_id != recorder_id or recording.state is RecordingState.DELETED:
                continue
            ended = recording.ended or recording.started or call_end
            if ended is None:
                continue
            item = Expired(recording, retention.rule_for(dialled), ended)
            if item.expired_at <= as_of:
                found.append(item)
    return sorted(found, key=lambda e: (e.ended, e.recording.recording_id))


@dataclass(frozen=True)
class Deleter:
    """Deletes expired recordings: access line, file, tombstone, in that order."""

    catalog: Catalog
    access: AccessLog
    actor: Actor

    @property
    def by(self) -> str:
        return f"{self.actor.user}@{self.actor.host}"

    def run(self, items: Iterable[Expired], *, dry_run: bool = False) -> list[Step]:
        return [self._one(item, dry_run) for item in items]

    def _one(self, item: Expired, dry_run: bool) -> Step:
        recording = item.recording
        if recording.state is RecordingState.HELD:
            hold = "" if recording.hold is None else recording.hold.reason
            return Step(item, Outcome.KEPT_ON_HOLD, hold)
        if dry_run:
            return Step(item, Outcome.WOULD_DELETE)
        rid = recording.recording_id
        self.access.record(Action.RETENTION_DELETE, self.actor, [rid], str(item.rule))
        try:
            gone = delete_file(file_of(recording.uri))
            self.catalog.mark_deleted(rid, self.by, str(item.rule))
        except (OSError, CatalogError) as exc:
            why = os_reason(exc) if isinstance(exc, OSError) else exc.message
            return Step(item, Outcome.FAILED, why)
        return Step(item, Outcome.DELETED, "" if gone else "the file was already gone")


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
