"""The :class:`Catalog`: every call and recording, for finding, holding and erasing them.

Synchronous on purpose: ``callrec serve`` drives it from one thread of its
own (:mod:`callrec.catalog.service`), the CLI and the DPO tools call it
directly. Every method is one transaction, so two recorders sharing one
PostgreSQL catalogue never see half an entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from callrec.catalog.model import Entry, ErasureOrder, Recorder, RecordingEntry

# Named apart: inside the class, ``list`` is the method.
RecordingIds = list[str]
Entries = list[Entry]
Orders = list[ErasureOrder]
Recorders = list[Recorder]


class Catalog:
    """One open catalogue (SQLite file or PostgreSQL database)."""

    @classmethod
    def open(cls, url: str, *, recorder_id: str | None = None) -> Catalog:
        """Open the catalogue at ``url`` and bring its schema up to date.

        ``sqlite:///var/lib/callrec/catalog.sqlite3`` (the file and its
        folder are created, 0600/0700) or ``postgresql://user@host/db``
        (needs ``psycopg``; the password comes from the URL, ``PGPASSWORD`` or
        ``~/.pgpass``). ``recorder_id`` is the recorder this process enters
        entries for (``[catalog] recorder_id``); readers may leave it out.
        Raises :class:`CatalogUnavailable` when the database cannot be
        reached, :class:`CatalogError` for a URL it does not understand.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Close the connection; harmless twice."""
        raise NotImplementedError

    # --- entering -------------------------------------------------------------

    def record_call(self, line: Mapping[str, Any], *, recorder_id: str | None = None) -> bool:
        """Enter what one audit line says: a call, a sealed or adopted recording.

        Idempotent: the same line entered twice (a retry, a rebuild) changes
        nothing, and never undoes a hold or a deletion. Lines of no call
        (``service``...) are ignored. Facts the line lacks (codec, rate,
        signature) are read from the file's public header when the file is
        there (no key needed). Returns whether the line was a call's or a
        recording's. ``recorder_id`` defaults to the one given to :meth:`open`.
        """
        raise NotImplementedError

    def record_file(self, path: str, *, recorder_id: str | None = None) -> bool:
        """Enter a recording file no audit line named (a rebuild found it in the spool).

        Returns False when the file was already catalogued.
        """
        raise NotImplementedError

    # --- reading ----------------------------------------------------------------

    def list(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        pseudonym: str | None = None,
        decision: str | None = None,
        recorder: str | None = None,
    ) -> Entries:
        """Calls (with their recordings) and lone recordings, oldest first.

        ``since`` is inclusive, ``until`` exclusive, both on when the call
        started. ``pseudonym`` (never a number: see
        :func:`callrec.evidence.pseudonymise`) and ``decision`` select calls
        only; ``recorder`` a recorder id.
        """
        raise NotImplementedError

    def get(self, id: str) -> Entry | None:
        """The entry of a call id or a recording id (a recording: its call's entry).

        A call id is ``CALL`` or ``RECORDER/CALL`` when two recorders used the
        same one. None when the catalogue has no such id; raises
        :class:`CatalogError` when a bare call id names calls of several recorders.
        """
        raise NotImplementedError

    def recording(self, recording_id: str) -> RecordingEntry | None:
        """One recording's row, or None."""
        raise NotImplementedError

    def recorders(self) -> Recorders:
        """Every recorder that has entered something, by id."""
        raise NotImplementedError

    # --- holds and deletion -----------------------------------------------------

    def set_hold(
        self, id: str, reason: str, by: str, *, at: datetime | None = None
    ) -> RecordingIds:
        """Put a legal hold on a recording (or every recording of a call id).

        A held recording is never deleted until released. Returns the
        recording ids now held. Raises :class:`CatalogError` for an unknown
        id or a recording already deleted.
        """
        raise NotImplementedError

    def release(self, id: str, by: str, *, at: datetime | None = None) -> RecordingIds:
        """Lift the hold of a recording (or of every recording of a call id).

        Returns the recording ids released (none: nothing was held).
        """
        raise NotImplementedError

    def mark_deleted(
        self, recording_id: str, by: str, rule: str, *, at: datetime | None = None
    ) -> RecordingEntry:
        """Make a recording's row a tombstone after its file was deleted.

        Call it once the file is gone. Raises :class:`CatalogError` when the
        recording is unknown or on hold (a held recording is never deleted).
        Marking a tombstone again changes nothing.
        """
        raise NotImplementedError

    def set_verdict(self, recording_id: str, verdict: str) -> None:
        """Remember how the recording verified with a key (``callrec recordings show --key``)."""
        raise NotImplementedError

    def set_state(self, recording_id: str, state: str) -> None:
        """Mark a recording PRESENT or MISSING as its file was found (or not) by a rebuild.

        Never turns a tombstone back, nor lifts a hold.
        """
        raise NotImplementedError

    # --- erasure ------------------------------------------------------------------

    def add_erasure_order(
        self, pseudonym: str, reason: str, requested_by: str, *, at: datetime | None = None
    ) -> ErasureOrder:
        """Order every recorder to erase a caller; each known recorder must confirm it."""
        raise NotImplementedError

    def pending_erasure_orders(self, recorder_id: str | None = None) -> Orders:
        """Orders not yet confirmed by ``recorder_id`` (None: by any recorder), oldest first."""
        raise NotImplementedError

    def erasure_orders(self, pseudonym: str | None = None) -> Orders:
        """Every order (of one caller), oldest first, with who has confirmed it."""
        raise NotImplementedError

    def confirm_erasure(
        self, order: ErasureOrder | str, recorder_id: str, *, at: datetime | None = None
    ) -> ErasureOrder:
        """Record that ``recorder_id`` carried out ``order`` on its spool."""
        raise NotImplementedError

    def forget_caller(self, pseudonym: str, recorder_id: str | None = None) -> int:
        """Remove a caller's pseudonym from the calls (of one recorder); returns how many.

        Erasure does this after deleting the files: the calls stay (date,
        dialled number, decision) but no longer name whom they were with.
        """
        raise NotImplementedError
