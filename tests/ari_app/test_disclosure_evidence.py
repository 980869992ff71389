"""What the evidence says about the disclosure: heard, cut short (by what), or failed.

Asterisk ends a playback cut by the caller's hang-up with state ``failed``,
the same state as for a file it cannot play (trace 02, trace 06). The audit
line must not call a hang-up a broken prompt, whichever order the hang-up's
events and PlaybackFinished arrive in.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest

from callrec.ari.sim import CallerScenario
from callrec.failure_policy import FailurePolicy
from tests.ari_app.conftest import DISCLOSURE, Rig, wait_until


def _disclosure(line: dict[str, Any]) -> dict[str, Any]:
    """The disclosure's part of the evidence, times as datetimes."""
    evidence = line["evidence"]
    times = {
        key: None if value is None else datetime.fromisoformat(value)
        for key, value in evidence["times"].items()
    }
    return {
        "start": times["prompt_start"],
        "end": times["prompt_end"],
        "failed": times["prompt_failed"],
        "interrupted": times["prompt_interrupted"],
        "by": evidence["prompt_interrupted_by"],
        "failure": evidence["prompt_failure"],
        "hangup": times["hangup"],
    }


def _started(rig: Rig, caller: str) -> bool:
    return any(
        e["type"] == "PlaybackStarted" and e["playback"]["target_uri"] == f"channel:{caller}"
        for e in rig.sim.events
    )


def _finished(rig: Rig, caller: str) -> list[str]:
    return [
        e["playback"]["state"]
        for e in rig.sim.events
        if e["type"] == "PlaybackFinished" and e["playback"]["target_uri"] == f"channel:{caller}"
    ]


async def test_a_hang_up_during_the_disclosure_is_an_interruption_not_a_failure(
    running: Rig,
) -> None:
    rig = running
    caller = rig.sim.place_call(CallerScenario(exten="100", hangup_after=DISCLOSURE / 2))
    line = await rig.wait_audit(caller)
    # What Asterisk said (trace 02), and what the evidence makes of it.
    assert _finished(rig, caller) == ["failed"]
    assert (line["event"], line["decision"], line["end"]) == (
        "call",
        "declined-hangup",
        "caller-hangup",
    )
    d = _disclosure(line)
    assert (d["by"], d["failure"], d["failed"], d["end"]) == ("caller-hangup", None, None, None)
    assert d["start"] <= d["interrupted"] == d["hangup"]
    assert line["reason"] is None and rig.sealed() == []


@pytest.mark.parametrize("gap", [0.0, 0.2])
async def test_a_failed_playback_reported_before_the_hang_up_is_still_an_interruption(
    running: Rig, gap: float
) -> None:
    """Order is no contract: PlaybackFinished(failed) may come first, the
    hang-up's events right after it or a moment later."""
    rig = running
    caller = rig.sim.place_call(CallerScenario(exten="100", hangup_after=30.0))
    await wait_until(lambda: _started(rig, caller))
    rig.sim.fail_playback(caller)
    if gap:
        await asyncio.sleep(gap)
    rig.sim.hangup_caller(caller)
    line = await rig.wait_audit(caller)
    assert (line["event"], line["decision"]) == ("call", "declined-hangup")
    d = _disclosure(line)
    assert (d["by"], d["failure"], d["failed"]) == ("caller-hangup", None, None)
    assert not any(e["type"] == "Dial" for e in rig.sim.events)


@pytest.mark.parametrize("policy", ["best-effort", "strict"])
async def test_a_prompt_asterisk_cannot_play_on_a_live_channel_is_a_failure(
    rig: Rig, policy: FailurePolicy
) -> None:
    config = rig.config
    config = replace(config, recording=replace(config.recording, on_failure=policy))
    # Hashable, so the app asks Asterisk to play it; unplayable, so Asterisk fails it.
    prompt = rig.out / "sounds" / "en" / "callrec" / "disclosure.wav"
    prompt.write_bytes(b"RIFF\x24\x00\x00\x00WAVE but not audio")
    await rig.start_app(config)
    caller = rig.sim.place_call(CallerScenario(exten="100", hangup_after=3.0))
    line = await rig.wait_audit(caller)
    assert _finished(rig, caller)[0] == "failed"  # strict: then recording_unavailable
    assert (line["event"], line["decision"]) == ("failure", None)
    assert line["reason"] == "disclosure not played: playback failed"
    d = _disclosure(line)
    assert (d["failure"], d["by"], d["interrupted"]) == ("playback failed", None, None)
    assert d["failed"] is not None and line["evidence"]["prompt"]["sha256"] is not None
    dialled = any(e["type"] == "Dial" for e in rig.sim.events)
    assert dialled == (policy == "best-effort")
    assert rig.sealed() == []


async def test_a_missing_prompt_file_is_a_failure_and_never_played(rig: Rig) -> None:
    config = rig.config  # loaded while the file is there: it goes missing later
    (rig.out / "sounds" / "en" / "callrec" / "disclosure.wav").unlink()
    await rig.start_app(config)
    caller = rig.sim.place_call(CallerScenario(exten="100", hangup_after=2.0))
    line = await rig.wait_audit(caller)
    d = _disclosure(line)
    assert (d["failure"], d["by"], d["start"]) == ("prompt file missing", None, None)
    assert not _started(rig, caller)


async def test_the_opt_out_digit_stops_the_disclosure_and_says_so(running: Rig) -> None:
    rig = running
    caller = rig.sim.place_call(
        CallerScenario(exten="100", dtmf=[(0.2, "2")], hangup_after=DISCLOSURE + 1.5)
    )
    line = await rig.wait_audit(caller)
    assert line["decision"] == "declined-dtmf"
    d = _disclosure(line)
    assert (d["by"], d["failure"]) == ("digit", None)
    digit_at = datetime.fromisoformat(line["evidence"]["digits"][0]["at"])
    assert d["start"] <= d["interrupted"] == digit_at <= d["end"]
    assert _finished(rig, caller) == ["done"]  # stopped by the app, not failed


async def test_shutting_down_during_the_disclosure_says_the_call_ended_it(rig: Rig) -> None:
    app = await rig.start_app()
    caller = rig.sim.place_call(CallerScenario(exten="100", hangup_after=30.0))
    await wait_until(lambda: _started(rig, caller))
    await app.shutdown()
    line = await rig.wait_audit(caller)
    assert (line["end"], line["decision"]) == ("shutdown", None)
    d = _disclosure(line)
    assert (d["by"], d["failure"], d["end"]) == ("call-ended", None, None)
    assert d["start"] <= d["interrupted"]
