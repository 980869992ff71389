"""Live records of dialplan (FastAGI) recordings, and records the previous version wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from callrec.live import Frontend, LiveCall, LiveRecordError, LiveState, LiveStore
from callrec.pausing import OpenPause, PauseSource
from tests.callrec.test_live import _call

NEW_KEYS = ("frontend", "call_id", "linkedid", "layout", "on_failure")


def _dialplan_call() -> LiveCall:
    """A Stasis call's record (tests/callrec/test_live.py) made a dialplan recording's."""
    return _call(
        state=LiveState.RECORDING,
        dialled="700",
        playback=None,
        destination=None,
        bridge=None,
        bridged_at=None,
        continues=None,
        pause=OpenPause(1_795_910_402.0, PauseSource.AGI),
        frontend=Frontend.AGI,
        call_id="cd" * 16,
        linkedid="1733000000.6",
        layout="stereo",
        on_failure="strict",
    )


def test_a_dialplan_recording_s_record_reads_back_as_written(tmp_path: Path) -> None:
    store = LiveStore(tmp_path)
    call = _dialplan_call()
    store.save(call)
    assert store.load() == ([call], [])
    written = json.loads(store.path(call.call).read_text())
    assert {k: written[k] for k in NEW_KEYS} == {
        "frontend": "agi",
        "call_id": "cd" * 16,
        "linkedid": "1733000000.6",
        "layout": "stereo",
        "on_failure": "strict",
    }


def test_a_record_the_previous_version_wrote_is_a_stasis_call(tmp_path: Path) -> None:
    # Written before dialplan recordings kept records: an upgraded recorder
    # still takes the call over as the Stasis app's, with the config's layout.
    store = LiveStore(tmp_path)
    call = _dialplan_call().changed(state=LiveState.BRIDGED)
    store.save(call)
    path = store.path(call.call)
    data = json.loads(path.read_text())
    path.write_text(json.dumps({k: v for k, v in data.items() if k not in NEW_KEYS}))
    ((old,), problems) = store.load()
    assert problems == [] and old.frontend is Frontend.ARI
    assert (old.call_id, old.linkedid, old.layout, old.on_failure) == (None, None, None, None)
    assert old.changed(**{k: getattr(call, k) for k in NEW_KEYS}) == call


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("frontend", "sip", "frontend: unknown value 'sip'"),
        ("frontend", None, "frontend: missing or not a str"),
        ("layout", "quad", "layout: unknown value 'quad'"),
        ("on_failure", "maybe", "on_failure: unknown value 'maybe'"),
        ("call_id", 7, "call_id: missing or not a str"),
    ],
)
def test_a_bad_new_key_is_named(tmp_path: Path, key: str, value: object, message: str) -> None:
    store = LiveStore(tmp_path)
    call = _dialplan_call()
    store.save(call)
    path = store.path(call.call)
    path.write_text(json.dumps({**json.loads(path.read_text()), key: value}))
    _, (problem,) = store.load()
    assert isinstance(problem, LiveRecordError) and problem.message == message
