"""The live-call records: written whole and private, read back, bad ones named."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from callrec.clock import ManualClock
from callrec.consent import ConsentGate, ConsentPolicy, Decision
from callrec.evidence import Evidence
from callrec.live import (
    Continues,
    LiveCall,
    LivePart,
    LiveRecordError,
    LiveState,
    LiveStore,
    TapIds,
    consent_of,
    restore_consent,
)


def _call(**changes: object) -> LiveCall:
    call = LiveCall(
        call="1733000000.42",
        app="callrec",
        state=LiveState.BRIDGED,
        started=1_795_910_400.0,
        pseudonym="p1:" + "ab" * 16,
        dialled="100",
        pbx_boot="2026-12-01T00:00:00.000+0000",
        playback="callrec-playback-1",
        decision=Decision.IMPLIED,
        consent={"prompt_id": "en/disclosure", "policy": {"mode": "implied"}},
        destination="callrec-dest-1",
        bridge="callrec-call-1",
        bridged_at=1_795_910_405.0,
        tap=TapIds("callrec-snoop-1", "callrec-media-1", "callrec-tap-1"),
        recording=LivePart("ab" * 16, 2, 1_795_910_406.0),
        continues=Continues("1733000000.42", "cd" * 16, "/spool/x.crec.part", 1),
        updated=1_795_910_407.0,
    )
    return call.changed(**changes)


def test_a_record_is_written_private_and_read_back_unchanged(tmp_path: Path) -> None:
    store = LiveStore(tmp_path / "spool")
    call = _call()
    store.save(call)
    path = store.path(call.call)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.folder.stat().st_mode) == 0o700
    assert store.load() == ([call], [])
    # A later state replaces the record whole; no temporary file stays.
    store.save(call.changed(state=LiveState.CONNECTING, tap=None, recording=None))
    ((again,), problems) = store.load()
    assert problems == [] and again.state is LiveState.CONNECTING and again.tap is None
    assert [p.name for p in store.folder.iterdir()] == [path.name]
    store.remove(call.call)
    store.remove(call.call)  # already gone: fine
    assert store.load() == ([], [])


def _evidence(language: str) -> Evidence:
    return Evidence.for_call(
        uniqueid="1733000000.42",
        linkedid="1733000000.42",
        caller_number="+4930123456",
        caller_name="Erika Mustermann",
        dialled="100",
        language=language,
        pseudonym_key=b"k" * 32,
    )


def test_no_personal_field_reaches_the_record(tmp_path: Path) -> None:
    gate = ConsentGate(ConsentPolicy(), ManualClock())
    evidence = _evidence("en")
    evidence.timeline = gate.timeline
    gate.answered()
    gate.digit("2")
    store = LiveStore(tmp_path)
    store.save(_call(consent=consent_of(evidence), pseudonym=evidence.caller_pseudonym))
    text = store.path("1733000000.42").read_text()
    assert "4930123456" not in text and "Mustermann" not in text
    # What the record keeps is enough to restore the decision's evidence.
    ((call,), _) = store.load()
    restored = _evidence("de")  # a restarted recorder's, from the live channel
    restore_consent(restored, call)
    assert restored.to_audit() == {**evidence.to_audit(), "decision": "implied"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: "{not json", "not valid JSON"),
        (lambda d: "[]", "record is not a JSON object"),
        (lambda d: json.dumps({**d, "schema": 7}), "schema 7 is not 1"),
        (lambda d: json.dumps({**d, "started": "soon"}), "started: missing or not a number"),
        (lambda d: json.dumps({**d, "state": "ringing"}), "state: unknown value 'ringing'"),
        (lambda d: json.dumps({**d, "tap": {"snoop": "s"}}), "tap.media: missing or not a str"),
        (lambda d: json.dumps({**d, "call": "../x"}), "call id '../x' cannot name a record"),
        (lambda d: json.dumps({**d, "call": "1733000000.43"}), "names call '1733000000.43'"),
    ],
)
def test_a_bad_record_is_named_with_what_is_wrong(
    tmp_path: Path, change: object, message: str
) -> None:
    store = LiveStore(tmp_path)
    good = _call()
    store.save(good)
    path = store.path(good.call)
    data = json.loads(path.read_text())
    assert callable(change)
    path.write_text(change(data))
    store.save(good.changed(call="1733000000.44"))  # a good one beside it still loads
    calls, (problem,) = store.load()
    assert [c.call for c in calls] == ["1733000000.44"]
    assert isinstance(problem, LiveRecordError) and problem.path == str(path)
    assert message in problem.message
    store.discard(Path(problem.path))
    assert not path.exists()


def test_a_call_id_that_cannot_name_a_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LiveRecordError, match="cannot name a record"):
        LiveStore(tmp_path).save(_call(call="x/../../etc"))
    assert not (tmp_path / "live").exists() or list((tmp_path / "live").iterdir()) == []


def test_an_unwritable_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "live").write_text("a file where the folder should be")
    with pytest.raises(LiveRecordError, match="is a file, not a folder"):
        LiveStore(tmp_path).save(_call())
