"""The agent pauses the recording with feature codes: simulator -> app -> sealed file.

The agent says A, presses *1, says B, presses *2, says C (pause_support.py).
The decrypted recording must hold A and C, not B, with C as long after A as
it was said; the file, its summary and the audit line name the pause and who
asked; the agent alone hears the tones. The caller's *1 pauses nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from ari_app.app import App
from callrec.ari.sim import CallerScenario, EndpointBehaviour
from callrec.decode import Decoded, decode_recording
from tests.ari_app.conftest import DISCLOSURE, GRACE, Rig, wait_until
from tests.ari_app.pause_support import AFTER, BEFORE, DURING, agent_voice, heard_seconds, onset

# The agent's digits and the caller's hang-up, in seconds from the agent's answer.
PAUSE_DIGITS = [(2.3, "*"), (2.6, "1")]
RESUME_DIGITS = [(5.0, "*"), (5.3, "2")]
HANG_UP = 8.0


def _configure(rig: Rig, recording: str) -> None:
    """Extra [recording] keys for this test's calls."""
    text = rig.config_path.read_text(encoding="utf-8")
    rig.config_path.write_text(text.replace("[recording]\n", f"[recording]\n{recording}", 1))


async def _call(
    rig: Rig, app: App, caller_digits: tuple[tuple[float, str], ...] = ()
) -> tuple[str, str]:
    """A silent caller to 100; (caller, agent) once the agent's channel is being recorded."""
    scenario = CallerScenario(exten="100", dtmf=list(caller_digits))
    caller = rig.sim.place_call(scenario)

    def recorded() -> str | None:
        session = app.sessions.get(caller)
        return session.agent_id if session is not None and session.pauses is not None else None

    agent: str = await wait_until(recorded, 10)
    return caller, agent


def _agent_does(rig: Rig, caller: str, agent: str, digits: list[tuple[float, str]]) -> None:
    """The agent presses ``digits`` at their times after its answer; the caller hangs up."""
    loop = asyncio.get_running_loop()
    channel = rig.sim.channel(agent)
    assert channel is not None and channel.media_start is not None
    answered = channel.media_start
    for at, digit in digits:
        loop.call_at(answered + at, rig.sim.send_dtmf, agent, digit)
    loop.call_at(answered + HANG_UP, rig.sim.hangup_caller, caller)


def _agent_says(rig: Rig) -> None:
    rig.sim.add_endpoint(
        "PJSIP/agent", EndpointBehaviour(kind="answer", answer_after=0.1, audio=agent_voice())
    )


async def _recording(rig: Rig, caller: str) -> tuple[dict[str, Any], Decoded]:
    line = await rig.wait_audit(caller)
    return line, decode_recording(Path(line["path"]), rig.keys)


def _said_in(samples: npt.NDArray[np.int16]) -> tuple[float, float, float]:
    """Seconds of A, B and C heard in ``samples``."""
    return tuple(heard_seconds(samples, said) for said in (BEFORE, DURING, AFTER))  # type: ignore[return-value]


def _plays(rig: Rig, channel: str) -> list[str]:
    """The media ARI was asked to play on ``channel``."""
    return [
        query.get("media", "")
        for method, path, query, _ in rig.sim.request_log
        if method == "POST" and path == f"/ari/channels/{channel}/play"
    ]


def _call_bridge_adds(rig: Rig) -> list[dict[str, str]]:
    """The query of each addChannel to the call's own bridge (not a tap's)."""
    return [
        query
        for method, path, query, _ in rig.sim.request_log
        if path.startswith("/ari/bridges/callrec-call-") and path.endswith("/addChannel")
    ]


async def test_what_the_agent_says_while_paused_is_not_in_the_recording(rig: Rig) -> None:
    _agent_says(rig)
    app = await rig.start_app()
    caller, agent = await _call(rig, app)
    _agent_does(rig, caller, agent, PAUSE_DIGITS + RESUME_DIGITS)
    line, decoded = await _recording(rig, caller)
    samples = decoded.mono()

    before, during, after = _said_in(samples)
    assert before == pytest.approx(BEFORE.end - BEFORE.start, abs=0.1)
    assert during == 0.0
    assert after == pytest.approx(AFTER.end - AFTER.start, abs=0.1)
    # C stands as long after A as it was said: the pause is silence of its true length.
    a, c = onset(samples, BEFORE), onset(samples, AFTER)
    assert a is not None and c is not None
    assert c - a == pytest.approx(AFTER.start - BEFORE.start, abs=0.1)

    # From the first digit of *1 to the last of *2.
    paused = RESUME_DIGITS[-1][0] - PAUSE_DIGITS[0][0]
    marks = [e for e in decoded.events if e["event"] in ("pause", "resume")]
    assert [(e["event"], e["source"]) for e in marks] == [
        ("pause", "agent-code"),
        ("resume", "agent-code"),
    ]
    assert marks[1]["paused"] == pytest.approx(paused, abs=0.1)
    [pause] = decoded.metadata[-1]["pauses"]
    assert (pause["source"], pause["resumed_by"]) == ("agent-code", "agent-code")
    assert pause["seconds"] == pytest.approx(paused, abs=0.1)
    assert pause["start"] == marks[0]["at"] and pause["end"] == marks[1]["at"]
    assert line["pauses"] == 1
    assert line["durations"]["paused"] == pytest.approx(paused, abs=0.1)

    # The agent heard the pause tone then the resume tone; the caller only the disclosure.
    settings = rig.config.recording.pause
    assert _plays(rig, agent) == [settings.pause_tone, settings.resume_tone]
    assert len(_plays(rig, caller)) == 1
    stopped = [path for method, path, _, _ in rig.sim.request_log if method == "DELETE"]
    assert sum(path.startswith("/ari/playbacks/callrec-tone-") for path in stopped) == 2
    # The agent's digits stay out of the call's bridge: the caller hears none.
    adds = _call_bridge_adds(rig)
    assert [(q["channel"], q.get("absorbDTMF")) for q in adds] == [
        (caller, None),
        (agent, "true"),
    ]


