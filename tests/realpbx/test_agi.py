"""Dialplan (FastAGI) mode on a real Asterisk with SIP callers.

tests/pbx/conf routes 7XX through ``AGI(.../consent)``, ``AGI(.../record)``
after consent and ``Dial(PJSIP/agent)``; 8XX through consent and record, then
``/pause``, ``/resume`` and ``/stop`` two seconds apart while the caller talks.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import numpy as np
import numpy.typing as npt
import pytest

from callrec.audio import envelope_correlation, resample
from callrec.decode import decode_recording
from callrec.testcall.harness import RATE, caller_audio, run_scenario

from .conftest import AGI_CONTROLS_EXTEN, AGI_EXTEN, Recorder, assert_ok, line_of

pytestmark = pytest.mark.realpbx

# The controls dialplan's Wait()s: recording, paused, recording again.
STEP = 2.0


@pytest.mark.parametrize("name", ["stay", "hangup", "optout"])
async def test_agi_consent_and_recording(recorder: Recorder, name: str) -> None:
    report = await run_scenario(recorder.scenarios(AGI_EXTEN)[name], recorder.options(AGI_EXTEN))
    assert_ok(report)
    line = line_of(report)
    assert line["evidence"]["frontend"] == "agi"
    # One consent line per call, plus the recording's own line when recorded.
    lines = [x for x in recorder.audit() if x.get("call_id") == line["call_id"]]
    assert [x.get("stage") for x in lines] == (
        ["consent", "recording"] if name == "stay" else ["consent"]
    )


def _epoch(when: str | float) -> float:
    """An evidence time (ISO 8601) or a pause frame's time (epoch seconds)."""
    return when if isinstance(when, float) else datetime.fromisoformat(when).timestamp()


def _seconds(later: str | float, earlier: str | float) -> float:
    return _epoch(later) - _epoch(earlier)


async def test_agi_pause_resume_and_stop(recorder: Recorder) -> None:
    stay = recorder.scenarios(AGI_CONTROLS_EXTEN)["stay"]
    talk_after_stop = 3.0
    caller = replace(stay, hold=stay.hold - 3.0 + 3 * STEP + talk_after_stop)
    options = recorder.options(AGI_CONTROLS_EXTEN)
    report = await run_scenario(caller, options)
    assert report.record is not None and report.record.get("stage") == "recording"
    line = line_of(report)
    # Every check but the whole-recording correlation, which a pause shifts:
    # each recorded part is correlated on its own below.
    checks = {c.name: c for c in report.checks}
    assert [n for n, c in checks.items() if not c.ok] in ([], ["audio follows what was sent"])
    assert "duration fits the call" in checks, checks

    (path,) = recorder.sealed()
    decoded = decode_recording(path, recorder.keys)
    events = [e["event"] for e in decoded.events]
    assert events == ["pause", "resume"]
    pause, resume = decoded.events
    assert (pause["source"], resume["source"]) == ("agi", "agi")
    # Two steps recorded, the paused one played back as silence of its length,
    # and stopped well before the caller hung up.
    seconds = len(decoded.samples) / decoded.rate
    assert 3 * STEP - 0.5 <= seconds <= 3 * STEP + 0.5
    assert _seconds(resume["at"], pause["at"]) == pytest.approx(STEP, abs=0.5)
    times = line["evidence"]["times"]
    assert _seconds(times["recording_end"], times["recording_start"]) < 3 * STEP + 0.5

    # Each recorded part follows what the caller said at that time.
    sent = caller_audio(options.audio, caller.hold)
    got = resample(decoded.mono(), decoded.rate, RATE)
    before, after = int(pause["at_seconds"] * RATE), int(resume["at_seconds"] * RATE)
    assert not got[before:after].any()  # the pause: silence

    def follows(audio: npt.NDArray[np.int16], since: str | float) -> float:
        start = round(_seconds(since, times["answer"]) * RATE)
        source = sent[start : start + len(audio)]
        n = min(len(source), len(audio))
        return envelope_correlation(source[:n], audio[:n], RATE)

    assert follows(got[:before], times["recording_start"]) >= 0.6
    assert follows(got[after:], resume["at"]) >= 0.6
