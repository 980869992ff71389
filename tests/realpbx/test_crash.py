"""``kill -9`` of ``callrec serve`` mid-call on a real Asterisk 22, and the next start.

Asterisk keeps a killed recorder's calls: caller and agent stay bridged, the
tap's snoop and ExternalMedia channel (still sending RTP to the dead port)
stay in their own bridge, and the Stasis app stays listed. The restarted
recorder must take the call over and record the rest of it, or clean up
what a call that ended meanwhile left behind, and audit either.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from callrec.audio import envelope_correlation, resample
from callrec.decode import decode_recording
from callrec.recording import verify
from callrec.testcall.checks import sent_before_recording
from callrec.testcall.harness import caller_audio, run_scenario

from .conftest import RATE, STASIS_EXTEN, Recorder, assert_ok, line_of, wait_until

pytestmark = pytest.mark.realpbx

# Issue 10: a bridged call is recorded again within 2 s of the restart.
RECORDED_AGAIN_WITHIN = 2.0
TAP_NAMES = ("Snoop/", "UnicastRTP/")


def _tap_left(recorder: Recorder) -> set[str]:
    """The tap's channels and the bridge holding only them."""
    channels = {c["id"] for c in recorder.pbx.channels() if c["name"].startswith(TAP_NAMES)}
    bridges = {
        b["id"] for b in recorder.pbx.bridges() if b["channels"] and set(b["channels"]) <= channels
    }
    return channels | bridges


def _call_bridge(recorder: Recorder) -> dict[str, Any] | None:
    """The bridge where caller and agent talk."""
    for bridge in recorder.pbx.bridges():
        names = {
            c["name"].split("-")[0]
            for c in recorder.pbx.channels()
            if c["id"] in bridge["channels"]
        }
        if names == {"PJSIP/caller", "PJSIP/agent"}:
            return bridge
    return None


def _line(recorder: Recorder, event: str) -> dict[str, Any] | None:
    return next((x for x in recorder.audit() if x.get("event") == event), None)


async def test_kill_9_mid_call_the_restarted_recorder_records_the_rest(
    recorder: Recorder,
) -> None:
    pbx = recorder.pbx
    stay = recorder.scenarios()["stay"]
    scenario = replace(stay, hold=stay.hold + 14.0)
    opts = recorder.options(STASIS_EXTEN)
    call = asyncio.create_task(run_scenario(scenario, opts))
    (first_part,) = await wait_until(recorder.open_recordings, 30, "the recording to start")
    first_id = first_part.name.removesuffix(".crec.part")
    await asyncio.sleep(3.0)
    assert await recorder.kill() == -9
    # What Asterisk keeps of a killed recorder's call (issue 10).
    await asyncio.sleep(0.5)
    bridge = _call_bridge(recorder)
    assert bridge is not None and len(bridge["channels"]) == 2, pbx.bridges()
    left = _tap_left(recorder)
    assert len(left) == 3, (pbx.channels(), pbx.bridges())  # snoop, ExternalMedia, tap bridge
    restarted_at = time.time()
    await recorder.start()
    recovered = await wait_until(lambda: _line(recorder, "call-recovered"), 10, "call-recovered")
    report = await call
    # The continuation is judged like any recording: it verifies, its length fits
    # the audit line, its evidence comes first, its audio follows the caller's.
    assert_ok(report)
    line = line_of(report)
    assert report.sipp is not None and not report.sipp.remote_hangup  # never cut off
    adopted = _line(recorder, "recording-adopted")
    assert adopted is not None and adopted["recording_id"] == first_id
    continues = {
        "call": line["channel"],
        "recording_id": first_id,
        "path": adopted["path"],
        "part": 1,
    }
    assert recovered["recovery"] == "recording-continued" and recovered["continues"] == continues
    assert left <= set(recovered["removed"])
    assert line["continues"] == continues and line["end"] == "caller-hangup"
    path = next(p for p in recorder.sealed() if line["recording_id"] in p.name)
    again = decode_recording(path, recorder.keys)
    assert again.metadata[0]["continues"] == continues
    started = datetime.fromisoformat(again.metadata[0]["times"]["recording_start"]).timestamp()
    assert started - restarted_at < RECORDED_AGAIN_WITHIN, started - restarted_at
    # The first part is as the kill left it: TRUNCATED, its audio the caller's.
    first_path = Path(adopted["path"])
    assert str(verify(first_path, recorder.keys).verdict) == "truncated"
    first = decode_recording(first_path, recorder.keys)
    sent = caller_audio(opts.audio, scenario.hold)
    sent = sent[sent_before_recording({"evidence": first.metadata[0]}, RATE) :]
    got = resample(first.mono(), first.rate, RATE)
    n = min(len(got), len(sent))
    assert envelope_correlation(sent[:n], got[:n], RATE) >= 0.6
    # Nothing of the call stays in Asterisk, nothing in the spool's live records.
    await wait_until(lambda: not pbx.channels() and not pbx.bridges(), 10, "an empty PBX")
    assert list((recorder.spool / "live").iterdir()) == []


