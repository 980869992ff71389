"""``kill -9`` of ``callrec serve`` while the agent has paused the recording, real Asterisk 22.

The agent (a sipp UAS behind ``PJSIP/talker``, as in tests/realpbx/test_pause.py)
says A, presses ``*1`` (RFC 4733), says B1; the recorder is killed; the agent
says B2 while no recorder runs and on after the restarted one has taken the
call over, presses ``*2``, says C. Nothing of B1 or B2 may be in either file:
the continuation starts paused, holds nothing before the agent's resume, and
C where it was said.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from callrec.decode import decode_recording
from callrec.pausing import CARRIED_OVER
from callrec.recording import verify
from callrec.testcall.harness import RATE, run_scenario
from tests.ari_app.pause_support import Said, agent_voice, heard_seconds, onset

from .conftest import MakeRecorder, Pbx, Recorder, line_of, wait_until
from .test_pause import DIGIT_SECONDS, PAUSER_EXTEN, _recorder, agent_stream, playing_agent

pytestmark = pytest.mark.realpbx

# What the agent says and presses, in seconds after its answer.
A = Said(400.0, 0.8, 2.0)
B1 = Said(1050.0, 2.9, 3.9)  # paused, before the kill
B2 = Said(650.0, 4.6, 14.0)  # paused: while no recorder runs, then after the take-over
C = Said(1850.0, 16.5, 18.0)  # after the resume
PRESSES = ((2.3, "star"), (2.6, "1"), (15.0, "star"), (15.3, "2"))
STAYS = 19.5
KILL_AFTER_PAUSE = 1.8  # the pause's record is written: B1 is said, then the kill


@pytest.fixture
def pausing_agent(pbx: Pbx, tmp_path: Path) -> Iterator[None]:
    voice = agent_voice((A, B1, B2, C), seconds=STAYS)
    with playing_agent(tmp_path / "agent", agent_stream(voice, PRESSES)):
        yield


def _paused_record(recorder: Recorder) -> dict[str, Any] | None:
    """The open pause in the call's live record, once there is one."""
    for path in (recorder.spool / "live").glob("*.json"):
        pause: dict[str, Any] | None = json.loads(path.read_text()).get("pause")
        return pause
    return None


def _line(recorder: Recorder, event: str) -> dict[str, Any] | None:
    return next((x for x in recorder.audit() if x.get("event") == event), None)


async def test_kill_9_while_paused_the_continuation_starts_paused(
    make_recorder: MakeRecorder, pausing_agent: None
) -> None:
    recorder = await _recorder(make_recorder)
    lead = recorder.disclosure_seconds(PAUSER_EXTEN) + recorder.config.consent.grace
    hold = lead + 1.0 + STAYS
    scenario = replace(recorder.scenarios(PAUSER_EXTEN)["stay"], hold=hold)
    silent = np.zeros(int(hold * RATE), np.int16)
    options = replace(recorder.options(PAUSER_EXTEN), audio=silent)
    call = asyncio.create_task(run_scenario(scenario, options))
    paused = await wait_until(lambda: _paused_record(recorder), 30, "the pause in the record")
    assert paused["source"] == "agent-code" and paused["resume_by"] is None
    await asyncio.sleep(KILL_AFTER_PAUSE)
    assert await recorder.kill() == -9
    await recorder.start()
    recovered = await wait_until(lambda: _line(recorder, "call-recovered"), 10, "call-recovered")
    assert recovered["recovery"] == "recording-continued"
    assert recovered["continues"]["paused"] == paused
    report = await call
    # The caller is silent: what it "sent" cannot be followed; every other check holds.
    failed = [c.name for c in report.checks if not c.ok]
    assert failed in ([], ["audio follows what was sent"]), report.checks
    line = line_of(report)
    assert line["pauses"] == 1 and line["continues"]["paused"] == paused

    # The part the kill cut: A, then nothing of B1.
    adopted = _line(recorder, "recording-adopted")
    assert adopted is not None
    assert str(verify(Path(adopted["path"]), recorder.keys).verdict) == "truncated"
    first = decode_recording(Path(adopted["path"]), recorder.keys).mono()
    assert heard_seconds(first, A) > 0.5
    assert heard_seconds(first, B1) == 0.0 and heard_seconds(first, B2) == 0.0

    # The continuation: paused from its first instant until the agent's *2.
    path = next(p for p in recorder.sealed() if line["recording_id"] in p.name)
    decoded = decode_recording(path, recorder.keys)
    assert decoded.metadata[0]["continues"]["paused"] == paused
    pause, resume = (e for e in decoded.events if e["event"] in ("pause", "resume"))
    assert (pause["event"], pause["source"], pause["at_seconds"]) == ("pause", "agent-code", 0.0)
    assert (resume["event"], resume["source"]) == ("resume", "agent-code")
    # Taken over while B2 was still said (else this call shows nothing).
    assert pause["at"] - paused["start"] < B2.end - PRESSES[0][0] - 1.0
    samples = decoded.mono()
    silent_until = int(resume["at_seconds"] * RATE)
    assert silent_until > 0 and not np.any(samples[:silent_until])
    assert heard_seconds(samples, B1) == 0.0 and heard_seconds(samples, B2) == 0.0
    assert heard_seconds(samples, C) == pytest.approx(C.end - C.start, abs=0.1)
    # C as long after the pause's start as it was said (from the end of *, as
    # Asterisk reports a digit when it ends).
    c = onset(samples, C)
    assert c is not None
    said_after_pause = C.start - (PRESSES[0][0] + DIGIT_SECONDS)
    assert c + (pause["at"] - paused["start"]) == pytest.approx(said_after_pause, abs=0.15)
    [summary] = decoded.metadata[-1]["pauses"]
    assert (summary["source"], summary["resumed_by"]) == ("agent-code", "agent-code")
    assert (summary["asked_at"], summary["note"]) == (paused["start"], CARRIED_OVER)
    assert summary["start"] == pause["at"] and summary["end"] == resume["at"]
    await wait_until(lambda: not recorder.pbx.channels(), 10, "an empty PBX")
    assert list((recorder.spool / "live").iterdir()) == []
