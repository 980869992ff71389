"""The catalogue of calls and recordings (``[catalog] url``): find, hold, delete, erase.

``callrec serve`` enters every call and every sealed recording as its audit
line is written (:mod:`callrec.catalog.service`, never blocking a call);
``callrec catalog rebuild`` recreates it from the spool and the audit log,
which stays the source of truth. SQLite by default, PostgreSQL when several
recorders share one catalogue. The API is :class:`Catalog`; what it returns
is in :mod:`callrec.catalog.model`.
"""

from __future__ import annotations

from callrec.catalog.model import (
    CallEntry,
    CatalogError,
    CatalogUnavailable,
    Deletion,
    Entry,
    ErasureOrder,
    Hold,
    Recorder,
    RecordingEntry,
    RecordingState,
)
from callrec.catalog.store import Catalog

__all__ = [
    "CallEntry",
    "Catalog",
    "CatalogError",
    "CatalogUnavailable",
    "Deletion",
    "Entry",
    "ErasureOrder",
    "Hold",
    "Recorder",
    "RecordingEntry",
    "RecordingState",
]
