"""A legal hold against a deletion in progress, on SQLite and PostgreSQL.

The race the review found: a deleter lists what may go, a DPO (another
shell, another recorder sharing the catalogue) puts one of those on hold,
the deleter reaches it. Each test places the hold at one exact point, through
a second connection as another process would, and checks what a DPO would:
is the file still there, and does the catalogue say held.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from callrec.audit import read_audit
from callrec.catalog import Catalog, CatalogError, RecordingState, holding
from callrec.catalog.db import Dialect
from callrec.config_model import RetentionConfig
from callrec.dpo import deleting, erasure
from callrec.dpo.access import AccessLog, Actor
from callrec.dpo.deleting import finish_interrupted
from callrec.dpo.erasure import Eraser
from callrec.dpo.retention import Deleter, Outcome, expired
from callrec.evidence import pseudonymise
from tests.callrec.catalog.support import DAY0, Recorder

LATER = datetime.fromtimestamp(DAY0, UTC) + timedelta(days=91)  # past the 90 days
REFUSED = r"is being deleted \(under retention\.days = 90, by .*\): too late for a hold"


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Catalog]:
    with Catalog.open(catalog_url, recorder_id="pbx1") as catalog:
        yield catalog


@pytest.fixture
def access(tmp_path: Path) -> AccessLog:
    return AccessLog(tmp_path / "access.jsonl")


def _entered(
    catalog: Catalog, recorder: Recorder, count: int, number: str = "+4930123456"
) -> list[dict[str, Any]]:
    """``count`` recorded calls, entered as ``callrec serve`` would; their audit lines."""
    lines = [recorder.call(number) for _ in range(count)]
    for line in lines:
        catalog.record_call(line)
    return lines


def _deleter(catalog: Catalog, access: AccessLog) -> Deleter:
    return Deleter(catalog, access, Actor.current(), LATER)


def _due(catalog: Catalog) -> list[Any]:
    return expired(catalog.list(recorder="pbx1"), RetentionConfig(), LATER, "pbx1")


def _actions(access: AccessLog) -> list[tuple[str, list[str]]]:
    if not access.path.exists():
        return []
    return [(line["action"], line["recordings"]) for line in read_audit(access.path)]


def _state(catalog: Catalog, recording_id: str) -> RecordingState:
    rec = catalog.recording(recording_id)
    assert rec is not None
    return rec.state


def _hook(
    monkeypatch: pytest.MonkeyPatch, module: Any, name: str, before: Callable[[], None]
) -> None:
    """Run ``before`` once, just before the first call of ``module.name``."""
    real = getattr(module, name)
    pending = [before]

    def hooked(*args: Any, **kwargs: Any) -> Any:
        while pending:
            pending.pop()()
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, hooked)


def test_a_hold_placed_after_the_listing_keeps_the_recording(
    catalog: Catalog, catalog_url: str, recorder: Recorder, access: AccessLog
) -> None:
    _, line = _entered(catalog, recorder, 2)
    due = _due(catalog)
    assert len(due) == 2
    with Catalog.open(catalog_url) as other:  # another shell, the same catalogue
        other.set_hold(line["recording_id"], "litigation 2026-17", "dpo@elsewhere")

    steps = _deleter(catalog, access).run(due)

    by_id = {s.expired.recording.recording_id: s for s in steps}
    kept = by_id[line["recording_id"]]
    assert (kept.outcome, kept.why) == (Outcome.KEPT_ON_HOLD, "litigation 2026-17")
    assert Path(line["path"]).exists()
    assert _state(catalog, line["recording_id"]) is RecordingState.HELD
    [gone] = [s for s in steps if s is not kept]
    assert gone.outcome is Outcome.DELETED
    assert _actions(access) == [("retention-delete", [gone.expired.recording.recording_id])]


def test_a_hold_asked_for_while_the_file_is_being_deleted_is_refused(
    catalog: Catalog,
    catalog_url: str,
    recorder: Recorder,
    access: AccessLog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    [line] = _entered(catalog, recorder, 1)
    refusals: list[str] = []

    def hold_from_elsewhere() -> None:
        with Catalog.open(catalog_url) as other:
            try:
                other.set_hold(line["recording_id"], "too late", "dpo@elsewhere")
            except CatalogError as exc:
                refusals.append(exc.message)

    _hook(monkeypatch, deleting, "delete_file", hold_from_elsewhere)
    [step] = _deleter(catalog, access).run(_due(catalog))

    assert len(refusals) == 1
    assert refusals[0].startswith(f"recording {line['recording_id']} is being deleted")
    assert "too late for a hold" in refusals[0]
    assert step.outcome is Outcome.DELETED
    assert not Path(line["path"]).exists()
    gone = catalog.recording(line["recording_id"])
    assert gone is not None and gone.state is RecordingState.DELETED and gone.hold is None


def test_a_hold_and_a_claim_of_one_recording_wait_for_each_other(
    catalog: Catalog, catalog_url: str, recorder: Recorder
) -> None:
    """Two transactions at once: whichever locked the row first wins, the other sees it."""
    first, second = _entered(catalog, recorder, 2)
    at = "2027-03-02T00:00:00.000+00:00"

    # A deleter's claim transaction is open; a hold from another connection must wait.
    hold = _Worker(lambda c: c.set_hold(first["recording_id"], "late", "dpo"), catalog_url)
    with catalog._db().transaction() as cur:
        holding.claim(cur, first["recording_id"], "retention@pbx1", "retention.days = 90", at)
        hold.go()
        _wait_until_blocked(catalog, cur)
    hold.join()
    assert isinstance(hold.error, CatalogError)
    assert "too late for a hold" in hold.error.message
    assert _state(catalog, first["recording_id"]) is RecordingState.DELETING

    # A hold's transaction is open; a claim from another connection must wait and see it.
    claim = _Worker(
        lambda c: c.claim_deletion(second["recording_id"], "retention", "retention.days = 90"),
        catalog_url,
    )
    with catalog._db().transaction() as cur:
        holding.hold(cur, [holding.fetch(cur, second["recording_id"])], "court 4", "dpo", at)
        claim.go()
        _wait_until_blocked(catalog, cur)
    claim.join()
    assert claim.error is None and claim.result.state is RecordingState.HELD
    assert _state(catalog, second["recording_id"]) is RecordingState.HELD


class _Worker(threading.Thread):
    """Another process: its own connection, opened at once, its work done on :meth:`go`."""

    def __init__(self, work: Callable[[Catalog], Any], url: str) -> None:
        super().__init__(daemon=True)
        self.work, self.url = work, url
        self.result: Any = None
        self.error: BaseException | None = None
        self._ready, self._go = threading.Event(), threading.Event()
        self.start()
        assert self._ready.wait(30), "the other connection could not be opened"

    def go(self) -> None:
        self._go.set()

    def run(self) -> None:
        with Catalog.open(self.url) as catalog:
            self._ready.set()
            self._go.wait()
            try:
                self.result = self.work(catalog)
            except BaseException as exc:  # handed to the test
                self.error = exc


def _wait_until_blocked(catalog: Catalog, cur: Any) -> None:
    """Return once another connection waits for what ``cur``'s transaction has locked.

    PostgreSQL shows who blocks whom; SQLite's writer is serialised behind
    the open write transaction (BEGIN IMMEDIATE) whenever it starts.
    """
    if catalog._db().dialect is not Dialect.POSTGRESQL:
        return
    import psycopg

    [(pid,)] = cur.run("SELECT pg_backend_pid()")
    with psycopg.connect(catalog.where.url, autocommit=True) as watcher:
        for _ in range(3000):
            blocked = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                (pid,),
            ).fetchone()
            if blocked and blocked[0]:
                return
            threading.Event().wait(0.01)
    raise AssertionError("the other connection never waited for the row lock")


def test_a_hold_during_an_erasure_keeps_that_recording_and_the_rest_is_erased(
    catalog: Catalog,
    catalog_url: str,
    recorder: Recorder,
    access: AccessLog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    held, erased = _entered(catalog, recorder, 2, "+4930777")
    pseudonym = pseudonymise("+4930777", recorder.pseudonym_key)
    eraser = Eraser(catalog, access, Actor.current(), "pbx1", recorder.audit_path)
    order = eraser.order(pseudonym, "erasure request 31")

    def hold_from_elsewhere() -> None:  # after the eraser found the recordings
        with Catalog.open(catalog_url) as other:
            other.set_hold(held["recording_id"], "court order 5", "dpo2@elsewhere")

    _hook(monkeypatch, erasure, "claim", hold_from_elsewhere)
    done = eraser.carry_out(order, recorder.lines())

    assert done.held == [held["recording_id"]] and done.deleted == [erased["recording_id"]]
    assert done.failed == [] and not done.confirmed
    assert Path(held["path"]).exists() and not Path(erased["path"]).exists()
    assert _state(catalog, held["recording_id"]) is RecordingState.HELD
    assert pseudonym in recorder.audit_path.read_text()  # not scrubbed while one is kept
    assert [o.pending for o in catalog.pending_erasure_orders("pbx1")] == [("pbx1",)]
    assert _actions(access)[-1] == ("erasure-carried-out", [erased["recording_id"]])

    catalog.release(held["recording_id"], "dpo2@elsewhere")
    again = eraser.carry_out(order, recorder.lines())
    assert again.confirmed and again.deleted == [held["recording_id"]]
    assert not Path(held["path"]).exists()
    assert pseudonym not in recorder.audit_path.read_text()


def test_a_deletion_cut_short_after_its_claim_is_finished_by_the_next_run(
    catalog: Catalog, recorder: Recorder, access: AccessLog
) -> None:
    there, gone = _entered(catalog, recorder, 2)
    # The run that crashed: both claimed, one file deleted, no tombstone.
    for line in (there, gone):
        claimed = catalog.claim_deletion(line["recording_id"], "old@pbx1", "retention.days = 90")
        assert claimed.state is RecordingState.DELETING
    Path(gone["path"]).unlink()
    with pytest.raises(CatalogError, match=REFUSED):
        catalog.set_hold(there["recording_id"], "court case 9", "dpo")
    assert {r.recording_id for r in catalog.claimed("pbx1")} == {
        there["recording_id"], gone["recording_id"],
    }  # fmt: skip

    finished = finish_interrupted(catalog, access, Actor.current(), "pbx1")

    assert {rec.recording_id: removal.done for rec, removal in finished} == {
        there["recording_id"]: True, gone["recording_id"]: True,
    }  # fmt: skip
    assert not Path(there["path"]).exists()
    for line in (there, gone):
        tomb = catalog.recording(line["recording_id"])
        assert tomb is not None and tomb.state is RecordingState.DELETED
        assert tomb.deletion is not None and tomb.deletion.rule == "retention.days = 90"
    # Only the file still there needed an access line: the other's was written before it went.
    [(action, ids)] = _actions(access)
    assert (action, ids) == ("retention-delete", [there["recording_id"]])
    assert catalog.claimed("pbx1") == []


def test_a_file_that_cannot_be_deleted_gives_its_claim_back(
    catalog: Catalog, recorder: Recorder, access: AccessLog
) -> None:
    [line] = _entered(catalog, recorder, 1)
    path = Path(line["path"])
    path.unlink()
    path.mkdir()  # something that is no file, and that unlink() refuses
    [step] = _deleter(catalog, access).run(_due(catalog))
    assert step.outcome is Outcome.FAILED and "directory" in step.why
    assert _state(catalog, line["recording_id"]) is RecordingState.MISSING
    assert catalog.set_hold(line["recording_id"], "court case 10", "dpo") == [line["recording_id"]]
