"""``kill -9`` of ``callrec serve`` recording a dialplan (FastAGI) call, on a real Asterisk 22.

tests/pbx/conf routes 7XX through ``AGI(.../consent)``, ``AGI(.../record)``
and ``Dial(PJSIP/agent)``: once ``/record`` has run the call lives in the
dialplan, not in the recorder. A killed recorder leaves the tap (snoop,
ExternalMedia still sending RTP to the dead port, their bridge); the
restarted one must take the call over and record the rest of it in a
continuation naming the crashed recording, and audit it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from callrec.decode import decode_recording
from callrec.recording import verify
from callrec.testcall.harness import run_scenario

from .conftest import AGI_EXTEN, Recorder, assert_ok, line_of, wait_until

pytestmark = pytest.mark.realpbx

# As for the Stasis app's calls (tests/realpbx/test_crash.py): recorded again within 2 s.
RECORDED_AGAIN_WITHIN = 2.0
TAP_NAMES = ("Snoop/", "UnicastRTP/")


def _tap_left(recorder: Recorder) -> set[str]:
    """The tap's channels and the bridge holding only them."""
    channels = {c["id"] for c in recorder.pbx.channels() if c["name"].startswith(TAP_NAMES)}
    bridges = {
        b["id"] for b in recorder.pbx.bridges() if b["channels"] and set(b["channels"]) <= channels
    }
    return channels | bridges


def _line(recorder: Recorder, event: str) -> dict[str, Any] | None:
    return next((x for x in recorder.audit() if x.get("event") == event), None)


async def test_kill_9_mid_dialplan_call_the_restarted_recorder_records_the_rest(
    recorder: Recorder,
) -> None:
    stay = recorder.scenarios(AGI_EXTEN)["stay"]
    scenario = replace(stay, hold=stay.hold + 14.0)
    call = asyncio.create_task(run_scenario(scenario, recorder.options(AGI_EXTEN)))
    (first_part,) = await wait_until(recorder.open_recordings, 30, "the recording to start")
    first_id = first_part.name.removesuffix(".crec.part")
    await asyncio.sleep(3.0)
    assert await recorder.kill() == -9
    await asyncio.sleep(0.5)
    left = _tap_left(recorder)
    assert len(left) == 3, (recorder.pbx.channels(), recorder.pbx.bridges())
    restarted_at = time.time()
    await recorder.start()
    recovered = await wait_until(lambda: _line(recorder, "call-recovered"), 10, "call-recovered")
    report = await call
    # The continuation is judged like any recording: it verifies, its length fits
    # its audit line, its evidence comes first, its audio follows the caller's.
    assert_ok(report)
    line = line_of(report)
    assert report.sipp is not None and not report.sipp.remote_hangup  # never cut off
    adopted = _line(recorder, "recording-adopted")
    assert adopted is not None and adopted["recording_id"] == first_id
    channel = recovered["channel"]
    continues = {"call": channel, "recording_id": first_id, "path": adopted["path"], "part": 1}
    assert (recovered["recovery"], recovered["found"]) == ("recording-continued", "recording")
    assert recovered["continues"] == continues and left <= set(recovered["removed"])
    assert recovered["call_id"] == line["call_id"]
    assert (line["event"], line["stage"], line["reason"]) == ("call", "recording", "hangup")
    assert line["continues"] == continues and line["evidence"]["frontend"] == "agi"
    path = next(p for p in recorder.sealed() if line["recording_id"] in p.name)
    again = decode_recording(path, recorder.keys)
    assert again.metadata[0]["continues"] == continues
    started = datetime.fromisoformat(again.metadata[0]["times"]["recording_start"]).timestamp()
    assert started - restarted_at < RECORDED_AGAIN_WITHIN, started - restarted_at
    # The first part is as the kill left it: TRUNCATED, with the same consent evidence.
    first_path = Path(adopted["path"])
    assert str(verify(first_path, recorder.keys).verdict) == "truncated"
    first = decode_recording(first_path, recorder.keys)
    assert first.metadata[0]["prompt"] == again.metadata[0]["prompt"]
    assert first.metadata[0]["times"]["decision"] == again.metadata[0]["times"]["decision"]
    # Nothing of the call stays in Asterisk, nothing in the spool's live records.
    pbx = recorder.pbx
    await wait_until(lambda: not pbx.channels() and not pbx.bridges(), 10, "an empty PBX")
    assert list((recorder.spool / "live").iterdir()) == []
