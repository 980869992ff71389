"""The :class:`Catalog`: every call and recording, for finding, holding and erasing them.

Synchronous on purpose: ``callrec serve`` drives it from one thread of its
own (:mod:`callrec.catalog.service`), the CLI and the DPO tools call it
directly. Every method is one transaction, so two recorders sharing one
PostgreSQL catalogue never see half an entry.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callrec.catalog import entering, holding, queries
from callrec.catalog.db import CatalogUrl, Connection, Cursor, connect, parse_url
from callrec.catalog.files import uri_path
from callrec.catalog.lines import call_facts, parse_time, recording_facts
from callrec.catalog.model import (
    CatalogError,
    Entry,
    ErasureOrder,
    Recorder,
    RecordingEntry,
    RecordingState,
)
from callrec.catalog.rows import (
    CALL_COLUMNS,
    RECORDER_COLUMNS,
    RECORDING_COLUMNS,
    dt,
    recorder,
    recording_entry,
    select,
    ts,
)
from callrec.catalog.schema import migrate
from callrec.clock import SYSTEM_CLOCK, Clock

if TYPE_CHECKING:
    from callrec.config_model import Config

# Named apart: inside the class, ``list`` is the method.
RecordingIds = list[str]
Recordings = list[RecordingEntry]
Entries = list[Entry]
Orders = list[ErasureOrder]
Recorders = list[Recorder]


class Catalog:
    """One open catalogue (SQLite file or PostgreSQL database)."""

    def __init__(
        self, conn: Connection, where: CatalogUrl, recorder_id: str | None, clock: Clock
    ) -> None:
        self.where = where
        self.recorder_id = recorder_id
        self._conn: Connection | None = conn
        self._clock = clock

    @classmethod
    def open(
        cls,
        url: str,
        *,
        recorder_id: str | None = None,
        base: Path | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> Catalog:
        """Open the catalogue at ``url`` and bring its schema up to date.

        ``sqlite:///var/lib/callrec/catalog.sqlite3`` (the file and its
        folder are created, 0600/0700; a relative path resolves against
        ``base``) or ``postgresql://user@host/db`` (psycopg; the password
        comes from the URL, ``PGPASSWORD`` or ``~/.pgpass``). ``recorder_id``
        is the recorder this process enters entries for (``[catalog]
        recorder_id``); readers may leave it out. Raises
        :class:`CatalogUnavailable` when the database cannot be reached,
        :class:`CatalogError` for a URL it does not understand or a schema
        newer than this callrec.
        """
        where = parse_url(url, base)
        conn = connect(where)
        catalog = cls(conn, where, recorder_id, clock)
        try:
            with conn.transaction() as cur:
                migrate(cur, catalog._now())
        except BaseException:
            conn.close()
            raise
        return catalog

    @classmethod
    def from_config(cls, config: Config, *, clock: Clock = SYSTEM_CLOCK) -> Catalog:
        """The catalogue ``[catalog]`` names, entering as its ``recorder_id``."""
        settings = config.catalog
        return cls.open(
            settings.url, recorder_id=settings.recorder_id, base=config.path.parent, clock=clock
        )

    def close(self) -> None:
        """Close the connection; harmless twice."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _db(self) -> Connection:
        if self._conn is None:
            raise CatalogError(f"catalogue {self.where} is closed")
        return self._conn

    def _now(self) -> str:
        now = ts(datetime.fromtimestamp(self._clock.wall(), UTC))
        assert now is not None
        return now

    def _at(self, at: datetime | None) -> str:
        return ts(at) if at is not None else self._now()  # type: ignore[return-value]

    def _entering_as(self, recorder_id: str | None) -> str:
        who = recorder_id or self.recorder_id
        if not who:
            raise CatalogError("no recorder id to enter entries for ([catalog] recorder_id)")
        return who

    # --- entering -------------------------------------------------------------

    def register(self, spool: Path, *, recorder_id: str | None = None) -> None:
        """Add this recorder (or note where its spool is) before it enters anything."""
        who = self._entering_as(recorder_id)
        with self._db().transaction() as cur:
            entering.touch_recorder(cur, who, self._parse(self._now()), spool=str(spool))

    def audit_seq(self, recorder_id: str | None = None) -> int | None:
        """The highest audit line (``seq``) entered for the recorder: where a catch-up starts."""
        who = self._entering_as(recorder_id)
        with self._db().transaction(write=False) as cur:
            rows = cur.run("SELECT audit_seq FROM recorders WHERE recorder_id = ?", (who,))
        return None if not rows or rows[0][0] is None else int(rows[0][0])

    def record_call(self, line: Mapping[str, Any], *, recorder_id: str | None = None) -> bool:
        """Enter what one audit line says: a call, a sealed or adopted recording.

        Idempotent: the same line entered twice (a retry, a rebuild) changes
        nothing, and never undoes a hold or a deletion. Lines of no call
        (``service``...) are ignored. Facts the line lacks (codec, rate,
        signature) are read from the file's public header when the file is
        there (no key needed). Returns whether the line was a call's or a
        recording's. ``recorder_id`` defaults to the one given to :meth:`open`.
        """
        who = self._entering_as(recorder_id)
        call, rec = call_facts(line), recording_facts(line)
        seq = line.get("seq")
        seq = seq if isinstance(seq, int) and not isinstance(seq, bool) else None
        written = parse_time(line.get("time"))
        with self._db().transaction() as cur:
            if written is not None:
                entering.touch_recorder(cur, who, written, seq)
            if call is not None:
                entering.merge_call(cur, who, call)
            if rec is not None:
                entering.merge_recording(cur, who, rec)
                if rec.continues and rec.call_id:
                    entering.link_continuation(cur, who, rec.continues, rec.call_id)
        return call is not None or rec is not None

    def record_file(self, path: Path, *, recorder_id: str | None = None) -> bool:
        """Enter a recording file no audit line named (a rebuild found it in the spool).

        Returns False when the file was already catalogued or is no recording.
        """
        who = self._entering_as(recorder_id)
        with self._db().transaction() as cur:
            entering.touch_recorder(cur, who, self._parse(self._now()))
            return entering.enter_file(cur, who, Path(path))

    def refresh_file(self, recording_id: str) -> RecordingEntry:
        """Look at a recording's file again: PRESENT or MISSING as found (a hold stays)."""
        with self._db().transaction() as cur:
            old = self._recording(cur, recording_id)
            if old.state in (RecordingState.PRESENT, RecordingState.MISSING):
                found = uri_path(old.uri).is_file()
                state = RecordingState.PRESENT if found else RecordingState.MISSING
                # Only a row still present or missing: a deleter's claim or a hold
                # committed since the read wins (PostgreSQL reads without a lock).
                cur.run(
                    "UPDATE recordings SET state = ? WHERE recording_id = ? AND state IN (?, ?)",
                    (str(state), recording_id, str(RecordingState.PRESENT),
                     str(RecordingState.MISSING)),
                )  # fmt: skip
            return self._recording(cur, recording_id)

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
        only (a lone recording has neither); ``recorder`` a recorder id.
        """
        with self._db().transaction(write=False) as cur:
            return queries.list_entries(cur, since, until, pseudonym, decision, recorder)

    def get(self, id: str) -> Entry | None:
        """The entry of a call id or a recording id (a recording: its call's entry).

        A call id is ``CALL`` or ``RECORDER/CALL`` when two recorders used the
        same one. None when the catalogue has no such id; raises
        :class:`CatalogError` when a bare call id names calls of several recorders.
        """
        with self._db().transaction(write=False) as cur:
            key = self._call_key(cur, id)
            if key is None:
                rows = cur.run(
                    select(RECORDING_COLUMNS, "recordings", "recording_id = ?"),
                    (id,),
                )
                if not rows:
                    return None
                rec = recording_entry(rows[0])
                if rec.call_id is None:
                    return Entry(None, (rec,))
                key = (rec.recorder_id, rec.call_id)
            calls = cur.run(
                select(CALL_COLUMNS, "calls", "recorder_id = ? AND call_id = ?"),
                key,
            )
            recs = cur.run(
                select(RECORDING_COLUMNS, "recordings", "recorder_id = ? AND call_id = ?"),
                key,
            )
        entries = queries.entries(calls, recs, [] if calls else recs)
        return entries[0] if entries else None

    def _call_key(self, cur: Cursor, id: str) -> tuple[str, str] | None:
        """(recorder, call) that ``id`` names as a call, or None when it names no call."""
        recorder_id, _, call_id = id.rpartition("/")
        if recorder_id:
            found = cur.run(
                "SELECT recorder_id, call_id FROM calls WHERE recorder_id = ? AND call_id = ?",
                (recorder_id, call_id),
            )
        else:
            found = cur.run("SELECT recorder_id, call_id FROM calls WHERE call_id = ?", (id,))
        if len(found) > 1:
            names = ", ".join(sorted(str(r[0]) for r in found))
            raise CatalogError(
                f"call id {id} was used by several recorders ({names}): name it as RECORDER/{id}"
            )
        return (str(found[0][0]), str(found[0][1])) if found else None

    def recording(self, recording_id: str) -> RecordingEntry | None:
        """One recording's row, or None."""
        with self._db().transaction(write=False) as cur:
            rows = cur.run(
                select(RECORDING_COLUMNS, "recordings", "recording_id = ?"),
                (recording_id,),
            )
        return recording_entry(rows[0]) if rows else None

    def recorders(self) -> Recorders:
        """Every recorder that has entered something, by id."""
        with self._db().transaction(write=False) as cur:
            rows = cur.run(select(RECORDER_COLUMNS, "recorders", "1 = 1 ORDER BY recorder_id"))
        return [recorder(row) for row in rows]

    def _recording(self, cur: Cursor, recording_id: str) -> RecordingEntry:
        rows = cur.run(
            select(RECORDING_COLUMNS, "recordings", "recording_id = ?"),
            (recording_id,),
        )
        if not rows:
            raise CatalogError(f"no recording {recording_id} in the catalogue")
        return recording_entry(rows[0])

    def _targets(self, cur: Cursor, id: str) -> Sequence[RecordingEntry]:
        """The recordings ``id`` names, locked: one recording, or every recording of a call."""
        key = self._call_key(cur, id)
        if key is None:
            return [holding.fetch(cur, id)]
        found = holding.of_call(cur, key)
        if not found:
            raise CatalogError(f"call {id} has no recording")
        return found

    # --- holds and deletion (callrec/catalog/holding.py) ------------------------

    def set_hold(
        self, id: str, reason: str, by: str, *, at: datetime | None = None
    ) -> RecordingIds:
        """Put a legal hold on a recording (or every recording of a call id).

        A held recording is never deleted until released. Returns the
        recording ids now held. Raises :class:`CatalogError` for an unknown
        id, an empty reason, or a recording deleted or being deleted (a
        deleter claimed it first: :meth:`claim_deletion`).
        """
        if not reason.strip():
            raise CatalogError("a hold needs a reason")
        with self._db().transaction() as cur:
            return holding.hold(cur, self._targets(cur, id), reason, by, self._at(at))

    def release(self, id: str, by: str, *, at: datetime | None = None) -> RecordingIds:
        """Lift the hold of a recording (or of every recording of a call id).

        Returns the recording ids released (none: nothing was held). Who
        released it, and when, is the access log's to keep.
        """
        with self._db().transaction() as cur:
            return holding.release(cur, self._targets(cur, id))

    def claim_deletion(
        self, recording_id: str, by: str, rule: str, *, at: datetime | None = None
    ) -> RecordingEntry:
        """Claim a recording for deletion before its file is touched; returns its row now.

        One transaction re-reads the row under a lock: state ``DELETING``
        means the caller may now delete the file, then call
        :meth:`mark_deleted` (or :meth:`give_back` when it cannot); ``HELD``
        means a hold came first, keep it; ``DELETED``: already a tombstone.
        From the claim on, :meth:`set_hold` refuses the recording.
        """
        with self._db().transaction() as cur:
            return holding.claim(cur, recording_id, by, rule, self._at(at))

    def give_back(self, recording_id: str) -> RecordingEntry:
        """Undo a claim whose file could not be deleted (present or missing again)."""
        with self._db().transaction() as cur:
            return holding.give_back(cur, recording_id)

    def claimed(self, recorder_id: str | None = None) -> Recordings:
        """The recorder's recordings claimed for deletion and never made tombstones.

        Left by a run that stopped between the claim and the tombstone; the
        next run finishes them.
        """
        who = self._entering_as(recorder_id)
        with self._db().transaction(write=False) as cur:
            return holding.claimed(cur, who)

    def mark_deleted(
        self, recording_id: str, by: str, rule: str, *, at: datetime | None = None
    ) -> RecordingEntry:
        """Make a recording's row a tombstone after its file was deleted.

        Call it once the file is gone (after :meth:`claim_deletion`). Raises
        :class:`CatalogError` when the recording is unknown or on hold (a
        held recording is never deleted). Marking a tombstone again changes
        nothing.
        """
        with self._db().transaction() as cur:
            return holding.tombstone(cur, recording_id, by, rule, self._at(at))

    def set_verdict(self, recording_id: str, verdict: str) -> None:
        """Remember how the recording verified with a key (``callrec recordings show --key``)."""
        with self._db().transaction() as cur:
            self._recording(cur, recording_id)
            cur.run(
                "UPDATE recordings SET verdict = ? WHERE recording_id = ?", (verdict, recording_id)
            )

    # --- erasure ------------------------------------------------------------------

    def add_erasure_order(
        self, pseudonym: str, reason: str, requested_by: str, *, at: datetime | None = None
    ) -> ErasureOrder:
        """Order every recorder to erase a caller; each recorder must confirm it.

        Every recorder the catalogue knows gets a confirmation row to fill;
        one that joins later must confirm it too.
        """
        if not reason.strip():
            raise CatalogError("an erasure order needs a reason")
        order_id = secrets.token_hex(8)
        with self._db().transaction() as cur:
            cur.run(
                "INSERT INTO erasure_orders (order_id, caller_pseudonym, reason, requested_by, "
                "requested_at) VALUES (?, ?, ?, ?, ?)",
                (order_id, pseudonym, reason, requested_by, self._at(at)),
            )
            cur.run(
                "INSERT INTO erasure_confirmations (order_id, recorder_id, confirmed_at) "
                "SELECT ?, recorder_id, NULL FROM recorders",
                (order_id,),
            )
            return queries.orders(cur, "o.order_id = ?", (order_id,))[0]

    def pending_erasure_orders(self, recorder_id: str | None = None) -> Orders:
        """Orders not yet confirmed by ``recorder_id`` (None: by every recorder), oldest first."""
        with self._db().transaction(write=False) as cur:
            orders = queries.orders(cur, "1 = 1", ())
        if recorder_id is None:
            return [o for o in orders if o.pending]
        return [o for o in orders if o.confirmations.get(recorder_id) is None]

    def erasure_orders(self, pseudonym: str | None = None) -> Orders:
        """Every order (of one caller), oldest first, with who has confirmed it."""
        with self._db().transaction(write=False) as cur:
            if pseudonym is None:
                return queries.orders(cur, "1 = 1", ())
            return queries.orders(cur, "o.caller_pseudonym = ?", (pseudonym,))

    def confirm_erasure(
        self, order: ErasureOrder | str, recorder_id: str, *, at: datetime | None = None
    ) -> ErasureOrder:
        """Record that ``recorder_id`` carried out ``order`` on its spool (again: no change)."""
        order_id = order if isinstance(order, str) else order.order_id
        with self._db().transaction() as cur:
            if not queries.orders(cur, "o.order_id = ?", (order_id,)):
                raise CatalogError(f"no erasure order {order_id} in the catalogue")
            entering.touch_recorder(cur, recorder_id, self._parse(self._now()))
            cur.run(
                "INSERT INTO erasure_confirmations (order_id, recorder_id, confirmed_at) "
                "VALUES (?, ?, NULL) ON CONFLICT (order_id, recorder_id) DO NOTHING",
                (order_id, recorder_id),
            )
            cur.run(
                "UPDATE erasure_confirmations SET confirmed_at = ? "
                "WHERE order_id = ? AND recorder_id = ? AND confirmed_at IS NULL",
                (self._at(at), order_id, recorder_id),
            )
            return queries.orders(cur, "o.order_id = ?", (order_id,))[0]

    def forget_caller(self, pseudonym: str, recorder_id: str | None = None) -> int:
        """Remove a caller's pseudonym from the calls (of one recorder); returns how many.

        Erasure does this after deleting the files: the calls stay (date,
        dialled number, decision) but no longer name whom they were with.
        """
        where, params = "caller_pseudonym = ?", [pseudonym]
        if recorder_id is not None:
            where += " AND recorder_id = ?"
            params.append(recorder_id)
        with self._db().transaction() as cur:
            count = len(cur.run(select(("call_id",), "calls", where), params))
            cur.run(f"UPDATE calls SET caller_pseudonym = NULL WHERE {where}", params)  # noqa: S608
        return int(count)

    @staticmethod
    def _parse(text: str) -> datetime:
        parsed = dt(text)
        assert parsed is not None
        return parsed