async def test_a_call_that_ended_while_no_recorder_ran_leaves_nothing_behind(
    recorder: Recorder,
) -> None:
    pbx = recorder.pbx
    stay = recorder.scenarios()["stay"]
    scenario = replace(stay, hold=stay.hold + 3.0)
    # Its audit line is the restarted recorder's; sipp alone decides the call.
    call = asyncio.create_task(
        run_scenario(scenario, replace(recorder.options(STASIS_EXTEN), wait=0))
    )
    await wait_until(recorder.open_recordings, 30, "the recording to start")
    await asyncio.sleep(1.0)
    assert await recorder.kill() == -9
    report = await call  # the caller hangs up; nobody hangs the agent up
    assert report.sipp is not None and report.sipp.answered and not report.sipp.remote_hangup
    await asyncio.sleep(0.5)
    # The agent alone in the call's bridge; the ExternalMedia alone in the tap's.
    kinds = sorted(c["name"].split("-")[0].split(":")[0] for c in pbx.channels())
    assert kinds == ["PJSIP/agent", "UnicastRTP/127.0.0.1"], pbx.channels()
    assert len(pbx.bridges()) == 2, pbx.bridges()
    stale = {c["id"] for c in pbx.channels()} | {b["id"] for b in pbx.bridges()}
    await recorder.start()
    lost = await wait_until(
        lambda: _line(recorder, "call-lost-by-crash"), 10, "call-lost-by-crash"
    )
    await wait_until(lambda: not pbx.channels() and not pbx.bridges(), 10, "an empty PBX")
    assert set(lost["removed"]) == stale
    assert lost["decision"] == "implied" and lost["recording_id"] is not None
    assert str(verify(Path(lost["path"]), recorder.keys).verdict) == "truncated"
    assert list((recorder.spool / "live").iterdir()) == []


async def test_kill_9_during_the_disclosure_hands_the_caller_back_to_the_dialplan(
    recorder: Recorder,
) -> None:
    stay = recorder.scenarios()["stay"]
    scenario = replace(stay, hold=stay.hold + 20.0, expect_recording=False)
    call = asyncio.create_task(run_scenario(scenario, recorder.options(STASIS_EXTEN)))
    await wait_until(
        lambda: [c for c in recorder.pbx.channels() if c["name"].startswith("PJSIP/caller-")],
        10,
        "the caller to arrive",
    )
    await asyncio.sleep(0.5)  # the disclosure plays
    assert await recorder.kill() == -9
    await recorder.start()
    report = await call
    line = line_of(report)
    assert (line["event"], line["end"], line["decision"]) == ("call", "handed-back", None)
    assert line["recording_id"] is None and line["destination"] is None
    assert line["evidence"]["times"]["answer"] is not None  # what the caller had heard of
    recovered = _line(recorder, "call-recovered")
    assert recovered is not None and recovered["recovery"] == "handed-back"
    assert recovered["found"] == "disclosing"
    # The dialplan after Stasis() (Hangup) ended the call, well before the caller would.
    assert report.sipp is not None and report.sipp.answered and report.sipp.remote_hangup
    assert recorder.sealed() == [] and list((recorder.spool / "live").iterdir()) == []
