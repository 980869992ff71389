"""Live records of a stereo tap: the second snoop's objects are named, so a
restarted recorder removes them; records written before stereo still load."""

from __future__ import annotations

import json
from pathlib import Path

from callrec.live import LiveStore, TapIds
from tests.callrec.test_live import _call

# snoop, ExternalMedia, bridge of each side: what the caller says, what it hears
SAID = ("callrec-snoop-1", "callrec-media-1", "callrec-tap-1")
HEARD = ("callrec-snoop-2", "callrec-media-2", "callrec-tap-2")
STEREO = TapIds(*SAID, *HEARD)


def test_a_stereo_tap_names_both_snoops_and_their_objects(tmp_path: Path) -> None:
    store = LiveStore(tmp_path / "spool")
    call = _call(tap=STEREO)
    store.save(call)
    ((again,), problems) = store.load()
    assert problems == [] and again.tap == STEREO
    assert again.tap is not None and set(again.tap.ids()) == {*SAID, *HEARD}
    # Every channel the call owns, both snoops and both ExternalMedia among them.
    assert set(again.channels) >= {*SAID[:2], *HEARD[:2]}
    assert "callrec-tap-2" not in again.channels  # a bridge, not a channel


def test_a_record_written_before_stereo_still_loads(tmp_path: Path) -> None:
    store = LiveStore(tmp_path / "spool")
    call = _call()
    store.save(call)
    path = store.path(call.call)
    data = json.loads(path.read_text())
    data["tap"] = {
        "snoop": "callrec-snoop-1",
        "media": "callrec-media-1",
        "bridge": "callrec-tap-1",
    }
    path.write_text(json.dumps(data))
    ((again,), problems) = store.load()
    assert problems == []
    assert again.tap == TapIds("callrec-snoop-1", "callrec-media-1", "callrec-tap-1")
    assert again.tap is not None
    assert again.tap.ids() == ("callrec-snoop-1", "callrec-media-1", "callrec-tap-1")
