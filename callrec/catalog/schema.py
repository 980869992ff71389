"""The catalogue's tables, as numbered migrations run when a catalogue is opened.

``schema_version`` lists the migrations applied; opening a catalogue applies
the missing ones in order, each in the transaction that records it, under a
lock (two recorders starting together against one PostgreSQL catalogue take
turns). A catalogue newer than this callrec is refused, never written.

The DDL is the subset SQLite and PostgreSQL read alike. Times are ISO 8601
UTC text with milliseconds (``2026-01-31T12:00:00.000+00:00``), which sort
as they read. ``caller_key_id`` is there for per-caller keys
(crypto-shredding, docs/DESIGN.md): always null until that comes.
"""

from __future__ import annotations

from callrec.catalog.db import Cursor
from callrec.catalog.model import CatalogError

# pg_advisory_xact_lock key of the migrations ("callrec" in ASCII).
MIGRATION_LOCK = 0x63616C6C726563

_CREATE_VERSION = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    applied_at TEXT NOT NULL
)"""

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: recorders, calls, recordings (tombstones stay), erasure orders
    (
        """CREATE TABLE recorders (
            recorder_id TEXT PRIMARY KEY,
            first_seen TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            spool TEXT,
            audit_seq BIGINT
        )""",
        """CREATE TABLE calls (
            recorder_id TEXT NOT NULL REFERENCES recorders (recorder_id),
            call_id TEXT NOT NULL,
            started TEXT,
            ended TEXT NOT NULL,
            duration DOUBLE PRECISION,
            dialled TEXT NOT NULL,
            decision TEXT,
            end_reason TEXT,
            caller_pseudonym TEXT,
            caller_key_id TEXT,
            frontend TEXT,
            evidence TEXT NOT NULL,
            audit_line TEXT,
            audit_time TEXT,
            PRIMARY KEY (recorder_id, call_id)
        )""",
        "CREATE INDEX calls_started ON calls (started)",
        "CREATE INDEX calls_pseudonym ON calls (caller_pseudonym)",
        """CREATE TABLE recordings (
            recording_id TEXT PRIMARY KEY,
            recorder_id TEXT NOT NULL REFERENCES recorders (recorder_id),
            call_id TEXT,
            uri TEXT NOT NULL,
            size BIGINT,
            segments BIGINT,
            last_tag_sha256 TEXT,
            codec TEXT,
            sample_rate INTEGER,
            channels INTEGER,
            duration DOUBLE PRECISION,
            started TEXT,
            ended TEXT,
            signature TEXT,
            signer TEXT,
            verdict TEXT,
            continues TEXT,
            state TEXT NOT NULL,
            hold_reason TEXT,
            held_by TEXT,
            held_at TEXT,
            deleted_by TEXT,
            deleted_at TEXT,
            deleted_rule TEXT,
            caller_key_id TEXT,
            audit_line TEXT,
            audit_time TEXT
        )""",
        "CREATE INDEX recordings_call ON recordings (recorder_id, call_id)",
        "CREATE INDEX recordings_started ON recordings (started)",
        """CREATE TABLE erasure_orders (
            order_id TEXT PRIMARY KEY,
            caller_pseudonym TEXT NOT NULL,
            reason TEXT NOT NULL,
            requested_by TEXT NOT NULL,
            requested_at TEXT NOT NULL
        )""",
        """CREATE TABLE erasure_confirmations (
            order_id TEXT NOT NULL REFERENCES erasure_orders (order_id),
            recorder_id TEXT NOT NULL REFERENCES recorders (recorder_id),
            confirmed_at TEXT,
            PRIMARY KEY (order_id, recorder_id)
        )""",
    ),
    # 2: a recording may be "deleting" (claimed by a deleter, see catalog/holding.py), a
    # state older callrec cannot read, so they refuse this catalogue; finding the claims a
    # stopped run left wants an index
    ("CREATE INDEX recordings_state ON recordings (recorder_id, state)",),
)
LATEST = len(MIGRATIONS)


def migrate(cur: Cursor, now: str) -> int:
    """Apply the missing migrations in ``cur``'s transaction; return the version reached."""
    cur.lock(MIGRATION_LOCK)
    cur.run(_CREATE_VERSION)
    rows = cur.run("SELECT MAX(version) FROM schema_version")
    current = int(rows[0][0] or 0) if rows else 0
    if current > LATEST:
        raise CatalogError(
            f"the catalogue's schema is version {current}, newer than this callrec "
            f"knows ({LATEST}): upgrade callrec"
        )
    for version in range(current + 1, LATEST + 1):
        for statement in MIGRATIONS[version - 1]:
            cur.run(statement)
        cur.run("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (version, now))
    return LATEST
