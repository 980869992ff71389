"""The catalogue's database: a URL, a connection, one transaction at a time.

Two back ends behind one small interface, so the catalogue's SQL is written
once: SQLite from the standard library (the default, a file that needs no
server) and PostgreSQL through psycopg 3 (when recorders share a catalogue;
imported only when such a URL is used). The SQL is portable: ``?``
placeholders (turned into ``%s`` for psycopg), times as ISO 8601 text, no
dialect functions. A database that cannot be reached is
:class:`CatalogUnavailable` (worth retrying); anything else it refuses is
:class:`CatalogError`. Neither ever shows the password a URL may hold.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlsplit

from callrec.catalog.model import CatalogError, CatalogUnavailable
from callrec.logutil import safe
from callrec.spool import make_private_dirs, os_reason

if TYPE_CHECKING:
    import psycopg

Row = tuple[Any, ...]
Params = Sequence[Any]
# How long a writer waits for another one's transaction (SQLite's lock).
BUSY_SECONDS = 10.0
# How long opening a PostgreSQL connection may take before it counts as down.
CONNECT_SECONDS = 5


class Dialect(StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


@dataclass(frozen=True)
class CatalogUrl:
    """A parsed ``[catalog] url``; ``str()`` of it never shows a password."""

    dialect: Dialect
    url: str
    path: Path | None = None  # SQLite: the database file

    def __str__(self) -> str:
        return redact(self.url)

    def __repr__(self) -> str:
        return f"CatalogUrl({str(self)!r})"


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    return re.sub(r"(//[^/:@]*):[^/@]*@", r"\1:***@", url)


def parse_url(url: str, base: Path | None = None) -> CatalogUrl:
    """Check a catalogue URL; a relative SQLite path resolves against ``base``.

    ``sqlite:///abs/path`` or ``sqlite:relative/path``;
    ``postgresql://user@host[:port]/db`` (``postgres://`` too). Raises
    :class:`CatalogError` saying what is wrong with it.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        if parts.netloc:
            raise CatalogError(
                f"catalog url {redact(url)!r}: a SQLite URL names a file, not a host "
                "(sqlite:///var/lib/callrec/catalog.sqlite3)"
            )
        path = Path(unquote(parts.path))
        if not parts.path or parts.path.endswith("/"):
            raise CatalogError(f"catalog url {redact(url)!r}: no database file named")
        if not path.is_absolute() and base is not None:
            path = base / path
        return CatalogUrl(Dialect.SQLITE, url, path)
    if scheme in ("postgresql", "postgres"):
        if not parts.path.strip("/"):
            raise CatalogError(
                f"catalog url {redact(url)!r}: no database named (postgresql://user@host/db)"
            )
        return CatalogUrl(Dialect.POSTGRESQL, url)
    raise CatalogError(f"catalog url {redact(url)!r}: must start with sqlite: or postgresql://")


class Connection(Protocol):
    """What the catalogue asks of a database connection."""

    dialect: Dialect

    def transaction(self, write: bool = True) -> contextlib.AbstractContextManager[Cursor]: ...

    def close(self) -> None: ...


class Cursor(Protocol):
    # Appended to a SELECT: its rows stay locked until the transaction ends.
    row_lock: str

    def run(self, sql: str, params: Params = ()) -> list[Row]: ...

    def lock(self, name: int) -> None: ...


def connect(where: CatalogUrl) -> Connection:
    """Open a connection; :class:`CatalogUnavailable` when the database cannot be reached."""
    if where.dialect is Dialect.SQLITE:
        assert where.path is not None
        return _SqliteConnection(where.path)
    return _PgConnection(where)


# --- SQLite ---------------------------------------------------------------------


class _SqliteConnection:
    dialect = Dialect.SQLITE

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            _create_private(path)
            self._db = sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")  # readers never wait for serve
            self._db.execute("PRAGMA foreign_keys=ON")
        except OSError as exc:
            raise CatalogUnavailable(f"catalogue {path}: {os_reason(exc)}") from None
        except sqlite3.Error as exc:
            raise _sqlite_error(path, exc) from None

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[Cursor]:
        try:
            # A writer takes the one write lock from the start (no upgrade deadlock).
            self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield _SqliteCursor(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise _sqlite_error(self.path, exc) from None

    def close(self) -> None:
        self._db.close()


class _SqliteCursor:
    # SQLite has no row locks: a writer's BEGIN IMMEDIATE holds the one write lock.
    row_lock = ""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def run(self, sql: str, params: Params = ()) -> list[Row]:
        return self._db.execute(sql, tuple(params)).fetchall()

    def lock(self, name: int) -> None:
        """Nothing to do: BEGIN IMMEDIATE already holds the only write lock."""


def _create_private(path: Path) -> None:
    """The database file and its folders, private from the start (it holds pseudonyms)."""
    if path.exists():
        return
    make_private_dirs(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    os.close(fd)


def _sqlite_error(path: Path, exc: sqlite3.Error) -> CatalogError:
    text = safe(str(exc), 200)
    if isinstance(exc, sqlite3.OperationalError):  # locked, unreadable, disk full...
        return CatalogUnavailable(f"catalogue {path}: {text}")
    if isinstance(exc, sqlite3.DatabaseError) and "not a database" in text:
        return CatalogError(f"catalogue {path}: not a SQLite database")
    return CatalogError(f"catalogue {path}: {text}")


# --- PostgreSQL ----------------------------------------------------------------


class _PgConnection:
    dialect = Dialect.POSTGRESQL

    def __init__(self, where: CatalogUrl) -> None:
        try:
            import psycopg
        except ImportError:
            raise CatalogError(
                f"catalog url {where}: PostgreSQL needs psycopg (pip install 'psycopg[binary]')"
            ) from None
        self._where = where
        self._errors = psycopg
        try:
            self._db: psycopg.Connection[Row] = psycopg.connect(
                where.url, autocommit=True, connect_timeout=CONNECT_SECONDS
            )
        except psycopg.Error as exc:
            raise self._error(exc) from None

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[Cursor]:
        try:
            with self._db.transaction(), self._db.cursor() as cur:
                yield _PgCursor(cur)
        except self._errors.Error as exc:
            raise self._error(exc) from None

    def close(self) -> None:
        self._db.close()

    def _error(self, exc: psycopg.Error) -> CatalogError:
        # psycopg's message can quote the connection string: keep only its first line
        text = safe(redact(str(exc).strip().splitlines()[0] if str(exc).strip() else ""), 200)
        if isinstance(exc, self._errors.OperationalError | self._errors.InterfaceError):
            return CatalogUnavailable(f"catalogue {self._where}: {text or 'unreachable'}")
        return CatalogError(f"catalogue {self._where}: {text}")


class _PgCursor:
    row_lock = " FOR UPDATE"

    def __init__(self, cur: psycopg.Cursor[Row]) -> None:
        self._cur = cur

    def run(self, sql: str, params: Params = ()) -> list[Row]:
        self._cur.execute(sql.replace("?", "%s"), tuple(params))
        return self._cur.fetchall() if self._cur.description is not None else []

    def lock(self, name: int) -> None:
        """A lock held until the transaction ends: two recorders migrating wait in turn."""
        self._cur.execute("SELECT pg_advisory_xact_lock(%s)", (name,))