async def test_the_callers_digits_pause_nothing(rig: Rig) -> None:
    _agent_says(rig)
    app = await rig.start_app()
    # After the disclosure: the caller presses *1 while the agent says A.
    bridged = DISCLOSURE + GRACE + 0.3
    caller, agent = await _call(rig, app, ((bridged + 1.0, "*"), (bridged + 1.3, "1")))
    _agent_does(rig, caller, agent, [])
    line, decoded = await _recording(rig, caller)
    assert all(e["event"] not in ("pause", "resume") for e in decoded.events)
    assert decoded.metadata[-1]["pauses"] == []
    assert line["pauses"] == 0
    before, during, after = _said_in(decoded.mono())
    assert min(before, during, after) > 1.0  # everything the agent said is there
    assert _plays(rig, agent) == []


async def test_a_code_the_agent_does_not_finish_keeps_the_audio(rig: Rig) -> None:
    _agent_says(rig)
    app = await rig.start_app()
    caller, agent = await _call(rig, app)
    # "*" then "5" while saying A: not a code; what was said between stays.
    _agent_does(rig, caller, agent, [(1.2, "*"), (1.6, "5"), (3.6, "*")])
    line, decoded = await _recording(rig, caller)
    assert line["pauses"] == 0
    before, during, _ = _said_in(decoded.mono())
    assert before == pytest.approx(BEFORE.end - BEFORE.start, abs=0.1)
    assert during == pytest.approx(DURING.end - DURING.start, abs=0.1)  # "*" alone timed out


async def test_a_forgotten_pause_resumes_by_itself(rig: Rig) -> None:
    _configure(rig, "auto_resume = 1.5\n")
    _agent_says(rig)
    app = await rig.start_app()
    caller, agent = await _call(rig, app)
    _agent_does(rig, caller, agent, PAUSE_DIGITS)
    line, decoded = await _recording(rig, caller)
    [pause] = decoded.metadata[-1]["pauses"]
    assert (pause["source"], pause["resumed_by"]) == ("agent-code", "auto-resume")
    assert pause["seconds"] == pytest.approx(1.5, abs=0.1)
    samples = decoded.mono()
    # Paused from 2.3 s to 3.8 s: B (from 3.2 s) is heard from 3.8 s on.
    resumed = PAUSE_DIGITS[0][0] + 1.5
    assert heard_seconds(samples, DURING) == pytest.approx(DURING.end - resumed, abs=0.1)
    assert heard_seconds(samples, AFTER) == pytest.approx(AFTER.end - AFTER.start, abs=0.1)
    assert line["durations"]["paused"] == pytest.approx(1.5, abs=0.1)


async def test_codes_and_tones_off(rig: Rig) -> None:
    _configure(rig, 'pause_code = ""\nresume_code = ""\n')
    _agent_says(rig)
    app = await rig.start_app()
    caller, agent = await _call(rig, app)
    _agent_does(rig, caller, agent, PAUSE_DIGITS + RESUME_DIGITS)
    line, decoded = await _recording(rig, caller)
    assert line["pauses"] == 0
    assert heard_seconds(decoded.mono(), DURING) > 1.0
    # Without codes the agent's digits pass to the caller as before.
    assert [q.get("absorbDTMF") for q in _call_bridge_adds(rig)] == [None]


async def test_a_stereo_recording_pauses_on_both_channels(rig: Rig) -> None:
    with rig.config_path.open("a", encoding="utf-8") as f:
        f.write('\n[recording.numbers."100"]\nchannels = "stereo"\n')
    _agent_says(rig)
    app = await rig.start_app()
    caller, agent = await _call(rig, app)
    _agent_does(rig, caller, agent, PAUSE_DIGITS + RESUME_DIGITS)
    line, decoded = await _recording(rig, caller)
    assert decoded.channels == 2
    heard = decoded.samples[:, 1]  # what the caller hears: the agent
    assert heard_seconds(heard, DURING) == 0.0
    assert heard_seconds(heard, BEFORE) == pytest.approx(BEFORE.end - BEFORE.start, abs=0.1)
    a, c = onset(heard, BEFORE), onset(heard, AFTER)
    assert a is not None and c is not None
    assert c - a == pytest.approx(AFTER.start - BEFORE.start, abs=0.1)
    assert line["pauses"] == 1
