"""The catalogue's reading queries: listings and erasure orders, grouped into entries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from callrec.catalog.db import Cursor
from callrec.catalog.model import Entry, ErasureOrder, RecordingEntry
from callrec.catalog.rows import (
    CALL_COLUMNS,
    RECORDING_COLUMNS,
    call_entry,
    dt,
    recording_entry,
    select,
    ts,
)

_CALL_WHEN = "COALESCE(c.started, c.ended)"
_RECORDING_WHEN = "COALESCE(r.started, r.ended)"
_OF_CALL = "c.recorder_id = r.recorder_id AND c.call_id = r.call_id"
_NO_CALL = "NOT EXISTS (" + select(("1",), "calls c", _OF_CALL) + ")"
_NO_CALL = "NOT EXISTS (" + select(("1",), "calls c", _OF_CALL) + ")"
_ORDER_COLUMNS = ("order_id", "caller_pseudonym", "reason", "requested_by", "requested_at")


def list_entries(
    cur: Cursor,
    since: datetime | None,
    until: datetime | None,
    pseudonym: str | None,
    decision: str | None,
    recorder: str | None,
) -> list[Entry]:
    """What :meth:`callrec.catalog.Catalog.list` returns, read in three queries."""
    where, params = _filters(_CALL_WHEN, "c.", since, until, recorder)
    for column, value in (("c.caller_pseudonym", pseudonym), ("c.decision", decision)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    cond = " AND ".join(where) or "1 = 1"
    calls = cur.run(select(CALL_COLUMNS, "calls c", cond, "c."), params)
    recs = cur.run(
        select(RECORDING_COLUMNS, f"recordings r JOIN calls c ON {_OF_CALL}", cond, "r."), params
    )
    lone: list[Any] = []
    if pseudonym is None and decision is None:  # a lone recording has neither
        where, params = _filters(_RECORDING_WHEN, "r.", since, until, recorder)
        where.append(_NO_CALL)
        cond = " AND ".join(where)
        lone = cur.run(select(RECORDING_COLUMNS, "recordings r", cond, "r."), params)
    return entries(calls, recs, lone)


def _filters(
    when: str, prefix: str, since: datetime | None, until: datetime | None, recorder: str | None
) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if since is not None:
        where.append(f"{when} >= ?")
        params.append(ts(since))
    if until is not None:
        where.append(f"{when} < ?")
        params.append(ts(until))
    if recorder is not None:
        where.append(f"{prefix}recorder_id = ?")
        params.append(recorder)
    return where, params


def entries(calls: Sequence[Any], recs: Sequence[Any], lone: Sequence[Any]) -> list[Entry]:
    """Group recordings under their calls; lone recordings are entries of their own."""
    by_call: dict[tuple[str, str], list[RecordingEntry]] = {}
    for row in recs:
        rec = recording_entry(row)
        if rec.call_id is not None:
            by_call.setdefault((rec.recorder_id, rec.call_id), []).append(rec)
    found = []
    for row in calls:
        call = call_entry(row)
        mine = by_call.get((call.recorder_id, call.call_id), [])
        found.append(Entry(call, tuple(sorted(mine, key=_recording_order))))
    found.extend(Entry(None, (recording_entry(row),)) for row in lone)
    return sorted(found, key=_entry_order)


def _recording_order(rec: RecordingEntry) -> tuple[str, str]:
    return (ts(rec.started or rec.ended) or "", rec.recording_id)


def _entry_order(entry: Entry) -> tuple[str, str, str]:
    key = entry.call.call_id if entry.call else entry.recordings[0].recording_id
    return (ts(entry.when) or "", entry.recorder_id, key)


def orders(cur: Cursor, where: str, params: Sequence[Any]) -> list[ErasureOrder]:
    """Erasure orders, oldest first, each with every known recorder's confirmation."""
    rows = cur.run(
        select(_ORDER_COLUMNS, "erasure_orders o", f"{where} ORDER BY o.requested_at, o.order_id",
               "o."),
        params,
    )  # fmt: skip
    recorders = [str(r[0]) for r in cur.run(select(("recorder_id",), "recorders"))]
    done: dict[str, dict[str, datetime | None]] = {}
    for order_id, recorder_id, at in cur.run(
        select(("order_id", "recorder_id", "confirmed_at"), "erasure_confirmations")
    ):
        done.setdefault(order_id, {})[recorder_id] = dt(at)
    found = []
    for order_id, pseudonym, reason, by, at in rows:
        confirmations = dict.fromkeys(recorders, None) | done.get(order_id, {})
        requested = dt(at)
        assert requested is not None  # NOT NULL in the schema
        found.append(ErasureOrder(order_id, pseudonym, reason, by, requested, confirmations))
    return found
