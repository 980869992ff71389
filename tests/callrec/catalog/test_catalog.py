"""The catalogue API on SQLite and PostgreSQL: what a DPO finds after real calls."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from callrec.catalog import Catalog, CatalogError, RecordingState
from callrec.catalog.schema import LATEST
from callrec.consent import Decision
from callrec.evidence import pseudonymise
from tests.callrec.catalog.support import DAY0, Recorder

START = datetime.fromtimestamp(DAY0, UTC)


def _enter(catalog: Catalog, recorder: Recorder) -> None:
    for line in recorder.lines():
        catalog.record_call(line, recorder_id=recorder.recorder_id)


def test_calls_and_their_recordings_are_listed_as_the_audit_log_says(
    catalog_url: str, recorder: Recorder
) -> None:
    recorded = recorder.call("+4930111", dialled="100", seconds=2.0)
    declined = recorder.call("+4930222", dialled="200", decision=Decision.DECLINED_DTMF,
                             recorded=False)  # fmt: skip
    with Catalog.open(catalog_url, recorder_id="pbx1") as catalog:
        _enter(catalog, recorder)
        entries = catalog.list()
    assert [e.call.call_id for e in entries if e.call] == [
        recorded["channel"],
        declined["channel"],
    ]
    first, second = entries
    assert first.call is not None and second.call is not None
    assert (first.call.dialled, first.call.decision, first.call.end_reason) == (
        "100", "implied", "caller-hangup",
    )  # fmt: skip
    assert first.call.caller_pseudonym == pseudonymise("+4930111", recorder.pseudonym_key)
    assert first.call.recorder_id == "pbx1"
    assert first.call.ended == datetime.fromisoformat(recorded["time"])
    assert first.call.duration == pytest.approx(5.0)
    assert "caller" not in first.call.evidence  # the summary names nobody
    assert first.call.evidence["dialled"] == "100"
    (rec,) = first.recordings
    assert rec.recording_id == recorded["recording_id"]
    assert rec.uri == Path(recorded["path"]).as_uri()
    assert (rec.codec, rec.sample_rate, rec.channels) == ("ulaw", 8000, 1)
    assert (rec.size, rec.segments) == (recorded["size"], recorded["segments"])
    assert rec.last_tag_sha256 == recorded["last_tag_sha256"]
    assert rec.duration == pytest.approx(2.0)
    assert (rec.state, rec.signature, rec.verdict) == (RecordingState.PRESENT, "unsigned", None)
    assert second.call.decision == "declined-dtmf"
    assert second.recordings == ()


def test_entering_the_same_lines_again_changes_nothing(
    catalog_url: str, recorder: Recorder
) -> None:
    for _ in range(3):
        recorder.call()
    with Catalog.open(catalog_url, recorder_id="pbx1") as catalog:
        _enter(catalog, recorder)
        before = catalog.list()
        _enter(catalog, recorder)
        for line in reversed(recorder.lines()):
            catalog.record_call(line)
        assert catalog.list() == before
    assert len(before) == 3


def test_a_signed_recording_is_listed_as_signed_by_its_recorder_key(
    catalog_url: str, tmp_path: Path
) -> None:
    recorder = Recorder(tmp_path / "signed", signed=True)
    recorder.call()
    with Catalog.open(catalog_url, recorder_id="pbx1") as catalog:
        _enter(catalog, recorder)
        (entry,) = catalog.list()
    assert recorder.signer is not None
    assert entry.recordings[0].signature == "signed"
    assert entry.recordings[0].signer == recorder.signer.fingerprint


def test_listing_by_date_number_decision_and_recorder(
    catalog_url: str, recorder: Recorder
) -> None:
    a = recorder.call("+4930111")
    b = recorder.call("+4930222", decision=Decision.DECLINED_HANGUP, recorded=False,
                      after=86_400)  # fmt: skip
    c = recorder.call("+4930111", after=86_400)
    with Catalog.open(catalog_url, recorder_id="pbx1") as catalog:
        _enter(catalog, recorder)

        def ids(**how: object) -> list[str]:
            return [e.call.call_id for e in catalog.list(**how) if e.call]  # type: ignore[arg-type]

        day2 = START + timedelta(days=1)
        assert ids(since=day2) == [b["channel"], c["channel"]]
        assert ids(until=day2) == [a["channel"]]
        assert ids(since=day2, until=day2 + timedelta(days=1)) == [b["channel"]]
        caller = pseudonymise("+49 30 111", recorder.pseudonym_key)  # written as people do
        assert ids(pseudonym=caller) == [a["channel"], c["channel"]]
        assert ids(decision="declined-hangup") == [b["channel"]]
        assert ids(recorder="pbx1") == [a["channel"], b["channel"], c["channel"]]
        assert ids(recorder="pbx2") == []


def test_get_finds_a_call_by_its_id_or_by_any_of_its_recordings(
    catalog_url: str, recorder: Recorder
) -> None:
    line = recorder.call()
    with Catalog.open(catalog_url, recorder_id="pbx1") as catalog:
        _enter(catalog, recorder)
        by_call = catalog.get(line["channel"])
        by_recording = catalog.get(line["recording_id"])
        qualified = catalog.get(f"pbx1/{line['channel']}")
        assert catalog.get("nosuchid") is None
    assert by_call is not None and by_call == by_recording == qualified
    assert by_call.recordings[0].recording_id == line["recording_id"]


def test_a_call_id_two_recorders_used_must_be_named_with_its_recorder(
    catalog_url: str, recorder: Recorder
) -> None:
    line = recorder.call()
    with Catalog.open(catalog_url) as catalog:
        call_only = {**line, "recording_id": None, "path": None}
        catalog.record_call(call_only, recorder_id="pbx1")
        catalog.record_call(call_only, recorder_id="pbx2")
        with pytest.raises(CatalogError, match=r"several recorders \(pbx1, pbx2\).*RECORDER/"):
            catalog.get(line["channel"])
        entry = catalog.get(f"pbx2/{line['channel']}")
    assert entry is not None and entry.call is not None and entry.call.recorder_id == "pbx2"


def test_a_held_recording_is_never_deleted_until_released(
    catalog_url: str, recorder: Recorder
) -> None:
    line = recorder.call()
    rid = line["recording_id"]
    with Catalog.open(catalog_url, recorder_id="pbx1") as catalog:
        _enter(catalog, recorder)
        assert catalog.set_hold(line["channel"], "court case 12/26", "alice") == [rid]
        held = catalog.recording(rid)
        assert held is not None and held.state is RecordingState.HELD
        assert held.hold is not None and (held.hold.reason, held.hold.by) == (
            "court case 12/26", "alice",
        )  # fmt: skip
        with pytest.raises(CatalogError, match=r"on hold \(court case 12/26, by alice\): release"):
            catalog.mark_deleted(rid, "retention", "retention.days")
        _enter(catalog, recorder)  # a rebuild does not lift it
        assert catalog.recording(rid).state is RecordingState.HELD  # type: ignore[union-attr]
        assert catalog.release(rid, "alice") == [rid]
        assert catalog.release(rid, "alice") == []
        assert catalog.recording(rid).state is RecordingState.PRESENT  # type: ignore[union-attr]


def test_a_deleted_recording_leaves_a_tombstone_that_re_entering_never_revives(
    catalog_url: str, recorder: Recorder
) -> None:
    line = recorder.call()
    rid = line["recording_id"]
    at = START + timedelta(days=91)
    with Catalog.open(catalog_url, recorder_id="pbx1") as catalog:
        _enter(catalog, recorder)
        Path(line["path"]).unlink()
        gone = catalog.mark_deleted(rid, "retention run", 'retention.numbers."100".days', at=at)
        _enter(catalog, recorder)
        again = catalog.mark_deleted(rid, "someone else", "other", at=at + timedelta(days=1))
        with pytest.raises(CatalogError, match="was deleted: nothing left to hold"):
            catalog.set_hold(rid, "too late", "bob")
        (entry,) = catalog.list()
    assert gone == again == entry.recordings[0]
    assert gone.state is RecordingState.DELETED
    assert gone.deletion is not None
    assert (gone.deletion.by, gone.deletion.rule, gone.deletion.at) == (
        "retention run", 'retention.numbers."100".days', at,
    )  # fmt: skip


def test_unknown_ids_and_empty_reasons_are_refused_by_name(
    catalog_url: str, recorder: Recorder
) -> None:
    line = recorder.call(recorded=False)
    with Catalog.open(catalog_url, recorder_id="pbx1") as catalog:
        _enter(catalog, recorder)
        with pytest.raises(CatalogError, match="no recording abcdef12 in the catalogue"):
            catalog.mark_deleted("abcdef12", "x", "y")
        with pytest.raises(CatalogError, match=f"call {line['channel']} has no recording"):
            catalog.set_hold(line["channel"], "why", "alice")
        with pytest.raises(CatalogError, match="a hold needs a reason"):
            catalog.set_hold(line["channel"], "  ", "alice")
        with pytest.raises(CatalogError, match="an erasure order needs a reason"):
            catalog.add_erasure_order("p1:00", "", "dpo")
        with pytest.raises(CatalogError, match="no erasure order 00ff in the catalogue"):
            catalog.confirm_erasure("00ff", "pbx1")


def test_an_erasure_order_waits_for_every_recorder_to_carry_it_out(
    catalog_url: str, recorder: Recorder, tmp_path: Path
) -> None:
    other = Recorder(tmp_path / "pbx2", "pbx2", pseudonym_key=recorder.pseudonym_key)
    recorder.call("+4930111")
    other.call("+4930111")
    caller = pseudonymise("+4930111", recorder.pseudonym_key)
    with Catalog.open(catalog_url) as catalog:
        _enter(catalog, recorder)
        _enter(catalog, other)
        order = catalog.add_erasure_order(caller, "Art. 17 request 2026-12-03", "dpo")
        assert order.pending == ("pbx1", "pbx2")
        assert catalog.pending_erasure_orders("pbx1") == [order]
        done = catalog.confirm_erasure(order, "pbx1")
        assert done.pending == ("pbx2",)
        assert catalog.confirm_erasure(order, "pbx1") == done
        assert catalog.pending_erasure_orders("pbx1") == []
        assert catalog.pending_erasure_orders("pbx2") == [done]
        assert catalog.pending_erasure_orders() == [done]
        catalog.confirm_erasure(order.order_id, "pbx2")
        assert catalog.pending_erasure_orders() == []
        assert [o.order_id for o in catalog.erasure_orders(caller)] == [order.order_id]
        assert catalog.forget_caller(caller) == 2
        assert catalog.list(pseudonym=caller) == []
        assert [e.call.caller_pseudonym for e in catalog.list() if e.call] == [None, None]


def test_the_catalogue_never_holds_a_caller_number_or_name(
    catalog_url: str, recorder: Recorder
) -> None:
    recorder.call("+4930999888")
    with Catalog.open(catalog_url, recorder_id="pbx1") as catalog:
        _enter(catalog, recorder)
        everything = repr(catalog.list())
        with catalog._db().transaction(write=False) as cur:
            tables = ("recorders", "calls", "recordings", "erasure_orders", "schema_version")
            everything += repr([cur.run(f"SELECT * FROM {t}") for t in tables])  # noqa: S608
    assert "p1:" in everything  # the pseudonym is there...
    for personal in ("4930999888", "Erika", "Mustermann", "personal_sealed"):
        assert personal not in everything  # ...the caller is not


def test_migrations_run_once_and_a_newer_catalogue_is_refused(catalog_url: str) -> None:
    every = [(version,) for version in range(1, LATEST + 1)]
    versions = "SELECT version FROM schema_version ORDER BY version"
    with Catalog.open(catalog_url) as catalog, catalog._db().transaction() as cur:
        assert cur.run(versions) == every
    with Catalog.open(catalog_url) as catalog, catalog._db().transaction() as cur:
        assert cur.run(versions) == every
        cur.run("INSERT INTO schema_version (version, applied_at) VALUES (?, 'later')",
                (LATEST + 1,))  # fmt: skip
    with pytest.raises(
        CatalogError, match=f"schema is version {LATEST + 1}, newer than this callrec"
    ):
        Catalog.open(catalog_url)


def test_a_catalogue_of_the_first_version_is_brought_up_to_date_with_its_holds(
    catalog_url: str, recorder: Recorder
) -> None:
    line = recorder.call()
    with Catalog.open(catalog_url, recorder_id="pbx1") as catalog:
        _enter(catalog, recorder)
        catalog.set_hold(line["recording_id"], "court case 3", "alice")
        with catalog._db().transaction() as cur:  # as callrec of migration 1 left it
            cur.run("DROP INDEX recordings_state")
            cur.run("DELETE FROM schema_version WHERE version > 1")
    with Catalog.open(catalog_url, recorder_id="pbx1") as catalog:
        with catalog._db().transaction() as cur:
            assert cur.run("SELECT MAX(version) FROM schema_version") == [(LATEST,)]
        held = catalog.recording(line["recording_id"])
    assert held is not None and held.state is RecordingState.HELD


def test_a_recording_cut_by_a_crash_joins_the_call_its_continuation_names(
    catalog_url: str, recorder: Recorder
) -> None:
    first = recorder.seal()  # the crashed process's recording, adopted at the next start
    part = first.path.with_name(first.path.name + ".part")
    first.path.rename(part)
    from callrec.audit import audit_record

    recorder.audit.append(audit_record(
        "recording-adopted", recording_id=first.recording_id, path=str(part),
        reason="left open by a crash or kill; never sealed",
    ))  # fmt: skip
    line = recorder.call(continues={"call": "x", "recording_id": first.recording_id,
                                    "path": str(part), "part": 1})  # fmt: skip
    with Catalog.open(catalog_url, recorder_id="pbx1") as catalog:
        _enter(catalog, recorder)
        entry = catalog.get(first.recording_id)
    assert entry is not None and entry.call is not None
    assert entry.call.call_id == line["channel"]
    by_id = {r.recording_id: r for r in entry.recordings}
    assert by_id[line["recording_id"]].continues == first.recording_id
    adopted = by_id[first.recording_id]
    assert (adopted.sealed, adopted.uri, adopted.codec) == (False, part.as_uri(), "ulaw")


def test_a_sqlite_catalogue_is_private_to_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "new" / "catalog.sqlite3"
    Catalog.open(f"sqlite://{path}").close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
