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
import json
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from callrec.decode import decode_recording
from callrec.recording import verify
from callrec.testcall.harness import run_scenario

from .conftest import AGI_EXTEN, Recorder, assert_ok, line_of, wait_until

# As for the Stasis app's calls: recorded again within 2 s; the tap's leftovers.
from .test_crash import RECORDED_AGAIN_WITHIN, _tap_left

pytestmark = pytest.mark.realpbx


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
    # The killed recorder's live record names the recording and exactly the tap
    # Asterisk kept (snoop, ExternalMedia still sending RTP, their bridge).
    (path,) = (recorder.spool / "live").glob("*.json")
    record = json.loads(path.read_text())
    assert (record["frontend"], record["recording"]["id"]) == ("agi", first_id)
    assert set(record["tap"].values()) == _tap_left(recorder)
    restarted_at = time.time()
    await recorder.start()
    # The rest of the call is judged like any recording: it verifies, its length
    # fits its audit line, its evidence comes first, its audio follows the caller's.
    report = await call
    assert_ok(report)
    assert report.sipp is not None and not report.sipp.remote_hangup  # never cut off
    line = line_of(report)
    assert (line["event"], line["stage"], line["reason"]) == ("call", "recording", "hangup")
    # The call's lines, tied by its call id (CALLREC_ID) as the catalogue ties them.
    ours = [x for x in recorder.audit() if x.get("call_id") == line["call_id"]]
    assert [x["event"] for x in ours] == ["call", "call-recovered", "call"]  # consent first
    recovered = ours[1]
    (adopted,) = (x for x in recorder.audit() if x["event"] == "recording-adopted")
    continues = {
        "call": record["call"],
        "recording_id": first_id,
        "path": adopted["path"],
        "part": 1,
    }
    assert (recovered["recovery"], recovered["found"]) == ("recording-continued", "recording")
    assert recovered["continues"] == line["continues"] == continues
    assert set(record["tap"].values()) <= set(recovered["removed"])
    again = decode_recording(Path(line["path"]), recorder.keys)
    assert again.metadata[0]["continues"] == continues
    started = datetime.fromisoformat(again.metadata[0]["times"]["recording_start"]).timestamp()
    assert started - restarted_at < RECORDED_AGAIN_WITHIN, started - restarted_at
    # The first part is as the kill left it: TRUNCATED, the same consent evidence.
    first = Path(adopted["path"])
    assert str(verify(first, recorder.keys).verdict) == "truncated"
    evidence = decode_recording(first, recorder.keys).metadata[0]
    for key in ("prompt", "decision", "caller", "frontend"):
        assert evidence[key] == again.metadata[0][key], key
    # Nothing of the call stays in Asterisk, nothing in the spool's live records.
    pbx = recorder.pbx
    await wait_until(lambda: not pbx.channels() and not pbx.bridges(), 10, "an empty PBX")
    assert list((recorder.spool / "live").iterdir()) == []
