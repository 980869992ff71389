"""Storage limitation (GDPR Art. 5(1)(e)): delete each recording once its retention has passed.

A recording of a call to number N is kept ``[retention.numbers."N"] days``,
else ``[retention] days``, counted from when it ended (its call's end, for a
recording whose own end is unknown). ``callrec retention run`` deletes what
has expired on this recorder's spool, oldest first: for each one a claim in
the catalogue (the hold checked again there, :mod:`.deleting`), an access
line (``retention-delete``, the rule as its reason, the date judged as of in
``as_of``), then the file, then the catalogue row becomes a tombstone (who,
when, which rule). A recording on legal hold is never deleted, even when the
hold came after the listing; it is listed as kept, with its hold's reason.

``as_of`` lets an admin preview a date (a later one than now only with
``dry_run``, which decides without touching anything).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from callrec.catalog import Catalog, CatalogError, Entry, RecordingEntry, RecordingState
from callrec.config_model import RetentionConfig, RetentionRule
from callrec.dpo.access import AccessLog, AccessLogError, Action, Actor
from callrec.dpo.deleting import claim, remove
from callrec.dpo.subjects import file_of

# Later than any recording can expire: what a retention past the calendar's end means.
NEVER = datetime.max.replace(tzinfo=UTC)


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
        """When the rule lets it go; :data:`NEVER` when that is past the year 9999."""
        try:
            return self.ended + timedelta(days=self.rule.days)
        except OverflowError:
            return NEVER


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
    """Deletes expired recordings: claim, access line, file, tombstone, in that order.

    ``as_of`` is the time the run judged expiry at, written into each access line.
    """

    catalog: Catalog
    access: AccessLog
    actor: Actor
    as_of: datetime | None = None

    @property
    def by(self) -> str:
        return f"{self.actor.user}@{self.actor.host}"

    def run(self, items: Iterable[Expired], *, dry_run: bool = False) -> list[Step]:
        return [self._one(item, dry_run) for item in items]

    def _one(self, item: Expired, dry_run: bool) -> Step:
        recording = item.recording
        if recording.state is RecordingState.HELD:
            return _kept(item, recording)
        if dry_run:
            return Step(item, Outcome.WOULD_DELETE)
        rid, rule = recording.recording_id, str(item.rule)
        try:
            now = claim(self.catalog, rid, self.by, rule)
        except CatalogError as exc:
            return Step(item, Outcome.FAILED, exc.message)
        if now is None:
            return Step(item, Outcome.FAILED, "no longer in the catalogue")
        if now.state is RecordingState.HELD:  # held after the listing, before the claim
            return _kept(item, now)
        if now.state is RecordingState.DELETED:
            return Step(item, Outcome.DELETED, "already deleted meanwhile")
        self._access_line(rid, rule)
        removal = remove(self.catalog, rid, file_of(recording.uri), self.by, rule, claimed=True)
        return Step(item, Outcome.DELETED if removal.done else Outcome.FAILED, removal.why)

    def _access_line(self, rid: str, rule: str) -> None:
        """The access line, or no deletion at all: the claim is given back."""
        as_of = {} if self.as_of is None else {"as_of": self.as_of.astimezone(UTC).isoformat()}
        try:
            self.access.record(Action.RETENTION_DELETE, self.actor, [rid], rule, **as_of)
        except AccessLogError:
            self.catalog.give_back(rid)
            raise


def _kept(item: Expired, recording: RecordingEntry) -> Step:
    hold = "" if recording.hold is None else recording.hold.reason
    return Step(item, Outcome.KEPT_ON_HOLD, hold)
