"""The recorder's and the PBX's life cycle under live SIP calls: SIGTERM, ``core restart now``."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from callrec.decode import decode_recording
from callrec.testcall.harness import run_scenario

from .conftest import STASIS_EXTEN, Recorder, assert_ok, line_of, wait_until

pytestmark = pytest.mark.realpbx


def _caller_channels(recorder: Recorder) -> list[str]:
    return [c["id"] for c in recorder.pbx.channels() if c["name"].startswith("PJSIP/caller-")]


async def test_sigterm_mid_call_seals_the_recording_and_leaves_the_caller_connected(
    recorder: Recorder,
) -> None:
    stay = recorder.scenarios()["stay"]
    talk_on = 6.0  # the caller talks on this long after the recorder has gone
    caller = replace(stay, hold=stay.hold + talk_on)
    call = asyncio.create_task(run_scenario(caller, recorder.options(STASIS_EXTEN)))
    await wait_until(recorder.open_recordings, 30, "the recording to start")
    await asyncio.sleep(1.5)
    assert await recorder.stop() == 0, recorder.log_text()[-2000:]
    # Caller and agent still talk in their bridge; the recorder's tap is gone.
    bridges = recorder.pbx.bridges()
    assert [len(b["channels"]) for b in bridges] == [2], bridges
    assert not [c for c in recorder.pbx.channels() if "PJSIP/" not in c["name"]]
    report = await call
    assert_ok(report)
    line = line_of(report)
    assert line["end"] == "shutdown"
    assert report.sipp is not None and not report.sipp.remote_hangup  # not cut off
    path = next(p for p in recorder.sealed() if line["recording_id"] in p.name)
    decoded = decode_recording(path, recorder.keys)
    assert decoded.metadata[-1]["reason"] == "shutdown"
    # Sealed at the SIGTERM, not when the caller hung up later.
    assert len(decoded.samples) / decoded.rate < line["durations"]["call"] - talk_on / 2


async def test_sigterm_during_the_disclosure_hands_the_caller_back_to_the_dialplan(
    recorder: Recorder,
) -> None:
    stay = recorder.scenarios()["stay"]
    caller = replace(stay, hold=stay.hold + 20.0, expect_recording=False)
    call = asyncio.create_task(run_scenario(caller, recorder.options(STASIS_EXTEN)))
    await wait_until(lambda: _caller_channels(recorder), 10, "the caller to arrive")
    await asyncio.sleep(0.5)
    assert await recorder.stop() == 0, recorder.log_text()[-2000:]
    report = await call
    line = line_of(report)
    assert (line["event"], line["end"], line["decision"]) == ("call", "shutdown", None)
    assert line["recording_id"] is None and line["destination"] is None
    # The dialplan after Stasis() (Hangup) ended the call, not the caller.
    assert report.sipp is not None and report.sipp.answered and report.sipp.remote_hangup
    assert recorder.sealed() == []


async def test_a_pbx_restart_mid_call_seals_the_recording_with_its_reason(
    recorder: Recorder,
) -> None:
    """Trace 07: a soft hang-up with cause 4, the websocket drops (1006), Asterisk
    refuses and then answers 503 until it has booted; nothing is replayed."""
    pbx = recorder.pbx
    stay = recorder.scenarios()["stay"]
    caller = replace(stay, hold=stay.hold + 20.0)
    call = asyncio.create_task(run_scenario(caller, recorder.options(STASIS_EXTEN)))
    await wait_until(recorder.open_recordings, 30, "the recording to start")
    await asyncio.sleep(2.0)
    pbx.restart()
    report = await call
    assert_ok(report)
    line = line_of(report)
    assert line["end"] == "ended-by-pbx-restart"
    assert report.sipp is not None and report.sipp.remote_hangup
    path = next(p for p in recorder.sealed() if line["recording_id"] in p.name)
    assert decode_recording(path, recorder.keys).metadata[-1]["reason"] == "ended-by-pbx-restart"
    await wait_until(pbx.up, 60, "Asterisk to boot again")


async def test_the_recorder_reconnects_when_ari_comes_back_and_after_a_restart(
    recorder: Recorder,
) -> None:
    pbx = recorder.pbx
    # What a boot looks like to a reconnecting client: ARI's websocket 404s.
    pbx.cli("module unload res_ari_events.so")
    try:
        pbx.cli("ari shutdown websocket sessions")
        await asyncio.sleep(1.0)
    finally:
        pbx.cli("module load res_ari_events.so")
    await recorder.wait_ready(30)
    pbx.restart()
    await wait_until(pbx.up, 60, "Asterisk to boot again")
    await recorder.wait_ready(30)
    report = await run_scenario(recorder.scenarios()["stay"], recorder.options(STASIS_EXTEN))
    assert_ok(report)
